"""Side by side, on the same data with the same CPU time each: any of build_zoo.py's recipes, GANs and VAEs, with the
`hf-dgm evaluate` protocol, in one table per family.

    python scripts/experiments/compare_recipes.py --models gan-emoji-32 gan-emoji-64 --image-size 64 \\
        --budget-minutes 150 [--features inception,emoji-classifier] [--out runs/compare_recipes]
    python scripts/experiments/compare_recipes.py --models vae-emoji-base vae-emoji hvae-emoji --budget-minutes 150
    python scripts/experiments/compare_recipes.py --smoke --models gan-emoji-64 vae-emoji --dataset SLICE --out DIR

* --models: names of build_zoo.py's RECIPES, each trained on its recipe's dataset (--dataset: one for all). A recipe
  with a first stage (build_zoo.FIRST_STAGE) is a model of stages: vae-emoji is vae-emoji-base, then the vae-emoji
  recipe on its final model (--init-from), the budget split as the recipes' steps (3000, 2000: 3:2).
* --trainer-flags are added to every stage's trainer command: a recipe against itself with one flag changed is two
  runs of this script (two --out folders), e.g. --trainer-flags=--discriminator-reconstruction.
* --image-size overrides the recipes' (none: each recipe's own), MNIST's too. It is the final model's size: the
  stages keep their recipes' ratios (a stage grown by --grow-from is larger than the one before it; one started
  --init-from keeps that model's size). A hierarchical VAE's latent groups are scaled with it (the channels per group
  kept), which needs the recipe's size times a power of two.
* Each run's steps are sized to its budget from a measured throughput: the recipe's trainer is built and timed over
  --probe-steps steps (after one warm-up step; nothing is written), then --max-steps = budget x images/s / batch,
  so a cosine learning-rate schedule ends where the budget does (a run stopped by the clock would end mid-schedule).
  The machine's load at probe time thus sets each run's steps: run the comparison on a machine whose load does not
  change. The plan is kept in OUT/plan.json: a rerun resumes unfinished runs and reuses finished ones.
* Each final model folder is evaluated (``evaluate``, the function behind `hf-dgm evaluate`; its eval_results.json
  written there) in the --features spaces (default "auto": on the emoji, Inception and the emoji classifier). A
  recipe the zoo ships with a fitted prior (build_zoo.FITTED_PRIOR: hvae-emoji) is evaluated with one, fitted as
  build_zoo.py fits it into OUT/<model>-prior (minutes; not counted in the budget).
* Out: one folder per run in OUT, OUT/comparison.json and the tables (stdout and OUT/comparison.md), and for each
  model the steps, images/s and minutes it trained:
  - GANs, one row per feature space: KID (with its std), FID, precision/recall, each with its real-data floor; the
    conditional accuracy on samples and the classifier's held-out accuracy on real images (classifier spaces of a
    conditional model); the memorized share (first space);
  - VAEs: NLL in bits/dim (IWAE bound on the held-out images), KID and precision in the first feature space, the KL
    of the latent in bits (all groups), the seconds to sample 64 images (seed 0, through VAEPipeline).

--smoke: 32 px, batch 4, 2 timed steps and steps sized on a budget of seconds, 16 samples in the emoji
classifier's space, IWAE k=2: the whole path in seconds per model on a data slice; its numbers mean nothing.
"""

import argparse
import importlib
import json
import math
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from build_zoo import (  # noqa: E402
    DATASETS,
    FIRST_STAGE,
    FITTED_PRIOR,
    MNIST,
    RECIPES,
    fit_prior_command,
    flag_value,
    stage_chain,
    train_command,
)

from hf_dgm import GANConfig, VAEConfig  # noqa: E402
from hf_dgm.file_utils import write_json_atomic, write_text_atomic  # noqa: E402

COMMON = "--seed 0 --log-every 100 --sample-every 1000 --keep-checkpoints 2".split()
SMOKE = dict(image_size=32, batch_size=4, probe_steps=2, budget_minutes=0.02, num_samples=16, iwae_k=2)
SMOKE_FLAGS = ["--num-grid-images", "4", "--report-to", "none"]
TRAINERS = {"gan": ("GANTrainer", "GANTrainingArguments"), "vae": ("VAETrainer", "VAETrainingArguments")}


