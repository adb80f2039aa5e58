#!/usr/bin/env bash
# GPU check: tests, a CUDA smoke run and throughput on a machine with an NVIDIA GPU, one command, under 8 minutes.
#
# 1. Where pip has network (here, or any machine), pack what the GPU machine may lack into .gpu_check/ (about 43 MB,
#    ignored by git): wheels of datasets, diffusers, dill and multiprocess for Python 3.12 on x86-64 Linux, MNIST
#    (from MNIST_DIR, default data/mnist, else downloaded from ylecun/mnist) and the emoji (from EMOJI_DIR, default
#    data/emoji, else built by scripts/build_emoji_dataset.py):
#
#        bash scripts/gpu_check.sh --prepare
#
# 2. Copy this folder, .gpu_check/ included, to the GPU machine (python3 with torch (CUDA), transformers,
#    accelerate, huggingface_hub, safetensors, pyarrow and pytest; no network needed), and run there, from its root:
#
#        bash scripts/gpu_check.sh                          # the checks below
#        DEADLINE_S=520 bash scripts/gpu_check.sh --zoo     # instead: the zoo's recipe search (scripts/experiments/gpu_zoo.py)
#        DEADLINE_S=420 bash scripts/gpu_check.sh --emoji   # instead: the emoji GAN at 64 px beside the plain DCGAN
#                                                           # recipe (scripts/experiments/gpu_emoji.py)
#        DEADLINE_S=420 bash scripts/gpu_check.sh --emoji-vae  # instead: the emoji's hierarchical VAE at 64 px, twice
#                                                              # the CPU recipe's width (gpu_emoji.py --vae)
#
# 3. Copy $OUT (default gpu_check_out/) back: gpu_check.log (everything), bench.jsonl (the numbers), summary.txt
#    (printed last too), and for --zoo / --emoji / --emoji-vae the packed model folders.
#
# The checks:
#   1. install the packed wheels into .gpu_check/site and link the packed MNIST where the tests look for it,
#   2. the tests that train (tests/test_training.py: device "auto", so CUDA there) and the model/pipeline tests
#      (CPU, but against that machine's torch/transformers versions),
#   3. a CUDA smoke run of what the tests don't train: fp16 (GradScaler) + channels_last GAN with checkpoint and
#      resume, fp16 conv VAE,
#   4. training images/s of DCGAN (G 128, D 64) and the conv VAE, batch 256: hf-dgm trainer vs the bare loop of
#      scripts/benchmark_train.py in fp32 eager, then the trainer in bf16 eager and bf16 + torch.compile (one process
#      per precision: accelerate fixes the mixed precision once per process), and warm sampling images/s (pipeline
#      vs bare forward, batch 64 and 1024).
# Every step has a time limit inside one overall deadline (DEADLINE_S, default 450 s), so the whole script ends
# under 8 minutes; a step that fails or runs out of time is reported and the next one still runs. The exit status is
# non-zero if any step failed, timed out or was skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."  # the repository root

WHEELS=(datasets==5.2.0 diffusers==0.42.1 dill==0.4.1 multiprocess==0.70.19)  # the versions the project is tested with

