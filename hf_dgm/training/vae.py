"""VAE trainer: `hf-dgm train vae ...`, `accelerate launch -m hf_dgm.training.vae ...`, or `train_vae(args)`.

Objective (per image, in nats, averaged over the batch):

* ELBO (default): -log p(x | z) + beta_t * KL(q(z | x) || p(z)), with beta_t = beta * min(1, step / kl_warmup_steps)
  and optional free bits (each latent dimension's batch-mean KL is floored at `free_bits` nats; Kingma et al., 2016;
  for the hierarchical architecture each latent group's, whose KLs are logged in bits as `kl_bits_group_<g>`).
  Optionally the gradients are clipped (`--grad-clip`) and updates with a larger norm skipped (`--skip-grad-norm`).
* IWAE (`--iwae-samples k`, k > 1; Burda et al., 2015): -log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x).

For the Bernoulli likelihood the data are dynamically binarized by default: a fresh Bernoulli draw every time an
image is used, as in the IWAE paper.
"""

import logging
import math
import sys
from dataclasses import dataclass

import torch
from torch import nn

from ..modeling_utils import randn
from ..vae.configuration_vae import VAEConfig
from ..vae.latent_prior import LATENT_PRIOR_FIELDS
from ..vae.modeling_vae import DiagonalGaussianDistribution, VAEModel
from ..vae.networks_vae import LIKELIHOODS, bits_per_dim, prior_latents
from .arguments import TrainingArguments, arg, with_model_fields
from .base import BaseTrainer, grad_norm

logger = logging.getLogger(__name__)


@dataclass
# a fitted prior is not trained: `hf-dgm fit-prior` adds it to a trained model
@with_model_fields(VAEConfig, exclude=("num_classes", "format_version", *LATENT_PRIOR_FIELDS))
class VAETrainingArguments(TrainingArguments):
    """`hf-dgm train vae` (the model flags are VAEConfig's fields: see `with_model_fields`)."""

    lr: float = arg(1e-3, "Adam learning rate", "objective")
    beta1: float = arg(0.9, "Adam beta1", "objective")
    beta2: float = arg(0.999, "Adam beta2", "objective")
    weight_decay: float = arg(0.0, "Adam weight decay", "objective")
    beta: float = arg(1.0, "weight of the KL term (beta-VAE; 1 is the ELBO)", "objective")
    kl_warmup_steps: int = arg(0, "steps over which the KL weight rises linearly from 0 to --beta", "objective")
    free_bits: float = arg(
        0.0,
        "floor, in nats, of each latent dimension's batch-mean KL (Kingma et al., 2016); hierarchical: of each latent "
        "group's",
        "objective",
    )
    iwae_samples: int = arg(1, "importance samples k: k > 1 trains on the IWAE bound (Burda et al.)", "objective")
    grad_clip: float = arg(0.0, "clip the gradients' global norm to this value (0: no clipping)", "objective")
    skip_grad_norm: float = arg(
        0.0, "skip an update whose gradient norm (before clipping) exceeds this (0: never; VDVAE)", "objective"
    )
    pixel_context_only: bool = arg(
        False,
        "with --init-from and --pixel-context: train the pixel context only, every other weight of the --init-from "
        "model frozen, so its latent keeps what it carries (and a fitted prior, which stays valid, is kept)",
        "objective",
    )
    binarize: str = arg(
        "auto",
        "binarize images: auto (dynamically for a likelihood of binary images: "
        f"{', '.join(name for name, entry in LIKELIHOODS.items() if entry.binary)}), dynamic, none",
        "objective",
        ("auto", "dynamic", "none"),
    )

    def validate(self):
        super().validate()
        if min(self.beta, self.free_bits, self.kl_warmup_steps, self.lr, self.grad_clip, self.skip_grad_norm) < 0:
            raise ValueError(
                "--beta, --free-bits, --kl-warmup-steps, --lr, --grad-clip and --skip-grad-norm must be >= 0."
            )
        if self.iwae_samples < 1:
            raise ValueError(f"--iwae-samples {self.iwae_samples!r} is invalid: expected a positive int.")
        if self.iwae_samples > 1 and (self.beta != 1.0 or self.free_bits or self.kl_warmup_steps):
            raise ValueError(
                "--iwae-samples > 1 optimises the IWAE bound: it does not combine with --beta, "
                "--free-bits or --kl-warmup-steps."
            )
        if self.pixel_context_only and not (self.init_from and self.pixel_context):
            raise ValueError(
                "--pixel-context-only trains a pixel context on a trained VAE: it needs --init-from and --pixel-context."
            )
        if self.binarize == "dynamic" and not LIKELIHOODS[self.likelihood].binary:
            binary = " or ".join(name for name, entry in LIKELIHOODS.items() if entry.binary)
            raise ValueError(f"--binarize dynamic is meant for a likelihood of binary images ({binary}).")
        if self.init_from is None:
            self.model_config(10 if self.conditional else None)  # fail on bad model flags before decoding any data

    def model_config(self, num_classes: int | None) -> VAEConfig:
        return VAEConfig(**{name: getattr(self, name) for name in self.model_fields}, num_classes=num_classes)


