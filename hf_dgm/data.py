"""Image datasets for training and evaluation: any `datasets` dataset (a Hub id such as ``ylecun/mnist``, or a
local folder of parquet files or images) decoded once into a uint8 tensor held in memory.

The decoded tensor is cached on disk, keyed by the dataset fingerprint and the transform, under
``$HF_DGM_CACHE`` (default ``~/.cache/hf_dgm``) in ``datasets/``; ``hf-dgm cache clear`` empties it. Batches are
indexed from the tensor: no per-step PIL decoding. Conversions that are part of the contract (resizing to the
model's resolution, colour mode) are logged once.
"""

import hashlib
import io
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .file_utils import atomic_write

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
MNIST_ID = "ylecun/mnist"  # the default dataset of `hf-dgm train` and `hf-dgm evaluate`


def is_mnist(dataset: str) -> bool:
    """ylecun/mnist, or a local copy of it (a folder named mnist, same schema)."""
    return dataset.rstrip("/").split("/")[-1].lower() == "mnist"


def cache_dir() -> Path:
    return Path(os.environ.get("HF_DGM_CACHE", Path.home() / ".cache" / "hf_dgm")) / "datasets"


@dataclass
class ImageTensorDataset:
    """Decoded images `(N, C, H, W)` uint8, labels `(N,)` int64 (or None), and the class names of a ClassLabel
    label column (or None: then the labels alone tell the class count)."""

    images: torch.Tensor
    labels: torch.Tensor | None
    num_skipped: int = 0
    class_names: list[str] | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int | None:
        return len(self.class_names) if self.class_names else None

    def select(self, indices: torch.Tensor) -> "ImageTensorDataset":
        labels = self.labels[indices] if self.labels is not None else None
        return ImageTensorDataset(self.images[indices], labels, self.num_skipped, self.class_names)


HOLDOUT_SEED = 0  # one fixed draw: the trainer and `hf-dgm evaluate` hold out the same images


def check_holdout_fraction(fraction, name: str = "holdout fraction") -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction < 1.0:
        raise ValueError(f"{name} {fraction!r} is invalid: expected a number in [0, 1).")


