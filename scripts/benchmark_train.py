"""Training throughput of the hf-dgm trainers vs a bare PyTorch loop of the same networks, batch size, optimizer
and algorithm (the GAN's from the trainer's arguments: loss, Adam, EMA, DiffAugment, autocast, labels; dynamic
binarization for the VAE), with interleaved repeats in one run.

    python scripts/benchmark_train.py                    # DCGAN and conv VAE on MNIST, CPU
    python scripts/benchmark_train.py --model gan --steps 50 --repeats 5
    python scripts/benchmark_train.py --colour           # the same at 64x64 RGB, on the emoji dataset
    python scripts/benchmark_train.py --model gan --projected --batch-size 32   # gan-emoji-64's recipe

Prints images/s for each and the ratio trainer / bare (target: >= 0.95). Also reports the bare loop on one fixed
in-memory batch, which shows whether the data path (indexing the uint8 tensor) starves the model.
"""

import argparse
import functools
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from build_zoo import EMOJI, MNIST, RECIPES  # noqa: E402  ($HF_DGM_DATA, else data/; MNIST else from the Hub)

# GANTrainingArguments' objective terms the bare loop does not implement, at their off values
UNSUPPORTED = {"d_steps": 1, "r1_gamma": 0.0, "feature_matching": 0.0, "historical_averaging": 0.0}


def bare_gan(args, cfg, images, labels, batch_size, seed, fixed_batch=False):
    """A bare loop on the same networks with the trainer's algorithm, read from its resolved arguments `args`: the
    loss and its label smoothing, Adam's settings, DiffAugment on real and fake images before every D pass, autocast
    (bf16 where --mixed-precision bf16), the EMA of G with the same warm-up, class labels for a conditional model.
    The other objective terms (UNSUPPORTED) must be off: it exits in one line otherwise."""
    unsupported = {k: getattr(args, k) for k, off in UNSUPPORTED.items() if getattr(args, k) != off}
    if unsupported:
        raise SystemExit(f"The bare GAN loop does not implement {unsupported}: expected {UNSUPPORTED}.")
    from hf_dgm.gan.networks_gan import build_discriminator, build_generator
    from hf_dgm.training.augment import diff_augment, parse_policy
    from hf_dgm.training.losses import GAN_LOSSES

    torch.manual_seed(seed)
    device = images.device
    G, D, G_ema = build_generator(cfg).to(device), build_discriminator(cfg).to(device), build_generator(cfg).to(device)
    G_ema.load_state_dict(G.state_dict())
    opt_g = torch.optim.Adam(G.parameters(), lr=args.lr_g, betas=(args.beta1_g, args.beta2_g))
    opt_d = torch.optim.Adam(D.parameters(), lr=args.lr_d, betas=(args.beta1_d, args.beta2_d))
    loss, policy = GAN_LOSSES[args.loss], parse_policy(args.diffaugment)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.mixed_precision)
    gen = torch.Generator(device=device).manual_seed(seed)
    n = images.shape[0]
    fixed = images[:batch_size].float() / 127.5 - 1

    def aug(x):
        return diff_augment(x, policy, gen) if policy else x

    def step(i):
        idx = torch.randint(n, (batch_size,), generator=gen, device=device)
        real = fixed if fixed_batch else images[idx].float() / 127.5 - 1
        y = None if labels is None else labels[:batch_size] if fixed_batch else labels[idx]
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            fake = G(torch.randn(batch_size, cfg.latent_dim, generator=gen, device=device), y)
            opt_d.zero_grad(set_to_none=True)
            d_loss = loss.discriminator(D(aug(real), y)[0], D(aug(fake.detach()), y)[0], args.label_smoothing)
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            g_loss = loss.generator(D(aug(fake), y)[0])
        g_loss.backward()
        opt_g.step()
        with torch.no_grad():
            decay = min(args.ema_decay, (1 + i) / (10 + i))
            torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1 - decay)
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)

    return step


def bare_vae(cfg, images, batch_size, seed, fixed_batch=False):
    """A bare negative-ELBO loop on the same encoder/decoder, Adam(1e-3), dynamic binarization."""
    from hf_dgm.vae.networks_vae import build_decoder, build_encoder

    torch.manual_seed(seed)
    device = images.device
    enc, dec = build_encoder(cfg).to(device), build_decoder(cfg).to(device)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)
    gen = torch.Generator(device=device).manual_seed(seed)
    n = images.shape[0]
    fixed = images[:batch_size].float() / 255

    def step(i):
        idx = torch.randint(n, (batch_size,), generator=gen, device=device)
        x = fixed if fixed_batch else images[idx].float() / 255
        x = torch.bernoulli(x, generator=gen)
        mean, logvar = enc(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=gen, device=device)
        rec = F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").flatten(1).sum(1).mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        (rec + kl).backward()
        opt.step()

    return step


