"""The shipped zoo: Hub-repo-shaped folders (config, weights, card, results; no code), at most 100 MB of weights."""

import json
import shlex
from pathlib import Path

import pytest

from hf_dgm.zoo import ZOO_MODELS, zoo_dir

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [name for name in ZOO_MODELS if (zoo_dir() / name / "config.json").is_file()]


def test_zoo_weights_fit_the_budget():
    """What a clone carries: 54 MB for the MNIST models and 45 MB for the emoji ones (the GAN 33 MB, the VAE 12 MB)."""
    total = sum(p.stat().st_size for p in zoo_dir().rglob("*.safetensors"))
    assert 0 < total <= 100_000_000, f"{total / 1e6:.1f} MB of weights in zoo/"


@pytest.mark.parametrize("name", [n for n in SHIPPED if n != "mnist-classifier"])
def test_generators_are_complete_and_carry_no_code(name):
    folder = zoo_dir() / name
    for fname in ("config.json", "model.safetensors", "README.md", "samples.png", "training_args.json"):
        assert (folder / fname).is_file(), f"{name} lacks {fname}"
    results = json.loads((folder / "eval_results.json").read_text())
    names = {m["name"] for m in results["metrics"]}
    if results.get("feature_extractor", "").startswith("TF-Inception"):  # a colour model: the Inception protocol
        assert any(n.startswith("Inception KID (") for n in names) and any("memorized share" in n for n in names)
    else:
        assert "classifier-feature FID" in names
    # the code for trust_remote_code is attached on upload (hf_dgm.remote_code), never kept in a folder
    assert not list(folder.glob("*.py")), f"zoo/{name} carries code"
    assert "auto_map" not in json.loads((folder / "config.json").read_text())


# what every generative model's eval_results.json says, whichever protocol measured it
EVAL_FIELDS = {"model", "model_type", "seed", "device", "dataset", "split", "protocol", "num_samples",
               "num_reference_images", "feature_extractor", "metrics", "time_s"}  # fmt: skip


@pytest.mark.parametrize("name", [n for n in SHIPPED if n != "mnist-classifier"])
def test_records_are_portable_and_complete(name):
    """The records name the model by its zoo path and the data by name and content hash (hf_dgm.records), never by a
    path of the machine that trained it; every eval_results.json has the same fields."""
    from hf_dgm.model_card import KNOWN_DATASETS

    folder = zoo_dir() / name
    results = json.loads((folder / "eval_results.json").read_text())
    run = json.loads((folder / "training_args.json").read_text())
    assert EVAL_FIELDS <= set(results), f"zoo/{name}/eval_results.json lacks {EVAL_FIELDS - set(results)}"
    assert results["model"] == f"zoo/{name}"
    for record in (results, run):
        assert record["dataset"] in ("mnist", "emoji") and len(record["dataset_sha256"]) == 64
        assert all(not str(record.get(k) or "").startswith(("/", "~")) for k in ("output_dir", "init_from"))
    if run["dataset"] == "emoji":  # the card knows the emoji by its hash: Noto Emoji artwork, Apache-2.0
        assert run["dataset_sha256"] in KNOWN_DATASETS
        assert "license: apache-2.0" in (folder / "README.md").read_text()


def _recipe_args(recipe: str, extra=()):
    from dataclasses import fields

    from hf_dgm.training.arguments import build_parser
    from hf_dgm.training.gan import GANTrainingArguments
    from hf_dgm.training.vae import VAETrainingArguments

    family, *flags = shlex.split(recipe)
    cls = GANTrainingArguments if family == "gan" else VAETrainingArguments
    namespace = build_parser(cls, "recipe", "").parse_args([*flags, *extra])
    args = cls(**{f.name: getattr(namespace, f.name) for f in fields(cls)})
    args.validate()  # resolves the architecture's defaults, as a run records them
    return args.to_dict(), cls.model_fields


