"""The end of a run: the final model folder (config, weights, training record, sample grid, card) and, when asked,
its push to the Hub. Runs on the main process only."""

import logging
import os

from ..file_utils import write_json_atomic
from ..image_processing import make_grid, save_image_atomic, to_uint8
from ..records import dataset_record, portable_path

logger = logging.getLogger("hf_dgm.training")


PATH_ARGUMENTS = ("output_dir", "init_from", "resume_from")  # recorded without the machine's directories


def training_args_record(trainer) -> dict:
    """training_args.json: every argument, plus the processes, device and data the run had. The dataset and the paths
    are recorded portably (hf_dgm.records): a Hub id as given, a local dataset by its name and content hash."""
    args = trainer.args.to_dict()
    return {
        "trainer": trainer.model_kind,
        **args,
        **{k: portable_path(args[k]) for k in PATH_ARGUMENTS if k in args},
        **dataset_record(args["dataset"]),
        "num_processes": trainer.accelerator.num_processes,
        "device": str(trainer.device),
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
        hardware=hardware_description(trainer.device),
        skipped_steps=trainer.num_skipped,
    )
    write_json_atomic(output_dir / "training_args.json", record)
    save_image_atomic(make_grid(to_uint8(trainer.sample_grid_images())), output_dir / "samples.png")
    from ..model_card import write_model_card

    write_model_card(output_dir, repo_id=args.hub_model_id)
    if args.push_to_hub:
        from ..hub import push_model_folder

        commit = push_model_folder(
            output_dir,
            args.hub_model_id,
            private=args.hub_private,
            commit_message=f"Trained with hf-dgm for {trainer.step} steps",
        )
        logger.info("pushed %s to %s", output_dir, commit.commit_url)


def hardware_description(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores)"