def projected_trainer(batch_size, out):
    """gan-emoji-64's trainer: scripts/build_zoo.py's recipe (needs hf-dgm[projected]: FastGAN-lite G, projected D,
    conditional, hinge, DiffAugment, bf16 autocast, EMA) at `batch_size`, logging as the recipe does, writing no
    grids, checkpoints or trackers."""
    from hf_dgm.training.arguments import parse_arguments
    from hf_dgm.training.gan import GANTrainer, GANTrainingArguments

    _, *flags = shlex.split(RECIPES["gan-emoji-64"])
    never = str(10**9)
    flags += ["--dataset", EMOJI, "--output-dir", out, "--batch-size", str(batch_size), "--max-steps", never]
    flags += ["--sample-every", never, "--checkpoint-every", never, "--report-to", "none", "--device", "cpu"]
    return GANTrainer(parse_arguments(GANTrainingArguments, flags, "benchmark", ""))


def make_trainer(kind, batch_size, out, colour=False, projected=False):
    common = dict(
        output_dir=out,
        dataset=EMOJI if colour else MNIST,
        image_size=64 if colour else 28,
        num_channels=3 if colour else 1,
        batch_size=batch_size,
        max_steps=10**9,
        log_every=50,
        sample_every=10**9,
        checkpoint_every=10**9,
        report_to="none",
        progress_bar=True,
        device="cpu",
    )
    if kind == "gan" and projected:
        return projected_trainer(batch_size, out)
    if kind == "gan":
        from hf_dgm.training.gan import GANTrainer, GANTrainingArguments

        return GANTrainer(GANTrainingArguments(generator_channels=128, discriminator_channels=64, **common))
    from hf_dgm.training.vae import VAETrainer, VAETrainingArguments

    return VAETrainer(VAETrainingArguments(**common))


def timed(fn, steps):
    start = time.perf_counter()
    fn(steps)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["gan", "vae", "both"], default="both")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--colour", action="store_true", help="64x64 RGB emoji instead of 28x28 grey MNIST")
    parser.add_argument("--projected", action="store_true", help="GAN: gan-emoji-64's networks (implies --colour)")
    args = parser.parse_args()
    args.colour = args.colour or args.projected
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    for kind in ["gan", "vae"] if args.model == "both" else [args.model]:
        with tempfile.TemporaryDirectory() as out:
            benchmark(kind, args, out)


def benchmark(kind, args, out):
    from tqdm.auto import tqdm

    trainer = make_trainer(kind, args.batch_size, out, args.colour, args.projected and kind == "gan")
    cfg, images = trainer.model.config, trainer.data.images
    if kind == "gan":  # the trainer's algorithm, from its resolved arguments
        make_bare = functools.partial(bare_gan, trainer.args, cfg, images, trainer.data.labels)
    else:
        make_bare = functools.partial(bare_vae, cfg, images)
    bare = make_bare(args.batch_size, 0)
    bare_fixed = make_bare(args.batch_size, 0, fixed_batch=True)
    bar = tqdm(total=10**9, file=open(os.devnull, "w"))  # the trainer's bar: its cost kept, its output hidden

    def loop(step_fn):
        def run(n):
            for i in range(n):
                step_fn(i)

        return run

    runners = {
        "bare": loop(bare),
        "trainer": lambda n: trainer.run_steps(n, bar),
        "bare_fixed_batch": loop(bare_fixed),
    }
    for run in runners.values():
        run(3)  # warm-up
    rates = {name: [] for name in runners}
    for _ in range(args.repeats):  # interleaved, so machine noise hits all three alike
        for name, run in runners.items():
            rates[name].append(args.steps * args.batch_size / timed(run, args.steps))
    med = {k: statistics.median(v) for k, v in rates.items()}
    name = "DCGAN (G 128, D 64)" if kind == "gan" else "conv VAE (32 ch, z=16)"
    if kind == "gan" and args.projected:
        name = "gan-emoji-64's recipe (FastGAN-lite G 16, projected D 16, c 32; conditional, hinge, DiffAugment, bf16)"
    name += ", 64x64 RGB emoji" if args.colour else ", 28x28 MNIST"
    print(f"{name}, batch {args.batch_size}, {args.repeats} x {args.steps} steps (median images/s):")
    for k, v in med.items():
        print(f"  {k:18s} {v:8.1f}   (all: {', '.join(f'{x:.0f}' for x in rates[k])})")
    print(f"  ratio trainer/bare          {med['trainer'] / med['bare']:.3f}   (target >= 0.95)")
    print(f"  ratio bare/bare_fixed_batch {med['bare'] / med['bare_fixed_batch']:.3f}   (data path cost)")


if __name__ == "__main__":
    main()
