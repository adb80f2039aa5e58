"""A prior fitted to a trained VAE's latents (``VAEConfig.latent_prior_components``): ex-post density estimation.

A VAE's posteriors rarely fill its prior: where the encoder puts no image (the prior's holes), prior samples decode
to noise. The fix that costs no training is to fit a density to the latents of the training images after training
and draw from it (Ghosh et al., ICLR 2020, "From Variational to Deterministic Autoencoders"; a two-stage VAE, Dai &
Wipf, ICLR 2019). The density here suits latents of thousands of values (a hierarchical VAE's prior-standardised
noise): a Gaussian mixture along the r principal directions of the posterior draws (``directions``, orthonormal),
and in the rest of the space, their complement, a Gaussian with a variance per latent value, projected:

    z = center + directions @ a + P t,   a ~ sum_k w_k N(mean_k, scale_k scale_k^T),   t ~ N(0, diag(tail_variances)),
                                         P = I - directions @ directions^T (the complement's projection)

(``tail_variances``: each value's variance in the complement, where the draws' variances differ by two orders of
magnitude: one shared variance there put speckles into a hierarchical VAE's samples.) Its density is exact and costs
latent_dim x r per latent: with V = directions and D = diag(tail_variances), the complement's covariance P D P has
determinant det(D) det(V^T D^-1 V) and inverse D^-1 - D^-1 V (V^T D^-1 V)^-1 V^T D^-1 there.

It replaces N(0, I) wherever the model draws or scores latents: samples, and the importance weights of the NLL and
the ELBO (for a hierarchical VAE, the joint density of every group's noise: z_g = mean_p + std_p * eps_g is an
invertible map given the earlier groups, so the bound stays a bound). It is fitted, not trained, from posterior draws
of the training images (``hf-dgm fit-prior``), and its parameters are buffers saved in model.safetensors beside the
decoder's weights (``decoder.latent_prior.*``; about 1 MB for 2688 latents, r = 64 and 20 components): the fast path
and ``trust_remote_code`` models sample from it too.
This file imports torch only.
"""

import functools
import math

import torch
from torch import nn

from ..modeling_utils import check_positive_int, randn
from .networks_hvae import latent_channels, latent_resolutions

PRIOR_KINDS = ("mixture", "autoregressive")
# the VAEConfig fields of the fitted prior (their defaults: none, N(0, I))
LATENT_PRIOR_FIELDS = ("latent_prior_kind", "latent_prior_components", "latent_prior_rank", "latent_prior_width")


def check_prior_settings(
    components, rank, latent_dim: int, num_classes, names=("latent_prior_components", "latent_prior_rank")
):
    """K >= 1 Gaussians along 1 <= rank <= latent_dim directions, for an unconditional VAE; `names`: the config
    fields or flags that hold them, for the error's line."""
    check_positive_int(names[0], components)
    check_positive_int(names[1], rank)
    if num_classes:
        raise ValueError(
            f"{names[0]}={components} is invalid for a conditional VAE (num_classes={num_classes}): the fitted prior "
            "is one density for every class; expected an unconditional VAE."
        )
    if rank > latent_dim:
        raise ValueError(f"{names[1]}={rank} is invalid: expected at most the model's latent_dim={latent_dim}.")


def check_autoregressive_settings(
    components, width, architecture: str, num_classes, names=("latent_prior_components", "latent_prior_width")
) -> None:
    """K >= 1 Gaussians per position and a positive width, for an unconditional hierarchical VAE (its latents lie on
    grids); `names` as in ``check_prior_settings``."""
    check_positive_int(names[0], components)
    check_positive_int(names[1], width)
    if architecture != "hierarchical":
        raise ValueError(
            f"an autoregressive prior needs architecture='hierarchical', whose latents lie on grids; this VAE is "
            f"{architecture!r}: expected the mixture prior (latent_prior_kind='mixture')."
        )
    if num_classes:
        raise ValueError(
            f"an autoregressive prior is one density for every class; this VAE is conditional (num_classes="
            f"{num_classes}): expected an unconditional VAE."
        )


