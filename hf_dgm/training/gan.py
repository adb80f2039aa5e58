"""GAN trainer: `hf-dgm train gan ...`, `accelerate launch -m hf_dgm.training.gan ...`, or `train_gan(args)`.

One iteration: [extra D steps on fresh batches] -> D step on (real, G(z).detach()) [+ the reconstruction of the
real images from D's features: FastGAN's self-supervised D] -> G step through D(G(z)) -> EMA update of G. With
--diffaugment, D sees both real and fake images through the same random, differentiable augmentations (augment.py).
See `losses.py` for the losses and the "Improved Techniques" options.
"""

import logging
import sys
import time
from dataclasses import dataclass

import torch

from ..gan.configuration_gan import GANConfig
from ..gan.modeling_gan import GANModel, check_growable
from ..gan.networks_gan import (
    ARCHITECTURES,
    DISCRIMINATORS,
    PROJECTED_EXTRA_HINT,
    PROJECTED_MODULES,
    network_labels,
    recipe_default,
)
from .arguments import TrainingArguments, arg, with_model_fields
from .augment import diff_augment, parse_policy
from .base import BaseTrainer
from .base import grad_norm as _grad_norm
from .clustering import CLUSTERING_SIZE, cluster_images, cluster_within_classes
from .losses import (
    GAN_LOSSES,
    HistoricalAverage,
    discriminator_loss,
    ema_update,
    feature_matching_loss,
    generator_loss,
    mode_seeking_loss,
    r1_penalty,
    reconstruction_loss,
)


def check_projected_extra() -> None:
    """Before any data is decoded: the projected D's feature network must be importable (the ``projected`` extra)."""
    import importlib.util

    missing = [m for m in PROJECTED_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"--discriminator projected needs {', '.join(missing)}: {PROJECTED_EXTRA_HINT}")


