"""Side by side, on the same data with the same CPU time each: the single-latent residual VAE, the pixel-context VAE
and the hierarchical VAE of build_zoo.py's recipes, with the `hf-dgm evaluate` protocol.

    python scripts/experiments/compare_vae_recipes.py --budget-minutes 150 [--dataset DIR] [--image-size 64]
        [--out runs/compare_vae]
    python scripts/experiments/compare_vae_recipes.py --smoke --dataset SLICE --out DIR   # checks the script

* single-latent: the vae-emoji-base recipe; pixel-context: vae-emoji-base, then the vae-emoji recipe on its final
  model (a 7x7 pixel context added, --init-from), the budget split 3:2 as the zoo's steps (3000, 2000);
  hierarchical: hvae-emoji (its latent groups scaled with --image-size).
* Each run's steps are sized to its budget from a measured throughput: the recipe's trainer is built and timed over
  --probe-steps steps (after one warm-up step; nothing is written), then --max-steps = budget x images/s / batch,
  so the cosine learning-rate schedule ends where the budget does (a run stopped by the clock would end mid-schedule).
  The plan is kept in OUT/plan.json: a rerun resumes unfinished runs and reuses finished ones.
* Each final model folder is evaluated (``evaluate``, the function behind `hf-dgm evaluate`; its
  eval_results.json written there), and 64 images (seed 0) are timed through VAEPipeline.
* Out: one folder per run in OUT, OUT/comparison.json and the table (stdout and OUT/comparison.md): NLL in bits/dim
  (IWAE bound on the held-out images), KID and precision in the first feature space, the KL of the latent in bits (all
  groups), the seconds to sample 64 images, and the steps, images/s and minutes each model trained.

--smoke: 16 px, batch 4, 2 timed steps and steps sized on a budget of seconds, 16 samples in the emoji
classifier's space, IWAE k=2: the whole path in about a minute on a data slice; its numbers mean nothing.
"""

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from build_zoo import EMOJI, RECIPES, train_command  # noqa: E402

# model -> its stages: (build_zoo recipe, share of the model's budget); a later stage starts from the one before, as
# build_zoo.INIT_FROM says
MODELS = {
    "single-latent": (("vae-emoji-base", 1.0),),
    "pixel-context": (("vae-emoji-base", 0.6), ("vae-emoji", 0.4)),
    "hierarchical": (("hvae-emoji", 1.0),),
}
RECIPE_SIZE = 64  # the image size of the recipes
COMMON = "--seed 0 --log-every 100 --sample-every 1000 --keep-checkpoints 2".split()
SMOKE = dict(image_size=16, batch_size=4, probe_steps=2, budget_minutes=0.02, num_samples=16, iwae_k=2)
SMOKE_FLAGS = ["--num-grid-images", "4", "--report-to", "none"]


