"""Train the emoji GAN at 64 px on one GPU, side by side with the plain pytorch/examples DCGAN recipe (the comparison
of compare_emoji_gan.py), and bring both back to be evaluated on another machine.

On the GPU machine (a copy of this repository with .gpu_check/, which `bash scripts/gpu_check.sh --prepare` fills
with the wheels and the emoji data): `DEADLINE_S=420 bash scripts/gpu_check.sh --emoji`, or anywhere with a GPU and
hf-dgm installed: `python scripts/experiments/gpu_emoji.py --data data/emoji --out OUT [--train-s 300]`.

* Both runs train at once on the one GPU: OURS (build_zoo.py's gan-emoji-32 recipe at 64 px) and the plain recipe
  built from it by compare_emoji_gan.py (widths 64, BCE, Adam 2e-4 with beta1 0.5, no EMA, no augmentation).
* At --train-s both stop. Their learning rates are constant, so each is finalised at the last step X for which both
  have a checkpoint, by resuming that checkpoint with --max-steps X: two folders of runs of X steps, which have seen
  the same images.
* Nothing is evaluated there (the TF-Inception weights, 87 MB, need not be installed on the GPU machine). OUT holds
  each final folder as a tar in parts of at most 15 MiB (small enough for any file transfer), and logs.tar.gz.
* Back on the first machine, with OUT copied to DIR: `python scripts/experiments/gpu_emoji.py --unpack DIR` puts ours
  into runs/compare-emoji/ours and the plain run into runs/compare-emoji/plain; then
  `python scripts/experiments/compare_emoji_gan.py --ours runs/compare-emoji/ours` evaluates both (writing each
  folder's eval_results.json and card). To ship it, OURS would become a recipe of build_zoo.py (tests/test_zoo.py
  checks a zoo model against its recipe).

Sizes: ours is 64 px with widths 32 (3.2 M parameters with its EMA copy and D, 13 MB), which the zoo's 100 MB weight
budget leaves room for; widths 64 would be 42 MB. The plain run's folder is 26 MB.

`--vae` (`DEADLINE_S=420 bash scripts/gpu_check.sh --emoji-vae`) trains the emoji's hierarchical VAE instead, one
run: compare_recipes.py's run of VAE_MODEL with VAE_FLAGS, its steps sized from a measured throughput so that the
cosine schedule ends at --train-s, then its NLL and its samples (N(0, I), no fitted prior) in the emoji classifier's
space, measured there as a check. OUT holds the final folder (hvae.tar.*) and comparison.json. Back on the first
machine, `--unpack DIR` puts it into runs/gpu-emoji-vae/hvae, and the zoo's protocol measures it:
`hf-dgm fit-prior runs/gpu-emoji-vae/hvae --output-dir FOLDER --dataset <emoji> --components 20 --rank 64`, then
`hf-dgm evaluate FOLDER --dataset <emoji>`.

`--smoke` runs tiny settings on the CPU, to check the script before spending GPU time on it.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from build_zoo import EMOJI, RECIPES, ROOT, SHIPPED  # noqa: E402
from compare_emoji_gan import plain_recipe  # noqa: E402
from gpu_zoo import Run, log, stop  # noqa: E402

GPU_FLAGS = (
    "--image-size 64 --generator-channels 32 --discriminator-channels 32 --card-note 'Trained on one GPU at 64 px; "
    "widths 32 keep it within the zoo budget. Conditional on the emoji group: the Space offers the group names, and "
    "the projection discriminator learns from them.'"
)
OURS = f"{RECIPES['gan-emoji-32']} {GPU_FLAGS}"  # the recipe's later flags win
MAX_STEPS = 200_000  # both run until --train-s, then are finalised at a common checkpoint
# --vae: the zoo's first hvae-emoji stage at twice its width (base 32: about twice the CPU time per image) and twice its
# batch, at half its learning rate: at 1e-3 the wider network diverged at step 456 on the CPU (docs/hierarchical_vae.md)
VAE_MODEL = "hvae-emoji-stage1"
VAE_FLAGS = "--base-channels 32 --lr 5e-4 --skip-grad-norm 10000000"
VAE_BATCH = 64
PART_BYTES = 15 * 2**20
FOLDERS = {
    "ours": Path("runs/compare-emoji/ours"),
    "plain": Path("runs/compare-emoji/plain"),
    "hvae": Path("runs/gpu-emoji-vae/hvae"),
}  # where --unpack puts what it finds


def pack(folder: Path, name: str, out: Path) -> list[str]:
    """folder's files (not its checkpoints) -> out/name.tar.000, .001, ... of at most PART_BYTES each."""
    whole = out / f"{name}.tar"
    with tarfile.open(whole, "w") as tar:
        for fname in SHIPPED:
            if (folder / fname).is_file():
                tar.add(folder / fname, arcname=fname)
    data, parts = whole.read_bytes(), []
    whole.unlink()
    for i in range(0, len(data), PART_BYTES):
        part = out / f"{name}.tar.{i // PART_BYTES:03d}"
        part.write_bytes(data[i : i + PART_BYTES])
        parts.append(part.name)
    return parts


