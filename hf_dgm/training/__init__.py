"""Trainers behind ``hf-dgm train gan|vae`` (and ``accelerate launch -m hf_dgm.training.gan`` / ``.vae``).

Python API::

    from hf_dgm.training import GANTrainingArguments, train_gan
    model = train_gan(GANTrainingArguments(output_dir="out", max_steps=100))
"""

from importlib import import_module

_LAZY = {
    "GANTrainingArguments": "hf_dgm.training.gan",
    "GANTrainer": "hf_dgm.training.gan",
    "train_gan": "hf_dgm.training.gan",
    "VAETrainingArguments": "hf_dgm.training.vae",
    "VAETrainer": "hf_dgm.training.vae",
    "train_vae": "hf_dgm.training.vae",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hf_dgm.training' has no attribute {name!r}")
