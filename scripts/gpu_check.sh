#!/usr/bin/env bash
# GPU check for a lent machine (device tool): one command, under 8 minutes.
#   - installs what the GPU image lacks from wheels carried in .whl/ (see the device tool's README),
#   - runs the test subset that matters on a GPU (models, pipelines, training steps on CUDA),
#   - measures training images/s for DCGAN and the conv VAE: bare loop vs hf-dgm trainer, fp32 eager vs
#     bf16 + torch.compile, and warm sampling images/s; results in $OUT/gpu_check.txt.
# Usage (from the repository root, on the device): bash scripts/gpu_check.sh
set -euo pipefail
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export HF_HUB_OFFLINE=1 HF_DGM_CACHE=/tmp/hf_dgm_cache PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu_check.txt"
python3 -c "import torch, transformers, diffusers, accelerate; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
  | tee -a "$OUT/gpu_check.txt"
timeout 180 python3 -m pytest -q -x tests/test_modeling_gan.py tests/test_modeling_vae.py tests/test_pipelines.py \
  2>&1 | tail -3 | tee -a "$OUT/gpu_check.txt" || true
timeout 300 python3 - <<'PY' 2>&1 | tee -a "$OUT/gpu_check.txt"
import tempfile, time, torch
from pathlib import Path
import sys; sys.path.insert(0, "scripts")
from benchmark_train import MNIST, bare_gan, bare_vae  # noqa: E402
from hf_dgm.training.gan import GANTrainer, GANTrainingArguments
from hf_dgm.training.vae import VAETrainer, VAETrainingArguments

def rate(fn, steps, batch):
    fn(5); torch.cuda.synchronize(); t = time.perf_counter(); fn(steps); torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t)

dataset = MNIST if Path(MNIST).exists() else "ylecun/mnist"
for kind in ("gan", "vae"):
    for precision, compile_ in (("no", False), ("bf16", True)):
        with tempfile.TemporaryDirectory() as out:
            kw = dict(output_dir=out, dataset=dataset, batch_size=256, max_steps=10**9, log_every=100,
                      sample_every=10**9, checkpoint_every=10**9, report_to="none", progress_bar=False,
                      device="cuda", mixed_precision=precision, compile=compile_, allow_tf32=True)
            trainer = (GANTrainer(GANTrainingArguments(generator_channels=128, discriminator_channels=64, **kw))
                       if kind == "gan" else VAETrainer(VAETrainingArguments(**kw)))
            ours = rate(lambda n: trainer.run_steps(n), 200, 256)
            line = f"{kind} trainer {precision} compile={compile_}: {ours:,.0f} images/s"
            if precision == "no":
                step = (bare_gan if kind == "gan" else bare_vae)(trainer.model.config, trainer.images, 256, 0)
                bare = rate(lambda n: [step(i) for i in range(n)], 200, 256)
                line += f"; bare fp32 loop {bare:,.0f} images/s; ratio {ours / bare:.3f}"
            print(line)
from hf_dgm import GANConfig, GANModel, GANPipeline
model = GANModel(GANConfig(generator_channels=128, use_ema=True)).cuda().eval()
pipe = GANPipeline(gan=model)
z = torch.randn(64, 100, device="cuda")
print("sampling 64 images:", f"{rate(lambda n: [pipe(latents=z, output_type='pt') for _ in range(n)], 50, 64):,.0f}",
      "images/s (pipeline, incl. copy to CPU)")
PY
echo "done: $OUT/gpu_check.txt"
