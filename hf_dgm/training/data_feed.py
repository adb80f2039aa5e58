"""The images a run trains on: decoded into memory (kept on the device) or streamed when the decoded split would not
fit, drawn in a seeded order that every process shares and that a checkpoint restores exactly."""

import logging

import torch

from ..data import BatchSampler, StreamingBatches, decoded_size_bytes, holdout_indices, load_image_tensors

logger = logging.getLogger("hf_dgm.training")


def check_labels(labels: torch.Tensor, num_classes: int, class_names: list[str] | None) -> None:
    """A conditional model's labels: ints in [0, num_classes) (a ClassLabel's -1 marks a row without a label)."""
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if len(bad):
        source = f"the dataset's ClassLabel of {len(class_names)} names" if class_names else f"{num_classes} classes"
        raise ValueError(
            f"label {bad[0].item()} is out of range for {source}: a conditional model needs every label in "
            f"[0, {num_classes - 1}] (-1 marks a row without a label)."
        )


class TrainingData:
    label_classes = None  # a conditional model's class count, once num_classes() was asked: streamed labels checked

    def __init__(self, args, label_column, resolution: int, channels: int, device, rank: int, world: int):
        self.device = device
        if args.streaming is None:
            size = decoded_size_bytes(args.dataset, args.split, resolution, channels)
            args.streaming = size is not None and size > args.max_memory_gb * 2**30
            if args.streaming:
                logger.warning(
                    "The decoded split needs %.1f GB (> --max-memory-gb %s): streaming it instead.",
                    size / 2**30,
                    args.max_memory_gb,
                )
        if args.streaming and args.holdout_fraction:
            raise ValueError("--holdout-fraction needs the decoded split in memory: it cannot be used with streaming.")
        self.args, self.label_column, self.channels = args, label_column, channels
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
            self.first_labels = self.stream.peek()[1]  # fail early on a bad dataset, before any model is built
            self.sampler = self.decoded = None
        else:
            self.stream = None
            self.decoded, self.num_held_out = self.decode(resolution)
            self.images = self.decoded.images.to(device)  # MNIST is 47 MB: keep it on the device
            self.labels = self.decoded.labels.to(device) if self.decoded.labels is not None else None
            self.sampler = BatchSampler(len(self.decoded), args.batch_size, args.seed, rank, world)

    def decode(self, resolution: int):
        """The split decoded at `resolution` without its held-out images (--holdout-fraction), and their count."""
        a = self.args
        decoded = load_image_tensors(
            a.dataset, a.split, a.image_column, self.label_column, resolution, self.channels, a.max_samples,
            a.on_bad_image,
        )  # fmt: skip
        if not a.holdout_fraction:
            return decoded, 0
        kept, held_out = holdout_indices(len(decoded), a.holdout_fraction)
        return decoded.select(kept), len(held_out)

    def images_at(self, resolution: int) -> torch.Tensor:
        """The training images (the same rows in the same order) decoded at `resolution` as a run at that size decodes
        them (uint8, on the device of the training images)."""
        if resolution == self.images.shape[-1]:
            return self.images
        # the conversions this decode logs are of this copy, not of the images the model trains on
        logger.info("decoding the training images again at %d px (the model trains at %d px)", resolution,
                    self.images.shape[-1])  # fmt: skip
        return self.decode(resolution)[0].images.to(self.images.device)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images (B, C, H, W) as floats in [0, 255] on the device, and their labels (or None)."""
        if self.stream is not None:
            images, labels = self.stream.next_batch()
            if self.label_classes and labels is not None:
                check_labels(labels, self.label_classes, self.stream.class_names)
            return images.to(self.device).float(), (labels.to(self.device) if labels is not None else None)
        idx = self.sampler.next_indices().to(self.device)
        return self.images[idx].float(), (self.labels[idx] if self.labels is not None else None)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch if self.sampler is not None else self.stream.epoch

    def num_classes(self) -> int:
        """Classes of a conditional model built from the data: the ClassLabel feature's count (all of them, also when
        --max-samples keeps a few), else max label + 1; every label is checked to lie among them (a streamed one
        as its batch comes)."""
        if self.stream is not None:
            if self.stream.class_names is None:
                raise ValueError("--conditional with --streaming needs a ClassLabel label column (its class count).")
            self.label_classes = len(self.stream.class_names)
            if self.first_labels is not None:
                check_labels(self.first_labels, self.label_classes, self.stream.class_names)
            return self.label_classes
        count = self.decoded.num_classes or int(self.labels.max().item()) + 1
        check_labels(self.labels, count, self.decoded.class_names)
        return count

    def class_names(self) -> list[str] | None:
        """The names of a ClassLabel label column, or None."""
        return self.stream.class_names if self.stream is not None else self.decoded.class_names

    def state_dict(self) -> dict:
        return {
            "batches_drawn": self.sampler.batches_drawn if self.sampler is not None else None,
            "stream_state": self.stream.state_dict() if self.stream is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        if self.sampler is not None:
            self.sampler.batches_drawn = state["batches_drawn"]
        else:
            self.stream.load_state_dict(state["stream_state"])

    def record(self) -> dict:
        """What training_args.json says about the data."""
        if self.stream is not None:
            return {"num_train_images": "streamed", "num_skipped_images": self.stream.num_skipped}
        return {
            "num_train_images": len(self.decoded),
            "num_held_out_images": self.num_held_out,
            "num_skipped_images": self.decoded.num_skipped,
        }