def validate_latent_prior(cfg) -> None:
    """No fitted prior (`latent_prior_components`, `latent_prior_rank` and `latent_prior_width` all 0: N(0, I)), or
    the settings of the `latent_prior_kind` fitted (``check_prior_settings``, ``check_autoregressive_settings``)."""
    kind, components, rank, width = (
        cfg.latent_prior_kind, cfg.latent_prior_components, cfg.latent_prior_rank, cfg.latent_prior_width
    )  # fmt: skip
    if kind not in PRIOR_KINDS:
        raise ValueError(f"latent_prior_kind={kind!r} is invalid: expected one of {', '.join(PRIOR_KINDS)}.")
    if components == rank == width == 0:
        return
    unused = ("latent_prior_width", width) if kind == "mixture" else ("latent_prior_rank", rank)
    if unused[1]:
        raise ValueError(f"{unused[0]}={unused[1]} does not apply to latent_prior_kind={kind!r}: expected 0.")
    if kind == "mixture":
        check_prior_settings(components, rank, cfg.latent_dim, cfg.num_classes)
    else:
        check_autoregressive_settings(components, width, cfg.architecture, cfg.num_classes)


def build_latent_prior(cfg) -> "FittedPrior | AutoregressivePrior | None":
    """The config's fitted prior (unfitted: its ``fit`` or the saved weights fill it), or None for N(0, I)."""
    validate_latent_prior(cfg)
    if not cfg.latent_prior_components:
        return None
    if cfg.latent_prior_kind == "autoregressive":
        resolutions, channels = latent_resolutions(cfg), latent_channels(cfg)
        return AutoregressivePrior(resolutions, channels, cfg.latent_prior_components, cfg.latent_prior_width)
    return FittedPrior(cfg.latent_dim, cfg.latent_prior_components, cfg.latent_prior_rank)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) per row, (N,)."""
    return -0.5 * z.double().pow(2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


class FittedPrior(nn.Module):
    """The density of the module docstring: ``fit`` it to latents, then ``sample`` and ``log_prob``."""

    def __init__(self, latent_dim: int, components: int, rank: int):
        super().__init__()
        self.latent_dim, self.components, self.rank = latent_dim, components, rank
        self.register_buffer("center", torch.zeros(latent_dim))
        self.register_buffer("directions", torch.eye(latent_dim, rank))  # orthonormal columns
        self.register_buffer("log_weights", torch.full((components,), -math.log(components)))
        self.register_buffer("means", torch.zeros(components, rank))
        self.register_buffer("scale_tril", torch.eye(rank).repeat(components, 1, 1))  # Cholesky factors
        self.register_buffer("tail_variances", torch.ones(latent_dim))

    def config_fields(self) -> dict:
        """The VAEConfig fields that rebuild this prior, the others left at their defaults
        (``VAEModel.with_latent_prior``)."""
        return {
            "latent_prior_kind": "mixture",
            "latent_prior_components": self.components,
            "latent_prior_rank": self.rank,
        }

    @torch.no_grad()
    def fit(self, latents: torch.Tensor, generator: torch.Generator, iterations: int = 100, ridge: float = 1e-3):
        """Fit to latents (N, latent_dim): their mean, their `rank` principal directions, the variance of each value
        of what those leave (at least `ridge`), then the mixture along the directions by EM (`iterations`; means
        started at distinct latents drawn with `generator`, each covariance at the subspace's, `ridge` added to each
        covariance's diagonal). Needs more latents than components."""
        n, d = latents.shape
        if d != self.latent_dim or n <= self.components:
            raise ValueError(
                f"latents of shape {tuple(latents.shape)} can't fit this prior: expected (N, {self.latent_dim}) with "
                f"N > {self.components} components."
            )
        x = latents.double()
        center = x.mean(0)
        x = x - center
        eigenvectors = torch.linalg.eigh(x.T @ x / (n - 1)).eigenvectors  # ascending eigenvalues
        directions = eigenvectors[:, -self.rank :].flip(1)
        inside = x @ directions
        tail_variances = (x - inside @ directions.T).pow(2).sum(0).div(n - 1).clamp_min(ridge)
        log_weights, means, scale_tril = fit_mixture(inside, self.components, generator, iterations, ridge)
        for name, value in (
            ("center", center),
            ("directions", directions),
            ("log_weights", log_weights),
            ("means", means),
            ("scale_tril", scale_tril),
            ("tail_variances", tail_variances),
        ):
            getattr(self, name).copy_(value)
        return self

    def sample(self, num: int, generator: torch.Generator | None = None, scale=1.0) -> torch.Tensor:
        """`num` latents (num, latent_dim): a component per latent, then its Gaussian and the tail's, their deviation
        from the component's mean times `scale` (a temperature: a number, or one per latent value). Drawn from
        `generator` on its device in this order: components, subspace noise, tail noise (``randn``)."""
        where = generator.device if generator is not None else torch.device("cpu")
        weights = self.log_weights.float().exp().to(where)
        components = torch.multinomial(weights, num, replacement=True, generator=generator).to(self.center.device)
        to = dict(device=self.center.device, dtype=self.center.dtype)
        noise = randn((num, self.rank), generator, **to)
        tail = randn((num, self.latent_dim), generator, **to) * self.tail_variances.sqrt()
        tail = tail - (tail @ self.directions) @ self.directions.T  # projected onto the complement
        inside = torch.einsum("nij,nj->ni", self.scale_tril[components], noise) @ self.directions.T
        if torch.is_tensor(scale):
            scale = scale.to(inside)
        return self.center + self.means[components] @ self.directions.T + scale * (inside + tail)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log density of latents (N, latent_dim), (N,) in float64: the mixture's along the directions and the
        projected Gaussian's in their complement (the formulas of the module docstring)."""
        x = z.double() - self.center.double()
        directions, variances = self.directions.double(), self.tail_variances.double()
        inside = x @ directions  # (N, r)
        outside = x - inside @ directions.T  # in the complement
        gram = torch.linalg.cholesky(directions.T @ (directions / variances[:, None]))  # of V^T D^-1 V
        projected = torch.linalg.solve_triangular(gram, ((outside / variances) @ directions).T, upper=False)
        quadratic = (outside.pow(2) / variances).sum(1) - projected.pow(2).sum(0)
        log_det = torch.log(variances).sum() + 2 * torch.log(torch.diagonal(gram)).sum()
        free = self.latent_dim - self.rank
        log_tail = -0.5 * (quadratic + log_det + free * math.log(2 * math.pi))
        log_mixture = mixture_log_prob(inside, self.log_weights.double(), self.means.double(), self.scale_tril.double())
        return torch.logsumexp(log_mixture, 0) + log_tail


def mixture_log_prob(x: torch.Tensor, log_weights, means, scale_tril) -> torch.Tensor:
    """log w_k + log N(x; mean_k, L_k L_k^T) of each component and point: (K, N)."""
    diff = (x[None] - means[:, None]).transpose(1, 2)  # (K, r, N)
    solved = torch.linalg.solve_triangular(scale_tril, diff, upper=False)
    log_det = torch.log(torch.diagonal(scale_tril, dim1=1, dim2=2)).sum(1)
    log_norm = -0.5 * solved.pow(2).sum(1) - log_det[:, None] - 0.5 * x.shape[1] * math.log(2 * math.pi)
    return log_weights[:, None] + log_norm


def fit_mixture(x: torch.Tensor, components: int, generator: torch.Generator, iterations: int, ridge: float):
    """A full-covariance Gaussian mixture fitted to x (N, r) by EM -> (log weights (K,), means (K, r), Cholesky
    factors (K, r, r))."""
    n, r = x.shape
    eye = torch.eye(r, dtype=x.dtype, device=x.device)
    means = x[torch.randperm(n, generator=generator)[:components].to(x.device)]
    covariances = (x.T @ x / n + ridge * eye).repeat(components, 1, 1)
    log_weights = torch.full((components,), -math.log(components), dtype=x.dtype, device=x.device)
    for _ in range(iterations):
        scale_tril = torch.linalg.cholesky(covariances)
        log_joint = mixture_log_prob(x, log_weights, means, scale_tril)
        responsibilities = torch.exp(log_joint - torch.logsumexp(log_joint, 0))  # (K, N)
        counts = responsibilities.sum(1) + 1e-10
        log_weights = torch.log(counts / n)
        means = responsibilities @ x / counts[:, None]
        diff = x[None] - means[:, None]  # (K, N, r)
        covariances = (
            torch.einsum("kn,kni,knj->kij", responsibilities, diff, diff) / counts[:, None, None] + ridge * eye
        )
    return log_weights, means, torch.linalg.cholesky(covariances)


# ----------------------------------------------------------------------------------------------------------------------
# An autoregressive prior over a hierarchical VAE's grids of noise
# ----------------------------------------------------------------------------------------------------------------------

# the order in which each grid's four interleaved subgrids (row % 2, column % 2) are drawn
SUBGRIDS = ((0, 0), (1, 1), (0, 1), (1, 0))


@functools.cache
def subgrid_masks(resolution: int) -> torch.Tensor:
    """(4, 1, r, r) float masks, one per subgrid of ``SUBGRIDS`` (a 1 x 1 grid has only the first), built once per
    resolution and shared: never changed in place."""
    rows, columns = torch.arange(resolution)[:, None] % 2, torch.arange(resolution)[None] % 2
    return torch.stack([((rows == a) & (columns == b)).float()[None] for a, b in SUBGRIDS])


class ScalePrior(nn.Module):
    """p(eps at one resolution | the coarser resolutions' eps): four steps, one per subgrid; at each, every position
    of the subgrid is a mixture of K diagonal Gaussians over the resolution's C channels, given the subgrids drawn
    before it (the input, zero elsewhere, and a mask of where it is), the step (one-hot) and the coarser grids
    (upsampled, nearest), through residual 3x3 convolutions of `width` and a learned map of the positions."""

    def __init__(self, channels: int, coarser_channels: int, resolution: int, components: int, width: int):
        super().__init__()
        self.channels, self.components, self.resolution = channels, components, resolution
        self.first = nn.Conv2d(channels + 1 + len(SUBGRIDS) + coarser_channels, width, 3, padding=1)
        self.positions = nn.Parameter(torch.zeros(1, width, resolution, resolution))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Conv2d(width, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1))
            for _ in range(2)
        )  # fmt: skip
        self.last = nn.Sequential(nn.SiLU(), nn.Conv2d(width, components * (1 + 2 * channels), 1))

    def forward(self, eps: torch.Tensor, steps: torch.Tensor, coarser: torch.Tensor | None):
        """The mixture at every position for step `steps` (N,) given `eps` (N, C, r, r) where drawn before it ->
        (log weights (N, K, r, r), means and log-scales (N, K, C, r, r))."""
        n, r, masks = eps.shape[0], eps.shape[-1], subgrid_masks(self.resolution).to(eps)
        seen = masks.cumsum(0)[steps] - masks[steps]  # (N, 1, r, r): the subgrids before each step
        step = nn.functional.one_hot(steps, len(SUBGRIDS)).to(eps)[:, :, None, None].expand(-1, -1, r, r)
        inputs = [eps * seen, seen, step, *([coarser] if coarser is not None else [])]
        h = self.first(torch.cat(inputs, 1)) + self.positions
        for block in self.blocks:
            h = h + block(h)
        out = self.last(h)
        k, c = self.components, self.channels
        log_weights = out[:, :k].log_softmax(1)
        means, log_scales = out[:, k:].reshape(n, 2, k, c, r, r).unbind(1)
        return log_weights, means, log_scales.clamp(-7.0, 3.0)

    def log_prob(self, eps: torch.Tensor, steps: torch.Tensor, coarser) -> torch.Tensor:
        """log density of `eps` at each sample's step's subgrid, (N,)."""
        log_weights, means, log_scales = self(eps, steps, coarser)
        z = (eps[:, None] - means) * torch.exp(-log_scales)
        per_component = (-0.5 * z.pow(2) - log_scales - 0.5 * math.log(2 * math.pi)).sum(2)  # (N, K, r, r)
        per_position = torch.logsumexp(log_weights + per_component, 1)  # (N, r, r)
        return (per_position * subgrid_masks(self.resolution).to(eps)[steps][:, 0]).flatten(1).sum(1)

    @torch.no_grad()
    def sample(self, num: int, coarser, generator, scale, device, dtype) -> torch.Tensor:
        """`num` grids (num, C, r, r), subgrid by subgrid; each value's deviation from its component's mean times
        `scale` (a number, or (C, r, r)). Drawn from `generator` on its device: per step, components, then noise."""
        r = self.resolution
        eps = torch.zeros(num, self.channels, r, r, device=device, dtype=dtype)
        where = generator.device if generator is not None else torch.device("cpu")
        for step, mask in enumerate(subgrid_masks(r).to(eps)):
            if not mask.any():
                continue
            steps = torch.full((num,), step, device=device)
            log_weights, means, log_scales = self(eps, steps, coarser)
            probs = log_weights.permute(0, 2, 3, 1).reshape(-1, self.components).exp().float().to(where)
            chosen = torch.multinomial(probs, 1, generator=generator).to(device).reshape(num, 1, 1, r, r)
            index = chosen.expand(-1, -1, self.channels, -1, -1)
            mean, log_scale = (t.gather(1, index)[:, 0] for t in (means, log_scales))
            noise = randn((num, self.channels, r, r), generator, device=device, dtype=dtype)
            drawn = mean + scale * torch.exp(log_scale) * noise
            eps = eps + mask * drawn
        return eps


