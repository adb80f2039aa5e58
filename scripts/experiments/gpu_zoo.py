"""Search the zoo's recipes on one GPU: train candidates side by side, evaluate them, pack the best for the zoo.

On the GPU machine, through `bash scripts/gpu_check.sh --zoo` (which installs the wheels and data that
`gpu_check.sh --prepare` packed first), or anywhere with a GPU and hf-dgm installed:

    python scripts/experiments/gpu_zoo.py --data data/mnist --out OUT [--train-s 300] [--total-s 450]

* Every candidate in CANDIDATES trains in its own process (`python -m hf_dgm.training.gan|vae`, the same command
  build_zoo.py runs), all at once on the one GPU, checkpointing every --checkpoint-every steps.
* Each checkpoint at a multiple of --eval-every steps is evaluated while training goes on (`hf-dgm evaluate`'s
  protocol, likelihood skipped), in a few worker processes.
* At --train-s the runs still going are stopped. A GAN run (constant learning rates) is then finalised at its last
  checkpoint X by resuming it with --max-steps X: its folder is exactly that of a run of X steps. A VAE run (cosine
  schedule) that did not finish is reported, not shipped.
* Beside them, the shipped vae-mnist gets the full likelihood protocol (IWAE k=5000 on all 10 000 test images),
  resumable through its state file, which comes back too.
* Out: results.json (every evaluation: run, step, metrics), summary.txt, logs.tar.gz (logs, sample grids, training
  args, IWAE state), and a tar of the finished folder of the best GAN candidates and the best conditional VAE.

`--smoke` runs tiny settings on the CPU, to check the script before spending GPU time on it.
"""

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from build_zoo import train_command  # noqa: E402

GAN_NET = "--architecture dcgan --generator-channels 128 --discriminator-channels 64 --batch-size 128"
CANDIDATES = {
    # the pytorch/examples DCGAN recipe; its raw generator is the plain recipe, its EMA generator the old default
    "gan-plain": f"gan {GAN_NET} --lr-g 2e-4 --lr-d 2e-4 --ema-decay 0.999",
    "gan-r1": f"gan {GAN_NET} --lr-g 2e-4 --lr-d 2e-4 --ema-decay 0.999 --r1-gamma 1",
    "gan-r1-10": f"gan {GAN_NET} --lr-g 2e-4 --lr-d 2e-4 --ema-decay 0.999 --r1-gamma 10",
    "gan-r1-mbstd": f"gan {GAN_NET} --lr-g 2e-4 --lr-d 2e-4 --ema-decay 0.999 --r1-gamma 1 --minibatch-std",
    "gan-r1-ttur": f"gan {GAN_NET} --lr-g 1e-4 --lr-d 4e-4 --beta2-g 0.99 --beta2-d 0.99 --ema-decay 0.999 "
    "--r1-gamma 1",
    "gan-hinge-sn": f"gan {GAN_NET} --loss hinge --spectral-norm --lr-g 1e-4 --lr-d 4e-4 --beta1-g 0 --beta1-d 0 "
    "--beta2-g 0.9 --beta2-d 0.9 --ema-decay 0.999",
    "cvae-z32": "vae --architecture conv --conditional --latent-dim 32 --base-channels 32 --hidden-dim 256 "
    "--batch-size 128 --max-steps 15000 --lr 1e-3 --lr-schedule cosine --kl-warmup-steps 2000",
    "cvae-z16": "vae --architecture conv --conditional --latent-dim 16 --base-channels 32 --hidden-dim 256 "
    "--batch-size 128 --max-steps 15000 --lr 1e-3 --lr-schedule cosine --kl-warmup-steps 2000",
    "cvae-z8": "vae --architecture conv --conditional --latent-dim 8 --base-channels 32 --hidden-dim 256 "
    "--batch-size 128 --max-steps 15000 --lr 1e-3 --lr-schedule cosine --kl-warmup-steps 2000",
}
GAN_MAX_STEPS = 60000  # GANs run until --train-s, then are finalised at their last checkpoint
COMMON = "--seed 0 --log-every 250 --sample-every 5000 --keep-checkpoints 1000 --report-to none --no-progress-bar"


