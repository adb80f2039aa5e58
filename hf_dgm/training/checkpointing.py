"""Checkpoints that unpickle nothing: tensors in safetensors, everything else in JSON.

A checkpoint is a folder ``checkpoint-{step:08d}`` holding:

* ``model/``: the model as a ``save_pretrained`` folder (EMA weights included);
* ``state.safetensors``: optimizer tensors, RNG states and any extra tensors (historical averages);
* ``state.json``: step, data position, optimizer hyper-parameters, scheduler and grad-scaler states.

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
    return sorted(found, key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))


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
