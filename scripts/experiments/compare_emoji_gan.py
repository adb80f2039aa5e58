"""Side by side on the emoji: the plain pytorch/examples DCGAN recipe against hf-dgm's emoji GAN recipe, on the same
data at the same resolution for the same number of images seen, both scored with `hf-dgm evaluate`'s Inception
protocol (KID with its std, FID, precision/recall, each with its real-data floor).

    python scripts/experiments/compare_emoji_gan.py [--device cpu] [--num-samples N]

* Plain (pytorch/examples/dcgan): the DCGAN networks with widths 64 (ngf = ndf = 64), a 100-d latent, BCE (the
  non-saturating generator loss), Adam lr 2e-4 with betas (0.5, 0.999), no EMA, no augmentation, unconditional;
  the batch size, resolution and number of steps of ours.
* hf-dgm: the 32 px emoji GAN, build_zoo.py's gan-emoji-32 recipe (`python scripts/build_zoo.py gan-emoji-32`
  trains it in runs/gan-emoji-32; the zoo's gan-emoji until it was grown to 64 px, now cdcgan-emoji's first stage); its step
  count sets the plain run's.

The plain run trains in runs/compare-emoji/plain (rerunning resumes it). A folder that already holds an
eval_results.json of the same protocol (dataset, sample count, seed) is not evaluated again. Writes
docs/emoji_gan_comparison.json. Target: hf-dgm's KID at most half the plain recipe's.
"""

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from build_zoo import EMOJI, RECIPES, train_command  # noqa: E402

from hf_dgm.records import is_recorded_dataset  # noqa: E402


def flag(recipe: str, name: str) -> str:
    """The value of a recipe's flag; where it is given twice, the last one, as argparse reads it."""
    words = shlex.split(recipe)
    return words[len(words) - words[::-1].index(name)]


def plain_recipe(ours: str, steps: int) -> str:
    return (
        f"gan --architecture dcgan --image-size {flag(ours, '--image-size')} --num-channels 3 --latent-dim 100 "
        "--generator-channels 64 --discriminator-channels 64 --loss non_saturating --lr-g 2e-4 --lr-d 2e-4 "
        "--beta1-g 0.5 --beta1-d 0.5 --beta2-g 0.999 --beta2-d 0.999 --ema-decay 0 --no-spectral-norm "
        f"--batch-size {flag(ours, '--batch-size')} --max-steps {steps}"
    )


def evaluation(folder: Path, num_samples: int | None, device: str) -> dict:
    """The folder's eval_results.json when it holds this protocol, else `hf-dgm evaluate` (which writes it)."""
    path = folder / "eval_results.json"
    if path.is_file():
        results = json.loads(path.read_text())
        if (
            is_recorded_dataset(results, EMOJI)
            and results.get("seed") == 0
            and num_samples in (None, results["num_samples"])
        ):
            return results
    cmd = [sys.executable, "-m", "hf_dgm.cli", "evaluate", str(folder), "--dataset", EMOJI, "--device", device]
    cmd += ["--num-samples", str(num_samples)] if num_samples else []
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(path.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="for training and evaluation")
    parser.add_argument("--num-samples", type=int, default=None, help="default: the protocol's (half the images)")
    parser.add_argument("--ours", default=str(ROOT / "runs" / "gan-emoji-32"), help="the hf-dgm model folder")
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "emoji_gan_comparison.json"))
    args = parser.parse_args()

    ours_dir, plain_dir = Path(args.ours), Path(args.runs_dir) / "compare-emoji" / "plain"
    if not (ours_dir / "training_args.json").is_file():
        sys.exit(f"{ours_dir} holds no finished run: python scripts/build_zoo.py gan-emoji-32 first.")
    ours_run = json.loads((ours_dir / "training_args.json").read_text())
    plain = plain_recipe(RECIPES["gan-emoji-32"], ours_run["steps"])
    finished = (plain_dir / "training_args.json").is_file() and json.loads(
        (plain_dir / "training_args.json").read_text()
    ).get("steps") == ours_run["steps"]
    if not finished:
        cmd = train_command(plain, plain_dir, args.device, checkpoint_every=250, dataset=EMOJI)
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    plain_run = json.loads((plain_dir / "training_args.json").read_text())
    images_seen = {name: run["steps"] * run["batch_size"] for name, run in (("plain", plain_run), ("ours", ours_run))}
    if len(set(images_seen.values())) != 1:
        sys.exit(f"not the same number of images seen: {images_seen}")

    rows = {}
    for name, folder, recipe in (
        ("plain pytorch/examples DCGAN", plain_dir, plain),
        ("hf-dgm gan-emoji-32", ours_dir, RECIPES["gan-emoji-32"]),
    ):
        results = evaluation(folder, args.num_samples, args.device)
        rows[name] = {
            "recipe": recipe,
            "protocol": results["protocol"],
            "metrics": {m["name"]: {k: m[k] for k in ("value", "std") if k in m} for m in results["metrics"]},
            "training_time_s": json.loads((folder / "training_args.json").read_text()).get("training_time_s"),
        }
    kid = {
        name: next(
            v["value"] for k, v in row["metrics"].items() if k.startswith("Inception KID (") and "floor" not in k
        )
        for name, row in rows.items()
    }
    plain_kid, ours_kid = kid["plain pytorch/examples DCGAN"], kid["hf-dgm gan-emoji-32"]
    report = {
        "images_seen": images_seen["ours"],
        "kid_ratio_ours_over_plain": round(ours_kid / plain_kid, 4) if plain_kid > 0 else None,
        "target": "hf-dgm's KID at most half the plain recipe's (ratio <= 0.5)",
        "recipes": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("images_seen", "kid_ratio_ours_over_plain")}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
