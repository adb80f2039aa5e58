"""The end of a run: the final model folder (config, weights, training record, sample grid, card) and, when asked,
its push to the Hub. Runs on the main process only. The same folder can be packaged later from any checkpoint of a
finished or stopped run (`package_checkpoint`: a model shipped from the step that scored best).

An upload never costs a run its output: a failed push (the final model, or a checkpoint to
--hub-checkpoint-branch) is logged in one line and the run goes on; the summary at the end names what was not
uploaded and the ``hf-dgm push`` command that uploads it."""

import json
import logging
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..file_utils import atomic_write, write_json_atomic
from ..image_processing import save_image_atomic
from ..records import dataset_record, portable_path

logger = logging.getLogger("hf_dgm.training")


PATH_ARGUMENTS = ("output_dir", "init_from", "grow_from", "resume_from")  # recorded without the machine's directories


def training_args_record(trainer) -> dict:
    """training_args.json: every argument, plus the processes, device, hardware and data the run had. The dataset and
    the paths are recorded portably (hf_dgm.records): a Hub id as given, a local dataset by its name and content
    hash."""
    args = trainer.args.to_dict()
    return {
        "trainer": trainer.model_kind,
        **args,
        **{k: portable_path(args[k]) for k in PATH_ARGUMENTS if k in args},
        **dataset_record(args["dataset"]),
        "num_processes": trainer.accelerator.num_processes,
        "device": str(trainer.device),
        "hardware": hardware_description(trainer.device),
        **trainer.data.record(),
    }


def publish_run(trainer) -> None:
    """Write the final model folder into the output directory, and push it with --push-to-hub."""
    args, output_dir = trainer.args, trainer.output_dir
    trainer.model.save_pretrained(output_dir)
    record = training_args_record(trainer)
    record.update(
        steps=trainer.step,
        training_time_s=round(trainer.training_time_s, 1),
        skipped_steps=trainer.num_skipped,
    )
    write_json_atomic(output_dir / "training_args.json", record)
    save_image_atomic(trainer.final_sample_grid(), output_dir / "samples.png")
    from ..model_card import write_model_card

    write_model_card(output_dir, repo_id=args.hub_model_id)
    if args.push_to_hub:
        push_or_record(trainer, output_dir, "the final model", None, f"Trained with hf-dgm for {trainer.step} steps")


def finished_model(model_dir: Path, scratch: Path) -> Path:
    """A checkpoint's model folder as the end of a run publishes it: a grown GAN whose fade-in is over without its
    fade-in layers (``GANModel.finish_fade_in``, saved in `scratch`); any other model as it is."""
    if not json.loads((model_dir / "config.json").read_text()).get("fade_in_steps"):
        return model_dir
    from ..gan.modeling_gan import GANModel

    model = GANModel.from_pretrained(model_dir)
    if not model.finish_fade_in():
        return model_dir
    model.save_pretrained(scratch)
    return scratch


def package_checkpoint(run_dir, step: int, dest) -> Path:
    """Package checkpoint `step` of a finished or stopped run (its output folder `run_dir`) in `dest` as the folder the
    trainer writes at the end of a run: the checkpoint's config.json and model.safetensors; training_args.json, the
    run's record with the steps, training time and skipped steps of that checkpoint and ``run_steps``, the steps the
    run trained (a finished run's, else its latest checkpoint's); samples.png, the grid the loop drew at that step; the
    card, which says so. An eval_results.json in `dest` measured other weights: it is removed. Bad input (no such
    checkpoint or grid, no record, `dest` the run's own folder) is one line, before anything is written."""
    from ..model_card import write_model_card
    from .checkpointing import checkpoint_step, list_checkpoints

    run_dir, dest = Path(run_dir), Path(dest)
    found = {checkpoint_step(p): p for p in list_checkpoints(run_dir)}
    grid = run_dir / "samples" / f"step_{step:08d}.png"
    if step not in found:
        raise FileNotFoundError(
            f"{str(run_dir)!r} has no checkpoint of step {step}; it has checkpoints of steps: "
            f"{', '.join(map(str, sorted(found))) or 'none'}."
        )
    if not grid.is_file():
        raise FileNotFoundError(
            f"{str(run_dir)!r} has no sample grid of step {step} (samples/{grid.name}): the loop draws one every "
            "--sample-every steps; package a step that has one."
        )
    if not (run_dir / "training_args.json").is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} has no training_args.json: it is not the output folder of a run.")
    if dest.resolve() == run_dir.resolve():
        raise ValueError(f"{str(dest)!r} is the run's own folder: package its checkpoint into another folder.")
    record = json.loads((run_dir / "training_args.json").read_text())
    state = json.loads((found[step] / "state.json").read_text())
    record.update(
        steps=state["step"],
        training_time_s=round(state["training_time_s"], 1),
        skipped_steps=state.get("num_skipped", 0),
        run_steps=record.get("steps", max(found)),
    )
    (dest / "eval_results.json").unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as finished:
        model = finished_model(found[step] / "model", Path(finished))
        files = {
            "config.json": model / "config.json",
            "model.safetensors": model / "model.safetensors",
            "samples.png": grid,
        }
        for name, source in files.items():
            atomic_write(dest / name, lambda tmp, source=source: shutil.copyfile(source, tmp))
    write_json_atomic(dest / "training_args.json", record)
    write_model_card(dest, repo_id=record.get("hub_model_id"))
    return dest


