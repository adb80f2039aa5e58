"""The shipped zoo: Hub-repo-shaped folders, at most 60 MB of weights, carrying the package's current modeling code."""

import filecmp
import json
from pathlib import Path

import pytest

from hf_dgm.zoo import ZOO_MODELS, zoo_dir

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [name for name in ZOO_MODELS if (zoo_dir() / name / "config.json").is_file()]


def test_zoo_weights_fit_the_budget():
    total = sum(p.stat().st_size for p in zoo_dir().rglob("*.safetensors"))
    assert 0 < total <= 60_000_000, f"{total / 1e6:.1f} MB of weights in zoo/"


@pytest.mark.parametrize("name", [n for n in SHIPPED if n != "mnist-classifier"])
def test_generators_are_complete_and_carry_current_code(name):
    folder = zoo_dir() / name
    for fname in ("config.json", "model.safetensors", "README.md", "samples.png", "training_args.json"):
        assert (folder / fname).is_file(), f"{name} lacks {fname}"
    results = json.loads((folder / "eval_results.json").read_text())
    assert results["metrics"] and "classifier-feature FID" in {m["name"] for m in results["metrics"]}
    family = "gan" if json.loads((folder / "config.json").read_text())["model_type"] == "hf_dgm_gan" else "vae"
    for module in ("configuration", "modeling", "networks"):
        fname = f"{module}_{family}.py"
        assert filecmp.cmp(folder / fname, ROOT / "hf_dgm" / family / fname, shallow=False), (
            f"zoo/{name}/{fname} differs from hf_dgm/{family}/{fname}: copy the current code into the zoo folder"
        )
