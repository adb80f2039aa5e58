"""Time to first image and peak memory of `hf-dgm sample` vs a bare script, each in a cold process, interleaved.

    python scripts/benchmark_sample.py [--model zoo/dcgan-mnist] [--repeats 5]

The bare script imports only torch, safetensors and PIL, defines the same generator inline (a copy of
networks_gan.DCGANGenerator, no hf_dgm import), loads the same weights, samples 64 images with the same seed and
saves the same PNG grid. Prints wall times, peak RSS and the ratios (targets: time <= 1.5x, memory <= 1.3x), and
checks that both PNGs are identical.

    python scripts/benchmark_sample.py --pixel-context [--model zoo/vae-emoji] [--num-images 8] [--repeats 1]

A VAE that decodes pixel by pixel (a pixel context), in one process: its decode loop as it runs (wavefronts, on one
intra-op thread, ``modeling_utils.one_intra_op_thread``) against the loops it replaced: raster order, one pixel per
step (``raster_decode`` below, a copy of the earlier ``PixelContext.decode``), on one thread and on the process's
threads; each without and with a competing load (a process of torch matmuls on every core), interleaved. Prints the
seconds, each ratio against raster order on the process's threads without the extra load, and whether all draws are
the same pixels.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BARE = r"""
import json, math, sys
import torch
from torch import nn
from safetensors.torch import load_file
from PIL import Image
import numpy as np

model_dir, out = sys.argv[1], sys.argv[2]
cfg = json.load(open(f"{model_dir}/config.json"))
size, stages = cfg["image_size"], 0
while size % 2 == 0 and size // 2 >= 3:
    size //= 2; stages += 1
