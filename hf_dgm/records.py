"""How the records a run writes (training_args.json, eval_results.json) name datasets and model folders, so that they
hold no path of the machine that wrote them.

* A dataset is recorded as the user named it when that is a Hub id; a local folder or file by its name (its path
  below the working directory, else its last component: see `portable_path`) and a content hash,
  ``{"dataset": "data/emoji", "dataset_sha256": "..."}``. The hash is the SHA-256 of the ``sha256sum`` listing of
  the data files that ``datasets.load_dataset`` reads (relative paths, sorted): for a folder of one parquet file,
  ``sha256sum train-00000-of-00001.parquet | sha256sum``.
* A path (output folder, model folder, checkpoint) is kept as given when relative, made relative to the working
  directory when below it, and otherwise reduced to its last component.
"""

import hashlib
from pathlib import Path

HASH_CHUNK = 1 << 20


def portable_path(path) -> str | None:
    """`path` without the machine's directories (see the module docstring); None stays None."""
    if path is None:
        return None
    given = Path(str(path)).expanduser()
    if not given.is_absolute():
        return str(path)
    try:
        return str(given.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return given.name


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def data_files(path: Path) -> list[Path]:
    """The files `datasets.load_dataset(path)` reads: every split's, as datasets resolves a local folder."""
    if path.is_file():
        return [path]
    from datasets.data_files import DataFilesDict, get_data_patterns

    resolved = DataFilesDict.from_patterns(get_data_patterns(str(path)), base_path=str(path))
    return sorted({Path(f) for files in resolved.values() for f in files})


def dataset_sha256(path) -> str:
    """The content hash of a local dataset (see the module docstring)."""
    path = Path(path).expanduser().resolve()
    base = path.parent if path.is_file() else path
    listing = "".join(f"{_file_sha256(f)}  {f.relative_to(base).as_posix()}\n" for f in data_files(path))
    return hashlib.sha256(listing.encode()).hexdigest()


def dataset_record(dataset: str) -> dict:
    """The record's fields for a dataset: ``{"dataset": id}`` for a Hub id, name and content hash for local data."""
    path = Path(dataset).expanduser()
    if not path.exists():
        return {"dataset": dataset}
    return {"dataset": portable_path(path), "dataset_sha256": dataset_sha256(path)}


def is_recorded_dataset(record: dict, dataset: str | None) -> bool:
    """Whether `dataset` (as given now) is the one `record` names: the same Hub id, or local data with the recorded
    content hash (an older record's path: the same folder)."""
    recorded = record.get("dataset")
    if recorded is None or dataset is None:
        return False
    local = Path(dataset).expanduser()
    if record.get("dataset_sha256"):
        return local.exists() and dataset_sha256(local) == record["dataset_sha256"]
    if local.exists() and Path(recorded).exists():
        return local.resolve() == Path(recorded).resolve()
    return recorded == dataset


def model_reference(model) -> str:
    """How a record names the model it describes: a local folder as `portable_path` gives it, a zoo name or Hub id as
    given."""
    return portable_path(model) if Path(str(model)).expanduser().exists() else str(model)
