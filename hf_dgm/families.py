"""The model families hf-dgm ships, one record each: the one place that maps a config's ``model_type`` to its
classes, its code and what its card says. Imports nothing heavy; classes are imported on first use.

A family lives in ``hf_dgm/<name>/`` as ``configuration_<name>.py``, ``networks_<name>.py`` (plain torch, with an
``ARCHITECTURES`` registry; ``sampling_network``, ``prior_latents`` and ``images_from_latents`` for the fast path), ``modeling_<name>.py``
and ``pipeline_<name>.py``; its classes are ``<NAME>Config``, ``<NAME>Model`` and ``<NAME>Pipeline``.
"""

import ast
import json
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

CODE_MODULES = ("networks", "configuration", "modeling")  # in import order: what a model repo's code bundles


@dataclass(frozen=True)
class Family:
    name: str  # "gan": the folder hf_dgm/<name>/ and the pipeline's component name
    model_type: str  # config.json's model_type
    title: str  # short, for tables: "GAN"
    long_name: str  # in sentences: "variational autoencoder"
    card_fields: tuple[str, ...]  # config fields the model card lists (when set)
    has_likelihood: bool  # evaluation reports its NLL (ELBO and importance-weighted bound)
    has_encoder: bool  # its pipeline reconstructs images (encode, decode): evaluation's reconstructions
    citations: tuple[str, ...]
    # modules of hf_dgm/<name>/ that its networks file imports (``networks_hvae``, then ``latent_prior``, which imports
    # it), bundled before it on export
    extra_code: tuple[str, ...] = ()

    def module(self, kind: str):
        """``kind`` is one of CODE_MODULES or "pipeline"."""
        return import_module(f"hf_dgm.{self.name}.{kind}_{self.name}")

    @property
    def config_class(self):
        return getattr(self.module("configuration"), f"{self.name.upper()}Config")

    @property
    def model_class(self):
        return getattr(self.module("modeling"), f"{self.name.upper()}Model")

    @property
    def pipeline_class(self):
        return getattr(self.module("pipeline"), f"{self.name.upper()}Pipeline")

    @property
    def networks(self):
        return self.module("networks")

    def source_file(self, kind: str) -> Path:
        return Path(__file__).resolve().parent / self.name / f"{kind}_{self.name}.py"

    def code_files(self) -> list[Path]:
        """The family's modules a model repo's code bundles, in import order."""
        folder = Path(__file__).resolve().parent / self.name
        return [folder / f"{name}.py" for name in self.extra_code] + [self.source_file(k) for k in CODE_MODULES]


GAN = Family(
    name="gan",
    model_type="hf_dgm_gan",
    title="GAN",
    long_name="GAN",
    card_fields=("spectral_norm", "minibatch_std", "minibatch_discrimination_kernels", "use_ema"),
    has_likelihood=False,
    has_encoder=False,
    citations=(
        "@inproceedings{goodfellow2014gan, title={Generative Adversarial Nets}, author={Goodfellow, Ian and others}, "
        "booktitle={NeurIPS}, year={2014}}",
        "@article{radford2015dcgan, title={Unsupervised Representation Learning with Deep Convolutional Generative "
        "Adversarial Networks}, author={Radford, Alec and Metz, Luke and Chintala, Soumith}, journal={arXiv:1511.06434}, "
        "year={2015}}",
        "@inproceedings{salimans2016improved, title={Improved Techniques for Training GANs}, author={Salimans, Tim and "
        "others}, booktitle={NeurIPS}, year={2016}}",
    ),
)
VAE = Family(
    name="vae",
    model_type="hf_dgm_vae",
    title="VAE",
    long_name="variational autoencoder",
    card_fields=("likelihood",),
    has_likelihood=True,
    has_encoder=True,
    citations=(
        "@inproceedings{kingma2014vae, title={Auto-Encoding Variational Bayes}, author={Kingma, Diederik P. and "
        "Welling, Max}, booktitle={ICLR}, year={2014}}",
        "@inproceedings{burda2016iwae, title={Importance Weighted Autoencoders}, author={Burda, Yuri and Grosse, Roger "
        "and Salakhutdinov, Ruslan}, booktitle={ICLR}, year={2016}}",
    ),
    extra_code=("networks_hvae", "latent_prior"),
)
FAMILIES = {family.model_type: family for family in (GAN, VAE)}
BY_NAME = {family.name: family for family in FAMILIES.values()}


def family_of(model_type, where: str = "this config") -> Family:
    if model_type not in FAMILIES:
        raise ValueError(f"{where} has model_type={model_type!r}: expected one of {tuple(FAMILIES)}.")
    return FAMILIES[model_type]


def read_config(model_dir) -> dict:
    """config.json of a model folder as saved, with one clear error for a missing, broken or non-object file."""
    path = Path(model_dir) / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"No config.json in {str(model_dir)!r}: not a model folder.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{str(path)!r} holds a JSON {type(config).__name__}: expected an object of config fields.")
    return config


def config_defaults(family: Family) -> dict:
    """The defaults of the family's config class's own fields, read from its source file without importing it (the
    class imports transformers, about 0.5 s that ``hf-dgm sample`` does without). A default is a literal, a
    ``field(default_factory=lambda: <literal>)`` or a constant of ``file_utils``; a test checks them against the
    class."""
    tree = ast.parse(family.source_file("configuration").read_text())
    name = f"{family.name.upper()}Config"
    body = next(node.body for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name)
    return {
        stmt.target.id: _default_value(stmt.value)
        for stmt in body
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None
    }


def _default_value(node: ast.expr):
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "field":
        factory = next(keyword.value for keyword in node.keywords if keyword.arg == "default_factory")
        return ast.literal_eval(factory.body)
    if isinstance(node, ast.Name):
        return getattr(import_module("hf_dgm.file_utils"), node.id)
    return ast.literal_eval(node)


def load_config(model_dir) -> tuple[Family, dict]:
    """The family and the config of a model folder as its config class loads it: the class's defaults for the fields
    the saved file lacks (fields newer than the file), the saved values for the others. The one way hf-dgm reads a
    config without transformers (``hf-dgm sample``, the Space's checks)."""
    saved = read_config(model_dir)
    family = family_of(saved.get("model_type"), f"{str(Path(model_dir) / 'config.json')!r}")
    return family, {**config_defaults(family), **saved}


def family_of_folder(model_dir) -> Family:
    return family_of(read_config(model_dir).get("model_type"), f"{str(Path(model_dir) / 'config.json')!r}")