ch = cfg["generator_channels"] * 2 ** (stages - 1)
layers = [nn.ConvTranspose2d(cfg["latent_dim"], ch, size, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
for _ in range(stages - 1):
    layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
    ch //= 2
layers += [nn.ConvTranspose2d(ch, cfg["num_channels"], 4, 2, 1, bias=False), nn.Tanh()]
net = nn.Sequential(*layers)
prefix = "generator_ema.net." if cfg["use_ema"] else "generator.net."
state = {k[len(prefix):]: v for k, v in load_file(f"{model_dir}/model.safetensors").items() if k.startswith(prefix)}
net.load_state_dict(state)
net.eval()
with torch.no_grad():
    z = torch.randn(64, cfg["latent_dim"], generator=torch.Generator().manual_seed(0))
    x = ((net(z[:, :, None, None]) + 1) / 2).clamp(0, 1)
a = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
n, h, w, c = a.shape
nrow = 8; pad = 2
grid = np.zeros((pad + 8 * (h + pad), pad + 8 * (w + pad), c), np.uint8)
for i in range(n):
    r, q = divmod(i, nrow)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = a[i]
Image.fromarray(grid[..., 0], mode="L").save(out)
"""


def run(cmd):
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return elapsed, int(proc.stderr.strip().splitlines()[-1]) / 1024  # MiB


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="default: zoo/dcgan-mnist (zoo/vae-emoji with --pixel-context)")
    parser.add_argument("--repeats", type=int, default=None, help="default: 5 (1 with --pixel-context)")
    parser.add_argument("--pixel-context", action="store_true", help="time pixel-by-pixel decoding under load")
    parser.add_argument("--num-images", type=int, default=8, help="--pixel-context: images per draw")
    args = parser.parse_args()
    if args.pixel_context:
        return pixel_context_under_load(
            args.model or str(ROOT / "zoo" / "vae-emoji"), args.num_images, args.repeats or 1
        )
    args.model, args.repeats = args.model or str(ROOT / "zoo" / "dcgan-mnist"), args.repeats or 5
    cfg = json.loads(Path(args.model, "config.json").read_text())
    if cfg.get("architecture") != "dcgan" or cfg.get("num_classes"):
        raise SystemExit("the bare baseline re-implements an unconditional DCGAN generator: pass such a model")
    with tempfile.TemporaryDirectory() as tmp:
        bare_py = Path(tmp, "bare.py")
        bare_py.write_text(BARE)
        ours_png, bare_png = Path(tmp, "ours.png"), Path(tmp, "bare.png")
        cmds = {
            "bare": [sys.executable, str(bare_py), args.model, str(bare_png)],
            "hf-dgm sample": [
                str(Path(sys.executable).parent / "hf-dgm"),
                "sample",
                "--model",
                args.model,
                "--num-images",
                "64",
                "--seed",
                "0",
                "--out",
                str(ours_png),
            ],
        }
        for cmd in cmds.values():
            run(cmd)  # warm the file cache
        times = {k: [] for k in cmds}
        rss = {k: [] for k in cmds}
        for _ in range(args.repeats):
            for name, cmd in cmds.items():
                t, m = run(cmd)
                times[name].append(t)
                rss[name].append(m)
        same = ours_png.read_bytes() == bare_png.read_bytes()
    t = {k: statistics.median(v) for k, v in times.items()}
    m = {k: statistics.median(v) for k, v in rss.items()}
    print(f"model {args.model}, {args.repeats} interleaved cold runs each (median)")
    for k in cmds:
        print(f"  {k:14s} {t[k]:6.2f} s   peak RSS {m[k]:7.1f} MiB   (all: {', '.join(f'{x:.2f}' for x in times[k])})")
    print(f"  time ratio   {t['hf-dgm sample'] / t['bare']:.2f}  (target <= 1.5)")
    print(f"  memory ratio {m['hf-dgm sample'] / m['bare']:.2f}  (target <= 1.3)")
    print(f"  identical PNGs: {same}")
    warm_throughput(args.model, args.repeats)


def warm_throughput(model_dir, repeats, batch=64, iters=20):
    """Warm sampling throughput in one process: GANPipeline(64 images, output_type="pt") vs the bare forward pass of
    the same generator network on the same latents (target: >= 0.95x)."""
    import torch

    sys.path.insert(0, str(ROOT))
    from hf_dgm import GANModel, GANPipeline

    model = GANModel.from_pretrained(model_dir).eval()
    pipe = GANPipeline(gan=model)
    net = model.sampling_network
    z = torch.randn(batch, model.config.latent_dim, generator=torch.Generator().manual_seed(0))

    def bare():
        with torch.no_grad():
            ((net(z) + 1) / 2).clamp(0, 1)

    def ours():
        pipe(latents=z, output_type="pt")

    rates = {"bare forward": [], "GANPipeline": []}
    for fn in (bare, ours):
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in (("bare forward", bare), ("GANPipeline", ours)):
            start = time.perf_counter()
            for _ in range(iters):
                fn()
            rates[name].append(batch * iters / (time.perf_counter() - start))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"warm sampling, {batch} images x {iters} calls x {repeats} repeats (median images/s):")
    for k, v in med.items():
        print(f"  {k:14s} {v:9.0f}")
    print(f"  ratio {med['GANPipeline'] / med['bare forward']:.3f}  (target >= 0.95)")


BUSY = "import torch\ntorch.set_num_threads({threads})\na = torch.randn(512, 512)\nwhile True:\n    a @ a\n"


@contextlib.contextmanager
def competing_load(on: bool):
    """A process of torch matmuls on every core while the block runs (none where not `on`)."""
    if not on:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", BUSY.format(threads=os.cpu_count())])
    try:
        time.sleep(2)  # past its start-up
        yield
    finally:
        proc.terminate()
        proc.wait()


def raster_decode(self, output, generator=None, progress=None):
    """``PixelContext.decode`` in raster order, one pixel per step (the loop the wavefronts replaced), for
    comparison."""
    import torch

    from hf_dgm.vae.networks_vae import _neighbour_predictions, one_intra_op_thread, sample_logistic_mixture

    n, channels, (height, width) = output.shape[0], self.num_channels, output.shape[-2:]
    k, pad = self.kernel_size, self.kernel_size // 2
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    noise = torch.rand((n, 1 + channels, height, width), generator=generator).to(output)
    weight = self._masked_weight()[:, :, : pad + 1]
    canvas = output.new_zeros(n, channels, height + pad, width + 2 * pad)
    parameters = torch.empty_like(output)
    with torch.no_grad(), one_intra_op_thread(output.device):
        for row in range(height):
            for col in range(width):
                window = canvas[:, :, row : row + pad + 1, col : col + k]
                context = torch.einsum("nchw,ochw->no", window, weight) + self.context.bias
                r, c = row + pad, col + pad
                predictions = _neighbour_predictions(
                    canvas[:, :, r, c - 1],
                    canvas[:, :, r - 1, c],
                    canvas[:, :, r - 1, c - 1],
                    canvas[:, :, r - 1, c + 1],
                )
                pixel = self._likelihood_parameters(
                    output[:, :, row : row + 1, col : col + 1], context[:, :, None, None], predictions[..., None, None]
                )
                parameters[:, :, row, col] = pixel[:, :, 0, 0]
                drawn = sample_logistic_mixture(
                    pixel, channels, self.num_mixtures, noise[:, :, row : row + 1, col : col + 1]
                )
                canvas[:, :, r, c] = drawn[:, :, 0, 0]
    return torch.round((canvas[:, :, pad:, pad : pad + width] + 1.0) * 127.5) / 255.0, parameters


def pixel_context_under_load(model_dir, num_images: int, repeats: int):
    """Seconds to draw `num_images` (seed 0) with the decode loop on one thread and on the process's threads, each
    without and with a competing load (see the module docstring)."""
    import torch

    sys.path.insert(0, str(ROOT))
    from hf_dgm.sampling import load_sampling_network, sample_images
    from hf_dgm.vae import networks_vae

    cfg, family, net = load_sampling_network(model_dir)
    if not getattr(cfg, "pixel_context", 0):
        raise SystemExit(f"{model_dir} decodes in one pass (no pixel context): pass a VAE with a pixel context")
    one_thread, wavefronts = networks_vae.one_intra_op_thread, networks_vae.PixelContext.decode
    all_threads = lambda device: contextlib.nullcontext()  # noqa: E731
    loops = {  # name: (the decode loop, its thread helper)
        "raster, process's threads": (raster_decode, all_threads),
        "raster, one thread": (raster_decode, one_thread),
        "wavefronts, one thread": (wavefronts, one_thread),
    }
    times, draws = {}, []
    for load in (False, True):
        with competing_load(load):
            for _ in range(repeats):
                for loop, (decode, helper) in loops.items():
                    networks_vae.one_intra_op_thread, networks_vae.PixelContext.decode = helper, decode
                    start = time.perf_counter()
                    draws.append(sample_images(cfg, family, net, num_images, seed=0))
                    times.setdefault((loop, load), []).append(time.perf_counter() - start)
    networks_vae.one_intra_op_thread, networks_vae.PixelContext.decode = one_thread, wavefronts
    median = {key: statistics.median(v) for key, v in times.items()}
    baseline = median[("raster, process's threads", False)]
    print(f"{model_dir}: {num_images} images of {cfg.image_size} px, seed 0; {torch.get_num_threads()} threads in")
    print(f"the process, {os.cpu_count()} CPUs; median of {repeats} draw(s); ratio: baseline seconds / these seconds")
    for (loop, load), seconds in median.items():
        where = "with a competing load" if load else "without extra load"
        print(f"  {loop:26s} {where:22s} {seconds:7.1f} s   x{baseline / seconds:6.2f}")
    print(f"  identical pixels in all {len(draws)} draws: {all((d == draws[0]).all() for d in draws)}")


if __name__ == "__main__":
    main()
