"""Atomic writes: a file is written beside its target and renamed over it, so an interrupted write never leaves a
broken file (nothing saved is lost)."""

import json
import os
from collections.abc import Callable
from pathlib import Path


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
