"""Keep the best snapshot: `hf-dgm evaluate RUN --checkpoints` scores every checkpoint a training run kept with a
cheap KID (a few hundred samples, one feature space) and names the best step.

Checkpoints are ``RUN/checkpoints/checkpoint-NNNNNNNN/model`` (training/checkpointing.py), saved with the EMA
weights where the run keeps an EMA; samples come from the same pipeline as the final model's, so from the EMA
generator. A run keeps its last ``--keep-checkpoints`` (default 2); train with ``--keep-checkpoints 0`` to keep
them all. Every checkpoint is compared with the same N real images (real_data.py, sized to the request), so the
KIDs rank the checkpoints; the real-data floor (N other real images) says how far from the data they are.
"""

from pathlib import Path

import torch

from ..records import dataset_record, portable_path
from . import metrics
from .common import generate_uint8, load_model, significant
from .evaluate import default_dataset, feature_names, load_spaces, real_features, real_sets

DEFAULT_SAMPLES = 256


def checkpoint_models(run_dir) -> list[tuple[int, Path]]:
    """(step, model folder) of every complete checkpoint of a run, oldest first."""
    from ..training.checkpointing import checkpoint_step, list_checkpoints

    found = [(checkpoint_step(p), p / "model") for p in list_checkpoints(run_dir)]
    found = [(step, folder) for step, folder in found if (folder / "config.json").is_file()]
    if not found:
        raise FileNotFoundError(
            f"{str(run_dir)!r} holds no checkpoints (checkpoints/checkpoint-NNNNNNNN/model): --checkpoints takes a "
            "training run's output folder; train with --keep-checkpoints 0 to keep every checkpoint."
        )
    return found


def cheapest(spaces):
    """A classifier where the request has one (milliseconds per image), else the first space."""
    return next((s for s in spaces if s.classifier is not None), spaces[0])


def evaluate_checkpoints(
    run_dir, dataset=None, features="auto", num_samples: int | None = None, seed: int = 0, device="auto"
) -> dict:
    """KID (with std) and FID of every checkpoint of `run_dir` in the cheapest requested space, and the best step
    (the lowest KID), and the steps whose KID is within the best's std of it (not told apart at this sample count)."""
    from .real_data import training_record

    run_dir = Path(run_dir)
    found = checkpoint_models(run_dir)
    dataset = dataset or default_dataset(training_record(run_dir))
    names = feature_names(features, dataset)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else torch.device(device)
    space, sets, rows = None, None, []
    for step, folder in found:
        model = load_model(folder).to(device)
        if sets is None:  # the same real images for every checkpoint
            sets = real_sets(model, run_dir, dataset, None, None, num_samples or DEFAULT_SAMPLES, False)
            space = cheapest(load_spaces(names, device))
            few = sets.reference[: sets.num_samples]  # MNIST's reference is the whole test set: N of it
            real = real_features(space, sets, [few, sets.floor], progress=False)
            reference = real(few)[0]
            floor_kid, floor_std = metrics.kernel_distance(reference, real(sets.floor)[0], seed=seed)
        fake, _ = generate_uint8(model, sets.num_samples, seed, labels=sets.labels)
        fake_features, _ = space(fake)
        kid, kid_std = metrics.kernel_distance(reference, fake_features, seed=seed)
        fid = metrics.frechet_distance(reference, fake_features)
        rows.append({"step": step, "kid": significant(kid), "kid_std": significant(kid_std), "fid": significant(fid)})
        print(f"step {step}: KID {kid:.5f} ± {kid_std:.5f}, FID {fid:.4g}", flush=True)
    best = min(rows, key=lambda r: r["kid"])
    return {
        "run": portable_path(run_dir),
        **dataset_record(dataset),
        "feature_space": space.description,
        "protocol": (
            f"{sets.num_samples} samples (torch.Generator seed {seed}) of each checkpoint vs the same {len(reference)} "
            f"real images; real-data floor: {sets.num_samples} other real images vs them (from {sets.words})."
        ),
        "num_samples": sets.num_samples,
        "kid_floor": significant(floor_kid),
        "kid_floor_std": significant(floor_std),
        "checkpoints": rows,
        "best_step": best["step"],
        "best_model": str(dict(found)[best["step"]].relative_to(run_dir)),  # within the run
        "within_std_of_best": [r["step"] for r in rows if r["kid"] - best["kid"] <= best["kid_std"]],
    }


def format_table(results: dict) -> str:
    lines = [f"{'step':>10}  {'KID':>10}  {'± std':>9}  {'FID':>9}"]
    for r in results["checkpoints"]:
        mark = "  <- best" if r["step"] == results["best_step"] else ""
        lines.append(f"{r['step']:>10}  {r['kid']:>10.5f}  {r['kid_std']:>9.5f}  {r['fid']:>9.4g}{mark}")
    lines.append(f"{'floor':>10}  {results['kid_floor']:>10.5f}  {results['kid_floor_std']:>9.5f}")
    lines.append(f"best: step {results['best_step']} (RUN/{results['best_model']}); {results['feature_space']}")
    close = [step for step in results["within_std_of_best"] if step != results["best_step"]]
    if close:
        lines.append(
            f"within the best's KID std: step {', '.join(map(str, close))}; at {results['num_samples']} samples these "
            "are not told apart (more --num-samples narrows the std)"
        )
    return "\n".join(lines)
