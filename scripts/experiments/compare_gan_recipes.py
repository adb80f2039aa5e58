"""Side by side: hf-dgm's default GAN recipe against the plain pytorch/examples DCGAN recipe (same networks, same
number of steps, same seed), with the `hf-dgm evaluate` protocol.

    python scripts/experiments/compare_gan_recipes.py [--steps 5000] [--device cpu] [--plain-from DIR]

* Plain recipe (pytorch/examples/dcgan): BCE on D's output (the non-saturating generator loss), Adam lr 2e-4,
  beta1 0.5, no EMA and no other tricks.
* hf-dgm's default: build_zoo.py's dcgan-mnist-stage1 recipe (the first stage of dcgan-mnist) (the same, plus an R1 penalty on D's gradient at real images,
  gamma 1, and an exponential moving average of the generator, which is what gets sampled), for --steps steps.

Both train in runs/compare/{plain,ours} with build_zoo.py's command line (an interrupted run resumes; a finished
one is reused). --plain-from names a finished run of the plain recipe that also kept an EMA generator, such as the
dcgan-mnist of earlier zoo builds: EMA only reads the generator and never feeds back into training, so that run's
raw generator is bit-identical to a plain run's (tests/test_training.py::test_ema_only_reads_the_generator).
The script checks both runs' recorded arguments and writes docs/gan_recipe_comparison.json.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from build_zoo import MNIST, RECIPES, train_command  # noqa: E402

PLAIN = {
    "loss": "non_saturating",
    "lr_g": 2e-4,
    "lr_d": 2e-4,
    "beta1_g": 0.5,
    "beta1_d": 0.5,
    "d_steps": 1,
    "label_smoothing": 0.0,
    "r1_gamma": 0.0,
    "spectral_norm": False,
    "minibatch_std": False,
    "minibatch_discrimination_kernels": 0,
    "feature_matching": 0.0,
    "historical_averaging": 0.0,
}
SAME = ("architecture", "generator_channels", "discriminator_channels", "latent_dim", "batch_size", "seed", "steps")


def recipes(steps: int) -> dict[str, str]:
    ours = RECIPES["dcgan-mnist-stage1"].split()
    ours[ours.index("--max-steps") + 1] = str(steps)
    plain = list(ours)
    for flag in ("--r1-gamma", "--ema-decay"):  # the tricks; the plain recipe keeps the rest (networks, Adam)
        i = plain.index(flag)
        del plain[i : i + 2]
    return {"plain": " ".join(plain + ["--ema-decay", "0"]), "ours": " ".join(ours)}


def train_runs(commands: dict, dirs: dict, args):
    """Train (or resume) each run that has no finished folder yet; --plain-from must name a finished one."""
    for name, out in dirs.items():
        if (out / "model.safetensors").is_file() and json.loads((out / "training_args.json").read_text())["steps"]:
            continue
        if name == "plain" and args.plain_from:
            sys.exit(f"--plain-from {args.plain_from!r} is not a finished run (no model.safetensors/steps).")
        cmd = train_command(commands[name], out, args.device, checkpoint_every=500)
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


def check_like_for_like(run: dict, steps: int):
    """Exit unless the plain run has the plain recipe and both share networks, batch, seed and steps."""
    plain_run, ours_run = run["plain"], run["ours"]
    problems = [
        f"plain run has {k}={plain_run.get(k)!r}, not {v!r}" for k, v in PLAIN.items() if plain_run.get(k, v) != v
    ]
    problems += [
        f"{k}: plain {plain_run.get(k)!r}, ours {ours_run.get(k)!r}"
        for k in SAME
        if plain_run.get(k) != ours_run.get(k)
    ]
    if ours_run["steps"] != steps:
        problems.append(f"ours ran {ours_run['steps']} steps, expected --steps {steps}")
    if problems:
        sys.exit("not a like-for-like comparison: " + "; ".join(problems))


def raw_generator(plain_dir: Path, tmp: str) -> tuple[Path, str]:
    """The plain run's folder to evaluate, and a note: where it kept an (unused) EMA copy, its raw generator alone,
    saved in `tmp` (see the docstring)."""
    from hf_dgm import GANConfig, GANModel

    model = GANModel.from_pretrained(plain_dir)
    if model.generator_ema is None:
        return plain_dir, f"{plain_dir.name}: trained without EMA"
    plain = GANModel(GANConfig(**{**model.config.to_dict(), "use_ema": False}))  # every weight replaced
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("generator_ema.")}
    plain.load_state_dict(state, strict=True)
    plain.save_pretrained(tmp)
    return Path(tmp), f"{plain_dir.name}: the raw generator of a plain run that also kept an unused EMA copy"


def evaluate_row(path, run: dict, args) -> tuple[dict, str]:
    """The comparison's row of one model folder, and the protocol's text."""
    from hf_dgm.evaluation.evaluate import evaluate

    results = evaluate(path, dataset=args.dataset, num_samples=args.num_samples, progress=False, device=args.device)
    metrics = {m["name"]: m["value"] for m in results["metrics"]}
    row = {
        "classifier-feature FID": metrics["classifier-feature FID"],
        "FID / real-data floor": metrics["classifier-feature FID / floor"],
        "precision (k=3)": metrics["precision (k=3)"],
        "recall (k=3)": metrics["recall (k=3)"],
        "class histogram range": [min(results["class_histogram"]), max(results["class_histogram"])],
        "training": {k: run.get(k) for k in ("hardware", "training_time_s", "r1_gamma", "ema_decay")},
    }
    return row, results["protocol"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--device", default="cpu", help="for training and evaluation")
    parser.add_argument("--plain-from", default=None, help="a finished plain-recipe run with an EMA generator")
    parser.add_argument("--runs-dir", default=str(ROOT / "runs" / "compare"))
    parser.add_argument("--dataset", default=MNIST, help="default: build_zoo.py's MNIST")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--out", default=str(ROOT / "docs" / "gan_recipe_comparison.json"))
    args = parser.parse_args()

    commands = recipes(args.steps)
    dirs = {name: Path(args.runs_dir) / name for name in commands}
    if args.plain_from:
        dirs["plain"] = Path(args.plain_from)
    train_runs(commands, dirs, args)
    run = {name: json.loads((out / "training_args.json").read_text()) for name, out in dirs.items()}
    check_like_for_like(run, args.steps)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        plain_dir, plain_note = raw_generator(dirs["plain"], tmp)
        for name, path, label in (
            ("plain", plain_dir, "pytorch/examples recipe"),
            ("ours", dirs["ours"], "hf-dgm default (R1 + EMA generator)"),
        ):
            start = time.time()
            rows[label], protocol = evaluate_row(path, run[name], args)
            print(f"{label}: {rows[label]} ({time.time() - start:.0f} s)", flush=True)
    report = {
        "steps": args.steps,
        "batch_size": run["ours"]["batch_size"],
        "seed": run["ours"]["seed"],
        "commands": {"plain": commands["plain"], "ours": commands["ours"]},
        "plain_run": plain_note,
        "protocol": protocol,
        "recipes": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
