"""Checkpoints that unpickle nothing: tensors in safetensors, everything else in JSON.

A checkpoint is a folder ``checkpoint-{step:08d}`` holding:

* ``model/``: the model as a ``save_pretrained`` folder (EMA weights included);
* ``state.safetensors``: optimizer tensors, RNG states and any extra tensors (historical averages);
* ``state.json``: step, data position, arguments, optimizer hyper-parameters, scheduler and grad-scaler states.

``training_state`` collects that from a trainer, ``restore_training_state`` puts it back (refusing a checkpoint of
another run).

It is written into a temporary folder and renamed into place, so a kill during the write leaves the previous
checkpoints intact; only the last ``keep`` checkpoints are kept.
"""

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d{8})$")


def optimizer_state_to_flat(state_dict: dict) -> tuple[dict, dict]:
    """Split an optimizer `state_dict()` into safetensors-able tensors and a JSON-able rest."""
    tensors, meta = {}, {"param_groups": state_dict["param_groups"], "state": {}}
    for idx, entry in state_dict["state"].items():
        meta["state"][str(idx)] = {}
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().contiguous().cpu()
                meta["state"][str(idx)][name] = "__tensor__"
            else:
                meta["state"][str(idx)][name] = value
    return tensors, meta


def optimizer_state_from_flat(tensors: dict, meta: dict) -> dict:
    state = {}
    for idx, entry in meta["state"].items():
        state[int(idx)] = {
            name: tensors[f"{idx}.{name}"] if value == "__tensor__" else value for name, value in entry.items()
        }
    return {"state": state, "param_groups": meta["param_groups"]}


def list_checkpoints(output_dir) -> list[Path]:
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and CHECKPOINT_RE.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=checkpoint_step)


def checkpoint_step(path: Path) -> int:
    """The step of a checkpoint folder, from its name (checkpoint-NNNNNNNN)."""
    return int(CHECKPOINT_RE.match(Path(path).name).group(1))


def resolve_resume_path(resume_from: str, output_dir) -> Path:
    """`latest` -> the newest complete checkpoint in output_dir; a path -> checked to be a checkpoint."""
    if resume_from == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            raise FileNotFoundError(
                f"--resume-from latest: no checkpoint in {str(Path(output_dir) / 'checkpoints')!r}."
            )
        return found[-1]
    path = Path(resume_from)
    if not (path / "state.json").is_file() or not (path / "model" / "config.json").is_file():
        raise ValueError(
            f"--resume-from {resume_from!r} is not a checkpoint: expected a folder with state.json and model/ "
            "(as written in OUTPUT_DIR/checkpoints/checkpoint-NNNNNNNN)."
        )
    return path


