"""Portable records (hf_dgm.records): datasets by Hub id or by name and content hash, paths without the machine's
directories; the cards read them."""

import hashlib
import json

import pytest
from conftest import MNIST, tiny_gan_kwargs, tiny_train_kwargs

from hf_dgm import GANConfig, GANModel
from hf_dgm.records import dataset_record, dataset_sha256, is_recorded_dataset, model_reference, portable_path

TINY = dict(generator_channels=4, discriminator_channels=4, latent_dim=8)


def test_portable_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "a").mkdir(parents=True)
    assert portable_path(tmp_path / "runs" / "a") == "runs/a"  # below the working directory: relative
    assert portable_path("runs/a") == "runs/a" and portable_path("latest") == "latest"  # relative: as given
    assert portable_path("/elsewhere/out/run-7") == "run-7"  # elsewhere: its name only
    assert portable_path(None) is None
    assert model_reference("you/some-gan") == "you/some-gan" and model_reference(tmp_path / "runs" / "a") == "runs/a"


def test_dataset_record_hashes_the_files_datasets_reads(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    (folder / "train-00000-of-00001.parquet").write_bytes(b"rows")
    (folder / "README.md").write_text("a card is not data")
    listing = f"{hashlib.sha256(b'rows').hexdigest()}  train-00000-of-00001.parquet\n"  # sha256sum's format
    expected = hashlib.sha256(listing.encode()).hexdigest()
    assert dataset_record(str(folder)) == {"dataset": "pics", "dataset_sha256": expected}
    (folder / "README.md").write_text("edited")
    assert dataset_sha256(folder) == expected  # only the data files count
    assert dataset_record("ylecun/mnist") == {"dataset": "ylecun/mnist"}
    record = dataset_record(str(folder))
    assert is_recorded_dataset(record, str(folder)) and not is_recorded_dataset(record, "pics")
    (folder / "train-00000-of-00001.parquet").write_bytes(b"other rows")
    assert not is_recorded_dataset(record, str(folder))  # same name, other content
    assert is_recorded_dataset({"dataset": "ylecun/mnist"}, "ylecun/mnist")


def test_a_run_records_no_machine_path(tmp_path, monkeypatch):
    from hf_dgm.training import GANTrainingArguments, train_gan

    monkeypatch.chdir(tmp_path)
    train_gan(GANTrainingArguments(**tiny_train_kwargs(tmp_path / "runs" / "gan", max_steps=2, **TINY)))
    record = json.loads((tmp_path / "runs" / "gan" / "training_args.json").read_text())
    assert record["output_dir"] == "runs/gan"
    assert record["dataset"] == "mnist" and record["dataset_sha256"] == dataset_sha256(MNIST)
    assert str(tmp_path) not in json.dumps(record) and MNIST not in json.dumps(record)


def test_default_dataset_of_a_record(tmp_path, monkeypatch):
    """`hf-dgm evaluate` without --dataset: the recorded data where it is found with its hash, else MNIST's or ask."""
    from hf_dgm.evaluation.evaluate import default_dataset

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "pics").mkdir(parents=True)
    (tmp_path / "data" / "pics" / "train.parquet").write_bytes(b"rows")
    record = dataset_record(str(tmp_path / "data" / "pics"))
    assert record["dataset"] == "data/pics" and default_dataset(record) == "data/pics"
    (tmp_path / "data" / "pics" / "train.parquet").write_bytes(b"changed")
    with pytest.raises(ValueError, match="local dataset 'data/pics' .*not found here: pass --dataset"):
        default_dataset(record)
    assert default_dataset({}) == "ylecun/mnist"
    assert default_dataset({"dataset": "you/pics"}) == "you/pics"
    assert default_dataset({"dataset": "mnist", "dataset_sha256": "0" * 64}) == "ylecun/mnist"
    with pytest.raises(ValueError, match="local dataset 'pics' .*pass --dataset"):
        default_dataset({"dataset": "pics", "dataset_sha256": "0" * 64})


@pytest.mark.parametrize("num_classes", [None, 10])
def test_card_pipeline_tag_and_source(tmp_path, num_classes):
    """Only an unconditional model claims the Hub's unconditional task; the card names the source repository."""
    import tomllib
    from pathlib import Path

    import yaml

    from hf_dgm.model_card import SOURCE_REPOSITORY, render_model_card

    GANModel(GANConfig(**tiny_gan_kwargs(num_classes=num_classes))).save_pretrained(tmp_path)
    card = str(render_model_card(tmp_path))
    meta = yaml.safe_load(card.split("---")[1])
    assert meta.get("pipeline_tag") == (None if num_classes else "unconditional-image-generation")
    assert f"pip install git+{SOURCE_REPOSITORY}" in card and "not on PyPI" not in card
    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert pyproject["project"]["urls"]["Repository"] == SOURCE_REPOSITORY


def test_the_known_emoji_hash_is_the_built_files():
    """The card's Noto Emoji entry is the hash of the file scripts/build_emoji_dataset.py checks against."""
    import importlib.util
    from pathlib import Path

    from hf_dgm.model_card import KNOWN_DATASETS

    path = Path(__file__).resolve().parent.parent / "scripts" / "build_emoji_dataset.py"
    spec = importlib.util.spec_from_file_location("build_emoji_dataset", path)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    listing = f"{build.EXPECTED_SHA256[64]}  {build.PARQUET}\n"
    (emoji,) = [d for d in KNOWN_DATASETS.values() if d.name == "emoji"]
    assert KNOWN_DATASETS[hashlib.sha256(listing.encode()).hexdigest()] is emoji
    assert emoji.license[0] == "apache-2.0" and "Noto Emoji" in emoji.license[1]
