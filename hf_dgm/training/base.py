"""The training loop both trainers share: accelerate set-up, the step loop with LR schedules, the non-finite policy,
logs, sample grids and checkpoints. Its seams live beside it: the arguments (`arguments.py`), the data
(`data_feed.py`), what a checkpoint holds and how a run resumes (`checkpointing.py`), and the final model folder
with its card and push (`publishing.py`). `gan.py` and `vae.py` add the model, the optimizers and one step."""

import json
import logging
import shutil
import sys
import time
from pathlib import Path

import torch

from ..file_utils import write_json_atomic
from ..image_processing import make_grid, save_image_atomic, to_uint8
from ..modeling_utils import conditioning_classes
from .arguments import TrainingArguments, parse_arguments
from .checkpointing import (
    list_checkpoints,
    resolve_resume_path,
    restore_training_state,
    save_checkpoint,
    training_state,
)
from .data_feed import TrainingData
from .publishing import publish_run, push_or_record, training_args_record, unpushed_summary

logger = logging.getLogger("hf_dgm.training")

# what a finished run leaves in its output folder (publishing.publish_run, evaluate --write): removed when
# --overwrite-output-dir starts afresh in a folder that holds a model
MODEL_FOLDER_FILES = ("config.json", "model.safetensors", "samples.png", "eval_results.json", "README.md")


class NonFiniteLossError(RuntimeError):
    pass


# a run whose last updates were all skipped (--on-nonfinite skip, --skip-grad-norm) is stuck: its weights no longer
# change, so it stops instead of running its remaining steps without an update
MAX_CONSECUTIVE_SKIPS = 100
GRID_SEED_OFFSET = 1234  # the sample grids' latents come from a generator seeded with --seed + this


def build_scheduler(optimizer, args):
    """--lr-schedule after --warmup-steps of linear warm-up from 0, as diffusers' (and transformers') schedules."""
    from diffusers.optimization import get_scheduler

    name = "constant_with_warmup" if args.lr_schedule == "constant" and args.warmup_steps else args.lr_schedule
    return get_scheduler(name, optimizer, num_warmup_steps=args.warmup_steps, num_training_steps=args.max_steps)


def build_accelerator(args, output_dir: Path):
    """The accelerate set-up for --device, --mixed-precision, --allow-tf32 and --report-to."""
    from accelerate import Accelerator

    mps = torch.backends.mps.is_available()
    cpu = args.device == "cpu" or (args.device == "auto" and not (torch.cuda.is_available() or mps))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but no CUDA device is available.")
    if args.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    report_to = None if args.report_to == "none" else args.report_to
    return Accelerator(cpu=cpu, mixed_precision=args.mixed_precision, log_with=report_to, project_dir=str(output_dir))


