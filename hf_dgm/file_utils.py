"""Files: atomic writes (a file is written beside its target and renamed over it, so an interrupted write never
leaves a broken file) and the tensor shapes in a safetensors header (read without loading a tensor).

The lowest module of the package: it imports no other module of hf_dgm (model loading, cards and sampling use it)."""

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

FORMAT_VERSION = 1  # of config.json: a saved model names it; a newer one is refused with a clear line


def atomic_write(path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json_atomic(path, obj) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def read_weight_shapes(weights_path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header (no tensor is read)."""
    from safetensors import SafetensorError, safe_open

    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise FileNotFoundError(f"No model.safetensors in {str(weights_path.parent)!r}.")
    try:
        with safe_open(weights_path, framework="pt") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except (SafetensorError, OSError, json.JSONDecodeError) as err:
        raise OSError(f"{str(weights_path)!r} can't be read: truncated or corrupt ({err}).") from None


def count_parameters(shapes: dict) -> int:
    """The number of elements in tensors of the given shapes (``{name: shape}``)."""
    return sum(math.prod(shape) for shape in shapes.values())