if [[ "${1:-}" == "--prepare" ]]; then  # where pip has network, not on the GPU machine
  rm -rf .gpu_check && mkdir -p .gpu_check/wheels .gpu_check/mnist
  py=.venv/bin/python; [[ -x $py ]] || py=python3
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu_check/wheels "${WHEELS[@]}"
  mnist=${MNIST_DIR:-data/mnist} emoji=${EMOJI_DIR:-data/emoji}
  if [[ -d $mnist ]]; then cp "$mnist"/*.parquet .gpu_check/mnist/
  else "$py" -c "import datasets; [datasets.load_dataset('ylecun/mnist', split=s).to_parquet(
    f'.gpu_check/mnist/{s}-00000-of-00001.parquet') for s in ('train', 'test')]"
  fi
  if [[ -d $emoji ]]; then mkdir -p .gpu_check/emoji && cp "$emoji"/*.parquet .gpu_check/emoji/
  else "$py" scripts/build_emoji_dataset.py .gpu_check/emoji
  fi
  echo "packed: $(du -sh .gpu_check | cut -f1) in .gpu_check/"
  exit 0
fi

export OUT=${OUT:-$PWD/gpu_check_out}  # what to copy back
mkdir -p "$OUT"
LOG=$OUT/gpu_check.log
DATA=$PWD/.gpu_check/mnist
DEADLINE=$((SECONDS + ${DEADLINE_S:-450}))
STATUS=()  # one line per step
FAILED=0

say() { echo "$*" | tee -a "$LOG"; }

# step NAME LIMIT_S CMD...: run CMD with its output in the log, within min(LIMIT_S, time left before DEADLINE).
step() {
  local name=$1 limit=$2 left=$((DEADLINE - SECONDS)) start=$SECONDS rc
  shift 2
  ((limit < left)) || limit=$left
  if ((limit < 20)); then
    STATUS+=("$name: SKIPPED (deadline)"); FAILED=1; say "== $name: skipped, ${left}s left"; return
  fi
  say "== $name (limit ${limit}s)"
  set +e
  timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  set -e
  if ((rc == 0)); then STATUS+=("$name: ok ($((SECONDS - start))s)")
  elif ((rc == 124 || rc == 137)); then STATUS+=("$name: TIMED OUT after ${limit}s"); FAILED=1
  else STATUS+=("$name: FAILED rc=$rc ($((SECONDS - start))s)"); FAILED=1
  fi
}

# ---- 1. the packed wheels and data (missing ones fail here, loudly)
compgen -G ".gpu_check/wheels/*.whl" >/dev/null && compgen -G "$DATA/*.parquet" >/dev/null || {
  echo "no .gpu_check/: run 'bash scripts/gpu_check.sh --prepare' where pip has network, and copy it here" >&2
  exit 1
}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .gpu_check/site \
  .gpu_check/wheels/*.whl
export PYTHONPATH=$PWD/.gpu_check/site:$PWD
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1
export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error
export HF_DGM_CACHE=$PWD/.gpu_check/cache
export HF_DGM_DATA=$PWD/.gpu_check  # the scripts' data folder (mnist/, emoji/); tests/conftest.py reads ../shared/data/mnist
if [[ ! -e ../shared/data/mnist ]]; then
  mkdir -p ../shared/data && ln -s "$DATA" ../shared/data/mnist || say "warning: could not link ../shared/data/mnist"
fi

CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) || { echo "nvidia-smi failed: no GPU" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$LOG"
step versions 90 python3 -c "
import sys, torch, transformers, diffusers, datasets, accelerate, huggingface_hub, pyarrow, fsspec, hf_dgm
print('python', sys.version.split()[0], '| torch', torch.__version__, '| transformers', transformers.__version__,
      '| diffusers', diffusers.__version__, '| datasets', datasets.__version__, '| accelerate', accelerate.__version__,
      '| huggingface_hub', huggingface_hub.__version__, '| pyarrow', pyarrow.__version__, '| fsspec', fsspec.__version__)
assert torch.cuda.is_available(), 'torch sees no CUDA device'
print('cuda', torch.version.cuda, torch.cuda.get_device_name(0))
"

# ---- --zoo / --emoji / --emoji-vae: training instead of the checks below: scripts/experiments/gpu_zoo.py (the zoo's
# recipe search) or scripts/experiments/gpu_emoji.py.
if [[ "${1:-}" == --zoo || "${1:-}" == --emoji || "${1:-}" == --emoji-vae ]]; then
  [[ ${STATUS[0]} == "versions: ok"* ]] || { say "versions failed: not training"; exit 1; }
  if [[ $1 == --zoo ]]; then
    step zoo $((DEADLINE - SECONDS)) python3 scripts/experiments/gpu_zoo.py --data "$DATA" --out "$OUT" \
      --train-s "${ZOO_TRAIN_S:-300}" --total-s $((DEADLINE - SECONDS - 15))
  elif [[ $1 == --emoji ]]; then
    step emoji $((DEADLINE - SECONDS)) python3 scripts/experiments/gpu_emoji.py --data "$PWD/.gpu_check/emoji" --out "$OUT" \
      --train-s $((DEADLINE - SECONDS - 100)) --total-s $((DEADLINE - SECONDS - 10))
  else  # the probe, the evaluation and the packing come on top of --train-s
    step emoji-vae $((DEADLINE - SECONDS)) python3 scripts/experiments/gpu_emoji.py --vae \
      --data "$PWD/.gpu_check/emoji" --out "$OUT" --train-s $((DEADLINE - SECONDS - 150))
  fi
  printf '%s\n' "${STATUS[@]}" | tee -a "$LOG"
  exit "$FAILED"
fi

# ---- 2. tests (xdist where the image has it; each worker gets 2 CPU threads)
xdist=(); python3 -c "import xdist" 2>/dev/null && xdist=(-n 6)
OMP_NUM_THREADS=2 step tests 170 python3 -m pytest -q -rfE -p no:cacheprovider "${xdist[@]}" \
  tests/test_training.py tests/test_modeling_gan.py tests/test_modeling_vae.py tests/test_pipelines.py

# ---- 3. CUDA smoke: fp16 + channels_last GAN (checkpoint at 10, resume to 30) and fp16 VAE
cat >.gpu_check/smoke.py <<'PY'
import sys, tempfile
from pathlib import Path
import torch
from hf_dgm import GANModel, VAEModel
from hf_dgm.training.gan import GANTrainingArguments, train_gan
from hf_dgm.training.vae import VAETrainingArguments, train_vae

data = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    common = dict(dataset=data, batch_size=64, log_every=5, sample_every=10, checkpoint_every=10, num_grid_images=16,
                  report_to="none", progress_bar=False, device="cuda", mixed_precision="fp16")
    gan = dict(common, output_dir=f"{tmp}/gan", channels_last=True)
    train_gan(GANTrainingArguments(max_steps=20, **gan))
    train_gan(GANTrainingArguments(max_steps=30, resume_from="latest", **gan))
    train_vae(VAETrainingArguments(max_steps=20, output_dir=f"{tmp}/vae", **common))
    g, v = GANModel.from_pretrained(f"{tmp}/gan"), VAEModel.from_pretrained(f"{tmp}/vae")
    assert all(torch.isfinite(p).all() for m in (g, v) for p in m.parameters()), "non-finite weights"
    print("RESULT smoke: fp16 channels_last GAN 20 + resume to 30 steps, fp16 VAE 20 steps on", torch.cuda.get_device_name(0))
PY
step smoke 90 python3 .gpu_check/smoke.py "$DATA"

# ---- 4. throughput, one process per precision (accelerate allows one mixed precision per process)
cat >.gpu_check/bench.py <<'PY'
import argparse, json, os, statistics, sys, tempfile, time
import torch

sys.path.insert(0, os.path.join(os.getcwd(), "scripts"))
from benchmark_train import bare_gan, bare_vae  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--precision", default="no", choices=["no", "bf16", "fp16"])
p.add_argument("--compile", action="store_true")
p.add_argument("--bare", action="store_true", help="also the bare fp32 loop, interleaved")
p.add_argument("--sample", action="store_true", help="also warm sampling images/s")
p.add_argument("--batch-size", type=int, default=256)
p.add_argument("--steps", type=int, default=100)
p.add_argument("--repeats", type=int, default=3)
a = p.parse_args()
B = a.batch_size
label = ("fp32" if a.precision == "no" else a.precision) + (" + compile" if a.compile else " eager")
card = torch.cuda.get_device_name(0)


def seconds(fn, n):
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn(n)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def report(**row):
    row.update(card=card, torch=torch.__version__)
    with open(os.path.join(os.environ["OUT"], "bench.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")


def trainer_for(kind, out):
    kw = dict(output_dir=out, dataset=a.data, batch_size=B, max_steps=10**9, log_every=50, sample_every=10**9,
              checkpoint_every=10**9, report_to="none", progress_bar=False, device="cuda",
              mixed_precision=a.precision, compile=a.compile)
    if kind == "gan":
        from hf_dgm.training.gan import GANTrainer, GANTrainingArguments
        return GANTrainer(GANTrainingArguments(generator_channels=128, discriminator_channels=64, **kw))
    from hf_dgm.training.vae import VAETrainer, VAETrainingArguments
    return VAETrainer(VAETrainingArguments(**kw))


def sampling(kind, model):
    from hf_dgm import GANPipeline, VAEPipeline
    model.eval()
    if kind == "gan":
        pipe, net = GANPipeline(gan=model), model.sampling_generator
        bare = lambda z: ((net(z) + 1) / 2).clamp(0, 1)  # noqa: E731
    else:
        pipe = VAEPipeline(vae=model)
        bare = lambda z: model.decode(z).sample  # noqa: E731
    for n in (64, 1024):
        z = torch.randn(n, model.config.latent_dim, device="cuda")
        runs = {"pipeline": lambda k: [pipe(latents=z, output_type="pt") for _ in range(k)]}
        with torch.no_grad():
            runs["bare forward"] = lambda k: [bare(z) for _ in range(k)]
            for fn in runs.values():
                fn(2)
            rates = {name: [] for name in runs}
            for _ in range(a.repeats):
                for name, fn in runs.items():
                    rates[name].append(20 * n / seconds(fn, 20))
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"RESULT {kind} sampling batch {n}: pipeline {med['pipeline']:,.0f} images/s (incl. copy to CPU), "
              f"bare forward {med['bare forward']:,.0f}")
        report(kind=kind, what="sampling", batch=n, pipeline=med["pipeline"], bare=med["bare forward"])


for kind in ("gan", "vae"):
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        trainer = trainer_for(kind, out)
        runs = {"trainer": lambda n: trainer.run_steps(n)}
        if a.bare:
            cfg, data = trainer.model.config, trainer.data
            step = bare_gan(trainer.args, cfg, data.images, data.labels, B, 0) if kind == "gan" else bare_vae(cfg, data.images, B, 0)
            runs["bare"] = lambda n: [step(i) for i in range(n)]
        warm = {name: seconds(fn, 10 if a.compile else 3) for name, fn in runs.items()}  # compiles here
        rates = {name: [] for name in runs}
        for _ in range(a.repeats):  # interleaved, so drifts hit both alike
            for name, fn in runs.items():
                rates[name].append(a.steps * B / seconds(fn, a.steps))
        med = {k: statistics.median(v) for k, v in rates.items()}
        line = (f"RESULT {kind} trainer {label}: {med['trainer']:,.0f} images/s "
                f"(all {', '.join(f'{r:,.0f}' for r in rates['trainer'])}; warm-up {warm['trainer']:.1f}s)")
        if a.bare:
            line += f"; bare fp32 loop {med['bare']:,.0f}; ratio trainer/bare {med['trainer'] / med['bare']:.3f}"
        if a.compile:
            from torch._dynamo.utils import counters
            line += f"; graph breaks {sum(counters['graph_break'].values())}"
        print(line)
        report(kind=kind, what="train", precision=a.precision, compile=a.compile, batch=B, trainer=med["trainer"],
               bare=med.get("bare"), warmup_s=warm["trainer"], total_s=time.perf_counter() - t0)
        if a.sample:
            sampling(kind, trainer.model)
PY
step "bench fp32 eager (+ bare loop, sampling)" 120 python3 .gpu_check/bench.py --data "$DATA" --bare --sample
step "bench bf16 eager" 60 python3 .gpu_check/bench.py --data "$DATA" --precision bf16
step "bench bf16 + torch.compile" 180 python3 .gpu_check/bench.py --data "$DATA" --precision bf16 --compile

# ---- summary (printed last, so that the end of the output holds it)
{
  echo "==== gpu_check summary: $CARD, $((SECONDS))s"
  printf '%s\n' "${STATUS[@]}"
  grep -h '^RESULT' "$LOG" | sed 's/^RESULT /  /' || true
  grep -hE '^(FAILED|ERROR) |[0-9]+ (passed|failed)' "$LOG" | tail -25 || true
} | tee "$OUT/summary.txt"
exit "$FAILED"