def log(msg: str):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def compact(results: dict) -> dict:
    row = {m["name"]: m["value"] for m in results["metrics"]}
    row["class_histogram"] = results["class_histogram"]
    if "conditional_accuracy_per_class" in results:
        row["conditional_accuracy_per_class"] = results["conditional_accuracy_per_class"]
    row["eval_time_s"] = results["time_s"]
    return row


def evaluate_one(path: str, data: str, device: str, num_samples: int) -> dict:
    import torch

    torch.set_num_threads(2)
    from hf_dgm.evaluation.evaluate import evaluate

    return compact(
        evaluate(path, dataset=data, num_samples=num_samples, skip_likelihood=True, progress=False, device=device)
    )


class Run:
    def __init__(self, name: str, spec: str, args):
        self.name, self.family, self.spec = name, spec.split()[0], spec
        self.dir = Path(args.runs) / name
        self.args = args
        self.flags = []  # after the recipe's: the last --max-steps given wins
        if self.family == "gan" or args.smoke:
            self.flags += ["--max-steps", str(args.gan_max_steps)]
        if args.smoke:
            self.flags += ["--batch-size", "16"]
        self.proc = None
        self.final_step = None  # set when a finished folder exists

    def start(self, extra=()):
        """build_zoo.py's command line (resuming from the latest checkpoint if there is one), plus `extra`."""
        a = self.args
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = train_command(self.spec, self.dir, a.device, a.checkpoint_every, dataset=a.data, common=COMMON.split())
        cmd += [*self.flags, *extra]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        with open(self.dir.parent / f"{self.name}.log", "a") as f:
            f.write("\n+ " + " ".join(cmd) + "\n")
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def checkpoints(self) -> dict[int, Path]:
        """step -> the model folder of each complete checkpoint."""
        from hf_dgm.training.checkpointing import checkpoint_step, list_checkpoints

        return {checkpoint_step(p): p / "model" for p in list_checkpoints(self.dir)}