@dataclass(frozen=True)
class Upload:
    """One push of the run: what, from which folder, to which branch (None: main), at which step, and whether it
    went through."""

    what: str  # "the final model", "the checkpoint of step 500"
    folder: Path
    revision: str | None
    step: int
    ok: bool


def push_or_record(trainer, folder: Path, what: str, revision: str | None, commit_message: str | None = None) -> bool:
    """Push a model folder to --hub-model-id (on `revision`) and record the attempt in ``trainer.uploads``. Any failure
    (network, server, permissions) is logged in one line and returns False: the run and its files come first."""
    from ..hub import push_model_folder

    args = trainer.args
    try:
        commit = push_model_folder(
            folder,
            args.hub_model_id,
            private=args.hub_private,
            revision=revision,
            commit_message=commit_message or f"{what[0].upper()}{what[1:]}",
        )
    except Exception as err:  # whatever the upload raised: never the run's end
        reason = str(err).strip().splitlines()[0] if str(err).strip() else "no message"
        logger.warning(
            "could not push %s to %s (%s: %s); it stays in %s",
            what, _target(args.hub_model_id, revision), type(err).__name__, reason, folder,
        )  # fmt: skip
        trainer.uploads.append(Upload(what, Path(folder), revision, trainer.step, ok=False))
        return False
    logger.info("pushed %s to %s", folder, commit.commit_url)
    trainer.uploads.append(Upload(what, Path(folder), revision, trainer.step, ok=True))
    return True


def _target(repo_id: str, revision: str | None) -> str:
    return f"{repo_id} (branch {revision!r})" if revision else repo_id


def push_command(trainer, upload: Upload) -> str:
    args = trainer.args
    command = ["hf-dgm", "push", str(upload.folder), "--repo-id", args.hub_model_id]
    command += ["--private"] if args.hub_private else []
    command += ["--revision", upload.revision] if upload.revision else []
    return shlex.join(command)


def unpushed_summary(trainer) -> str | None:
    """None when every push went through; else what was not uploaded, each with the ``hf-dgm push`` command that
    uploads it, or why none is needed (a later push to the same branch supersedes it) or possible (pruned)."""
    failed = [upload for upload in trainer.uploads if not upload.ok]
    if not failed:
        return None
    lines = [f"{len(failed)} of {len(trainer.uploads)} pushes to the Hub failed; the run's files are on disk:"]
    for upload in failed:
        later = [u for u in trainer.uploads if u.revision == upload.revision and u.step > upload.step]
        if later:
            status = "was uploaded" if later[-1].ok else "was not uploaded either, see below"
            action = f"superseded by {later[-1].what}, which {status}"
        elif not (upload.folder / "model.safetensors").is_file():
            action = "its folder was since pruned (--keep-checkpoints)"
        else:
            action = f"upload it with: {push_command(trainer, upload)}"
        lines.append(
            f"  {upload.what} was not uploaded to {_target(trainer.args.hub_model_id, upload.revision)}: {action}"
        )
    return "\n".join(lines)


def hardware_description(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores)"
