"""Register hf-dgm models with transformers' Auto classes without importing transformers eagerly.

``import hf_dgm`` must stay cheap, yet ``import hf_dgm; AutoModel.from_pretrained(dir)`` must work. A meta-path
hook waits for transformers to import its auto modules and registers our classes right after: the config classes
when ``configuration_auto`` is imported, the models when ``modeling_auto`` is. If they were already imported,
registration happens at once.
"""

import importlib.abc
import importlib.util
import sys

_CONFIG_AUTO = "transformers.models.auto.configuration_auto"
_MODEL_AUTO = "transformers.models.auto.modeling_auto"
_done: set[str] = set()


def _register(module_name: str) -> None:
    if module_name in _done:
        return
    _done.add(module_name)
    if module_name == _CONFIG_AUTO:
        from transformers.models.auto.configuration_auto import AutoConfig

        from .gan.configuration_gan import GANConfig
        from .vae.configuration_vae import VAEConfig

        AutoConfig.register(GANConfig.model_type, GANConfig, exist_ok=True)
        AutoConfig.register(VAEConfig.model_type, VAEConfig, exist_ok=True)
    else:
        from transformers.models.auto.modeling_auto import AutoModel

        from .gan.modeling_gan import GANConfig, GANModel
        from .vae.modeling_vae import VAEConfig, VAEModel

        AutoModel.register(GANConfig, GANModel, exist_ok=True)
        AutoModel.register(VAEConfig, VAEModel, exist_ok=True)


class _Loader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _register(module.__name__)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in (_CONFIG_AUTO, _MODEL_AUTO) or fullname in _done:
            return None
        for finder in sys.meta_path:  # ask the other finders, then wrap the loader they return
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader)
                return spec
        return None


def install_auto_registration() -> None:
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    for name in (_CONFIG_AUTO, _MODEL_AUTO):
        if name in sys.modules:
            _register(name)
    sys.meta_path.insert(0, _Finder())