def family(name: str) -> str:
    """A recipe's trainer: "gan" or "vae"."""
    return shlex.split(RECIPES[name])[0]


def stages(model: str) -> list[tuple[str, float]]:
    """(recipe, share of the model's budget) of each stage: the FIRST_STAGE chain ending at `model`, shared as the
    recipes' steps."""
    chain = stage_chain(model)
    steps = [int(flag_value(shlex.split(RECIPES[name]), "--max-steps")) for name in chain]
    return [(name, s / sum(steps)) for name, s in zip(chain, steps)]


def started_from(name: str) -> str | None:
    """The trainer's flag that starts a recipe from its first stage's model (--init-from, --grow-from), or None."""
    return FIRST_STAGE[name][0] if name in FIRST_STAGE else None


def recipe_size(name: str) -> int:
    """The image size of a recipe's model: its --image-size (none: the config's default), or its first stage's when
    it trains that model on (--init-from)."""
    if started_from(name) == "--init-from":
        return recipe_size(FIRST_STAGE[name][1])
    _, *flags = shlex.split(RECIPES[name])
    config = {"gan": GANConfig, "vae": VAEConfig}[family(name)]
    return int(flag_value(flags, "--image-size")) if "--image-size" in flags else config().image_size


def stage_size(model: str, name: str, image_size: int | None) -> int | None:
    """The size of stage `name` of `model` for `model` at `image_size` (None: the recipes'): the recipes' ratio."""
    if image_size is None:
        return None
    size, rest = divmod(image_size * recipe_size(name), recipe_size(model))
    if rest or size < 1:
        raise SystemExit(
            f"--image-size {image_size}: {model} is {recipe_size(model)} px in its recipe and its stage {name} "
            f"{recipe_size(name)} px, which does not scale to a whole size: pass a multiple of "
            f"{recipe_size(model) // math.gcd(recipe_size(model), recipe_size(name))}."
        )
    return size