def stop(proc: subprocess.Popen, grace: float = 20):
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the MNIST folder (ylecun/mnist's parquet layout)")
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu_zoo_out"), help="what to copy back")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "gpu_zoo"), help="the candidates' run folders")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--train-s", type=float, default=300)
    parser.add_argument("--total-s", type=float, default=450)
    parser.add_argument("--checkpoint-every", type=int, default=2500)
    parser.add_argument("--eval-every", type=int, default=None, help="default: 10000 (4 with --smoke)")
    parser.add_argument("--gan-max-steps", type=int, default=None, help=f"default: {GAN_MAX_STEPS} (8 with --smoke)")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--eval-workers", type=int, default=4)
    parser.add_argument("--iwae-k", type=int, default=5000)
    parser.add_argument("--only", nargs="*", default=None, help="candidates to run (default: all)")
    parser.add_argument("--smoke", action="store_true", help="tiny settings on the CPU")
    args = parser.parse_args()
    if args.smoke:
        args.device, args.checkpoint_every = "cpu", 4
        args.gan_max_steps, args.eval_every = args.gan_max_steps or 8, args.eval_every or 4
        args.num_samples, args.iwae_k = 500, 2
    args.gan_max_steps, args.eval_every = args.gan_max_steps or GAN_MAX_STEPS, args.eval_every or 10000
    return args


def start_iwae(args, runs_dir: Path) -> tuple[subprocess.Popen, Path]:
    """The full likelihood protocol of the shipped vae-mnist, beside the training runs (resumable state file)."""
    state = runs_dir / f"vae-mnist.iwae-k{args.iwae_k}.json"
    cmd = [sys.executable, "-m", "hf_dgm.cli", "evaluate", str(ROOT / "zoo" / "vae-mnist"), "--dataset", args.data]
    cmd += ["--device", args.device, "--iwae-k", str(args.iwae_k), "--iwae-state", str(state), "--no-write"]
    cmd += ["--num-samples", str(args.num_samples)]
    if args.smoke:
        cmd += ["--num-test-images", "20"]
    # the bound decodes as many images x samples per call as HF_DGM_MAX_ACTIVATIONS allows: the default (400 MB) suits
    # a CPU; a GPU's memory takes 100 images x about 150 samples of the hierarchical vae-mnist per call
    env = dict(os.environ, OMP_NUM_THREADS="2", HF_DGM_MAX_ACTIVATIONS=str(10**10))
    with open(runs_dir / "vae-mnist.eval.json", "w") as out, open(runs_dir / "vae-mnist.eval.log", "w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
    return proc, state


class Evaluations:
    """Checkpoints evaluated in worker processes while training goes on; results.json rewritten as they come."""

    def __init__(self, args, out: Path, names):
        self.args, self.out = args, out
        self.results: dict[str, dict[int, dict]] = {n: {} for n in names}
        self.pool = cf.ProcessPoolExecutor(args.eval_workers, mp_context=multiprocessing.get_context("spawn"))
        self.pending: dict[cf.Future, tuple[str, int]] = {}
        self.submitted: set[tuple[str, int]] = set()

    def submit(self, name: str, step: int, path: Path):
        if (name, step) not in self.submitted:
            self.submitted.add((name, step))
            a = self.args
            self.pending[self.pool.submit(evaluate_one, str(path), a.data, a.device, a.num_samples)] = (name, step)

    def collect(self, timeout: float):
        if not self.pending:
            time.sleep(timeout)
            return
        done, _ = cf.wait(list(self.pending), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            name, step = self.pending.pop(fut)
            try:
                row = self.results[name][step] = fut.result()
                log(
                    f"eval {name} step {step}: FID {row['classifier-feature FID']:.4g}, P {row['precision (k=3)']:.3f}"
                    f", R {row['recall (k=3)']:.3f}, acc {row.get('conditional accuracy', '-')}"
                )
            except Exception as e:  # noqa: BLE001 - reported, and the others go on
                self.results[name][step] = {"error": repr(e)}
                log(f"eval {name} step {step} FAILED: {e!r}")
        self.write()

    def cancel_queued(self) -> list[tuple[str, int]]:
        """Take back the evaluations not started yet (to run the finished folders first)."""
        queued = [key for fut, key in list(self.pending.items()) if fut.cancel() and self.pending.pop(fut)]
        self.submitted.difference_update(queued)
        return queued

    def shutdown(self):
        for fut in self.pending:
            fut.cancel()
        for p in list(getattr(self.pool, "_processes", {}).values()):
            p.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.write()

    def write(self):
        report = {"args": vars(self.args), "candidates": CANDIDATES, "results": self.results}
        (self.out / "results.json").write_text(json.dumps(report, indent=1))


def train(runs: dict, evals: Evaluations, args, t0: float):
    """Train until --train-s (or all finish), evaluating every --eval-every steps' checkpoint; then stop them."""

    def scan():
        for r in runs.values():
            for step, path in r.checkpoints().items():
                if step % args.eval_every == 0:
                    evals.submit(r.name, step, path)

    while time.time() - t0 < args.train_s and any(r.proc.poll() is None for r in runs.values()):
        scan()
        evals.collect(timeout=5)
    scan()
    for r in runs.values():
        stop(r.proc)
        log(f"{r.name}: rc {r.proc.returncode}, checkpoints {sorted(r.checkpoints())[-3:]}")


def finalise(runs: dict, evals: Evaluations, args, t0: float):
    """A finished run's folder, or a stopped GAN run resumed at its last checkpoint with --max-steps X; then the
    final folders are evaluated first, the checkpoints still queued after them."""
    finalising = []
    for r in runs.values():
        if (r.dir / "model.safetensors").is_file():
            r.final_step = json.loads((r.dir / "training_args.json").read_text())["steps"]
        elif r.family == "gan" and r.checkpoints():
            last = max(r.checkpoints())
            r.start(["--max-steps", str(last)])  # resumes from the latest checkpoint: `last`
            finalising.append((r, last))
    for r, last in finalising:
        try:
            r.proc.wait(max(60, args.total_s - 90 - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            stop(r.proc)
        if r.proc.returncode == 0 and (r.dir / "model.safetensors").is_file():
            r.final_step = last
    queued = evals.cancel_queued()
    for r in runs.values():
        if r.final_step is not None:
            evals.submit(r.name, r.final_step, r.dir)  # skipped when that step's checkpoint was evaluated already
    for name, step in queued:
        evals.submit(name, step, runs[name].checkpoints()[step])
    log("finalised: " + ", ".join(f"{r.name}@{r.final_step}" for r in runs.values()))
    while evals.pending and time.time() - t0 < args.total_s - 25:
        evals.collect(timeout=min(5, max(0.1, args.total_s - 25 - (time.time() - t0))))


def pack(runs: dict, results: dict, out: Path, runs_dir: Path) -> list[str]:
    """Tar the finished folders of the three best GAN candidates (not gan-plain) and the best conditional VAE, and
    the logs; returns the names packed."""

    def final(name) -> dict:
        r = runs[name]
        return results[name].get(r.final_step, {}) if r.final_step is not None else {}

    gans = sorted((n for n in runs if runs[n].family == "gan" and runs[n].final_step),
                  key=lambda n: final(n).get("classifier-feature FID", float("inf")))  # fmt: skip
    cvaes = sorted((n for n in runs if runs[n].family == "vae" and runs[n].final_step),
                   key=lambda n: -final(n).get("conditional accuracy", 0))  # fmt: skip
    packed = [n for n in gans if n != "gan-plain"][:3] + cvaes[:1]
    for name in packed:
        with tarfile.open(out / f"{name}.tar", "w") as tar:
            for f in sorted(runs[name].dir.iterdir()):
                if f.is_file():
                    tar.add(f, arcname=f"{name}/{f.name}")
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        for f in sorted(runs_dir.glob("*.log")) + sorted(runs_dir.glob("vae-mnist.*")):
            tar.add(f, arcname=f.name)
        for r in runs.values():
            for f in ("training_args.json", "samples.png", "eval_results.json"):
                if (r.dir / f).is_file():
                    tar.add(r.dir / f, arcname=f"{r.name}/{f}")
    return packed


def summary(runs: dict, results: dict) -> list[str]:
    """One line per candidate: every evaluated step's FID, precision, recall (and conditional accuracy)."""
    lines = []
    for n in runs:
        cells = []
        for s in sorted(results[n]):
            row = results[n][s]
            cell = f"{s}: FID {row.get('classifier-feature FID', float('nan')):.4g} "
            cell += f"P {row.get('precision (k=3)', float('nan')):.3f} R {row.get('recall (k=3)', float('nan')):.3f}"
            cells.append(cell + (f" acc {row['conditional accuracy']:.4f}" if "conditional accuracy" in row else ""))
        lines.append(f"{n} (final {runs[n].final_step}): " + " | ".join(cells))
    return lines


def main():
    args = parse_args()
    t0 = time.time()
    out, runs_dir = Path(args.out), Path(args.runs)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir.mkdir(parents=True, exist_ok=True)
    runs = {n: Run(n, CANDIDATES[n], args) for n in args.only or list(CANDIDATES)}
    iwae, iwae_state = start_iwae(args, runs_dir)
    for r in sorted(runs.values(), key=lambda r: r.family != "vae"):  # the VAEs must finish: they start first
        r.start()
    log(f"started {len(runs)} runs and the vae-mnist IWAE")
    evals = Evaluations(args, out, runs)
    train(runs, evals, args, t0)
    finalise(runs, evals, args, t0)
    evals.shutdown()
    stop(iwae, grace=5)
    packed = pack(runs, evals.results, out, runs_dir)
    lines = [f"gpu_zoo: {time.time() - t0:.0f}s, device {args.device}, packed {packed}", *summary(runs, evals.results)]
    lines.append(
        f"vae-mnist IWAE: rc {iwae.returncode}, state {iwae_state.stat().st_size if iwae_state.is_file() else 0} B"
    )
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    os._exit(0)  # the pool's killed workers must not be waited for


if __name__ == "__main__":
    main()