@dataclass
@with_model_fields(
    GANConfig, exclude=("num_classes", "cluster_frequencies", "cluster_classes", "use_ema", "format_version")
)
class GANTrainingArguments(TrainingArguments):
    """`hf-dgm train gan` (the model flags are GANConfig's fields: see `with_model_fields`)."""

    loss: str | None = arg(
        None,
        "adversarial loss (see hf_dgm/training/losses.py); none: the architecture's ("
        + ", ".join(f"{name}: {entry.loss}" for name, entry in ARCHITECTURES.items())
        + "), or the discriminator's where it is not the architecture's ("
        + ", ".join(f"{name}: {entry.loss}" for name, entry in DISCRIMINATORS.items() if entry)
        + ")",
        "objective",
        GAN_LOSSES,
    )
    grow_from: str | None = arg(
        None,
        "start from a trained DCGAN at a lower resolution: its coarse layers are copied into the model of these flags, "
        "the new resolutions' layers start fresh (progressive growing; --fade-in-steps blends them in)",
        "model",
    )
    lr_g: float = arg(2e-4, "generator learning rate", "objective")
    lr_d: float = arg(2e-4, "discriminator learning rate", "objective")
    beta1_g: float = arg(0.5, "generator Adam beta1", "objective")
    beta2_g: float = arg(0.999, "generator Adam beta2", "objective")
    beta1_d: float = arg(0.5, "discriminator Adam beta1", "objective")
    beta2_d: float = arg(0.999, "discriminator Adam beta2", "objective")
    d_steps: int = arg(1, "discriminator steps per generator step", "objective")
    ema_decay: float = arg(0.999, "decay of the EMA generator that samples are drawn from (0 disables it)", "objective")
    r1_gamma: float = arg(0.0, "R1 penalty weight on real images (Mescheder et al., 2018); 0 disables it", "objective")
    label_smoothing: float = arg(0.0, "one-sided label smoothing of D's real targets (log losses only)", "objective")
    feature_matching: float = arg(
        0.0, "weight of the feature-matching loss added to G's (Salimans et al.)", "objective"
    )
    historical_averaging: float = arg(0.0, "weight of historical parameter averaging (Salimans et al.)", "objective")
    mode_seeking: float = arg(
        0.0,
        "weight of the mode-seeking loss (MSGAN, Mao et al., 2019) added to G's: each fake batch is drawn in pairs "
        "under the same labels (class and cluster), and G is pushed to make a pair's images differ as much as their "
        "latents; against collapse within a class or a cluster. 0: off",
        "objective",
    )
    self_condition: int = arg(
        0,
        "self-conditioning (Liu et al., 2020) with K clusters: the training images are grouped by k-means on their "
        "pixels and both networks are conditioned on the cluster; the model stays unconditional (a sample's cluster "
        "is read from its latent). With --conditional, K clusters in all within the classes (each class at least "
        "one): users ask for a class, the latent picks its cluster. 0: off (see hf_dgm/training/clustering.py)",
        "model",
    )
    diffaugment: str = arg(
        "", "DiffAugment before D on real and fake images: a comma-separated subset of color,translation,cutout; "
        "empty: off (see hf_dgm/training/augment.py)", "objective",
    )  # fmt: skip

    def validate(self):
        if self.loss is None:  # recorded resolved in training_args.json
            self.loss = recipe_default(self.architecture, self.discriminator, "loss")
        super().validate()
        if self.discriminator == "projected":
            check_projected_extra()
        parse_policy(self.diffaugment)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema-decay {self.ema_decay!r} is invalid: expected 0 <= decay < 1 (0 disables EMA).")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"--label-smoothing {self.label_smoothing!r} is invalid: expected 0 <= s < 0.5.")
        if self.label_smoothing and not GAN_LOSSES[self.loss].label_smoothing:
            raise ValueError("--label-smoothing applies to the minimax and non_saturating losses only.")
        if self.d_steps < 1:
            raise ValueError(f"--d-steps {self.d_steps!r} is invalid: expected a positive int.")
        k = self.self_condition
        if isinstance(k, bool) or not isinstance(k, int) or k < 0 or k == 1:
            raise ValueError(
                f"--self-condition {self.self_condition!r} is invalid: expected a number of clusters K >= 2 (0: off)."
            )
        if self.self_condition and (self.init_from or self.grow_from):
            raise ValueError(
                "--self-condition with --init-from or --grow-from: the model keeps the conditioning of the one it "
                "starts from (a self-conditioned model finds its clusters again): leave --self-condition out."
            )
        if self.self_condition and self.streaming:
            raise ValueError(
                "--self-condition clusters the decoded split in memory: it cannot be used with --streaming."
            )
        for name in ("r1_gamma", "feature_matching", "historical_averaging", "mode_seeking", "lr_g", "lr_d"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)!r} is invalid: expected >= 0.")
        if self.mode_seeking and self.batch_size < 2:
            raise ValueError(
                f"--mode-seeking compares the images of pairs: --batch-size {self.batch_size} is too small, expected 2 "
                "or more."
            )
        if self.r1_gamma and self.compile:
            raise ValueError("--r1-gamma needs double backward, which torch.compile does not support: drop --compile.")
        if self.mixed_precision == "fp16" and (self.r1_gamma or self.historical_averaging):
            raise ValueError(
                "--r1-gamma and --historical-averaging are not supported with fp16 loss scaling: use bf16."
            )
        if self.init_from is None:  # fail on bad model flags before decoding any data; record the resolved defaults
            self.spectral_norm = self.model_config(10 if self.conditional else None).spectral_norm
        if self.grow_from is not None and self.init_from is not None:
            raise ValueError("--grow-from and --init-from both give the starting weights: pass one of them.")
        if self.grow_from is not None and not self.resume_from:  # a resumed run loads every weight from its checkpoint
            self.check_grow_from()
        if self.fade_in_steps and self.grow_from is None:
            raise ValueError(
                f"--fade-in-steps {self.fade_in_steps} fades in the layers a grown model adds: it needs --grow-from."
            )

    def check_grow_from(self):
        """--grow-from's model against the model of these flags, before any data is decoded."""
        try:
            smaller = GANConfig.from_pretrained(self.grow_from)
        except (OSError, ValueError) as err:
            raise ValueError(
                f"--grow-from {self.grow_from!r}: cannot read its config.json ({str(err).splitlines()[0]}); expected "
                "a trained GAN's model folder or Hub repo id."
            ) from None
        if self.conditional and not smaller.num_classes:
            raise ValueError(
                f"--grow-from {self.grow_from!r} is unconditional: drop --conditional or grow another model."
            )
        if smaller.cluster_frequencies and smaller.image_size < CLUSTERING_SIZE:
            raise ValueError(
                f"--grow-from {self.grow_from!r} is self-conditioned at {smaller.image_size} px: a larger model finds "
                f"its clusters again only from a model of {CLUSTERING_SIZE} px or more (clusters are found on the "
                f"images at {CLUSTERING_SIZE} px, or at the model's size below it)."
            )
        clusters = {"cluster_frequencies": smaller.cluster_frequencies, "cluster_classes": smaller.cluster_classes}
        check_growable(self.model_config(smaller.num_classes if self.conditional else None, clusters), smaller)

    def model_config(self, num_classes: int | None, clusters: dict | None = None) -> GANConfig:
        """The model of these flags; `clusters`: a self-conditioned model's cluster_frequencies (and
        cluster_classes)."""
        model_flags = {name: getattr(self, name) for name in self.model_fields}
        return GANConfig(**model_flags, num_classes=num_classes, **(clusters or {}), use_ema=self.ema_decay > 0)


