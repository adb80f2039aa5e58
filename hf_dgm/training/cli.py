"""Shared entry for `hf-dgm train gan|vae` and `python -m hf_dgm.training.gan|vae` (also under accelerate launch
or torchrun): logging set-up and clear errors instead of tracebacks for bad input."""

import logging
import sys


def run_training(train_fn, args) -> int:
    from .base import NonFiniteLossError

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    for noisy in ("httpx", "urllib3", "datasets", "filelock", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        train_fn(args)
    except (ValueError, FileNotFoundError, NonFiniteLossError) as err:
        print(f"hf-dgm train: error: {err}", file=sys.stderr)
        return 2
    print(f"model saved to {args.output_dir}")
    return 0