def unpack(folder: Path, root: Path):
    found = {name: sorted(folder.glob(f"{name}.tar.[0-9][0-9][0-9]")) for name in FOLDERS}
    if not any(found.values()):
        sys.exit(f"no {', '.join(f'{name}.tar.*' for name in FOLDERS)} in {folder}")
    for name, parts in found.items():
        if not parts:
            continue
        dest = root / FOLDERS[name]
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            whole = Path(tmp) / f"{name}.tar"
            whole.write_bytes(b"".join(p.read_bytes() for p in parts))
            with tarfile.open(whole) as tar:
                tar.extractall(dest, filter="data")
        steps = json.loads((dest / "training_args.json").read_text())["steps"]
        print(f"{name}: {len(parts)} part(s) -> {dest} ({steps} steps)")


def train_gans(args, out: Path, t0: float) -> str:
    """OURS and the plain recipe at once, finalised at their last common checkpoint and packed; the summary line."""
    args.gan_max_steps = MAX_STEPS
    recipes = {"ours": OURS, "plain": plain_recipe(OURS, MAX_STEPS)}
    if args.smoke:  # widths 8 for both, so that the CPU gets a few checkpoints
        recipes = {k: f"{v} --generator-channels 8 --discriminator-channels 8" for k, v in recipes.items()}
    runs = {name: Run(name, recipe, args) for name, recipe in recipes.items()}
    for r in runs.values():
        r.start()
    log(f"started {', '.join(runs)}")
    while time.time() - t0 < args.train_s and all(r.proc.poll() is None for r in runs.values()):
        time.sleep(2)
    for r in runs.values():
        stop(r.proc)
        log(f"{r.name}: rc {r.proc.returncode}, checkpoints {sorted(r.checkpoints())[-3:]}")
    common = set.intersection(*(set(r.checkpoints()) for r in runs.values()))
    if not common:
        sys.exit("no step with a checkpoint of both runs: a longer --train-s")
    steps = max(common)
    for r in runs.values():  # resume that very checkpoint, to a run of `steps` steps
        r.start(["--max-steps", str(steps), "--resume-from", str(r.checkpoints()[steps].parent)])
    returned = []
    for r in runs.values():
        try:
            r.proc.wait(max(30, args.total_s - 20 - (time.time() - t0)))
        except subprocess.TimeoutExpired:  # reported below, not returned
            stop(r.proc)
        if r.proc.returncode == 0 and (r.dir / "model.safetensors").is_file():
            returned += pack(r.dir, r.name, out)
        else:
            log(f"{r.name}: not finalised (rc {r.proc.returncode})")
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        for r in runs.values():
            tar.add(r.dir.parent / f"{r.name}.log", arcname=f"{r.name}.log")
            for fname in ("training_args.json", "samples.png"):
                if (r.dir / fname).is_file():
                    tar.add(r.dir / fname, arcname=f"{r.name}/{fname}")
    return f"gpu_emoji: {time.time() - t0:.0f}s on {args.device}, both at {steps} steps; returned {returned}"


def train_vae(args, out: Path, t0: float) -> str:
    """VAE_MODEL with VAE_FLAGS through compare_recipes.py for --train-s (a probe sizes its steps), measured there in
    the emoji classifier's space, and packed; the summary line."""
    from compare_recipes import main as compare

    runs = Path(args.runs) / "vae"
    argv = ["--models", VAE_MODEL, "--budget-minutes", f"{args.train_s / 60:.3f}", "--device", args.device]
    argv += ["--batch-size", str(VAE_BATCH), f"--trainer-flags={VAE_FLAGS}", "--features", "emoji-classifier"]
    argv += ["--dataset", args.data, "--out", str(runs), *(["--smoke"] if args.smoke else [])]
    log(f"compare_recipes.py {' '.join(argv)}")
    compare(argv)
    shutil.copy(runs / "comparison.json", out / "comparison.json")
    returned = pack(runs / VAE_MODEL, "hvae", out)
    steps = json.loads((runs / VAE_MODEL / "training_args.json").read_text())["steps"]
    return f"gpu_emoji --vae: {time.time() - t0:.0f}s on {args.device}, {steps} steps; returned {returned}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=EMOJI)
    parser.add_argument("--out", default="gpu_emoji_out")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "gpu_emoji"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--train-s", type=float, default=300)
    parser.add_argument("--total-s", type=float, default=400, help="the GANs: finalising and packing end before this")
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    parser.add_argument("--vae", action="store_true", help="the hierarchical VAE instead of the GANs")
    parser.add_argument("--smoke", action="store_true", help="tiny settings on the CPU")
    parser.add_argument("--unpack", default=None, help="after the run: the folder OUT was copied into")
    parser.add_argument("--root", default=str(ROOT), help="--unpack: the checkout to unpack into")
    args = parser.parse_args()
    if args.unpack:
        return unpack(Path(args.unpack), Path(args.root))
    if args.smoke:
        args.device, args.checkpoint_every = "cpu", 2
    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = (train_vae if args.vae else train_gans)(args, out, t0)
    (out / "summary.txt").write_text(summary + "\n")
    log(summary)


if __name__ == "__main__":
    main()