class VAEObjective(nn.Module):
    """The training loss as one module, so accelerate/DDP can wrap it (gradients are synchronised in forward)."""

    def __init__(self, vae: VAEModel):
        super().__init__()
        self.vae = vae

    def forward(self, x, labels, generator, beta: float, free_bits: float, iwae_samples: int):
        vae = self.vae
        if vae.is_hierarchical:
            return self.hierarchical(x, labels, generator, beta, free_bits, iwae_samples)
        mean, logvar = vae.encoder(x, labels)  # (B, z)
        posterior = DiagonalGaussianDistribution(mean, logvar)
        if iwae_samples == 1:
            z = posterior.sample(generator)
            logits = vae.likelihood_output(z, labels, x)
            rec = vae.reconstruction_nll(logits, x).mean()
            kl_per_dim = 0.5 * (posterior.mean.pow(2) + posterior.logvar.exp() - 1.0 - posterior.logvar).mean(0)
            kl = kl_per_dim.sum()
            kl_term = kl_per_dim.clamp(min=free_bits).sum() if free_bits else kl
            out = {"loss": rec + beta * kl_term, "reconstruction_loss": rec, "kl_loss": kl, "elbo": -(rec + kl)}
            if LIKELIHOODS[vae.config.likelihood].eight_bit:  # exact for 8-bit data: the bound in bits/dim
                out["bits_per_dim"] = bits_per_dim(rec + kl, vae.config)
            return out
        k, b = iwae_samples, x.shape[0]
        eps = randn((k, *mean.shape), generator=generator, device=mean.device).to(mean.dtype)
        z = posterior.mean + posterior.std * eps  # (k, B, z)
        y = labels.repeat(k) if labels is not None else None
        x_k = x.repeat(k, 1, 1, 1)
        log_px = -vae.reconstruction_nll(vae.likelihood_output(z.reshape(k * b, -1), y, x_k), x_k).view(k, b)
        log_pz = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_w = log_px + log_pz - posterior.log_prob(z)  # (k, B)
        bound = torch.logsumexp(log_w, 0) - math.log(k)
        return {"loss": -bound.mean(), "reconstruction_loss": -log_px.mean(), "iwae_bound": bound.mean()}

    def hierarchical(self, x, labels, generator, beta: float, free_bits: float, iwae_samples: int):
        """The hierarchical VAE's objective: free bits floor each latent group's batch-mean KL (nats)."""
        vae = self.vae
        if iwae_samples > 1:
            log_w = vae.log_importance_weights(x, iwae_samples, generator, labels)
            bound = torch.logsumexp(log_w, 0) - math.log(iwae_samples)
            return {"loss": -bound.mean(), "iwae_bound": bound.mean()}
        noise = randn((x.shape[0], vae.config.latent_dim), generator=generator, device=x.device).to(x.dtype)
        logits, result = vae.posterior_pass(x, labels, noise)
        rec = vae.reconstruction_nll(logits, x).mean()
        kl_groups = result.kl.mean(0)  # (groups,) nats
        kl = kl_groups.sum()
        kl_term = kl_groups.clamp(min=free_bits).sum() if free_bits else kl
        out = {"loss": rec + beta * kl_term, "reconstruction_loss": rec, "kl_loss": kl, "elbo": -(rec + kl)}
        out |= {f"kl_bits_group_{g}": value / math.log(2) for g, value in enumerate(kl_groups.detach())}
        if LIKELIHOODS[vae.config.likelihood].eight_bit:
            out["bits_per_dim"] = bits_per_dim(rec + kl, vae.config)
        return out


