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

import math

import torch
from torch import nn

from ..modeling_utils import check_positive_int, randn


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


def validate_latent_prior(cfg) -> None:
    """`latent_prior_components` and `latent_prior_rank` both 0 (N(0, I)), or a fitted prior's settings
    (``check_prior_settings``)."""
    if cfg.latent_prior_components == 0 and cfg.latent_prior_rank == 0:
        return
    check_prior_settings(cfg.latent_prior_components, cfg.latent_prior_rank, cfg.latent_dim, cfg.num_classes)


def build_latent_prior(cfg) -> "FittedPrior | None":
    """The config's fitted prior (unfitted: ``FittedPrior.fit`` or the saved buffers fill it), or None for N(0, I)."""
    validate_latent_prior(cfg)
    if not cfg.latent_prior_components:
        return None
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
