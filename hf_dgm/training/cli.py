"""Shared entry for `hf-dgm train gan|vae` and `python -m hf_dgm.training.gan|vae` (also under accelerate launch
or torchrun): logging set-up and clear errors instead of tracebacks for bad input."""

import argparse
import logging
import sys
from dataclasses import fields


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


def main(family: str, args_class, train_fn, description: str, argv=None) -> int:
    """`hf-dgm train FAMILY [flags]`: one `--dashed-flag` per field of `args_class`."""
    from .base import add_dataclass_arguments

    parser = argparse.ArgumentParser(
        prog=f"hf-dgm train {family}", description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataclass_arguments(parser, args_class)
    namespace = parser.parse_args(argv)
    return run_training(train_fn, args_class(**{f.name: getattr(namespace, f.name) for f in fields(args_class)}))
