"""hf-dgm: GANs and VAEs as Hugging Face models and diffusers pipelines.

Importing this package is cheap: it imports no torch, transformers, diffusers or gradio. Public names are
loaded on first access (PEP 562 ``__getattr__``), and the models register with transformers' ``AutoConfig`` /
``AutoModel`` as soon as transformers' auto classes are imported (see ``hf_dgm._auto``), so that
``import hf_dgm; AutoModel.from_pretrained(path)`` works.
"""

from importlib import import_module

from ._auto import install_auto_registration

__version__ = "0.1.0"

_LAZY = {
    "GANConfig": "hf_dgm.gan.configuration_gan",
    "GANModel": "hf_dgm.gan.modeling_gan",
    "GeneratorOutput": "hf_dgm.gan.modeling_gan",
    "DiscriminatorOutput": "hf_dgm.gan.modeling_gan",
    "GANOutput": "hf_dgm.gan.modeling_gan",
    "GANPipeline": "hf_dgm.gan.pipeline_gan",
    "VAEConfig": "hf_dgm.vae.configuration_vae",
    "VAEModel": "hf_dgm.vae.modeling_vae",
    "VAEOutput": "hf_dgm.vae.modeling_vae",
    "VAEEncoderOutput": "hf_dgm.vae.modeling_vae",
    "VAEDecoderOutput": "hf_dgm.vae.modeling_vae",
    "DiagonalGaussianDistribution": "hf_dgm.vae.modeling_vae",
    "VAEPipeline": "hf_dgm.vae.pipeline_vae",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hf_dgm' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


install_auto_registration()