def save_checkpoint(output_dir, step: int, model, tensors: dict, meta: dict, keep: int) -> Path:
    """Atomically write checkpoint `step` (see the module docstring), then drop all but the last `keep`."""
    root = Path(output_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"checkpoint-{step:08d}"
    tmp = root / f".tmp-checkpoint-{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model.save_pretrained(tmp / "model")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps(meta, indent=1))
    _fsync_dir(tmp)
    if final.exists():  # re-saving the same step (e.g. after a resume): replace it atomically
        old = root / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    for stale in root.iterdir():  # temp folders left by killed writers
        if stale.name.startswith(".tmp-checkpoint-") and stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    if keep > 0:
        for old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint_state(path) -> tuple[dict, dict]:
    path = Path(path)
    return load_file(str(path / "state.safetensors")), json.loads((path / "state.json").read_text())


def _fsync_dir(path: Path) -> None:
    for f in path.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def rng_state_tensors() -> dict:
    out = {"rng.torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda_{i}"] = s
    return out


def restore_rng_state(tensors: dict) -> None:
    torch.set_rng_state(tensors["rng.torch_cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda_"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def training_state(trainer) -> tuple[dict, dict]:
    """What a checkpoint holds of a trainer besides the model: tensors (optimizers, RNGs, extras) and JSON meta.
    A collective call (it gathers every rank's noise generator)."""
    tensors = {}
    meta = {
        "step": trainer.step,
        "training_time_s": trainer.training_time_s,
        **trainer.data.state_dict(),
        "num_skipped": trainer.num_skipped,
        "args": trainer.args.to_dict(),
        "world_size": trainer.accelerator.num_processes,
        "optimizers": {},
        "schedulers": {},
    }
    for name, opt in trainer.optimizers.items():
        t, m = optimizer_state_to_flat(opt.state_dict())
        tensors.update({f"optimizer.{name}.{k}": v for k, v in t.items()})
        meta["optimizers"][name] = m
    for name, sched in trainer.schedulers.items():
        meta["schedulers"][name] = sched.state_dict()
    scaler = trainer.accelerator.scaler
    if scaler is not None:
        meta["grad_scaler"] = {k: v for k, v in scaler.state_dict().items()}
    tensors.update(rng_state_tensors())
    noise = trainer.noise.get_state().to(trainer.device)
    tensors["rng.noise_per_rank"] = trainer.accelerator.gather(noise[None]).cpu()
    tensors.update(trainer.extra_state_tensors())
    return tensors, meta


def restore_training_state(trainer, path: Path) -> None:
    """Put a trainer back where a checkpoint left it: model, optimizers, schedulers, grad scaler, RNGs, data position,
    step. Refuses a checkpoint of another run (arguments, config or process count)."""
    tensors, meta = load_checkpoint_state(path)
    check_resume_args(trainer.args, meta.get("args", {}), path)
    if meta.get("world_size", 1) != trainer.accelerator.num_processes:
        raise ValueError(
            f"Checkpoint {str(path)!r} was written by {meta.get('world_size')} process(es); resuming with "
            f"{trainer.accelerator.num_processes} would change the data order. Resume with the same number."
        )
    model_cls = type(trainer.model)
    saved = model_cls.from_pretrained(path / "model")
    # not the model: how it was saved, and the class names (read from the data; runs saved before hf-dgm kept them
    # resume with them)
    meta_keys = {"_name_or_path", "architectures", "auto_map", "dtype", "torch_dtype", "transformers_version"}
    meta_keys |= {"id2label", "label2id"}
    ours = {k: v for k, v in trainer.model.config.to_dict().items() if k not in meta_keys}
    theirs = {k: v for k, v in saved.config.to_dict().items() if k not in meta_keys}
    if ours != theirs:
        changed = {k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)}
        raise ValueError(f"Checkpoint {str(path)!r} holds a model with another config (fields {sorted(changed)}).")
    trainer.model.load_state_dict(saved.state_dict())
    for name, opt in trainer.optimizers.items():
        prefix = f"optimizer.{name}."
        # Adam's `step` counters stay on the CPU (as PyTorch keeps them): no host sync per parameter per step
        flat = {
            k[len(prefix) :]: (v if k.endswith(".step") else v.to(trainer.device))
            for k, v in tensors.items()
            if k.startswith(prefix)
        }
        opt.load_state_dict(optimizer_state_from_flat(flat, meta["optimizers"][name]))
    for name, sched in trainer.schedulers.items():
        sched.load_state_dict(meta["schedulers"][name])
    if trainer.accelerator.scaler is not None and "grad_scaler" in meta:
        trainer.accelerator.scaler.load_state_dict(meta["grad_scaler"])
    restore_rng_state(tensors)
    trainer.noise.set_state(tensors["rng.noise_per_rank"][trainer.accelerator.process_index].clone())
    trainer.data.load_state_dict(meta)
    trainer.step = meta["step"]
    trainer.num_skipped = meta.get("num_skipped", 0)
    trainer.training_time_s = meta.get("training_time_s", 0.0)
    trainer.load_extra_state_tensors(tensors)


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
    "grow_from",
    "card_note",
}


def check_resume_args(args, saved: dict, path) -> None:
    """Refuse to resume with arguments that change what is computed (the model flags are checked through the
    model's config)."""
    current = args.to_dict()
    ignored = RESUMABLE_CHANGES | set(getattr(args, "model_fields", ()))
    changed = sorted(
        k
        for k in current.keys() & saved.keys()  # a field newer than the checkpoint keeps its default
        if k not in ignored and current[k] != saved[k]
    )
    if current.get("lr_schedule", "constant") != "constant" and current.get("max_steps") != saved.get("max_steps"):
        changed.append("max_steps (the LR schedule depends on it)")
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed if k in current)
        raise ValueError(
            f"Resuming from {str(path)!r} with different arguments would not continue the same run: {details or changed}."
        )
