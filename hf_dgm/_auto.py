"""Register hf-dgm's families with transformers' ``AutoConfig`` / ``AutoModel`` without importing transformers.

``import hf_dgm`` must stay cheap (eager registration imports ``transformers.modeling_utils``: 4.7 s here), yet
``import hf_dgm; AutoModel.from_pretrained(dir)`` must work. transformers has no plugin entry point, so a meta-path
finder waits for its two auto modules to be imported and registers every family of ``hf_dgm.families`` right after
(the configs with ``configuration_auto``, the models with ``modeling_auto``); if they are already imported,
registration happens at once.
"""

import importlib.abc
import sys

from .families import FAMILIES

_CONFIG_AUTO = "transformers.models.auto.configuration_auto"
_MODEL_AUTO = "transformers.models.auto.modeling_auto"


def _register(auto_module) -> None:
    for family in FAMILIES.values():
        if auto_module.__name__ == _CONFIG_AUTO:
            auto_module.AutoConfig.register(family.model_type, family.config_class, exist_ok=True)
        else:
            auto_module.AutoModel.register(family.config_class, family.model_class, exist_ok=True)


class _RegisterAfterExec(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _register(module)


class _AutoModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in (_CONFIG_AUTO, _MODEL_AUTO):
            return None
        for finder in sys.meta_path:  # let the other finders find it, then wrap the loader they return
            spec = (
                finder.find_spec(fullname, path, target)
                if finder is not self and hasattr(finder, "find_spec")
                else None
            )
            if spec is not None and spec.loader is not None:
                spec.loader = _RegisterAfterExec(spec.loader)
                return spec
        return None


def install_auto_registration() -> None:
    if any(isinstance(finder, _AutoModuleFinder) for finder in sys.meta_path):
        return
    for name in (_CONFIG_AUTO, _MODEL_AUTO):
        if name in sys.modules:
            _register(sys.modules[name])
    sys.meta_path.insert(0, _AutoModuleFinder())