def holdout_indices(num_images: int, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held out): sorted indices of a split, `fraction` of it held out at random with a fixed seed."""
    check_holdout_fraction(fraction)
    num_held_out = round(num_images * fraction)
    if fraction > 0 and not 0 < num_held_out < num_images:
        raise ValueError(f"holdout fraction {fraction} of {num_images} images holds out {num_held_out} of them.")
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(HOLDOUT_SEED))
    return order[num_held_out:].sort().values, order[:num_held_out].sort().values


def _load_hf_dataset(dataset: str, split: str, streaming: bool = False):
    import datasets

    path = Path(dataset)
    check_dataset_source(dataset)
    with _quiet_logger("huggingface_hub.repocard"):  # "Repo card metadata block was not found", once per read
        try:
            splits = datasets.get_dataset_split_names(dataset) if not path.exists() else None
        except Exception as err:  # the id is wrong, or (offline mode) not in the cache
            raise FileNotFoundError(
                f"Dataset {dataset!r} is neither a local folder nor a reachable Hub dataset id "
                f"({type(err).__name__}: {err})."
            ) from None
        if splits is not None and split not in splits:
            raise ValueError(f"Dataset {dataset!r} has no split {split!r}; available splits: {splits}.")
        try:
            return datasets.load_dataset(dataset, split=split, streaming=streaming)
        except ValueError as err:
            if "split" in str(err).lower():
                raise ValueError(f"Dataset {dataset!r} has no split {split!r} ({err}).") from None
            raise


@lru_cache(maxsize=32)  # one probe per dataset and process: the size estimate and the loading both ask
def check_dataset_source(dataset: str) -> None:
    """A local folder must exist; a Hub dataset id must be reachable: fail at once, in one line, where the Hub can't be
    reached (datasets would retry for about a minute). In offline mode (HF_HUB_OFFLINE) the cache is used as it is."""
    from huggingface_hub import HfApi, constants

    if Path(dataset).exists():
        return
    if dataset.startswith((".", "/")) or dataset.count("/") > 1:
        raise FileNotFoundError(f"Dataset path {dataset!r} does not exist.")
    if constants.HF_HUB_OFFLINE:
        return
    try:
        HfApi().dataset_info(dataset, timeout=10)
    except Exception as err:
        if type(err).__name__ in ("RepositoryNotFoundError", "GatedRepoError", "HfHubHTTPError"):
            return  # reachable: datasets says what is wrong with the id
        raise FileNotFoundError(
            f"Dataset {dataset!r} is not a local folder, and the Hub can't be reached ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}): connect, set HF_HUB_OFFLINE=1 to use the cache, or "
            "pass a local copy (a folder of parquet/arrow files or images)."
        ) from None


@contextmanager
def _quiet_logger(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_columns(column_names, image_column: str, label_column: str | None, dataset: str):
    if image_column not in column_names:
        raise ValueError(
            f"Dataset {dataset!r} has no image column {image_column!r}; available columns: {list(column_names)}."
        )
    if label_column is not None and label_column not in column_names:
        raise ValueError(
            f"Dataset {dataset!r} has no label column {label_column!r}; available columns: {list(column_names)}."
        )


def convert_image(image: Image.Image, resolution: int, num_channels: int, notes: set) -> np.ndarray:
    """PIL image -> uint8 array (C, H, W) in the requested mode and size; records each conversion in `notes`."""
    mode = "L" if num_channels == 1 else "RGB"
    if image.mode != mode:
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257.0).clip(0, 255).astype(np.uint8))
        if image.mode in ("RGBA", "LA", "P", "PA"):
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (0, 0, 0, 255))
            image = Image.alpha_composite(background, image)
        notes.add(f"converted colour mode to {mode}")
        image = image.convert(mode)
    if image.size != (resolution, resolution):
        notes.add(f"resized {image.size[0]}x{image.size[1]} images to {resolution}x{resolution}")
        image = image.resize((resolution, resolution), Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def load_image_tensors(
    dataset: str = MNIST_ID,
    split: str = "train",
    image_column: str = "image",
    label_column: str | None = "label",
    resolution: int = 28,
    num_channels: int = 1,
    max_samples: int | None = None,
    on_bad_image: str = "skip",
    use_cache: bool = True,
) -> ImageTensorDataset:
    """Decode a dataset split into memory (cached on disk). See the module docstring."""
    if on_bad_image not in ("skip", "error"):
        raise ValueError(f"on_bad_image={on_bad_image!r} is invalid: expected 'skip' or 'error'.")
    import datasets

    ds = _load_hf_dataset(dataset, split)
    _check_columns(ds.column_names, image_column, label_column, dataset)
    if max_samples is not None:
        ds = ds.select(range(min(max_samples, len(ds))))
    if len(ds) == 0:
        raise ValueError(f"Split {split!r} of dataset {dataset!r} is empty.")
    label_feature = ds.features.get(label_column) if label_column else None
    class_names = list(label_feature.names) if isinstance(label_feature, datasets.ClassLabel) else None
    transform = dict(
        v=CACHE_VERSION,
        fp=ds._fingerprint,
        split=split,
        image=image_column,
        label=label_column,
        res=resolution,
        ch=num_channels,
        n=len(ds),
        bad=on_bad_image,
    )
    key = hashlib.sha256(json.dumps(transform, sort_keys=True).encode()).hexdigest()[:24]
    path = cache_dir() / f"{key}.safetensors"
    cached = _read_cache(path, dataset, class_names) if use_cache and path.is_file() else None
    if cached is not None:
        return cached
    if isinstance(ds.features.get(image_column), datasets.Image):
        ds = ds.cast_column(image_column, datasets.Image(decode=False))
    images, labels, notes, skipped = _decode_rows(
        ds, image_column, label_column, resolution, num_channels, on_bad_image, f"{dataset!r} ({split})"
    )
    for note in sorted(notes):
        logger.warning("Dataset %r: %s (logged once).", dataset, note)
    if skipped:
        logger.warning("Dataset %r: skipped %d images that could not be decoded.", dataset, skipped)
    result = ImageTensorDataset(
        # contiguous like the cached copy: a channels-last layout (numpy's stack of CHW views) changes the kernels,
        # and so the numbers, of a run on a cold cache against one on a warm cache
        torch.from_numpy(np.stack(images)).contiguous(),
        torch.tensor(labels, dtype=torch.long) if label_column else None,
        skipped,
        class_names,
    )
    if use_cache:
        _write_cache(path, result, transform, notes)
    return result


def _decode_rows(ds, image_column, label_column, resolution, num_channels, on_bad_image, where: str):
    """Every row's image as uint8 (C, H, W) in the requested size and mode, its label, the conversions made, and
    the count of undecodable images skipped."""
    images, labels, notes, skipped = [], [], set(), 0
    columns = [image_column] + ([label_column] if label_column else [])
    for index, row in enumerate(ds.select_columns(columns)):
        try:
            raw = row[image_column]
            if isinstance(raw, dict):
                image = Image.open(io.BytesIO(raw["bytes"])) if raw.get("bytes") else Image.open(raw["path"])
            elif isinstance(raw, Image.Image):
                image = raw
            else:
                raise TypeError(f"unsupported image value of type {type(raw).__name__}")
            image.load()
            array = convert_image(image, resolution, num_channels, notes)
        except Exception as err:
            if on_bad_image == "error":
                raise ValueError(f"Image {index} of {where} can't be decoded: {err}") from None
            skipped += 1
            continue
        images.append(array)
        if label_column:
            labels.append(int(row[label_column]))
    if not images:
        raise ValueError(f"No image of {where} could be decoded ({skipped} skipped).")
    return images, labels, notes, skipped


def _read_cache(path: Path, dataset: str, class_names: list[str] | None) -> ImageTensorDataset | None:
    """The decoded split from the cache (its conversions logged again), or None for a damaged file (rebuilt)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        tensors = load_file(path)
        with safe_open(path, "pt") as f:
            notes = json.loads((f.metadata() or {}).get("notes", "[]"))
    except Exception as err:  # a damaged cache file is rebuilt, never trusted
        logger.warning("Ignoring unreadable cache file %s (%s)", path, err)
        return None
    logger.info("Loaded decoded dataset from cache %s", path)
    for note in notes:
        logger.warning("Dataset %r: %s (logged once).", dataset, note)
    num_skipped = int(tensors["num_skipped"].item())
    return ImageTensorDataset(tensors["images"], tensors.get("labels"), num_skipped, class_names)