class VAETrainer(BaseTrainer):
    config_class = VAEConfig
    pixel_range = (0.0, 1.0)
    model_kind = "vae"
    arguments_class = VAETrainingArguments
    postfix_keys = ("loss", "reconstruction_loss", "kl_loss")

    def build_model(self):
        a = self.args
        if a.init_from:
            model = VAEModel.from_pretrained(a.init_from)
            if model.latent_prior is not None and not a.pixel_context_only:  # the latents will move: refit it after
                logger.warning("--init-from %s: its fitted prior is dropped (hf-dgm fit-prior fits one).", a.init_from)
                model = model.with_latent_prior(None)
            if a.pixel_context and not model.config.pixel_context:  # the one model flag --init-from takes
                model = model.with_pixel_context(a.pixel_context, a.pixel_context_channels)
            if a.pixel_context_only:
                for name, weight in model.named_parameters():
                    weight.requires_grad_(name.startswith("decoder.pixel_context."))
            return model
        num_classes = self.data.num_classes() if a.conditional else None
        return VAEModel(a.model_config(num_classes))

    def setup_optimizers(self):
        a = self.args
        binarize = (
            a.binarize
            if a.binarize != "auto"
            else ("dynamic" if LIKELIHOODS[self.model.config.likelihood].binary else "none")
        )
        self.dynamic_binarization = binarize == "dynamic"
        trained = [weight for weight in self.model.parameters() if weight.requires_grad]
        opt = torch.optim.Adam(trained, lr=a.lr, betas=(a.beta1, a.beta2), weight_decay=a.weight_decay)
        self.objective, self.opt = self.accelerator.prepare(VAEObjective(self.model), opt)
        if a.compile:
            self.objective = torch.compile(self.objective)
        self.optimizers = {"vae": self.opt}

    def training_step(self, log: bool) -> dict:
        a = self.args
        x, labels = self.next_batch()  # (B, C, H, W) in [0, 1]
        if self.dynamic_binarization:
            x = torch.bernoulli(x, generator=self.noise)
        beta = a.beta * min(1.0, self.step / a.kl_warmup_steps) if a.kl_warmup_steps else a.beta
        self.opt.zero_grad(set_to_none=True)
        with self.accelerator.autocast():
            out = self.objective(x, labels, self.noise, beta, a.free_bits, a.iwae_samples)
        terms = {k: out[k] for k in ("reconstruction_loss", "kl_loss", "iwae_bound") if k in out}
        if not self.check_finite(terms, "vae"):
            return {}
        self.accelerator.backward(out["loss"])
        norm = self.clip_or_skip() if a.grad_clip or a.skip_grad_norm else None
        if norm is not None and not torch.isfinite(norm):
            return {}
        if log:
            out["grad_norm"] = norm if norm is not None else grad_norm(self.model)  # before clipping
            out["beta"] = beta
        self.opt.step()
        return {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in out.items()}

    def clip_or_skip(self) -> torch.Tensor:
        """The gradients' norm before clipping them (--grad-clip); NaN, counting a skipped step, where it exceeds
        --skip-grad-norm or is not finite (the update is then not taken)."""
        a = self.args
        norm = self.accelerator.clip_grad_norm_(self.model.parameters(), a.grad_clip or math.inf)
        if torch.isfinite(norm) and not (a.skip_grad_norm and norm > a.skip_grad_norm):
            return norm
        self.num_skipped += 1
        logger.warning("step %d: gradient norm %.4g; skipping the update", self.step + 1, float(norm))
        return torch.full_like(norm, math.nan)

    def grid_latents(self, generator: torch.Generator) -> torch.Tensor:
        """The base's, or from the model's fitted prior where it keeps one (--pixel-context-only)."""
        if self.model.latent_prior is None:
            return super().grid_latents(generator)
        return prior_latents(self.model.config, self.model.decoder, self.args.num_grid_images, generator)

    def sample_grid_images(self):
        """The grid's images; drawn pixel by pixel (a pixel context), with a bar of the rows on --progress-bar."""
        from ..sampling import decoding_progress

        z, labels = self.fixed
        with decoding_progress(self.model.config, enabled=self.is_main and self.args.progress_bar) as rows_done:
            images = self.model.generate(latents=z.to(self.device), class_labels=labels, progress=rows_done).sample
        return images.float()


def train_vae(args: VAETrainingArguments, model: VAEModel | None = None) -> VAEModel:
    """Train a VAE (from scratch, `--init-from`, a given `model`, or `--resume-from`) and return it."""
    return VAETrainer(args, model=model).train()


if __name__ == "__main__":
    sys.exit(VAETrainer.main())
