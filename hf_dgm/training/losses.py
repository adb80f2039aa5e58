"""GAN training losses and regularisers. All take discriminator logits (no sigmoid).

Losses (`--loss`):

* ``minimax``: the objective exactly as the article (Goodfellow et al., 2014) writes it,
  min_G max_D E[log D(x)] + E[log(1 - D(G(z)))]: D minimises -log D(x) - log(1 - D(G(z))), G minimises
  log(1 - D(G(z))). G's gradient vanishes when D confidently rejects fakes (early in training).
* ``non_saturating`` (default): the same D loss; G minimises -log D(G(z)) instead, which has the same fixed point
  and strong gradients early on (the variant everyone trains with).
* ``hinge``: D minimises relu(1 - D(x)) + relu(1 + D(G(z))); G minimises -D(G(z)) (Lim & Ye, 2017; Miyato et al.).
* ``least_squares``: D minimises ((D(x) - 1)^2 + D(G(z))^2) / 2; G minimises (D(G(z)) - 1)^2 / 2 (Mao et al., 2017).

Regularisers ("Improved Techniques for Training GANs", Salimans et al., 2016, and later work):

* one-sided label smoothing: D's target for real images is 1 - s instead of 1 (fakes keep 0), so D cannot become
  over-confident on the data; only for the log-loss variants.
* feature matching: G also minimises || E f(x) - E f(G(z)) ||^2 where f is D's last hidden layer, pushing the
  fakes' feature statistics towards the data's.
* historical averaging: each player is pulled towards the running mean of its own past parameters by
  w * || theta - mean(theta_past) ||^2, damping oscillations.
* R1 penalty (Mescheder et al., 2018): gamma / 2 * E || grad_x D(x) ||^2 on real images.
* reconstruction (FastGAN, Liu et al., 2021; the model's ``discriminator_reconstruction``): D's decoder rebuilds each
  real image from D's last feature map; the mean L1 error to the image (area-averaged to the decoder's size) joins
  D's loss.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _log_loss_d(logits_real, logits_fake, label_smoothing: float) -> torch.Tensor:
    # -[t log s(l) + (1 - t) log(1 - s(l))] with t = 1 - label_smoothing for reals, 0 for fakes
    target = 1.0 - label_smoothing
    real = target * F.softplus(-logits_real) + (1.0 - target) * F.softplus(logits_real)
    return real.mean() + F.softplus(logits_fake).mean()


@dataclass(frozen=True)
class GANLoss:
    discriminator: Callable  # (logits_real, logits_fake, label_smoothing) -> D's loss
    generator: Callable  # (logits_fake) -> G's loss
    label_smoothing: bool = False  # whether --label-smoothing applies


# `--loss` names -> formulas (see the module docstring). Add a loss here and `--loss` offers it.
GAN_LOSSES = {
    "minimax": GANLoss(_log_loss_d, lambda fake: -F.softplus(fake).mean(), True),  # log(1 - s(l)) = -softplus(l)
    "non_saturating": GANLoss(_log_loss_d, lambda fake: F.softplus(-fake).mean(), True),  # -log s(l)
    "hinge": GANLoss(
        lambda real, fake, _: F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean(), lambda fake: -fake.mean()
    ),
    "least_squares": GANLoss(
        lambda real, fake, _: 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean(),
        lambda fake: 0.5 * ((fake - 1.0) ** 2).mean(),
    ),
}


def _loss(name: str) -> GANLoss:
    if name not in GAN_LOSSES:
        raise ValueError(f"loss={name!r} is not supported: expected one of {tuple(GAN_LOSSES)}.")
    return GAN_LOSSES[name]


def discriminator_loss(loss: str, logits_real, logits_fake, label_smoothing: float = 0.0) -> torch.Tensor:
    return _loss(loss).discriminator(logits_real, logits_fake, label_smoothing)


def generator_loss(loss: str, logits_fake) -> torch.Tensor:
    return _loss(loss).generator(logits_fake)


def feature_matching_loss(features_real: torch.Tensor, features_fake: torch.Tensor) -> torch.Tensor:
    return (features_real.detach().mean(0) - features_fake.mean(0)).pow(2).sum()


def mode_seeking_loss(images: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """MSGAN's regulariser (Mao et al., CVPR 2019): the images of a batch's two halves, drawn pairwise under the same
    labels from different latents, should differ in proportion to their latents; the inverse of that ratio (mean
    absolute differences), which G lowers by drawing the images of different latents apart."""
    half = len(images) // 2
    ratio = (images[:half].float() - images[half : 2 * half].float()).abs().mean() / (
        (latents[:half] - latents[half : 2 * half]).abs().mean()
    )
    return 1.0 / (ratio + 1e-5)


def r1_penalty(logits_real: torch.Tensor, images_real: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(logits_real.sum(), images_real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def reconstruction_loss(reconstruction: torch.Tensor, images_real: torch.Tensor) -> torch.Tensor:
    """Mean L1 error of D's reconstruction (N, C, s, s) against the real images (N, C, H, W) averaged down to s."""
    target = F.adaptive_avg_pool2d(images_real.detach(), reconstruction.shape[-1])
    return (reconstruction.float() - target.float()).abs().mean()


class HistoricalAverage:
    """Running mean of a module's parameters since the start of training, and the penalty's gradient
    2 w (theta - mean) added to `.grad` after backward (cheaper than building the penalty into the graph)."""

    def __init__(self, params, weight: float):
        self.params = [p for p in params if p.requires_grad]
        self.weight = weight
        self.mean = [p.detach().clone() for p in self.params]
        self.count = 1

    @torch.no_grad()
    def add_penalty_grad(self) -> torch.Tensor:
        penalty = torch.zeros((), device=self.params[0].device)
        for p, m in zip(self.params, self.mean):
            diff = p - m
            penalty += diff.pow(2).sum()
            if p.grad is not None:
                p.grad.add_(diff, alpha=2.0 * self.weight)
        return self.weight * penalty

    @torch.no_grad()
    def update(self):
        self.count += 1
        for p, m in zip(self.params, self.mean):
            m.add_(p - m, alpha=1.0 / self.count)

    def state_tensors(self, prefix: str) -> dict:
        out = {f"{prefix}.{i}": m for i, m in enumerate(self.mean)}
        out[f"{prefix}.count"] = torch.tensor(self.count)
        return out

    def load_state_tensors(self, tensors: dict, prefix: str):
        for i, m in enumerate(self.mean):
            m.copy_(tensors[f"{prefix}.{i}"])
        self.count = int(tensors[f"{prefix}.count"].item())


@torch.no_grad()
def ema_update(ema_module: torch.nn.Module, module: torch.nn.Module, decay: float):
    """ema <- decay * ema + (1 - decay) * current for parameters; buffers (BatchNorm statistics) are copied."""
    ema_params = list(ema_module.parameters())
    params = list(module.parameters())
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    for b_ema, b in zip(ema_module.buffers(), module.buffers()):
        b_ema.copy_(b)