class AutoregressivePrior(nn.Module):
    """A density over a hierarchical VAE's latents (its groups' noise) that draws them coarse to fine: the groups of
    one resolution form one grid (their channels stacked), each grid is drawn in four steps of interleaved subgrids
    given the grids before it (``ScalePrior``; Reed et al., ICML 2017, "Parallel Multiscale Autoregressive Density
    Estimation"), so sampling takes four passes per resolution, not one per position. Exact log density (the chain
    rule over grids and subgrids); ``fit`` trains it by maximum likelihood on posterior draws."""

    def __init__(self, resolutions: list[int], channels: int, components: int, width: int):
        super().__init__()
        self.resolutions, self.channels = list(resolutions), channels
        self.components, self.width = components, width
        self.grids = sorted(set(resolutions))
        self.grid_channels = [resolutions.count(r) * channels for r in self.grids]
        coarser = [sum(self.grid_channels[:i]) for i in range(len(self.grids))]
        self.scales = nn.ModuleList(
            ScalePrior(c, before, r, components, width)
            for c, before, r in zip(self.grid_channels, coarser, self.grids, strict=True)
        )

    def config_fields(self) -> dict:
        """The VAEConfig fields that rebuild this prior, the others left at their defaults
        (``VAEModel.with_latent_prior``)."""
        return {"latent_prior_kind": "autoregressive", "latent_prior_components": self.components,
                "latent_prior_width": self.width}  # fmt: skip

    def to_grids(self, z: torch.Tensor) -> list[torch.Tensor]:
        """(N, latent_dim) -> one (N, C_r, r, r) grid per resolution, coarse to fine (its groups' channels stacked)."""
        sizes = [self.channels * r * r for r in self.resolutions]
        groups = [p.reshape(-1, self.channels, r, r) for p, r in zip(z.split(sizes, 1), self.resolutions, strict=True)]
        return [torch.cat([g for g, r in zip(groups, self.resolutions) if r == grid], 1) for grid in self.grids]

    def from_grids(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """The inverse of ``to_grids``."""
        parts = {grid: list(g.split(self.channels, 1)) for grid, g in zip(self.grids, grids, strict=True)}
        return torch.cat([parts[r].pop(0).flatten(1) for r in self.resolutions], 1)

    def coarser(self, grids: list[torch.Tensor], index: int) -> torch.Tensor | None:
        """The grids before `index`, upsampled (nearest) to its resolution and stacked, or None for the first."""
        size = self.grids[index]
        before = [nn.functional.interpolate(g, size=(size, size), mode="nearest") for g in grids[:index]]
        return torch.cat(before, 1) if before else None

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log density of latents (N, latent_dim), (N,) in float64: every grid's every subgrid."""
        grids = self.to_grids(z.float())
        total = torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
        for i, scale in enumerate(self.scales):
            coarser = self.coarser(grids, i)
            for step in range(len(SUBGRIDS)):
                steps = torch.full((z.shape[0],), step, device=z.device)
                total = total + scale.log_prob(grids[i], steps, coarser).double()
        return total

    def sample(self, num: int, generator: torch.Generator | None = None, scale=1.0) -> torch.Tensor:
        """`num` latents (num, latent_dim), coarse to fine; each value's deviation from its component's mean times
        `scale` (a temperature: a number, or one per latent value)."""
        to = dict(device=self.scales[0].positions.device, dtype=self.scales[0].positions.dtype)
        scales = self.to_grids(scale.reshape(1, -1).to(**to)) if torch.is_tensor(scale) else [scale] * len(self.grids)
        grids = []
        for i, prior in enumerate(self.scales):
            per_value = scales[i][0] if torch.is_tensor(scales[i]) else scales[i]
            grids.append(prior.sample(num, self.coarser(grids, i), generator, per_value, **to))
        return self.from_grids(grids)

    def fit(self, latents: torch.Tensor, generator: torch.Generator, steps: int, batch_size: int = 64,
            lr: float = 1e-3, progress: bool = False):  # fmt: skip
        """Train by maximum likelihood on latents (N, latent_dim): Adam at `lr` with a cosine decay over `steps` of
        `batch_size` latents drawn with `generator`, each with one subgrid step per grid drawn too (an unbiased
        estimate of the full density's gradient, at the cost of one pass per grid). Returns self."""
        from tqdm.auto import tqdm

        self.train()
        x = latents.float()
        optimizer = torch.optim.Adam(self.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        bar = tqdm(range(steps), desc="fit autoregressive prior", disable=not progress)
        for _ in bar:
            batch = x[torch.randint(len(x), (batch_size,), generator=generator)]
            grids = self.to_grids(batch)
            loss = 0.0
            for i, scale in enumerate(self.scales):
                drawn = torch.randint(len(SUBGRIDS), (batch_size,), generator=generator)
                loss = loss - len(SUBGRIDS) * scale.log_prob(grids[i], drawn, self.coarser(grids, i)).mean()
            optimizer.zero_grad()
            (loss / x.shape[1]).backward()
            optimizer.step()
            schedule.step()
            bar.set_postfix(nats_per_value=f"{loss.item() / x.shape[1]:.3f}")
        return self.eval()