class GANTrainer(BaseTrainer):
    config_class = GANConfig
    pixel_range = (-1.0, 1.0)
    model_kind = "gan"
    arguments_class = GANTrainingArguments
    postfix_keys = ("d_loss", "g_loss", "d_real", "d_fake")
    clusters_found = False  # self-conditioning: the batches' labels are the images' clusters
    cluster_classes = None  # ... and, for a conditional model, each cluster's class (a tensor on the device)

    def build_model(self):
        if self.args.init_from:
            model = GANModel.from_pretrained(self.args.init_from)
            if (self.args.ema_decay > 0) != (model.generator_ema is not None):
                raise ValueError(
                    f"--init-from {self.args.init_from!r} {'has no' if model.generator_ema is None else 'has an'} EMA "
                    f"generator but --ema-decay is {self.args.ema_decay}: pass --ema-decay "
                    f"{'0' if model.generator_ema is None else '0.999 (or another decay > 0)'}."
                )
            if model.config.discriminator == "projected":
                check_projected_extra()
            return model
        num_classes = self.data.num_classes() if self.args.conditional else None
        clusters = None
        if self.args.self_condition:
            clusters = self.cluster_the_images(self.args.self_condition, num_classes)
        elif self.args.grow_from:  # a grown model keeps the clusters of the one it grows from
            smaller = GANConfig.from_pretrained(self.args.grow_from)
            if smaller.cluster_frequencies:
                clusters = self.find_the_clusters_again(smaller)
        model = GANModel(self.args.model_config(num_classes, clusters))
        if self.args.grow_from and not self.args.resume_from:  # a resumed run loads every weight from its checkpoint
            copied = model.grow_from(GANModel.from_pretrained(self.args.grow_from))
            logging.getLogger("hf_dgm.training").info(
                "grew the model from %s: %d tensors copied", self.args.grow_from, copied
            )
        return model

    def cluster_the_images(self, k: int, num_classes: int | None) -> dict:
        """Self-conditioning: group the training images into `k` clusters (clustering.py; within the `num_classes`
        classes of their labels for a conditional model), make each image's cluster its label in the batches, and
        return the config fields of the clusters."""
        if self.data.stream is not None:
            raise ValueError(
                "A self-conditioned GAN clusters the decoded split in memory: it cannot train on a streamed one "
                "(raise --max-memory-gb, or pass --max-samples)."
            )
        start = time.perf_counter()
        images = self.data.images_at(min(CLUSTERING_SIZE, self.data.images.shape[-1]))
        if num_classes:
            clusters, frequencies, owners = cluster_within_classes(images, self.data.labels, num_classes, k)
            self.cluster_classes = torch.tensor(owners, device=self.device)
            fields = {"cluster_frequencies": frequencies, "cluster_classes": owners}
        else:
            clusters, frequencies = cluster_images(images, k)
            fields = {"cluster_frequencies": frequencies}
        self.data.labels = clusters.to(self.device)
        self.clusters_found = True
        sizes = torch.bincount(clusters)
        logging.getLogger("hf_dgm.training").info(
            "self-conditioning: %d clusters of %d images (k-means on the pixels, %.0f s), %d to %d images each",
            len(frequencies), len(clusters), time.perf_counter() - start, sizes.min(), sizes.max(),
        )  # fmt: skip
        return fields

    def find_the_clusters_again(self, cfg: GANConfig) -> dict:
        """The clusters of a self-conditioned model's first run (a model given to the trainer, --init-from's or
        --grow-from's): cluster the images as that run did, and refuse a dataset whose clusters differ."""
        found = self.cluster_the_images(len(cfg.cluster_frequencies), cfg.num_classes)
        frequencies = found["cluster_frequencies"]
        if (
            len(frequencies) != len(cfg.cluster_frequencies)
            or max(abs(f - g) for f, g in zip(frequencies, cfg.cluster_frequencies)) > 1e-9
            or found.get("cluster_classes") != cfg.cluster_classes
        ):
            raise ValueError(
                "This self-conditioned GAN was trained on other images: its clusters' frequencies differ from those "
                "found in this dataset; train it on the dataset it was trained on."
            )
        return {"cluster_frequencies": cfg.cluster_frequencies, "cluster_classes": cfg.cluster_classes}

    def setup_optimizers(self):
        a = self.args
        if self.model.config.cluster_frequencies and not self.clusters_found:  # the first hook with the model in place
            self.find_the_clusters_again(self.model.config)
        self.augment_policy = parse_policy(a.diffaugment)
        opt_g = torch.optim.Adam(self.model.generator.parameters(), lr=a.lr_g, betas=(a.beta1_g, a.beta2_g))
        decoder = self.model.discriminator_decoder
        d_params = [*self.model.discriminator.parameters(), *(decoder.parameters() if decoder is not None else ())]
        opt_d = torch.optim.Adam(d_params, lr=a.lr_d, betas=(a.beta1_d, a.beta2_d))
        self.G, self.D, self.opt_g, self.opt_d = self.accelerator.prepare(
            self.model.generator, self.model.discriminator, opt_g, opt_d
        )
        # used in D's steps only, so it is wrapped on its own (under DDP, D's parameters are the same in every pass)
        self.D_decoder = self.accelerator.prepare(decoder) if decoder is not None else None
        if a.compile:
            self.G, self.D = torch.compile(self.G), torch.compile(self.D)
        self.optimizers = {"g": self.opt_g, "d": self.opt_d}
        self.hist = None
        if a.historical_averaging:
            self.hist = {
                "g": HistoricalAverage(self.model.generator.parameters(), a.historical_averaging),
                "d": HistoricalAverage(self.model.discriminator.parameters(), a.historical_averaging),
            }

    def extra_state_tensors(self):
        if not self.hist:
            return {}
        return {**self.hist["g"].state_tensors("hist.g"), **self.hist["d"].state_tensors("hist.d")}

    def load_extra_state_tensors(self, tensors):
        if self.hist:
            self.hist["g"].load_state_tensors(tensors, "hist.g")
            self.hist["d"].load_state_tensors(tensors, "hist.d")

    def latents(self, n):
        return torch.randn(n, self.model.config.latent_dim, generator=self.noise, device=self.device)

    def augment(self, images):
        """DiffAugment before D (real and fake alike); the identity, drawing nothing, without --diffaugment."""
        return diff_augment(images, self.augment_policy, self.noise) if self.augment_policy else images

    def fakes(self, n: int, labels):
        """G's images for a batch of `n`, the labels D judges them under: the real batch's `labels` (a conditional
        model's classes), or a self-conditioned model's clusters of their latents (within the real batch's classes for
        a conditional one), and their latents. With --mode-seeking the second half of the batch repeats the first
        half's labels (and clusters: a latent's first coordinate picks its cluster) under new latents."""
        z = self.latents(n)
        cfg = self.model.config
        if cfg.cluster_frequencies:  # the real batch's labels are clusters
            labels = self.cluster_classes[labels] if cfg.num_classes else None
        if self.args.mode_seeking:
            half = n // 2
            if labels is not None:
                labels = torch.cat([labels[:half], labels[:half], labels[2 * half :]])
            if cfg.cluster_frequencies:
                z[half : 2 * half, 0] = z[:half, 0]
        fake_labels = network_labels(cfg, z, labels)
        return self.G(z, fake_labels), fake_labels, z

    def discriminator_step(self, real, labels, fake, fake_labels, log):
        a = self.args
        self.opt_d.zero_grad(set_to_none=True)
        if a.r1_gamma:
            real.requires_grad_(True)
        with self.accelerator.autocast():
            augmented_real = self.augment(real)
            logits_real, features_real = self.D(augmented_real, labels)
            logits_fake, _ = self.D(self.augment(fake.detach()), fake_labels)
            d_loss = discriminator_loss(a.loss, logits_real, logits_fake, a.label_smoothing)
            losses = {"d_loss": d_loss}
            if self.D_decoder is not None:
                reconstruction = reconstruction_loss(self.D_decoder(features_real), augmented_real)
                losses["reconstruction"] = reconstruction
                d_loss = d_loss + reconstruction
            if a.r1_gamma:
                r1 = r1_penalty(logits_real, real)
                losses["r1"] = r1
                d_loss = d_loss + 0.5 * a.r1_gamma * r1
        if not self.check_finite(losses, "discriminator"):
            return None, features_real
        self.accelerator.backward(d_loss)
        out = {**losses}
        if self.hist:
            out["hist_d"] = self.hist["d"].add_penalty_grad()
        if log:
            out["grad_norm_d"] = _grad_norm(self.model.discriminator)
            out["d_real"] = torch.sigmoid(logits_real.detach()).mean()  # D(x)
            out["d_fake"] = torch.sigmoid(logits_fake.detach()).mean()  # D(G(z))
        self.opt_d.step()
        if self.hist:
            self.hist["d"].update()
        return out, features_real

    def save_final(self):
        self.model.finish_fade_in()  # once its fade-in is over, a grown model is published as the plain DCGAN
        super().save_final()

    def training_step(self, log: bool) -> dict:
        a = self.args
        metrics = {}
        for _ in range(a.d_steps - 1):  # extra D steps, each on a fresh batch and fresh fakes
            real, labels = self.next_batch()
            with torch.no_grad():
                fake, fake_labels, _ = self.fakes(real.shape[0], labels)
            self.discriminator_step(real, labels, fake, fake_labels, False)

        # ---- discriminator step
        real, labels = self.next_batch()
        with self.accelerator.autocast():
            fake, fake_labels, z = self.fakes(real.shape[0], labels)  # (B, C, H, W) in [-1, 1]
        d_out, features_real = self.discriminator_step(real, labels, fake, fake_labels, log)
        if d_out:
            metrics.update(d_out)

        # ---- generator step
        self.opt_g.zero_grad(set_to_none=True)
        with self.accelerator.autocast():
            logits_fake, features_fake = self.D(self.augment(fake), fake_labels)
            g_loss = generator_loss(a.loss, logits_fake)
            losses = {"g_loss": g_loss}
            if a.feature_matching:
                fm = feature_matching_loss(features_real, features_fake)
                losses["feature_matching"] = fm
                g_loss = g_loss + a.feature_matching * fm
            if a.mode_seeking:
                ms = mode_seeking_loss(fake, z)
                losses["mode_seeking"] = ms
                g_loss = g_loss + a.mode_seeking * ms
        if self.check_finite(losses, "generator"):
            self.accelerator.backward(g_loss)
            if self.hist:
                metrics["hist_g"] = self.hist["g"].add_penalty_grad()
            if log:
                metrics["grad_norm_g"] = _grad_norm(self.model.generator)
            self.opt_g.step()
            if self.hist:
                self.hist["g"].update()
            metrics.update(losses)
            if self.model.generator_ema is not None:
                decay = min(a.ema_decay, (1 + self.step) / (10 + self.step))  # warm-up: early weights fade fast
                ema_update(self.model.generator_ema, self.model.generator, decay)
        self.advance_fade_in()
        return {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}

    def advance_fade_in(self):
        """A grown model's fade-in (``GANConfig.fade_in_steps`` = N): step i (from 0) blends with alpha = i / N; set
        after each step for the next, so that the model saved after N steps is at alpha = 1."""
        if self.model.config.fade_in_steps:
            alpha = min(1.0, (self.step + 1) / self.model.config.fade_in_steps)
            for network in (self.model.generator, self.model.generator_ema, self.model.discriminator):
                if network is not None:
                    network.fade.alpha.fill_(alpha)

    def sample_grid_images(self):
        z, labels = self.fixed
        sample = self.model.generate(latents=z.to(self.device), class_labels=labels).sample
        return ((sample.float() + 1) / 2).clamp(0, 1)


def train_gan(args: GANTrainingArguments, model: GANModel | None = None) -> GANModel:
    """Train a GAN (from scratch, `--init-from`, a given `model`, or `--resume-from`) and return it."""
    return GANTrainer(args, model=model).train()


if __name__ == "__main__":
    sys.exit(GANTrainer.main())