class BaseTrainer:
    """Subclasses set `self.model`, `self.optimizers` (name -> optimizer) and implement `training_step`."""

    pixel_range = (0.0, 1.0)
    model_kind = ""
    arguments_class = TrainingArguments  # the family's arguments (its flags)

    @classmethod
    def main(cls, argv=None) -> int:
        """`hf-dgm train <model_kind>` and `python -m hf_dgm.training.<model_kind>` (also under accelerate launch or
        torchrun): parse the flags (the family's module docstring is the help's description), set up logging, train,
        and name bad input in one line instead of a traceback; the exit status."""
        description = sys.modules[cls.__module__].__doc__
        args = parse_arguments(cls.arguments_class, argv, f"hf-dgm train {cls.model_kind}", description)
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
        for noisy in ("httpx", "urllib3", "datasets", "filelock", "fsspec"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        try:
            cls(args).train()
        except (ValueError, FileNotFoundError, NonFiniteLossError) as err:
            print(f"hf-dgm train: error: {err}", file=sys.stderr)
            return 2
        print(f"model saved to {args.output_dir}")
        return 0

    def __init__(self, args: TrainingArguments, model=None):
        from accelerate.utils import set_seed

        args.validate()
        self.args = args
        self.given_model = model
        self.output_dir = Path(args.output_dir)
        self.check_model_size()
        self.prepare_output_dir()
        self.uploads = []  # the run's pushes to the Hub (publishing.push_or_record): the summary names failures
        self.accelerator = build_accelerator(args, self.output_dir)
        self.device = self.accelerator.device
        self.is_main = self.accelerator.is_main_process
        set_seed(args.seed)  # global RNGs: weight init is reproducible for a given seed

        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        self.data = TrainingData(
            args, self.label_column_needed(), self.resolution(), self.num_channels(), self.device, rank, world
        )
        self.noise = torch.Generator(device=self.device).manual_seed(args.seed * 7919 + 17 + rank)
        self.step = 0
        self.num_skipped = 0
        self.consecutive_skips = 0  # updates skipped in a row (check_not_stuck)
        self.training_time_s = 0.0  # summed over resumed segments
        self.last_grid = None  # (step, the sample grid drawn at that step)
        self.model = model if model is not None else self.build_model()
        if model is None and not args.init_from:
            self.name_the_classes()
        self.model.to(self.device)
        if args.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.model.train()
        self.setup_optimizers()
        self.schedulers = {name: build_scheduler(opt, args) for name, opt in self.optimizers.items()}
        self.fixed = self.fixed_sample_inputs()
        if args.resume_from:
            self.resume(resolve_resume_path(args.resume_from, self.output_dir))
        self.metrics_path = self.output_dir / "logs" / "metrics.jsonl"

    def check_model_size(self):
        """Refuse, before any data is read or weight allocated, a model of these flags larger than the budgets loading
        applies (HF_DGM_MAX_PARAMETERS, HF_DGM_MAX_ACTIVATIONS: see modeling_utils). --init-from's model is checked
        by from_pretrained; a given model exists already."""
        if self.given_model is not None or self.args.init_from:
            return
        from ..families import family_of
        from ..modeling_utils import check_model_footprint

        config = self.args.model_config(2 if self.args.conditional else None)  # the class count only adds a table
        with torch.device("meta"):
            meta_model = family_of(config.model_type).model_class(config)
        check_model_footprint(meta_model, config, "The model of these flags")

    def prepare_output_dir(self):
        """Refuse to mix two runs in one folder (another run's checkpoints, or a finished run's model), unless told to
        start afresh there: then the old run's checkpoints, metrics and model folder files are removed first (its
        card and evaluation would otherwise describe the new weights)."""
        if self.args.resume_from:
            return
        has_checkpoints = bool(list_checkpoints(self.output_dir))
        has_model = any((self.output_dir / name).is_file() for name in ("config.json", "model.safetensors"))
        if not (has_checkpoints or has_model):
            return
        if not self.args.overwrite_output_dir:
            what, how = (
                ("checkpoints of another run", "pass --resume-from latest to continue it, ")
                if has_checkpoints
                else ("a trained model (config.json, model.safetensors)", "")
            )
            raise ValueError(
                f"{str(self.output_dir)!r} already holds {what}: {how}pass --overwrite-output-dir to start afresh "
                "there (it is then replaced), or another --output-dir."
            )
        shutil.rmtree(self.output_dir / "checkpoints", ignore_errors=True)
        (self.output_dir / "logs" / "metrics.jsonl").unlink(missing_ok=True)
        for name in MODEL_FOLDER_FILES if has_model else ():
            (self.output_dir / name).unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------------- hooks
    def build_model(self):
        raise NotImplementedError

    def source_config(self):
        """The config the run's model will have when it is not built from the arguments: a given model's, or
        --init-from's. Resolution, channels and conditioning then come from it."""
        if self.given_model is not None:
            return self.given_model.config
        if self.args.init_from:
            return self.config_class.from_pretrained(self.args.init_from)
        return None

    def name_the_classes(self):
        """A conditional model built from the data keeps the names of a ClassLabel column (config.id2label), so a
        pipeline or a Space can offer them."""
        names = self.data.class_names()
        if self.model.config.num_classes and names and len(names) == self.model.config.num_classes:
            self.model.config.id2label = dict(enumerate(names))
            self.model.config.label2id = {name: i for i, name in enumerate(names)}

    def label_column_needed(self):
        if self.args.conditional and not self.args.label_column:
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
        z = self.grid_latents(torch.Generator().manual_seed(self.args.seed + GRID_SEED_OFFSET))
        labels = None
        if self.model.config.num_classes:
            labels = torch.arange(self.args.num_grid_images) % self.model.config.num_classes
        return z, labels

    def grid_latents(self, generator: torch.Generator) -> torch.Tensor:
        """The sample grids' latents, drawn from `generator`: N(0, I)."""
        return torch.randn(self.args.num_grid_images, self.model.config.latent_dim, generator=generator)

    def sample_grid_images(self) -> torch.Tensor:
        """Images in [0, 1] from the fixed, seeded inputs (EMA weights where present)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------- data
    def next_batch(self):
        x, y_all = self.data.next_batch()
        # x: (B, C, H, W) in [0, 255]
        lo, hi = self.pixel_range
        x = x / 255.0 if (lo, hi) == (0.0, 1.0) else x / 127.5 - 1.0
        if self.args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, (y_all if conditioning_classes(self.model.config) else None)

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

    def check_not_stuck(self, skipped_before: int):
        """Count the updates skipped in a row (this step's, where `num_skipped` grew from `skipped_before`); stop the
        run at MAX_CONSECUTIVE_SKIPS."""
        self.consecutive_skips = self.consecutive_skips + 1 if self.num_skipped > skipped_before else 0
        if self.consecutive_skips >= MAX_CONSECUTIVE_SKIPS:
            first = self.step + 2 - self.consecutive_skips
            raise NonFiniteLossError(
                f"Steps {first} to {self.step + 1}: all {self.consecutive_skips} updates were skipped (a non-finite "
                "loss or a gradient norm above --skip-grad-norm or not finite), so the weights no longer change. "
                f"Training stopped; the checkpoints are in {self.output_dir / 'checkpoints'}. Lower the learning "
                "rate, or resume from a checkpoint before the first skip."
            )

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
            write_json_atomic(self.output_dir / "training_args.json", training_args_record(self))
        if self.accelerator.log_with:
            # trackers' hyper-parameter tables take scalars only
            config = {k: str(v) if isinstance(v, list) else v for k, v in args.to_dict().items() if v is not None}
            self.accelerator.init_trackers("logs", config=config)
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
        self.accelerator.wait_for_everyone()  # the main process has published: tear the process group down together
        self.accelerator.end_training()
        summary = unpushed_summary(self) if self.is_main else None
        if summary:
            logger.warning(summary)
        return self.model

    def run_steps(self, num_steps: int, bar=None):
        """The training loop proper: steps, LR schedules, logs, sample grids and checkpoints."""
        args = self.args
        start = time.perf_counter()
        window_start, window_step = start, self.step  # images/s over the steps since the previous log
        end = self.step + num_steps
        while self.step < end:
            log = (self.step + 1) % args.log_every == 0 or self.step + 1 == args.max_steps
            skipped_before = self.num_skipped
            metrics = self.training_step(log)
            self.check_not_stuck(skipped_before)
            for scheduler in self.schedulers.values():
                scheduler.step()
            self.step += 1
            if bar is not None:
                bar.update(1)
            if log:
                metrics = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in metrics.items()}
                metrics.update({f"lr_{n}": s.get_last_lr()[0] for n, s in self.schedulers.items()})
                now = time.perf_counter()
                images = (self.step - window_step) * args.batch_size * self.accelerator.num_processes
                metrics["images_per_s"] = images / (now - window_start)
                window_start, window_step = now, self.step
                metrics["epoch"] = self.data.epoch
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
        self.last_grid = (self.step, grid)
        save_image_atomic(grid, self.output_dir / "samples" / f"step_{self.step:08d}.png")
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                import numpy as np

                tracker.writer.add_image("samples", np.asarray(grid.convert("RGB")), self.step, dataformats="HWC")

    def final_sample_grid(self):
        """The grid of the model as it ends: the one the loop drew at this step, else a new one (a pixel-by-pixel
        model's grid takes minutes: it is not drawn twice)."""
        if self.last_grid is not None and self.last_grid[0] == self.step:
            return self.last_grid[1]
        return make_grid(to_uint8(self.sample_grid_images()))

    # ------------------------------------------------------------------------------------------- checkpoints
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
        tensors, meta = training_state(self)  # collective (gather): every rank takes part
        if self.is_main:
            path = save_checkpoint(self.output_dir, self.step, self.model, tensors, meta, self.args.keep_checkpoints)
            logger.info("saved checkpoint %s", path)
            if self.args.hub_checkpoint_branch:
                push_or_record(
                    self, path / "model", f"the checkpoint of step {self.step}", self.args.hub_checkpoint_branch
                )
        self.accelerator.wait_for_everyone()

    def resume(self, path: Path):
        restore_training_state(self, path)
        logger.info("resumed from %s at step %d", path, self.step)

    def save_final(self):
        self.check_weights_finite()
        self.sync_buffers()
        if self.is_main:
            publish_run(self)


def grad_norm(module) -> torch.Tensor:
    """L2 norm of all gradients of `module` (logged at log steps only)."""
    grads = [p.grad.detach().flatten() for p in module.parameters() if p.grad is not None]
    return torch.cat(grads).norm() if grads else torch.zeros(())
