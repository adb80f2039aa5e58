"""What every family's config and model must do, run for each family of hf_dgm.families (the family files test
what is their own: architectures, losses, sampling)."""

import json

import pytest
import torch
from conftest import tiny_gan_kwargs, tiny_vae_kwargs

from hf_dgm.families import BY_NAME

TINY = {
    "gan": tiny_gan_kwargs(num_classes=10, spectral_norm=True, use_ema=True),
    "vae": tiny_vae_kwargs(num_classes=10),
}


def make(name: str, **overrides):
    family = BY_NAME[name]
    torch.manual_seed(0)
    return family.model_class(family.config_class(**{**TINY[name], **overrides}))


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_config_json_round_trip(tmp_path, name):
    config = make(name).config
    config.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["model_type"] == BY_NAME[name].model_type and data["format_version"] == 1
    assert BY_NAME[name].config_class.from_pretrained(tmp_path).to_dict() == config.to_dict()


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_saved_folder_is_config_and_safetensors_only(tmp_path, name):
    make(name).save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "model.safetensors"}  # no pickle, no code
    mode = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert mode["model.safetensors"] == mode["config.json"]  # not safetensors' 0600


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_load_truncated_or_corrupt_weights(tmp_path, name):
    make(name).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    for broken in (data[: len(data) // 2], data[:100], b"\x00" * 64):
        weights.write_bytes(broken)
        with pytest.raises(OSError, match="truncated or corrupt"):
            BY_NAME[name].model_class.from_pretrained(tmp_path)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_load_other_model_type_raises(tmp_path, name):
    other = next(n for n in BY_NAME if n != name)
    make(other).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=f"model_type='{BY_NAME[other].model_type}'"):
        BY_NAME[name].model_class.from_pretrained(tmp_path)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_sizes_are_checked_before_the_model_is_built(tmp_path, name):
    """A config is checked on the meta device before anything is allocated: a small weights file with a huge config
    fails on the size budget (not after allocating what the config declares), a moderate mismatch on the shapes."""
    make(name).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for latent_dim, error in ((10**9, r"declares [\d,]+ parameters .* more than the budget"), (9, "shapes differ")):
        (tmp_path / "config.json").write_text(json.dumps({**config, "latent_dim": latent_dim}))
        with pytest.raises(ValueError, match=error):
            BY_NAME[name].model_class.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="activation values to draw one image"):
        BY_NAME[name].model_class.from_pretrained(tmp_path, max_activations=100)
    assert (
        BY_NAME[name].model_class.from_pretrained(tmp_path, max_parameters=10**6).config.latent_dim
        == config["latent_dim"]
    )