def recipe_flags(name: str, image_size: int) -> list[str]:
    """A recipe's flags (after the trainer's name) at `image_size`: the hierarchical recipe's latent groups are scaled
    with it (the channels per group kept), which needs a size of 64 times a power of two."""
    _, *flags = shlex.split(RECIPES[name])
    if "--image-size" not in flags or image_size == RECIPE_SIZE:
        return flags
    flags += ["--image-size", str(image_size)]
    if "--latent-groups" not in flags:
        return flags
    start = flags.index("--latent-groups") + 1
    end = next(i for i in range(start, len(flags)) if flags[i].startswith("--"))
    groups = [int(r) for r in flags[start:end]]
    scaled = [r * image_size // RECIPE_SIZE for r in groups]
    if any(s * RECIPE_SIZE != r * image_size or s < 1 for r, s in zip(groups, scaled)):
        raise SystemExit(
            f"--image-size {image_size}: the {name} recipe's latent groups (at {groups} for {RECIPE_SIZE} px) scale "
            f"to whole resolutions only at {RECIPE_SIZE} times a power of two (e.g. 16, 32, 128)."
        )
    channels = int(flags[flags.index("--latent-dim") + 1]) // sum(r * r for r in groups)
    latent_dim = channels * sum(s * s for s in scaled)
    return [*flags, "--latent-groups", *map(str, scaled), "--latent-dim", str(latent_dim)]


def stage_argv(name: str, out: Path, args, overrides=()) -> list[str]:
    """The trainer's arguments of a stage (build_zoo.py's command line without the interpreter), resuming from the
    latest checkpoint in `out` if there is one; `overrides` come last, so they win."""
    recipe = shlex.join(["vae", *recipe_flags(name, args.image_size)])
    cmd = train_command(recipe, out, args.device, args.checkpoint_every, args.dataset, COMMON)
    batch = ["--batch-size", str(args.batch_size)] if args.batch_size else []
    return [*cmd[3:], *batch, *args.extra_flags, *overrides]


def images_per_second(argv: list[str], steps: int) -> tuple[float, int]:
    """(images/s, batch size) of the trainer of `argv`, built in a temporary folder and timed over `steps` steps after
    one warm-up step (no logs, grids, checkpoints or model written)."""
    from hf_dgm.training.arguments import parse_arguments
    from hf_dgm.training.vae import VAETrainer, VAETrainingArguments

    never = str(10**9)
    with tempfile.TemporaryDirectory() as tmp:
        probe = [*argv, "--output-dir", tmp, "--max-steps", never, "--report-to", "none", "--no-progress-bar"]
        probe += ["--log-every", never, "--sample-every", never, "--checkpoint-every", never]
        probe = [a for i, a in enumerate(probe) if not (a == "--resume-from" or probe[i - 1] == "--resume-from")]
        trainer = VAETrainer(parse_arguments(VAETrainingArguments, probe, "probe", ""))
        trainer.run_steps(1)
        start = time.perf_counter()
        trainer.run_steps(steps)
        batch = trainer.args.batch_size
        return steps * batch / (time.perf_counter() - start), batch


def train_stage(model: str, stage: int, args, plan: dict) -> Path:
    """Plan (once: plan.json) and train one stage; its final folder."""
    from hf_dgm.training.vae import main as train_vae

    name, share = MODELS[model][stage]
    out = Path(args.out) / (model if stage == len(MODELS[model]) - 1 else f"{model}-stage{stage + 1}")
    init = ["--init-from", str(Path(args.out) / f"{model}-stage{stage}")] if stage else []
    key = f"{model}/{name}"
    if key not in plan:
        argv = stage_argv(name, out, args, init)
        rate, batch = images_per_second(argv, args.probe_steps)
        steps = max(1, int(args.budget_minutes * 60 * share * rate / batch))
        plan[key] = {"recipe": name, "images_per_s": round(rate, 2), "batch_size": batch, "max_steps": steps}
        (Path(args.out) / "plan.json").write_text(json.dumps(plan, indent=1) + "\n")
    record = out / "training_args.json"
    if (out / "model.safetensors").is_file() and json.loads(record.read_text()).get("steps") == plan[key]["max_steps"]:
        return out  # finished
    note = f"A run of scripts/experiments/compare_vae_recipes.py: the {name} recipe for {share:.0%} of the budget."
    argv = stage_argv(name, out, args, [*init, "--max-steps", str(plan[key]["max_steps"]), "--card-note", note])
    print(f"+ hf-dgm train vae {shlex.join(argv)}", flush=True)
    if train_vae(argv) != 0:
        raise SystemExit(f"{model}: the {name} stage failed (see above)")
    return out


def sampling_seconds(folder: Path, num_images: int = 64) -> float:
    """Seconds to draw `num_images` (seed 0) through VAEPipeline, the model loaded."""
    import torch

    from hf_dgm import VAEModel, VAEPipeline

    pipe = VAEPipeline(vae=VAEModel.from_pretrained(folder))
    start = time.perf_counter()
    pipe(batch_size=num_images, generator=torch.Generator().manual_seed(0), output_type="np")
    return time.perf_counter() - start


def headline(results: dict) -> dict:
    """The table's numbers from an evaluation: the first of each kind (the first feature space's; never a floor), and
    the total KL (the last KL metric: all groups, or the only one)."""

    def first(kind: str):
        return next((m["value"] for m in results["metrics"] if m["type"] == kind and "floor" not in m["name"]), None)

    kl = [m["value"] for m in results["metrics"] if m["type"] == "kl_bits"]
    return {
        "bits/dim": first("bits_per_dim"),
        "KID": first("kid"),
        "precision": first("precision"),
        "KL bits": kl[-1] if kl else None,
    }


def evaluate_model(model: str, folder: Path, args, trained: dict) -> dict:
    from hf_dgm.evaluation.evaluate import evaluate, write_results

    results = evaluate(
        folder, dataset=args.dataset, features=args.features, num_samples=args.num_samples, iwae_k=args.iwae_k,
        progress=False, device=args.device,
    )  # fmt: skip
    write_results(folder, results)
    row = {**headline(results), "sample 64 s": round(sampling_seconds(folder), 2), **trained}
    return {"row": row, "protocol": results["protocol"], "likelihood": results.get("likelihood_protocol")}


def table(rows: dict) -> str:
    columns = list(next(iter(rows.values())))
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for model, row in rows.items():
        lines.append(f"| {model} | " + " | ".join("-" if row[c] is None else f"{row[c]:.4g}" for c in columns) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-minutes", type=float, default=150.0, help="training time of each model")
    parser.add_argument("--dataset", default=EMOJI, help="default: build_zoo.py's emoji folder")
    parser.add_argument("--image-size", type=int, default=RECIPE_SIZE)
    parser.add_argument("--out", default=str(ROOT / "runs" / "compare_vae"), help="runs, plan and comparison")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=None, help="none: the recipes' (32)")
    parser.add_argument("--probe-steps", type=int, default=20, help="steps timed to size each run")
    parser.add_argument("--features", default="auto", help="as hf-dgm evaluate's --features")
    parser.add_argument("--num-samples", type=int, default=None, help="as hf-dgm evaluate's; none: the protocol's")
    parser.add_argument("--iwae-k", type=int, default=None, help="as hf-dgm evaluate's; none: the protocol's (100)")
    parser.add_argument("--smoke", action="store_true", help="tiny settings: checks the script in about a minute")
    args = parser.parse_args(argv)
    args.extra_flags = SMOKE_FLAGS if args.smoke else []
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
        args.features = "emoji-classifier" if args.features == "auto" else args.features
    if args.budget_minutes <= 0 or args.probe_steps < 1:
        parser.error("--budget-minutes must be positive and --probe-steps at least 1")
    return args


def load_plan(args) -> dict:
    """OUT/plan.json, started afresh with the settings that size the runs; a plan of other settings: exit."""
    settings = {k: getattr(args, k) for k in ("budget_minutes", "dataset", "image_size", "batch_size", "device")}
    path = Path(args.out) / "plan.json"
    plan = json.loads(path.read_text()) if path.is_file() else {"settings": settings}
    if plan["settings"] != settings:
        raise SystemExit(f"{path} plans runs for {plan['settings']}, not {settings}: pass another --out.")
    return plan


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = load_plan(args)
    report = {"budget_minutes": args.budget_minutes, "dataset": args.dataset, "image_size": args.image_size}
    report["models"] = {}
    for model in args.models:
        folders = [train_stage(model, stage, args, plan) for stage in range(len(MODELS[model]))]
        records = [json.loads((f / "training_args.json").read_text()) for f in folders]
        trained = {
            "steps": sum(r["steps"] for r in records),
            "images/s": round(sum(plan[f"{model}/{r}"]["images_per_s"] * share for r, share in MODELS[model]), 1),
            "train min": round(sum(r["training_time_s"] for r in records) / 60, 1),
        }
        report["models"][model] = evaluate_model(model, folders[-1], args, trained)
        print(f"{model}: {report['models'][model]['row']}", flush=True)
    report["plan"] = plan
    rows = {model: entry["row"] for model, entry in report["models"].items()}
    (out / "comparison.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "comparison.md").write_text(table(rows) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