def _write_cache(path: Path, result: ImageTensorDataset, transform: dict, notes: set) -> None:
    from safetensors.torch import save_file

    tensors = {"images": result.images, "num_skipped": torch.tensor(result.num_skipped)}
    if result.labels is not None:
        tensors["labels"] = result.labels
    metadata = {"transform": json.dumps(transform), "notes": json.dumps(sorted(notes))}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


class BatchSampler:
    """Deterministic batches from an in-memory dataset.

    The order of epoch `e` is a permutation drawn from a generator seeded with (seed, e), so the position in the
    data is fully described by the number of batches drawn so far (`batches_drawn`), which a checkpoint stores.
    With several processes, each rank takes its own stride of every permutation.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        per_rank = num_samples // world_size
        if per_rank < batch_size:
            raise ValueError(
                f"batch_size={batch_size} is larger than the {per_rank} samples each of {world_size} process(es) gets."
            )
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.batches_per_epoch = per_rank // batch_size
        self.batches_drawn = 0
        self._epoch, self._order = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_samples, generator=g)[self.rank :: self.world_size]

    @property
    def epoch(self) -> int:
        return self.batches_drawn // self.batches_per_epoch

    def next_indices(self) -> torch.Tensor:
        epoch, i = divmod(self.batches_drawn, self.batches_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, self._permutation(epoch)
        self.batches_drawn += 1
        return self._order[i * self.batch_size : (i + 1) * self.batch_size]


def decoded_size_bytes(dataset: str, split: str, resolution: int, num_channels: int) -> int | None:
    """Bytes the decoded uint8 split would take, from the dataset's metadata (no download of the data), or None."""
    check_dataset_source(dataset)
    try:
        import datasets

        with _quiet_logger("huggingface_hub.repocard"):
            builder = datasets.load_dataset_builder(dataset)
        num = builder.info.splits[split].num_examples if builder.info.splits else None
    except Exception:
        return None
    return None if not num else num * num_channels * resolution * resolution


