"""The shipped zoo: Hub-repo-shaped folders (config, weights, card, results; no code), at most 100 MB of weights."""

import functools
import json
import shlex
from pathlib import Path

import pytest

from hf_dgm.zoo import CLASSIFIERS, ZOO_MODELS, zoo_dir

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [name for name in ZOO_MODELS if (zoo_dir() / name / "config.json").is_file()]


def test_zoo_weights_fit_the_budget():
    """What a clone carries: 53 MB for the MNIST models (scgan-mnist, which met the MNIST GAN's target, 11 MB of
    them) and 52 MB for the emoji ones (the GAN 34 MB, the pixel-context VAE 12 MB)."""
    total = sum(p.stat().st_size for p in zoo_dir().rglob("*.safetensors"))
    assert 0 < total <= 110_000_000, f"{total / 1e6:.1f} MB of weights in zoo/"


@pytest.mark.parametrize("name", [n for n in SHIPPED if n not in CLASSIFIERS])
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


@pytest.mark.parametrize("name", [n for n in SHIPPED if n not in CLASSIFIERS])
def test_records_are_portable_and_complete(name):
    """The records name the model by its zoo path and the data by name and content hash (hf_dgm.records), never by a
    path of the machine that trained it; every eval_results.json has the same fields."""
    from hf_dgm.model_card import KNOWN_DATASETS
    from hf_dgm.training.publishing import PATH_ARGUMENTS

    folder = zoo_dir() / name
    results = json.loads((folder / "eval_results.json").read_text())
    run = json.loads((folder / "training_args.json").read_text())
    assert EVAL_FIELDS <= set(results), f"zoo/{name}/eval_results.json lacks {EVAL_FIELDS - set(results)}"
    assert results["model"] == f"zoo/{name}"
    for record in (results, run):
        assert record["dataset"] in ("mnist", "emoji") and len(record["dataset_sha256"]) == 64
        assert all(not str(record.get(k) or "").startswith(("/", "~")) for k in PATH_ARGUMENTS)
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
    # the recipe's flags after `extra` (COMMON), as build_zoo.train_command has them: the recipe's win
    namespace = build_parser(cls, "recipe", "").parse_args([*extra, *flags])
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
    dcgan-mnist-stage1 recipe, both at the same steps on the same networks."""
    compare = _script("compare_gan_recipes")
    pair = compare.recipes(1234)
    (plain, _), (ours, _) = _recipe_args(pair["plain"]), _recipe_args(pair["ours"])
    assert {k for k in plain if plain[k] != ours[k]} == {"ema_decay", "r1_gamma"}
    assert plain["ema_decay"] == 0 and plain["max_steps"] == ours["max_steps"] == 1234
    assert {k: plain[k] for k in compare.PLAIN} == compare.PLAIN
    zoo, _ = _recipe_args(_script("build_zoo").RECIPES["dcgan-mnist-stage1"])
    assert {k for k in zoo if zoo[k] != ours[k]} == {"max_steps"}


def test_side_by_side_smoke_trains_sizes_and_evaluates_a_gan_and_two_vaes(tmp_path, emoji_slice, capsys):
    """scripts/experiments/compare_recipes.py --smoke on a slice of the emoji, the projected GAN recipe (bf16), the
    two-stage pixel-context VAE (fp32) and the two-stage hierarchical VAE with its fitted prior in one run: each
    stage's steps are its measured images/s times its share of the budget, the recipes are build_zoo.py's at the
    smoke's 32 px (the pixel-context model grown from the first stage), each final folder is evaluated (the
    hierarchical VAE's with the prior fitted as the zoo's is), and the tables have a number in every cell they
    should."""
    compare = _script("compare_recipes")
    out = tmp_path / "out"
    models = ["gan-emoji-64", "vae-emoji", "hvae-emoji"]
    compare.main(["--smoke", "--models", *models, "--dataset", emoji_slice, "--out", str(out)])
    plan, report = (json.loads((out / name).read_text()) for name in ("plan.json", "comparison.json"))
    stages = {"gan-emoji-64/gan-emoji-64", "vae-emoji/vae-emoji-base", "vae-emoji/vae-emoji"}
    assert set(plan) == {"settings", *stages, "hvae-emoji/hvae-emoji-stage1", "hvae-emoji/hvae-emoji"}
    for key, entry in plan.items():
        if key != "settings":
            share = dict(compare.stages(key.split("/")[0]))[entry["recipe"]]
            assert entry["max_steps"] == max(1, int(0.02 * 60 * share * entry["images_per_s"] / 4))
            assert entry["batch_size"] == 4
    configs = {m: json.loads((out / m / "config.json").read_text()) for m in ("gan-emoji-64", "vae-emoji")}
    assert configs["gan-emoji-64"]["discriminator"] == "projected" and configs["vae-emoji"]["pixel_context"] == 7
    assert {c["image_size"] for c in configs.values()} == {32}
    run = json.loads((out / "vae-emoji" / "training_args.json").read_text())
    assert run["init_from"].endswith("vae-emoji-stage1") and run["mixed_precision"] == "no"
    assert json.loads((out / "gan-emoji-64" / "training_args.json").read_text())["mixed_precision"] == "bf16"
    fit = json.loads((out / "hvae-emoji-prior" / "training_args.json").read_text())
    assert fit["latent_prior"]["components"] == 20 and (out / "hvae-emoji-prior" / "eval_results.json").is_file()
    labels_rows = [next(iter(e["rows"].items())) for e in report["models"].values()]
    assert [label for label, _ in labels_rows] == ["gan-emoji-64 (emoji-classifier)", "vae-emoji", "hvae-emoji"]
    for _, row in labels_rows:  # the classifier's space is the first: every GAN cell has a number
        assert all(isinstance(v, (int, float)) for v in row.values()), row
    vae_row = labels_rows[1][1]
    assert vae_row["steps"] == sum(e["max_steps"] for k, e in plan.items() if k.startswith("vae-emoji/"))
    tables = capsys.readouterr().out.split("| model |")
    assert len(tables) == 3 and "| gan-emoji-64 (emoji-classifier) |" in tables[1] and "| hvae-emoji |" in tables[2]


def test_side_by_side_stages_sizes_and_rows():
    """compare_recipes.py: vae-emoji is two stages shared as the recipes' steps; the hierarchical VAE's latent groups
    scale with --image-size (or are refused in one line); a GAN's row of each feature space takes that space's
    metrics, precision/recall bare in the first space (evaluate.py's names)."""
    import torch

    from hf_dgm.evaluation.evaluate import Names, distance_metrics

    compare = _script("compare_recipes")
    assert compare.stages("vae-emoji") == [("vae-emoji-base", 0.6), ("vae-emoji", 0.4)]
    assert compare.stages("gan-emoji-64") == [("gan-emoji-64", 1.0)]
    assert compare.stages("hvae-emoji") == [("hvae-emoji-stage1", 0.56), ("hvae-emoji", 0.44)]
    flags = compare.recipe_flags("hvae-emoji-stage1", 16)
    assert flags[-9:] == ["--latent-groups", "1", "1", "2", "2", "4", "4", "--latent-dim", "168"]
    assert compare.recipe_flags("gan-emoji-32", None) == compare.recipe_flags("gan-emoji-32", 32)
    assert compare.recipe_flags("gan-emoji-32", 64)[-2:] == ["--image-size", "64"]
    assert compare.recipe_flags("dcgan-mnist-stage1", 32)[-2:] == ["--image-size", "32"]  # no size in the recipe: 28
    assert compare.recipe_flags("dcgan-mnist-stage1", 28) == compare.recipe_flags("dcgan-mnist-stage1", None)
    assert "--image-size" not in compare.recipe_flags("vae-emoji", 32)  # grown from vae-emoji-base: its size
    with pytest.raises(SystemExit, match="scale to whole resolutions only at 64 times a power of two"):
        compare.recipe_flags("hvae-emoji-stage1", 28)
    g = torch.Generator().manual_seed(0)
    real, fake, floor = (torch.randn(12, 4, generator=g) for _ in range(3))
    metrics = [
        *distance_metrics(Names("Inception", (12, 12), True), real, fake, floor, 0),
        *distance_metrics(Names("classifier-feature", (12, 12), False), real, fake + 2, floor, 0),
        {"name": "conditional accuracy", "type": "accuracy", "value": 0.5},
    ]
    results = {"metrics": metrics, "feature_spaces": [{"name": "inception"}, {"name": "emoji-classifier"}]}
    inception, classifier = compare.gan_rows("m", results).values()
    for row, offset in ((inception, 0), (classifier, len(metrics) // 2)):
        by_type = {(m["type"], "floor" in m["name"]): m["value"] for m in metrics[offset : offset + 9]}
        assert [row[c] for c in ("KID", "FID", "precision", "recall", "KID floor", "recall floor")] == [
            by_type[k] for k in (("kid", 0), ("fid", 0), ("precision", 0), ("recall", 0), ("kid", 1), ("recall", 1))
        ]
    assert inception["FID"] != classifier["FID"] and inception["precision"] != classifier["precision"]
    assert (inception["cond. acc"], classifier["cond. acc"]) == (None, 0.5)


def test_side_by_side_sizes_a_grown_models_stages_by_their_ratio(tmp_path, monkeypatch):
    """compare_recipes.py on a model grown from a smaller one (build_zoo.FIRST_STAGE's --grow-from): --image-size is
    the final model's, its first stage keeps the recipes' ratio (half here), the second stage starts from the first's
    folder by that flag; a size the ratio does not keep whole is refused in one line."""
    compare = _script("compare_recipes")
    monkeypatch.setitem(compare.RECIPES, "grown", "gan --architecture dcgan --image-size 64 --max-steps 700")
    monkeypatch.setitem(compare.FIRST_STAGE, "grown", ("--grow-from", "gan-emoji-32"))  # 32 px, 7000 steps
    assert compare.stages("grown") == [("gan-emoji-32", 7000 / 7700), ("grown", 700 / 7700)]
    assert [name for name, _ in compare.stages("gan-emoji")] == ["scgan-emoji-32", "gan-emoji"]  # the zoo's
    args = compare.parse_args(["--models", "grown", "--image-size", "128", "--out", str(tmp_path)])
    assert compare.stage_argv("grown", "gan-emoji-32", tmp_path / "a", args)[-2:] == ["--image-size", "64"]
    assert compare.stage_argv("grown", "grown", tmp_path / "b", args)[-2:] == ["--image-size", "128"]
    flagged = compare.parse_args(["--models", "grown", "--trainer-flags=--discriminator-reconstruction --seed 3"])
    assert compare.stage_argv("grown", "grown", tmp_path / "b", flagged)[-3:] == ["--discriminator-reconstruction",
                                                                                 "--seed", "3"]  # fmt: skip
    with pytest.raises(SystemExit, match="grown is 64 px in its recipe .* pass a multiple of 2"):
        compare.stage_argv(
            "grown", "gan-emoji-32", tmp_path / "a", compare.parse_args(["--models", "grown", "--image-size", "45"])
        )
    argvs = []

    class Trainer:
        @staticmethod
        def main(argv):
            argvs.append(argv)
            return 0

    monkeypatch.setattr(compare, "images_per_second", lambda kind, argv, steps: (100.0, 64))
    monkeypatch.setattr(compare, "trainer_class", lambda kind: (Trainer, None))
    compare.train_stage("grown", 1, args, {})
    start = argvs[0].index("--grow-from")
    assert argvs[0][start + 1] == str(tmp_path / "grown-stage1") and "--init-from" not in argvs[0]


def test_a_shipped_step_is_one_its_run_checkpoints_and_draws(tmp_path):
    """build_zoo.py ships SHIPPED_STEP's checkpoint: its run must write a checkpoint and a grid there, which is checked
    before training (one line). The last step always has both."""
    build_zoo = _script("build_zoo")
    for name, step in build_zoo.SHIPPED_STEP.items():
        cmd = build_zoo.train_command(build_zoo.RECIPES[name], tmp_path / name, "cpu", 500)
        build_zoo.check_shipped_step(name, cmd)  # build_zoo's default --checkpoint-every
        build_zoo.check_shipped_step(name, [*cmd, "--max-steps", str(step), "--checkpoint-every", "300"])
        with pytest.raises(SystemExit, match=f"SHIPPED_STEP {step} .*, --checkpoint-every 300\\)"):
            build_zoo.check_shipped_step(name, [*cmd, "--max-steps", str(step + 1), "--checkpoint-every", "300"])


@pytest.mark.parametrize("name", [n for n in SHIPPED if n not in CLASSIFIERS])
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
    start, first_stage = build_zoo.FIRST_STAGE.get(name, (None, None))
    init_from = [start, first_stage] if start == "--init-from" else []  # --grow-from: the model of the recipe's flags
    recipe, model_fields = _recipe_args(build_zoo.RECIPES[name], [*build_zoo.COMMON, *init_from])
    model_recipe = recipe
    if init_from:  # a later stage: the first stage's model, with each later stage's flags on top
        chain = build_zoo.stage_chain(name)
        flags = [build_zoo.RECIPES[stage].split(" ", 1)[1] for stage in chain[1:]]
        model_recipe, _ = _recipe_args(" ".join([build_zoo.RECIPES[chain[0]], *flags]))
    if first_stage:
        assert run[start[2:].replace("-", "_")].endswith(first_stage)
    assert run["steps"] == build_zoo.SHIPPED_STEP.get(name, recipe["max_steps"])
    if name in build_zoo.SHIPPED_STEP:  # packaged from a checkpoint: the record says how far its run went
        assert run["steps"] <= run["run_steps"] <= recipe["max_steps"]
    recipe["streaming"] = recipe["streaming"] or False  # None: decided from the dataset's size (MNIST fits)
    differ = {k: (config[k], model_recipe[k]) for k in model_fields if config[k] != model_recipe[k]}
    ignored = RESUMABLE_CHANGES | {"dataset"} | set(model_fields)  # the first stage's folder: above
    differ |= {k: (run[k], v) for k, v in recipe.items() if k in run and k not in ignored and run[k] != v}
    assert not differ, f"zoo/{name} vs build_zoo.py's recipe (run, recipe): {differ}"


@pytest.mark.slow
def test_gpu_zoo_smoke(tmp_path, mnist_slice):
    """scripts/experiments/gpu_zoo.py end to end at tiny settings on the CPU: runs stopped at the time limit are finalised at
    their last checkpoint, evaluated, and the best folders packed. On a slice of MNIST, with one evaluation worker and
    a checkpoint evaluated every 40 steps: the script ends when the evaluations are done, in under a minute on 2
    cores."""
    import subprocess
    import sys
    import tarfile

    cmd = [sys.executable, str(ROOT / "scripts" / "experiments" / "gpu_zoo.py"), "--smoke", "--data", mnist_slice]
    cmd += ["--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), "--only", "gan-r1"]
    cmd += ["--gan-max-steps", "100000", "--train-s", "25", "--total-s", "170"]
    cmd += ["--eval-every", "40", "--eval-workers", "1"]
    subprocess.run(cmd, check=True, capture_output=True)
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["gan-r1"]
    run = json.loads((tmp_path / "runs" / "gan-r1" / "training_args.json").read_text())
    assert 8 < run["steps"] == run["max_steps"] < 100000  # stopped, then finalised at its last checkpoint
    assert results and all("classifier-feature FID" in row for row in results.values())
    assert str(run["steps"]) in results  # the finalised folder was evaluated
    with tarfile.open(tmp_path / "out" / "gan-r1.tar") as tar:
        assert "gan-r1/model.safetensors" in tar.getnames()


@pytest.mark.slow
def test_gpu_emoji_vae_smoke(tmp_path, emoji_slice):
    """scripts/experiments/gpu_emoji.py --vae at tiny settings on the CPU: the hierarchical VAE at the GPU recipe's
    width trained for steps sized by a probe, measured, packed in parts, and put back by --unpack."""
    import subprocess
    import sys

    script = str(ROOT / "scripts" / "experiments" / "gpu_emoji.py")
    out, runs = tmp_path / "out", tmp_path / "runs"
    cmd = [sys.executable, script, "--vae", "--smoke", "--data", emoji_slice, "--out", str(out), "--runs", str(runs)]
    subprocess.run(cmd, check=True, capture_output=True)
    rows = json.loads((out / "comparison.json").read_text())["models"]["hvae-emoji-stage1"]["rows"]
    assert rows["hvae-emoji-stage1"]["bits/dim"] > 0
    subprocess.run([sys.executable, script, "--unpack", str(out), "--root", str(tmp_path)], check=True)
    folder = tmp_path / "runs" / "gpu-emoji-vae" / "hvae"
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "hierarchical" and config["base_channels"] == 32  # the GPU recipe's width
    assert json.loads((folder / "training_args.json").read_text())["steps"] >= 1


# ----------------------------------------------------------------------------------------------------------------------
# Every shipped model through every door: the same seed gives the same pixels whichever way a user samples it.
# A door is one entry of DOORS: a function (folder, request) -> uint8 images (NUM_IMAGES, H, W, C) drawn with SEED
# and, for conditional models, the labels 0, 1, 2, ... in turn (hf-dgm sample's default); `request` is pytest's, for
# the fixtures a door needs (request.getfixturevalue).
# ----------------------------------------------------------------------------------------------------------------------

GENERATORS = [n for n in SHIPPED if n not in CLASSIFIERS]
NUM_IMAGES, SEED = 4, 5


def _labels(folder):
    num_classes = json.loads((folder / "config.json").read_text()).get("num_classes")
    return [i % num_classes for i in range(NUM_IMAGES)] if num_classes else None


def _cli_door(folder, request):
    """`hf-dgm sample` (the fast path, without transformers), its one-row grid cut back into images."""
    import numpy as np
    from PIL import Image

    out = request.getfixturevalue("tmp_path") / "cli.png"
    run_cli = request.getfixturevalue("run_cli")
    proc = run_cli(
        "sample", "--model", folder, "--num-images", NUM_IMAGES, "--nrow", NUM_IMAGES, "--seed", SEED, "--out", out
    )
    assert proc.returncode == 0, proc.stderr
    grid = np.asarray(Image.open(out))
    grid = grid[..., None] if grid.ndim == 2 else grid
    size = grid.shape[0] - 4  # one row: 2 px of padding above and below
    return np.stack([grid[2 : 2 + size, 2 + i * (size + 2) : 2 + i * (size + 2) + size] for i in range(NUM_IMAGES)])


def _pipeline_door(folder, request):
    """The family's diffusers pipeline, loaded from the model folder."""
    import torch

    from hf_dgm.families import family_of_folder
    from hf_dgm.image_processing import to_uint8

    pipe = family_of_folder(folder).pipeline_class.from_pretrained(folder)
    generator = torch.Generator().manual_seed(SEED)
    images = pipe(batch_size=NUM_IMAGES, generator=generator, class_labels=_labels(folder), output_type="pt").images
    return to_uint8(images)


REMOTE_CODE_SAMPLER = """import sys
sys.modules["hf_dgm"] = None  # as where hf-dgm is not installed
import torch
from safetensors.torch import save_file
from transformers import AutoModel
for name, labels in {jobs!r}:
    model = AutoModel.from_pretrained(name, trust_remote_code=True)
    sample = model.generate({n}, generator=torch.Generator().manual_seed({seed}), class_labels=labels).sample
    if model.config.model_type == "hf_dgm_gan":  # G draws in [-1, 1]; the pipelines map it to [0, 1]
        sample = ((sample + 1) / 2).clamp(0, 1)
    save_file({{"images": sample.contiguous()}}, name + ".safetensors")
"""


@pytest.fixture(scope="module")
def remote_code_samples(tmp_path_factory):
    """Every zoo model exported (`hf-dgm export`: the code for trust_remote_code) and sampled with transformers'
    AutoModel in one process where hf_dgm can't be imported: {name: float images (N, C, H, W) in [0, 1]}."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    from hf_dgm.remote_code import export_code

    root = tmp_path_factory.mktemp("exported")
    for name in GENERATORS:
        (root / name).mkdir()
        (root / name / "config.json").write_bytes((zoo_dir() / name / "config.json").read_bytes())
        (root / name / "model.safetensors").symlink_to(zoo_dir() / name / "model.safetensors")
        export_code(root / name)
    jobs = [(name, _labels(zoo_dir() / name)) for name in GENERATORS]
    code = REMOTE_CODE_SAMPLER.format(jobs=jobs, n=NUM_IMAGES, seed=SEED)
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: load_file(root / f"{name}.safetensors")["images"] for name in GENERATORS}


def _remote_code_door(folder, request):
    """The folder exported and loaded with trust_remote_code=True without hf-dgm (see remote_code_samples)."""
    from hf_dgm.image_processing import to_uint8

    return to_uint8(request.getfixturevalue("remote_code_samples")[folder.name])


def _app_door(folder, request):
    """The demo app's Generate (its API, through gradio_client), the folder typed as a local model: its 1x grid (2x2
    cells, 2 px of padding) cut back into images. Spread 1.0 is a VAE's prior temperature; 3.0 is no truncation."""
    import numpy as np
    from gradio_client import Client
    from PIL import Image

    from hf_dgm.families import family_of_folder

    spread = 1.0 if family_of_folder(folder).name == "vae" else 3.0
    client = Client(request.getfixturevalue("app_url"), verbose=False)
    _, grid = client.predict("", str(folder), SEED, NUM_IMAGES, "all", spread, api_name="/generate")
    grid = np.asarray(Image.open(grid))
    grid = grid[..., None] if grid.ndim == 2 else grid
    size = (grid.shape[0] - 2) // 2 - 2
    cells = [(2 + r * (size + 2), 2 + c * (size + 2)) for r in range(2) for c in range(2)]
    return np.stack([grid[y : y + size, x : x + size] for y, x in cells])


DOORS = {
    "hf-dgm sample": _cli_door,
    "pipeline": _pipeline_door,
    "trust_remote_code": _remote_code_door,
    "the app's Generate": _app_door,
}


@functools.cache
def _reference(name):
    """The package's own sampling (hf_dgm.sampling.sample_images), which every door must match."""
    from hf_dgm.sampling import load_sampling_network, sample_images

    cfg, family, net = load_sampling_network(zoo_dir() / name)
    return sample_images(cfg, family, net, NUM_IMAGES, seed=SEED, class_labels=_labels(zoo_dir() / name))


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("name", GENERATORS)
def test_every_zoo_model_through_every_door(name, door, request):
    import numpy as np

    expected = _reference(name)
    assert expected.shape[0] == NUM_IMAGES and expected.std() > 0  # images, not a constant
    images = DOORS[door](zoo_dir() / name, request)
    np.testing.assert_array_equal(images, expected, err_msg=f"{name} through {door}")
