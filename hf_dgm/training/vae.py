"""VAE trainer: `hf-dgm train vae ...`, `accelerate launch -m hf_dgm.training.vae ...`, or `train_vae(args)`.

Objective (per image, in nats, averaged over the batch):

* ELBO (default): -log p(x | z) + beta_t * KL(q(z | x) || p(z)), with beta_t = beta * min(1, step / kl_warmup_steps)
  and optional free bits (each latent dimension's batch-mean KL is floored at `free_bits` nats; Kingma et al., 2016).
* IWAE (`--iwae-samples k`, k > 1; Burda et al., 2015): -log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x).

For the Bernoulli likelihood the data are dynamically binarized by default: a fresh Bernoulli draw every time an
image is used, as in the IWAE paper.
"""

import math
import sys
from dataclasses import dataclass

import torch
from torch import nn

from ..modeling_utils import randn
from ..vae.configuration_vae import VAEConfig
from ..vae.modeling_vae import DiagonalGaussianDistribution, VAEModel
from .base import BaseTrainer, TrainingArguments, grad_norm


@dataclass
class VAETrainingArguments(TrainingArguments):
    # model (a new model is built from these unless --init-from names a model folder)
    init_from: str | None = None
    architecture: str = "conv"
    image_size: int = 28
    num_channels: int = 1
    latent_dim: int = 16
    conditional: bool = False
    likelihood: str = "bernoulli"
    gaussian_variance: str = "learned"
    base_channels: int = 32
    hidden_dim: int = 256
    hidden_dims: list[int] | None = None
    activation: str = "leaky_relu"
    # objective and optimisation
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    beta: float = 1.0
    kl_warmup_steps: int = 0
    free_bits: float = 0.0
    iwae_samples: int = 1
    binarize: str = "auto"  # auto (dynamic for bernoulli), dynamic, none

    def validate(self):
        super().validate()
        if self.beta < 0 or self.free_bits < 0 or self.kl_warmup_steps < 0 or self.lr < 0:
            raise ValueError("--beta, --free-bits, --kl-warmup-steps and --lr must be >= 0.")
        if self.iwae_samples < 1:
            raise ValueError(f"--iwae-samples {self.iwae_samples!r} is invalid: expected a positive int.")
        if self.iwae_samples > 1 and (self.beta != 1.0 or self.free_bits or self.kl_warmup_steps):
            raise ValueError(
                "--iwae-samples > 1 optimises the IWAE bound: it does not combine with --beta, "
                "--free-bits or --kl-warmup-steps."
            )
        if self.binarize not in ("auto", "dynamic", "none"):
            raise ValueError(f"--binarize {self.binarize!r} is invalid: expected auto, dynamic or none.")
        if self.binarize == "dynamic" and self.likelihood != "bernoulli":
            raise ValueError("--binarize dynamic is meant for the Bernoulli likelihood.")
        if self.init_from is None:
            self.model_config(10 if self.conditional else None)  # fail on bad model flags before decoding any data

    def model_config(self, num_classes):
        kwargs = dict(
            architecture=self.architecture,
            image_size=self.image_size,
            num_channels=self.num_channels,
            latent_dim=self.latent_dim,
            num_classes=num_classes,
            likelihood=self.likelihood,
            gaussian_variance=self.gaussian_variance,
            base_channels=self.base_channels,
            hidden_dim=self.hidden_dim,
            activation=self.activation,
        )
        if self.hidden_dims:
            kwargs["hidden_dims"] = self.hidden_dims
        return VAEConfig(**kwargs)


class VAEObjective(nn.Module):
    """The training loss as one module, so accelerate/DDP can wrap it (gradients are synchronised in forward)."""

    def __init__(self, vae: VAEModel):
        super().__init__()
        self.vae = vae

    def forward(self, x, labels, generator, beta: float, free_bits: float, iwae_samples: int):
        vae = self.vae
        mean, logvar = vae.encoder(x, labels)  # (B, z)
        posterior = DiagonalGaussianDistribution(mean, logvar)
        if iwae_samples == 1:
            z = posterior.sample(generator)
            logits = vae.decoder(z, labels)
            rec = vae.reconstruction_nll(logits, x).mean()
            kl_per_dim = 0.5 * (posterior.mean.pow(2) + posterior.logvar.exp() - 1.0 - posterior.logvar).mean(0)
            kl = kl_per_dim.sum()
            kl_term = kl_per_dim.clamp(min=free_bits).sum() if free_bits else kl
            return {"loss": rec + beta * kl_term, "reconstruction_loss": rec, "kl_loss": kl, "elbo": -(rec + kl)}
        k, b = iwae_samples, x.shape[0]
        eps = randn((k, *mean.shape), generator=generator, device=mean.device).to(mean.dtype)
        z = posterior.mean + posterior.std * eps  # (k, B, z)
        y = labels.repeat(k) if labels is not None else None
        logits = vae.decoder(z.reshape(k * b, -1), y)
        log_px = -vae.reconstruction_nll(logits, x.repeat(k, 1, 1, 1)).view(k, b)
        log_pz = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_w = log_px + log_pz - posterior.log_prob(z)  # (k, B)
        bound = torch.logsumexp(log_w, 0) - math.log(k)
        return {"loss": -bound.mean(), "reconstruction_loss": -log_px.mean(), "iwae_bound": bound.mean()}


class VAETrainer(BaseTrainer):
    config_class = VAEConfig
    pixel_range = (0.0, 1.0)
    model_kind = "vae"
    postfix_keys = ("loss", "reconstruction_loss", "kl_loss")

    def build_model(self):
        if self.args.init_from:
            return VAEModel.from_pretrained(self.args.init_from)
        num_classes = self.num_classes_in_data() if self.args.conditional else None
        return VAEModel(self.args.model_config(num_classes))

    def setup_optimizers(self):
        a = self.args
        binarize = (
            a.binarize
            if a.binarize != "auto"
            else ("dynamic" if self.model.config.likelihood == "bernoulli" else "none")
        )
        self.dynamic_binarization = binarize == "dynamic"
        opt = torch.optim.Adam(self.model.parameters(), lr=a.lr, betas=(a.beta1, a.beta2), weight_decay=a.weight_decay)
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
        if log:
            out["grad_norm"] = grad_norm(self.model)
            out["beta"] = beta
        self.opt.step()
        return {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in out.items()}

    def sample_grid_images(self):
        z, labels = self.fixed
        return self.model.generate(latents=z.to(self.device), class_labels=labels).sample.float()


def train_vae(args: VAETrainingArguments, model: VAEModel | None = None) -> VAEModel:
    """Train a VAE (from scratch, `--init-from`, a given `model`, or `--resume-from`) and return it."""
    return VAETrainer(args, model=model).train()


def main(argv=None):
    from .cli import main as cli_main

    return cli_main("vae", VAETrainingArguments, train_vae, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