class StreamingBatches:
    """For datasets too large for memory: `datasets` streaming, shuffled with a buffer, decoded per sample.

    Slower than the in-memory path (PIL decoding every step), but it never holds the dataset. Its position is the
    `datasets` iterable state (JSON), saved in checkpoints, so resuming continues where the run stopped.
    """

    def __init__(
        self,
        dataset: str,
        split: str,
        image_column: str,
        label_column: str | None,
        resolution: int,
        num_channels: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer: int = 10_000,
        on_bad_image: str = "skip",
        max_samples: int | None = None,
    ):
        from datasets.distributed import split_dataset_by_node

        ds = _load_hf_dataset(dataset, split, streaming=True)
        if ds.column_names is not None:
            _check_columns(ds.column_names, image_column, label_column, dataset)
        feature = (ds.features or {}).get(label_column) if label_column else None
        self.class_names = getattr(feature, "names", None)  # from a ClassLabel feature, when there is one
        ds = ds.shuffle(seed=seed, buffer_size=shuffle_buffer)
        if max_samples is not None:
            ds = ds.take(max_samples)
        self.ds = split_dataset_by_node(ds, rank=rank, world_size=world_size) if world_size > 1 else ds
        self.dataset, self.image_column, self.label_column = dataset, image_column, label_column
        self.resolution, self.num_channels, self.batch_size = resolution, num_channels, batch_size
        self.on_bad_image = on_bad_image
        self.epoch, self.num_skipped, self._notes, self._it = 0, 0, set(), None
        self._peeked = (
            None  # (the state before it, the first batch) once `peek` drew it, until `next_batch` hands it out
        )

    def peek(self):
        """Draw the first batch now (the trainer's early look: a bad dataset fails before any model is built); the next
        `next_batch` hands it out. Kept rather than drawn again: `datasets` pauses 5 s when a parquet stream that
        was read from is closed. Returns that batch."""
        state = self.state_dict()
        self._peeked = (state, self.next_batch())
        return self._peeked[1]

    def _next_row(self):
        while True:
            if self._it is None:
                self.ds.set_epoch(self.epoch)
                self._it = iter(self.ds)
            try:
                return next(self._it)
            except StopIteration:
                if self.epoch == 0 and self._rows_seen == 0:
                    raise ValueError(f"Split of dataset {self.dataset!r} is empty.") from None
                self.epoch += 1
                self._it = None

    _rows_seen = 0

    def next_batch(self):
        if self._peeked is not None:
            batch, self._peeked = self._peeked[1], None
            return batch
        images, labels = [], []
        while len(images) < self.batch_size:
            row = self._next_row()
            self._rows_seen += 1
            try:
                image = row[self.image_column]
                if isinstance(image, dict):
                    image = Image.open(io.BytesIO(image["bytes"]))
                images.append(convert_image(image, self.resolution, self.num_channels, self._notes))
            except Exception as err:
                if self.on_bad_image == "error":
                    raise ValueError(f"An image of {self.dataset!r} can't be decoded: {err}") from None
                self.num_skipped += 1
                continue
            if self.label_column:
                labels.append(int(row[self.label_column]))
        return torch.from_numpy(np.stack(images)), (torch.tensor(labels) if self.label_column else None)

    def state_dict(self) -> dict:
        import copy

        if self._peeked is not None:  # the first batch is still to be handed out: the position before it
            return copy.deepcopy(self._peeked[0])
        return copy.deepcopy({"epoch": self.epoch, "dataset": self.ds.state_dict(), "num_skipped": self.num_skipped})

    def load_state_dict(self, state: dict):
        self._peeked = None
        self.epoch, self.num_skipped = state["epoch"], state["num_skipped"]
        self.ds.set_epoch(self.epoch)
        self.ds.load_state_dict(state["dataset"])
        self._it = iter(self.ds)
