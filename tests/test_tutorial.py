"""The walkthrough (TUTORIAL.md, TUTORIAL.zh-CN.md) runs as written and quotes only numbers that its own code
produced: every block runs here at tiny settings (scripts/run_tutorial.py --quick), against a local Hub server
and the demo app."""

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import REPO_ROOT
from hub_server import serve

sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
from build_zoo import RECIPES  # noqa: E402
from run_tutorial import LANGUAGES, extract_blocks, zoo_results  # noqa: E402

ROOT = Path(REPO_ROOT)
TUTORIALS = tuple(path for path, _ in LANGUAGES)
FIGURES = ("dcgan_samples", "dcgan_interpolation", "vae_reconstructions", "vae_kl_sign")
RESULTS = ROOT / "docs" / "tutorial_results.json"
TOKEN = "hf_test_token_owner"  # the local server's user "tester"


def _leaves(obj, prefix=""):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _leaves(value, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def test_both_languages_hold_the_same_code():
    en, zh = ([(b["lang"], b["tags"], b["code"]) for b in extract_blocks(path)] for path in TUTORIALS)
    assert len(en) >= 10
    assert en == zh


def test_quoted_numbers_come_from_the_runner():
    results = json.loads(RESULTS.read_text())
    assert {"gan_generator_gradients", "kl_sign", "zoo", "activations"} <= results.keys()
    for path in TUTORIALS:
        text = path.read_text(encoding="utf-8")
        assert "{{" not in text, f"{path.name} has an unfilled placeholder"
        for key, value in _leaves(results):
            assert str(value) in text, f"{path.name} does not quote {key} = {value} from {RESULTS.name}"
        for figure in FIGURES:
            assert f"docs/figures/{figure}.png" in text and (ROOT / "docs" / "figures" / f"{figure}.png").is_file()


def test_zoo_numbers_are_current():
    """The committed results quote the zoo's eval_results.json as they are now (rerun the runner after a zoo change)."""
    zoo = zoo_results()
    assert zoo == json.loads(RESULTS.read_text())["zoo"]
    assert {"mlp-gan-mnist", "mlp-vae-mnist", "dcgan-mnist"} <= zoo.keys()


def _flags(tokens):
    """['--a', '1', '--b', ...] -> {'--a': '1', '--b': True}"""
    flags, i = {}, 0
    while i < len(tokens):
        if tokens[i].startswith("--"):
            has_value = i + 1 < len(tokens) and not tokens[i + 1].startswith("--")
            flags[tokens[i]] = tokens[i + 1] if has_value else True
            i += 2 if has_value else 1
        else:
            i += 1
    return flags


def test_training_commands_are_the_zoo_recipes():
    commands = [
        shlex.split(line)
        for b in extract_blocks(TUTORIALS[0])
        if b["tags"] == ["train"]
        for line in b["code"].splitlines()
        if line.startswith("hf-dgm train")
    ]
    by_family = {cmd[2]: _flags(cmd[3:]) for cmd in commands}
    for name, family in (("mlp-gan-mnist", "gan"), ("mlp-vae-mnist", "vae")):
        family_in_recipe, *recipe = RECIPES[name].split()
        assert family_in_recipe == family
        recipe = _flags(recipe)
        assert {k: by_family[family].get(k) for k in recipe} == recipe, name
        assert by_family[family]["--seed"] == "0"


def test_every_block_runs(app_url, tmp_path, mnist_slice):
    server, state, url = serve()
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
        env.update(
            HF_ENDPOINT=url,
            HF_TOKEN=TOKEN,
            HF_HUB_DISABLE_XET="1",
            HF_HOME=str(tmp_path / "hf_home"),
            TQDM_DISABLE="1",
        )
        # The zoo's Hub copy, as `python scripts/build_zoo.py` + `hf-dgm push` would publish it.
        publish = textwrap.dedent(f"""
            from hf_dgm.hub import push_model_folder
            push_model_folder({str(ROOT / "zoo" / "dcgan-mnist")!r}, "hf-dgm/dcgan-mnist")
        """)
        subprocess.run([sys.executable, "-c", publish], env=env, check=True, timeout=300)
        out = tmp_path / "out"
        cmd = [sys.executable, str(ROOT / "scripts" / "run_tutorial.py"), "--quick", "--out", str(out)]
        cmd += ["--dataset", mnist_slice, "--hub", "--hf-user", "tester", "--space", app_url]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        assert "--- skip" not in proc.stdout  # every block ran
        results = json.loads((out / "results.json").read_text())
        assert set(results["activations"]) == {"leaky_relu", "relu", "tanh", "sigmoid"}
        assert set(results["kl_sign"]) == {"reconstruction + KL", "reconstruction - KL"}
        for figure in FIGURES:
            assert (out / f"{figure}.png").stat().st_size > 0
        assert ("model", "tester/my-dcgan") in state.repos  # the push example pushed
        for run in ("mlp-gan", "mlp-vae"):  # the training commands trained, the evaluation commands evaluated
            assert (out / "runs" / run / "model.safetensors").is_file()
            assert (out / "runs" / run / "eval_results.json").is_file()
    finally:
        server.shutdown()