def _script(name: str):
    """A module of scripts/ or scripts/experiments/ (which import each other by name)."""
    import importlib
    import sys

    for folder in (ROOT / "scripts", ROOT / "scripts" / "experiments"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def test_recipe_side_by_side_differs_only_by_the_tricks():
    """scripts/experiments/compare_gan_recipes.py: the plain recipe is pytorch/examples' (no EMA, no R1), ours is the zoo's
    dcgan-mnist recipe, both at the same steps on the same networks."""
    compare = _script("compare_gan_recipes")
    pair = compare.recipes(1234)
    (plain, _), (ours, _) = _recipe_args(pair["plain"]), _recipe_args(pair["ours"])
    assert {k for k in plain if plain[k] != ours[k]} == {"ema_decay", "r1_gamma"}
    assert plain["ema_decay"] == 0 and plain["max_steps"] == ours["max_steps"] == 1234
    assert {k: plain[k] for k in compare.PLAIN} == compare.PLAIN
    zoo, _ = _recipe_args(_script("build_zoo").RECIPES["dcgan-mnist"])
    assert {k for k in zoo if zoo[k] != ours[k]} == {"max_steps"}


@pytest.mark.parametrize("name", [n for n in SHIPPED if n != "mnist-classifier"])
def test_shipped_models_were_trained_with_their_recipe(name):
    """Each zoo folder matches build_zoo.py's recipe in every argument that changes what is computed: the model flags
    against its config.json, the others against its training_args.json (logging, checkpointing, paths and the device
    may differ)."""
    from hf_dgm.families import family_of_folder
    from hf_dgm.training.checkpointing import RESUMABLE_CHANGES

    build_zoo = _script("build_zoo")
    run = json.loads((zoo_dir() / name / "training_args.json").read_text())
    # the config as it loads: a field newer than the saved file (e.g. num_mixtures) takes its default
    config = family_of_folder(zoo_dir() / name).config_class.from_pretrained(zoo_dir() / name).to_dict()
    first_stage = build_zoo.INIT_FROM.get(name)
    init_from = ["--init-from", first_stage] if first_stage else []
    recipe, model_fields = _recipe_args(build_zoo.RECIPES[name], [*build_zoo.COMMON, *init_from])
    model_recipe = recipe
    if first_stage:  # a second stage: the first stage's model, with this stage's model flags on top
        flags = build_zoo.RECIPES[name].split(" ", 1)[1]
        model_recipe, _ = _recipe_args(f"{build_zoo.RECIPES[first_stage]} {flags}")
        assert run["init_from"].endswith(first_stage)
    assert run["steps"] == recipe["max_steps"]
    recipe["streaming"] = recipe["streaming"] or False  # None: decided from the dataset's size (MNIST fits)
    differ = {k: (config[k], model_recipe[k]) for k in model_fields if config[k] != model_recipe[k]}
    ignored = RESUMABLE_CHANGES | {"dataset"} | set(model_fields)
    differ |= {k: (run[k], v) for k, v in recipe.items() if k in run and k not in ignored and run[k] != v}
    assert not differ, f"zoo/{name} vs build_zoo.py's recipe (run, recipe): {differ}"


@pytest.mark.slow
def test_gpu_zoo_smoke(tmp_path):
    """scripts/experiments/gpu_zoo.py end to end at tiny settings on the CPU: runs stopped at the time limit are finalised at
    their last checkpoint, evaluated, and the best folders packed. About 3 minutes on 2 cores."""
    import subprocess
    import sys
    import tarfile

    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "experiments" / "gpu_zoo.py"),
        "--smoke",
        "--data",
        str(ROOT.parent / "shared" / "data" / "mnist"),
    ]
    cmd += ["--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), "--only", "gan-r1"]
    cmd += ["--gan-max-steps", "100000", "--train-s", "40", "--total-s", "170"]
    subprocess.run(cmd, check=True, capture_output=True)
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["gan-r1"]
    run = json.loads((tmp_path / "runs" / "gan-r1" / "training_args.json").read_text())
    assert 8 < run["steps"] == run["max_steps"] < 100000  # stopped, then finalised at its last checkpoint
    assert results and all("classifier-feature FID" in row for row in results.values())
    with tarfile.open(tmp_path / "out" / "gan-r1.tar") as tar:
        assert "gan-r1/model.safetensors" in tar.getnames()
