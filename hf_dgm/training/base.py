"""What both trainers share: arguments, accelerate set-up, data batches, logging, sample grids, checkpoints,
exact resume and the final model folder. `gan.py` and `vae.py` add the model, optimizers and one training step."""

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from ..data import BatchSampler, StreamingBatches, load_image_tensors
from ..image_processing import make_grid, save_png_atomic, to_uint8
from .checkpointing import (
    list_checkpoints,
    load_checkpoint_state,
    optimizer_state_from_flat,
    optimizer_state_to_flat,
    resolve_resume_path,
    restore_rng_state,
    rng_state_tensors,
    save_checkpoint,
)

logger = logging.getLogger("hf_dgm.training")

LR_SCHEDULES = ("constant", "cosine", "linear")


class NonFiniteLossError(RuntimeError):
    pass


@dataclass
class TrainingArguments:
    """Arguments shared by both trainers. Every field is a `--dashed-flag` of `hf-dgm train`."""

    output_dir: str = "outputs/run"
    # data
    dataset: str = "ylecun/mnist"
    split: str = "train"
    image_column: str = "image"
    label_column: str | None = "label"
    max_samples: int | None = None  # tiny-data switch for CI and smoke tests
    on_bad_image: str = "skip"  # "skip" (count them) or "error" (fail with the index)
    # schedule
    batch_size: int = 128
    max_steps: int = 1000
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    seed: int = 0
    # hardware (accelerate)
    device: str = "auto"  # auto, cpu, cuda, mps
    mixed_precision: str = "no"  # no, bf16, fp16 (GPU)
    allow_tf32: bool = False
    channels_last: bool = False
    compile: bool = False
    # logging, samples, checkpoints
    log_every: int = 50
    sample_every: int = 500
    num_grid_images: int = 64
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    resume_from: str | None = None  # "latest" or a checkpoint folder
    report_to: str = "tensorboard"  # any accelerate tracker, "all" or "none"
    progress_bar: bool = True
    on_nonfinite: str = "stop"  # "stop" (keep the last good checkpoint) or "skip" (skip the step, count it)
    # None (auto): stream when the decoded split would exceed --max-memory-gb; True/False force it
    streaming: bool | None = None
    max_memory_gb: float = 8.0
    # sharing (the token comes from HF_TOKEN or the login cache: it is never an argument saved with the run)
    overwrite_output_dir: bool = False  # start afresh in a folder that holds another run's checkpoints
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = False
    hub_checkpoint_branch: str | None = None  # also push each checkpoint's model to this branch

    def validate(self):
        def positive(name):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} {value!r} is invalid: expected a positive int.")

        for name in ("batch_size", "max_steps", "log_every", "sample_every", "checkpoint_every", "num_grid_images"):
            positive(name)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"--lr-schedule {self.lr_schedule!r} is invalid: expected one of {LR_SCHEDULES}.")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"--mixed-precision {self.mixed_precision!r} is invalid: expected no, bf16 or fp16.")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise ValueError(f"--device {self.device!r} is invalid: expected auto, cpu, cuda or mps.")
        if self.on_nonfinite not in ("stop", "skip"):
            raise ValueError(f"--on-nonfinite {self.on_nonfinite!r} is invalid: expected stop or skip.")
        if self.on_bad_image not in ("skip", "error"):
            raise ValueError(f"--on-bad-image {self.on_bad_image!r} is invalid: expected skip or error.")
        if (self.push_to_hub or self.hub_checkpoint_branch) and not self.hub_model_id:
            raise ValueError("--push-to-hub and --hub-checkpoint-branch need --hub-model-id (e.g. user/dcgan-mnist).")
        if self.warmup_steps < 0 or self.keep_checkpoints < 0:
            raise ValueError("--warmup-steps and --keep-checkpoints must be >= 0.")

    def to_dict(self) -> dict:
        return asdict(self)