def recipe_flags(name: str, image_size: int | None) -> list[str]:
    """A recipe's flags (after the trainer's name) at `image_size` (None: the recipe's own, or the config's default
    where it sets none): a hierarchical VAE's latent groups are scaled with it (the channels per group kept), which
    needs the recipe's size times a power of two. A recipe started --init-from another keeps that model's size."""
    _, *flags = shlex.split(RECIPES[name])
    if started_from(name) == "--init-from" or image_size in (None, recipe_size(name)):
        return flags
    flags += ["--image-size", str(image_size)]
    if "--latent-groups" not in flags:
        return flags
    start = flags.index("--latent-groups") + 1
    end = next((i for i in range(start, len(flags)) if flags[i].startswith("--")), len(flags))
    groups, size = [int(r) for r in flags[start:end]], recipe_size(name)
    scaled = [r * image_size // size for r in groups]
    if any(s * size != r * image_size or s < 1 for r, s in zip(groups, scaled)):
        raise SystemExit(
            f"--image-size {image_size}: the {name} recipe's latent groups (at {groups} for {size} px) scale "
            f"to whole resolutions only at {size} times a power of two (e.g. 16, 32, 128)."
        )
    channels = int(flag_value(flags, "--latent-dim")) // sum(r * r for r in groups)
    latent_dim = channels * sum(s * s for s in scaled)
    return [*flags, "--latent-groups", *map(str, scaled), "--latent-dim", str(latent_dim)]


def stage_argv(model: str, name: str, out: Path, args, overrides=()) -> list[str]:
    """The trainer's arguments of stage `name` of `model` (build_zoo.py's command line without the interpreter),
    resuming from the latest checkpoint in `out` if there is one; `overrides` come last, so they win."""
    recipe = shlex.join([family(name), *recipe_flags(name, stage_size(model, name, args.image_size))])
    dataset = args.dataset or DATASETS.get(name, MNIST)
    cmd = train_command(recipe, out, args.device, args.checkpoint_every, dataset, COMMON)
    batch = ["--batch-size", str(args.batch_size)] if args.batch_size else []
    return [*cmd[3:], *batch, *args.extra_flags, *overrides]


def trainer_class(kind: str):
    """(trainer class, its arguments class) of a family."""
    module = importlib.import_module(f"hf_dgm.training.{kind}")
    return tuple(getattr(module, name) for name in TRAINERS[kind])


def images_per_second(kind: str, argv: list[str], steps: int) -> tuple[float, int]:
    """(images/s, batch size) of the trainer of `argv`, built in a temporary folder and timed over `steps` steps after
    one warm-up step (no logs, grids, checkpoints or model written)."""
    from hf_dgm.training.arguments import parse_arguments

    trainer_cls, args_cls = trainer_class(kind)
    never = str(10**9)
    with tempfile.TemporaryDirectory() as tmp:
        probe = [*argv, "--output-dir", tmp, "--max-steps", never, "--report-to", "none", "--no-progress-bar"]
        probe += ["--log-every", never, "--sample-every", never, "--checkpoint-every", never]
        probe = [a for i, a in enumerate(probe) if not (a == "--resume-from" or probe[i - 1] == "--resume-from")]
        trainer = trainer_cls(parse_arguments(args_cls, probe, "probe", ""))
        trainer.run_steps(1)
        start = time.perf_counter()
        trainer.run_steps(steps)
        batch = trainer.args.batch_size
        return steps * batch / (time.perf_counter() - start), batch


def in_fresh_process(fn, *args):
    """fn(*args) in a fresh interpreter (spawned): each trainer gets its own accelerate state (a process keeps the
    mixed precision its first trainer set up: the GAN recipes train in bf16, the VAE recipes in fp32), and the
    memory of one run is returned before the next."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def stage_folder(model: str, stage: int, out: Path) -> Path:
    return out / (model if stage == len(stages(model)) - 1 else f"{model}-stage{stage + 1}")


def train_stage(model: str, stage: int, args, plan: dict) -> tuple[Path, dict]:
    """Plan (once: plan.json) and train one stage, in a fresh process (`in_fresh_process`); its final folder and the
    plan."""
    name, share = stages(model)[stage]
    kind, out = family(name), stage_folder(model, stage, Path(args.out))
    init = [started_from(name), str(stage_folder(model, stage - 1, Path(args.out)))] if stage else []
    key = f"{model}/{name}"
    if key not in plan:
        rate, batch = images_per_second(kind, stage_argv(model, name, out, args, init), args.probe_steps)
        rate = round(rate, 2)  # the steps are sized from the rate plan.json records
        steps = max(1, int(args.budget_minutes * 60 * share * rate / batch))
        plan[key] = {"recipe": name, "images_per_s": rate, "batch_size": batch, "max_steps": steps}
        write_json_atomic(Path(args.out) / "plan.json", plan)
    record = out / "training_args.json"
    if (out / "model.safetensors").is_file() and json.loads(record.read_text()).get("steps") == plan[key]["max_steps"]:
        return out, plan  # finished
    note = f"A run of scripts/experiments/compare_recipes.py: the {name} recipe for {share:.0%} of the budget."
    argv = stage_argv(model, name, out, args, [*init, "--max-steps", str(plan[key]["max_steps"]), "--card-note", note])
    print(f"+ hf-dgm train {kind} {shlex.join(argv)}", flush=True)
    if trainer_class(kind)[0].main(argv) != 0:
        raise SystemExit(f"{model}: the {name} stage failed (see above)")
    return out, plan


def sampling_seconds(folder: Path, num_images: int = 64) -> float:
    """Seconds to draw `num_images` (seed 0) through VAEPipeline, the model loaded."""
    import torch

    from hf_dgm import VAEModel, VAEPipeline

    pipe = VAEPipeline(vae=VAEModel.from_pretrained(folder))
    start = time.perf_counter()
    pipe(batch_size=num_images, generator=torch.Generator().manual_seed(0), output_type="np")
    return time.perf_counter() - start


def metric(results: dict, kind: str, floor: bool = False, label: str | None = None) -> dict | None:
    """The first metric of a type, of the samples or of the real-data floor; with `label`, of that feature space only
    (its metrics' names start with the label, but precision/recall are bare in the first space: evaluate.py)."""
    first = space_labels(results)[0]
    for m in results["metrics"]:
        mine = label is None or m["name"].startswith(f"{label} ") or (label == first and m["name"].startswith(kind))
        if m["type"] == kind and ("real-data floor" in m["name"]) == floor and mine:
            return m
    return None


def space_labels(results: dict) -> list[str]:
    """The label that starts the metrics' names of each evaluated feature space, in order."""
    from hf_dgm.evaluation.features import INCEPTION

    return ["Inception" if s["name"] == INCEPTION else "classifier-feature" for s in results["feature_spaces"]]


def value(m: dict | None, key: str = "value"):
    return None if m is None else m.get(key)


def named(results: dict, ending: str):
    """The value of the metric whose name ends with `ending` (a classifier's accuracies: one classifier per
    evaluation), or None."""
    return next((m["value"] for m in results["metrics"] if m["name"].endswith(ending)), None)


def gan_rows(model: str, results: dict) -> dict:
    """One row per feature space: the distances with their floors, the accuracies (a classifier's space), the
    memorized share (the first space)."""
    rows = {}
    for i, (space, label) in enumerate(zip(results["feature_spaces"], space_labels(results))):
        classifier = label != "Inception"
        rows[f"{model} ({space['name']})"] = {
            "KID": value(metric(results, "kid", label=label)),
            "KID std": value(metric(results, "kid", label=label), "std"),
            "KID floor": value(metric(results, "kid", True, label)),
            "FID": value(metric(results, "fid", label=label)),
            "FID floor": value(metric(results, "fid", True, label)),
            "precision": value(metric(results, "precision", label=label)),
            "recall": value(metric(results, "recall", label=label)),
            "precision floor": value(metric(results, "precision", True, label)),
            "recall floor": value(metric(results, "recall", True, label)),
            "cond. acc": named(results, "conditional accuracy") if classifier else None,
            "real acc": named(results, "held-out accuracy (real images)") if classifier else None,
            "memorized": value(metric(results, "memorization")) if i == 0 else None,
        }
    return rows


def vae_rows(model: str, results: dict, folder: Path) -> dict:
    """One row: the first of each kind (the first feature space's; never a floor), the total KL (the last KL metric:
    all groups, or the only one) and the sampling time."""
    kl = [m["value"] for m in results["metrics"] if m["type"] == "kl_bits"]
    row = {
        "bits/dim": value(metric(results, "bits_per_dim")),
        "KID": value(metric(results, "kid")),
        "precision": value(metric(results, "precision")),
        "KL bits": kl[-1] if kl else None,
        "sample 64 s": round(sampling_seconds(folder), 2),
    }
    return {model: row}


def evaluate_model(model: str, folder: Path, args, trained: dict) -> dict:
    from hf_dgm.evaluation.evaluate import evaluate, write_results

    results = evaluate(
        folder, dataset=args.dataset, features=args.features, num_samples=args.num_samples, iwae_k=args.iwae_k,
        progress=False, device=args.device,
    )  # fmt: skip
    write_results(folder, results)
    rows = gan_rows(model, results) if family(model) == "gan" else vae_rows(model, results, folder)
    rows = {label: {**row, **trained} for label, row in rows.items()}
    return {"rows": rows, "protocol": results["protocol"], "likelihood": results.get("likelihood_protocol")}


def table(rows: dict) -> str:
    columns = list(next(iter(rows.values())))
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for model, row in rows.items():
        lines.append(f"| {model} | " + " | ".join("-" if row[c] is None else f"{row[c]:.4g}" for c in columns) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(RECIPES), required=True, help="build_zoo.py recipes")
    parser.add_argument("--budget-minutes", type=float, default=150.0, help="training time of each model")
    parser.add_argument("--dataset", default=None, help="none: each recipe's (build_zoo.py's DATASETS)")
    parser.add_argument("--image-size", type=int, default=None, help="none: each recipe's")
    parser.add_argument("--out", default=str(ROOT / "runs" / "compare_recipes"), help="runs, plan and comparison")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint-every", type=int, default=500, help="where the recipe sets none")
    parser.add_argument("--batch-size", type=int, default=None, help="none: the recipes'")
    parser.add_argument("--probe-steps", type=int, default=20, help="steps timed to size each run")
    parser.add_argument("--features", default="auto", help="as hf-dgm evaluate's --features")
    parser.add_argument("--num-samples", type=int, default=None, help="as hf-dgm evaluate's; none: the protocol's")
    parser.add_argument("--iwae-k", type=int, default=None, help="as hf-dgm evaluate's; none: the protocol's (100)")
    parser.add_argument(
        "--trainer-flags",
        default="",
        help="flags added to every run's trainer command (e.g. a recipe with one flag on)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny settings: checks the script in seconds per model")
    args = parser.parse_args(argv)
    args.extra_flags = [*(SMOKE_FLAGS if args.smoke else []), *shlex.split(args.trainer_flags)]
    if args.smoke:
        for key, setting in SMOKE.items():
            setattr(args, key, setting)
        args.features = "emoji-classifier" if args.features == "auto" else args.features
    if args.budget_minutes <= 0 or args.probe_steps < 1:
        parser.error("--budget-minutes must be positive and --probe-steps at least 1")
    if args.image_size is not None and args.image_size < 1:
        parser.error(f"--image-size {args.image_size} is invalid: expected a positive size in pixels")
    return args


def load_plan(args) -> dict:
    """OUT/plan.json, started afresh with the settings that size the runs; a plan of other settings: exit."""
    settings = {
        k: getattr(args, k)
        for k in ("budget_minutes", "dataset", "image_size", "batch_size", "device", "trainer_flags")
    }
    path = Path(args.out) / "plan.json"
    plan = json.loads(path.read_text()) if path.is_file() else {"settings": settings}
    if plan["settings"] != settings:
        raise SystemExit(f"{path} plans runs for {plan['settings']}, not {settings}: pass another --out.")
    return plan


def check_recipes(args):
    """Refuse, in one line and before any training, settings a recipe cannot take (e.g. a size its networks or latent
    groups do not fit) in its first stage; the later ones need the first's model (--init-from, --grow-from) and are
    checked when they start."""
    from hf_dgm.training.arguments import parse_arguments

    for model in args.models:
        name = stages(model)[0][0]
        dataset = args.dataset or DATASETS.get(name, MNIST)
        if Path(dataset).is_absolute() and not Path(dataset).exists():
            raise SystemExit(f"{model}: its dataset {dataset} does not exist: set HF_DGM_DATA or pass --dataset.")
        argv = stage_argv(model, name, Path(args.out) / model, args)
        try:
            parse_arguments(trainer_class(family(name))[1], argv, "recipe", "").validate()
        except ValueError as error:
            raise SystemExit(f"{model}: {error}") from None


def train_model(model: str, args, plan: dict) -> tuple[Path, dict]:
    """Train a model's stages; its final folder and what it cost (steps, images/s over the budget, minutes)."""
    folders = []
    for stage in range(len(stages(model))):
        folder, new_plan = in_fresh_process(train_stage, model, stage, args, plan)
        plan.update(new_plan)
        folders.append(folder)
    records = [json.loads((f / "training_args.json").read_text()) for f in folders]
    return folders[-1], {
        "steps": sum(r["steps"] for r in records),
        "images/s": round(sum(plan[f"{model}/{name}"]["images_per_s"] * share for name, share in stages(model)), 1),
        "train min": round(sum(r["training_time_s"] for r in records) / 60, 2),
    }


def with_fitted_prior(model: str, folder: Path, args) -> Path:
    """The folder to evaluate: a recipe the zoo ships with a prior fitted after training (build_zoo.FITTED_PRIOR) is
    evaluated with it, fitted once (hf-dgm fit-prior, the recipe's flags) into OUT/<model>-prior."""
    if model not in FITTED_PRIOR:
        return folder
    dest = folder.with_name(f"{model}-prior")
    if not (dest / "model.safetensors").is_file():
        cmd = fit_prior_command(model, folder, dest, args.dataset or DATASETS.get(model, MNIST))
        print(f"+ hf-dgm {shlex.join(cmd[3:])}", flush=True)
        subprocess.run(cmd, check=True)
    return dest


def main(argv=None):
    args = parse_args(argv)
    check_recipes(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = load_plan(args)
    report = {"budget_minutes": args.budget_minutes, "dataset": args.dataset, "image_size": args.image_size}
    report["models"] = {}
    for model in args.models:
        folder, trained = train_model(model, args, plan)
        folder = with_fitted_prior(model, folder, args)
        report["models"][model] = {"family": family(model), **evaluate_model(model, folder, args, trained)}
        print(f"{model}: {report['models'][model]['rows']}", flush=True)
    report["plan"] = plan
    tables = []
    for kind in TRAINERS:
        rows = {k: v for e in report["models"].values() if e["family"] == kind for k, v in e["rows"].items()}
        tables += [table(rows)] if rows else []
    write_json_atomic(out / "comparison.json", report)
    write_text_atomic(out / "comparison.md", "\n\n".join(tables) + "\n")
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