def lr_lambda(schedule: str, warmup_steps: int, max_steps: int):
    def fn(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress

    return fn


class BaseTrainer:
    """Subclasses set `self.model`, `self.optimizers` (name -> optimizer) and implement `training_step`."""

    pixel_range = (0.0, 1.0)
    model_kind = ""

    def __init__(self, args: TrainingArguments, model=None):
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        args.validate()
        self.args = args
        self.given_model = model
        self.output_dir = Path(args.output_dir)
        if not args.resume_from and list_checkpoints(self.output_dir):
            if not args.overwrite_output_dir:
                raise ValueError(
                    f"{str(self.output_dir)!r} already holds checkpoints of another run: pass --resume-from latest to "
                    "continue it, --overwrite-output-dir to start afresh there, or another --output-dir."
                )
            import shutil

            shutil.rmtree(self.output_dir / "checkpoints", ignore_errors=True)
            (self.output_dir / "logs" / "metrics.jsonl").unlink(missing_ok=True)
        mps = torch.backends.mps.is_available()
        cpu = args.device == "cpu" or (args.device == "auto" and not (torch.cuda.is_available() or mps))
        if args.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda was requested but no CUDA device is available.")
        if args.allow_tf32 and torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        report_to = None if args.report_to == "none" else args.report_to
        self.accelerator = Accelerator(
            cpu=cpu, mixed_precision=args.mixed_precision, log_with=report_to, project_dir=str(self.output_dir)
        )
        self.device = self.accelerator.device
        self.is_main = self.accelerator.is_main_process
        set_seed(args.seed)  # global RNGs: weight init is reproducible for a given seed

        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        label_column, resolution, channels = self.label_column_needed(), self.resolution(), self.num_channels()
        if args.streaming is None:
            from ..data import decoded_size_bytes

            size = decoded_size_bytes(args.dataset, args.split, resolution, channels)
            args.streaming = size is not None and size > args.max_memory_gb * 2**30
            if args.streaming:
                logger.warning(
                    "The decoded split needs %.1f GB (> --max-memory-gb %s): streaming it instead.",
                    size / 2**30,
                    args.max_memory_gb,
                )
        if args.streaming:
            self.stream = StreamingBatches(
                args.dataset,
                args.split,
                args.image_column,
                label_column,
                resolution,
                channels,
                args.batch_size,
                args.seed,
                rank,
                world,
                on_bad_image=args.on_bad_image,
                max_samples=args.max_samples,
            )
            first_images, first_labels = self.stream.next_batch()  # fail early; labels size conditional models
            self.stream.rewind()
            self.images, self.labels = first_images.to(self.device), _to(first_labels, self.device)
            self.sampler = None
        else:
            self.stream = None
            self.data = load_image_tensors(
                args.dataset,
                args.split,
                args.image_column,
                label_column,
                resolution,
                channels,
                args.max_samples,
                args.on_bad_image,
            )
            self.images = self.data.images.to(self.device)  # MNIST is 47 MB: keep it on the device
            self.labels = _to(self.data.labels, self.device)
            self.sampler = BatchSampler(len(self.data), args.batch_size, args.seed, rank, world)
        rank = self.accelerator.process_index
        self.noise = torch.Generator(device=self.device).manual_seed(args.seed * 7919 + 17 + rank)
        self.step = 0
        self.num_skipped = 0
        self.training_time_s = 0.0  # summed over resumed segments
        self.model = model if model is not None else self.build_model()
        self.model.to(self.device)
        if args.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.model.train()
        self.setup_optimizers()
        self.schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(args.lr_schedule, args.warmup_steps, args.max_steps))
            for name, opt in self.optimizers.items()
        }
        self.fixed = self.fixed_sample_inputs()
        if args.resume_from:
            self.resume(resolve_resume_path(args.resume_from, self.output_dir))
        self.metrics_path = self.output_dir / "logs" / "metrics.jsonl"

    # ------------------------------------------------------------------------------------------- hooks
    def build_model(self):
        raise NotImplementedError

    def source_config(self):
        """The config the run's model will have when it is not built from the arguments: a given model's, or
        --init-from's. Resolution, channels and conditioning then come from it."""
        if self.given_model is not None:
            return self.given_model.config
        if getattr(self.args, "init_from", None):
            return self.config_class.from_pretrained(self.args.init_from)
        return None

    def label_column_needed(self):
        if getattr(self.args, "conditional", False) and not self.args.label_column:
            raise ValueError("--conditional needs a --label-column.")
        cfg = self.source_config()
        conditional = cfg.num_classes if cfg is not None else self.args.conditional
        return self.args.label_column if conditional else None

    def resolution(self) -> int:
        cfg = self.source_config()
        return cfg.image_size if cfg is not None else self.args.image_size

    def num_channels(self) -> int:
        cfg = self.source_config()
        return cfg.num_channels if cfg is not None else self.args.num_channels

    def num_classes_in_data(self) -> int:
        """Classes of a conditional model built from the arguments: the label feature's, else max label + 1."""
        if self.stream is not None:
            if self.stream.num_classes is None:
                raise ValueError("--conditional with --streaming needs a ClassLabel label column (its class count).")
            return self.stream.num_classes
        return int(self.labels.max().item()) + 1

    def setup_optimizers(self):
        raise NotImplementedError

    def training_step(self, log: bool) -> dict:
        raise NotImplementedError

    def extra_state_tensors(self) -> dict:
        return {}

    def load_extra_state_tensors(self, tensors: dict):
        pass

    def fixed_sample_inputs(self):
        """One fixed, seeded latent batch (and balanced labels for conditional models) for every sample grid."""
        g = torch.Generator().manual_seed(self.args.seed + 1234)
        z = torch.randn(self.args.num_grid_images, self.model.config.latent_dim, generator=g)
        labels = None
        if self.model.config.num_classes:
            labels = torch.arange(self.args.num_grid_images) % self.model.config.num_classes
        return z, labels

    def sample_grid_images(self) -> torch.Tensor:
        """Images in [0, 1] from the fixed, seeded inputs (EMA weights where present)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------- data
    def next_batch(self):
        if self.stream is not None:
            images, labels = self.stream.next_batch()
            x, y_all = images.to(self.device).float(), _to(labels, self.device)
        else:
            idx = self.sampler.next_indices().to(self.device)
            x, y_all = self.images[idx].float(), (self.labels[idx] if self.labels is not None else None)
        # x: (B, C, H, W) in [0, 255]
        lo, hi = self.pixel_range
        x = x / 255.0 if (lo, hi) == (0.0, 1.0) else x / 127.5 - 1.0
        if self.args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, (y_all if self.model.config.num_classes else None)

    # ------------------------------------------------------------------------------------------- loop
    def check_finite(self, losses: dict, phase: str) -> bool:
        """True when every loss is finite on every process. Otherwise stop (default) or count a skipped step; all
        processes take the same decision (one that skipped backward would leave the others waiting)."""
        flags = torch.stack([torch.isfinite(v.detach()).all() for v in losses.values()]).float()
        if self.accelerator.num_processes > 1:
            import torch.distributed as dist

            dist.all_reduce(flags, op=dist.ReduceOp.MIN)
        if bool(flags.all()):
            return True
        for (name, value), ok in zip(losses.items(), flags.tolist()):
            if not ok:
                if self.args.on_nonfinite == "skip":
                    self.num_skipped += 1
                    logger.warning(
                        "step %d: %s is %s; skipping the %s update", self.step + 1, name, value.item(), phase
                    )
                    return False
                raise NonFiniteLossError(
                    f"Non-finite loss at step {self.step + 1}: {name} = {value.item()} (in the {phase} update). "
                    f"Training stopped; the last good checkpoint is in {self.output_dir / 'checkpoints'}. "
                    "Lower the learning rate, or pass --on-nonfinite skip to skip such steps."
                )
        return True

    def check_weights_finite(self):
        """Before a checkpoint or the final save: never write NaN weights as a 'good' model."""
        bad = [n for n, p in self.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise NonFiniteLossError(
                f"Weights became non-finite before step {self.step} ({bad[:3]}...). Training stopped without saving; "
                f"the last good checkpoint is in {self.output_dir / 'checkpoints'}."
            )

    def train(self):
        from tqdm.auto import tqdm

        args = self.args
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "training_args.json").write_text(json.dumps(self.training_args_record(), indent=2))
        if self.accelerator.log_with:
            self.accelerator.init_trackers("logs", config={k: v for k, v in args.to_dict().items() if v is not None})
        bar = tqdm(
            total=args.max_steps,
            initial=self.step,
            disable=not (self.is_main and args.progress_bar),
            desc=f"train {self.model_kind}",
            dynamic_ncols=True,
        )
        self.run_steps(args.max_steps - self.step, bar)
        bar.close()
        self.save_final()
        self.accelerator.end_training()
        return self.model

    def run_steps(self, num_steps: int, bar=None):
        """The training loop proper: steps, LR schedules, logs, sample grids and checkpoints."""
        args = self.args
        start, start_step = time.perf_counter(), self.step
        end = self.step + num_steps
        while self.step < end:
            log = (self.step + 1) % args.log_every == 0 or self.step + 1 == args.max_steps
            metrics = self.training_step(log)
            for scheduler in self.schedulers.values():
                scheduler.step()
            self.step += 1
            if bar is not None:
                bar.update(1)
            if log:
                elapsed = time.perf_counter() - start
                metrics = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in metrics.items()}
                metrics.update({f"lr_{n}": s.get_last_lr()[0] for n, s in self.schedulers.items()})
                metrics["images_per_s"] = (
                    (self.step - start_step) * args.batch_size * self.accelerator.num_processes / elapsed
                )
                metrics["epoch"] = self.sampler.epoch if self.sampler else self.stream.epoch
                metrics["skipped_steps"] = self.num_skipped
                if bar is not None:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if k in self.postfix_keys})
                self.log_metrics(metrics)
            if self.step % args.sample_every == 0 or self.step == args.max_steps:
                self.save_sample_grid()
            if self.step % args.checkpoint_every == 0 or self.step == args.max_steps:
                self.training_time_s += time.perf_counter() - start
                start = time.perf_counter()
                self.save_checkpoint()
        self.training_time_s += time.perf_counter() - start

    postfix_keys = ()

    def log_metrics(self, metrics: dict):
        if not self.is_main:
            return
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps({"step": self.step, **metrics}) + "\n")
        if self.accelerator.log_with:
            self.accelerator.log(metrics, step=self.step)

    def save_sample_grid(self):
        images = self.sample_grid_images()
        if not self.is_main:
            return
        grid = make_grid(to_uint8(images))
        save_png_atomic(grid, self.output_dir / "samples" / f"step_{self.step:08d}.png")
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                import numpy as np

                tracker.writer.add_image("samples", np.asarray(grid.convert("RGB")), self.step, dataformats="HWC")

    # ------------------------------------------------------------------------------------------- checkpoints
    def state_tensors_and_meta(self):
        tensors, meta = (
            {},
            {
                "step": self.step,
                "training_time_s": self.training_time_s,
                "batches_drawn": self.sampler.batches_drawn if self.sampler else None,
                "stream_state": self.stream.state_dict() if self.stream else None,
                "num_skipped": self.num_skipped,
                "args": self.args.to_dict(),
                "world_size": self.accelerator.num_processes,
                "optimizers": {},
                "schedulers": {},
            },
        )
        for name, opt in self.optimizers.items():
            t, m = optimizer_state_to_flat(opt.state_dict())
            tensors.update({f"optimizer.{name}.{k}": v for k, v in t.items()})
            meta["optimizers"][name] = m
        for name, sched in self.schedulers.items():
            meta["schedulers"][name] = sched.state_dict()
        scaler = self.accelerator.scaler
        if scaler is not None:
            meta["grad_scaler"] = {k: v for k, v in scaler.state_dict().items()}
        tensors.update(rng_state_tensors())
        noise = self.noise.get_state().to(self.device)
        tensors["rng.noise_per_rank"] = self.accelerator.gather(noise[None]).cpu()
        tensors.update(self.extra_state_tensors())
        return tensors, meta

    def sync_buffers(self):
        """With several processes, parameters agree (DDP averages gradients) but BatchNorm statistics, spectral-norm
        vectors and the EMA copy's buffers are per rank: give every rank rank 0's before saving."""
        if self.accelerator.num_processes > 1:
            import torch.distributed as dist

            for buffer in self.model.buffers():
                dist.broadcast(buffer.data, src=0)

    def save_checkpoint(self):
        self.check_weights_finite()
        self.sync_buffers()
        tensors, meta = self.state_tensors_and_meta()  # collective (gather): every rank takes part
        if self.is_main:
            path = save_checkpoint(self.output_dir, self.step, self.model, tensors, meta, self.args.keep_checkpoints)
            logger.info("saved checkpoint %s", path)
            if self.args.hub_checkpoint_branch:
                from ..hub import push_model_folder

                push_model_folder(
                    path / "model",
                    self.args.hub_model_id,
                    private=self.args.hub_private,
                    revision=self.args.hub_checkpoint_branch,
                    commit_message=f"Checkpoint at step {self.step}",
                )
        self.accelerator.wait_for_everyone()

    def resume(self, path: Path):
        from safetensors.torch import load_file as _  # noqa: F401  (fail early if safetensors is missing)

        tensors, meta = load_checkpoint_state(path)
        self.check_resume_args(meta.get("args", {}), path)
        if meta.get("world_size", 1) != self.accelerator.num_processes:
            raise ValueError(
                f"Checkpoint {str(path)!r} was written by {meta.get('world_size')} process(es); resuming with "
                f"{self.accelerator.num_processes} would change the data order. Resume with the same number."
            )
        model_cls = type(self.model)
        saved = model_cls.from_pretrained(path / "model")
        meta_keys = {"_name_or_path", "architectures", "auto_map", "dtype", "torch_dtype", "transformers_version"}
        ours = {k: v for k, v in self.model.config.to_dict().items() if k not in meta_keys}
        theirs = {k: v for k, v in saved.config.to_dict().items() if k not in meta_keys}
        if ours != theirs:
            changed = {k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)}
            raise ValueError(f"Checkpoint {str(path)!r} holds a model with another config (fields {sorted(changed)}).")
        self.model.load_state_dict(saved.state_dict())
        for name, opt in self.optimizers.items():
            prefix = f"optimizer.{name}."
            # Adam's `step` counters stay on the CPU (as PyTorch keeps them): no host sync per parameter per step
            flat = {
                k[len(prefix) :]: (v if k.endswith(".step") else v.to(self.device))
                for k, v in tensors.items()
                if k.startswith(prefix)
            }
            opt.load_state_dict(optimizer_state_from_flat(flat, meta["optimizers"][name]))
        for name, sched in self.schedulers.items():
            sched.load_state_dict(meta["schedulers"][name])
        if self.accelerator.scaler is not None and "grad_scaler" in meta:
            self.accelerator.scaler.load_state_dict(meta["grad_scaler"])
        restore_rng_state(tensors)
        self.noise.set_state(tensors["rng.noise_per_rank"][self.accelerator.process_index].clone())
        if self.sampler is not None:
            self.sampler.batches_drawn = meta["batches_drawn"]
        else:
            self.stream.load_state_dict(meta["stream_state"])
        self.step = meta["step"]
        self.num_skipped = meta.get("num_skipped", 0)
        self.training_time_s = meta.get("training_time_s", 0.0)
        self.load_extra_state_tensors(tensors)
        logger.info("resumed from %s at step %d", path, self.step)

    # arguments that may change between a run and its resumption without changing what is computed
    RESUMABLE_CHANGES = {
        "output_dir",
        "resume_from",
        "log_every",
        "sample_every",
        "num_grid_images",
        "checkpoint_every",
        "keep_checkpoints",
        "report_to",
        "progress_bar",
        "on_nonfinite",
        "device",
        "push_to_hub",
        "hub_model_id",
        "hub_private",
        "hub_checkpoint_branch",
        "overwrite_output_dir",
        "max_steps",
        "init_from",
    }

    def check_resume_args(self, saved: dict, path):
        current = self.args.to_dict()
        changed = sorted(
            k
            for k in current.keys() & saved.keys()  # a field newer than the checkpoint keeps its default
            if k not in self.RESUMABLE_CHANGES and current[k] != saved[k]
        )
        if current.get("lr_schedule", "constant") != "constant" and current.get("max_steps") != saved.get("max_steps"):
            changed.append("max_steps (the LR schedule depends on it)")
        if changed:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed if k in current)
            raise ValueError(
                f"Resuming from {str(path)!r} with different arguments would not continue the same run: {details or changed}."
            )

    # ------------------------------------------------------------------------------------------- output
    def training_args_record(self) -> dict:
        return {
            "trainer": self.model_kind,
            **self.args.to_dict(),
            "num_processes": self.accelerator.num_processes,
            "device": str(self.device),
            "num_train_images": len(self.data) if self.stream is None else "streamed",
            "num_skipped_images": self.data.num_skipped if self.stream is None else self.stream.num_skipped,
        }

    def save_final(self):
        self.check_weights_finite()
        self.sync_buffers()
        if not self.is_main:
            return
        self.model.save_pretrained(self.output_dir)
        record = self.training_args_record()
        record.update(
            steps=self.step,
            training_time_s=round(self.training_time_s, 1),
            hardware=_hardware_description(self.device),
            skipped_steps=self.num_skipped,
        )
        (self.output_dir / "training_args.json").write_text(json.dumps(record, indent=2))
        grid = make_grid(to_uint8(self.sample_grid_images()))
        save_png_atomic(grid, self.output_dir / "samples.png")
        from ..model_card import write_model_card

        write_model_card(self.output_dir, repo_id=self.args.hub_model_id)
        if self.args.push_to_hub:
            from ..hub import push_model_folder

            commit = push_model_folder(
                self.output_dir,
                self.args.hub_model_id,
                private=self.args.hub_private,
                commit_message=f"Trained with hf-dgm for {self.step} steps",
            )
            logger.info("pushed %s to %s", self.output_dir, commit.commit_url)


def grad_norm(module) -> torch.Tensor:
    """L2 norm of all gradients of `module` (logged at log steps only)."""
    grads = [p.grad.detach().flatten() for p in module.parameters() if p.grad is not None]
    return torch.cat(grads).norm() if grads else torch.zeros(())


def _to(tensor, device):
    return tensor.to(device) if tensor is not None else None


def _hardware_description(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores)"


def add_dataclass_arguments(parser, cls, skip=()):
    """One `--dashed-flag` per dataclass field (bools as --flag / --no-flag)."""
    import argparse
    import typing

    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        aliases = ["--resolution"] if f.name == "image_size" else []
        hint = hints[f.name]
        args = typing.get_args(hint)
        base = next((a for a in args if a is not type(None)), hint) if args else hint
        if base is bool:
            parser.add_argument(flag, *aliases, action=argparse.BooleanOptionalAction, default=f.default)
        elif typing.get_origin(base) is list:
            default = f.default_factory() if callable(f.default_factory) else f.default
            parser.add_argument(flag, *aliases, type=int, nargs="+", default=default)
        else:
            parser.add_argument(
                flag, *aliases, dest=f.name, type=_none_or(base) if type(None) in args else base, default=f.default
            )


def _none_or(kind):
    def convert(text):
        return None if text.lower() == "none" else kind(text)

    convert.__name__ = kind.__name__
    return convert
