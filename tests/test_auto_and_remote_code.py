"""AutoModel registration, cheap `import hf_dgm`, and zero-install loading with trust_remote_code."""

import ast
import json
import textwrap

import pytest
import torch
from conftest import REPO_ROOT, run_python, tiny_gan_kwargs, tiny_vae_kwargs
from safetensors.torch import save_file

from hf_dgm import GANConfig, GANModel, VAEConfig, VAEModel
from hf_dgm.cli import main
from hf_dgm.families import BY_NAME
from hf_dgm.remote_code import bundle, export_code, model_code_paths, pipeline_code_paths

HEAVY = ("torch", "transformers", "diffusers", "gradio", "accelerate", "datasets")


def test_import_hf_dgm_is_cheap():
    code = textwrap.dedent(f"""
        import sys
        import hf_dgm
        heavy = [m for m in {HEAVY!r} if m in sys.modules]
        assert not heavy, heavy
        from hf_dgm import cli
        cli.build_parser()
        heavy = [m for m in {HEAVY!r} if m in sys.modules]
        assert not heavy, heavy
        print("ok")
    """)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("transformers_first", [False, True])
def test_automodel_after_import_hf_dgm(tmp_path, transformers_first):
    torch.manual_seed(0)
    GANModel(GANConfig(**tiny_gan_kwargs())).save_pretrained(tmp_path / "gan")
    VAEModel(VAEConfig(**tiny_vae_kwargs())).save_pretrained(tmp_path / "vae")
    order = "import transformers.models.auto.modeling_auto\nimport hf_dgm" if transformers_first else "import hf_dgm"
    code = order + textwrap.dedent(f"""
        from transformers import AutoConfig, AutoModel
        gan = AutoModel.from_pretrained({str(tmp_path / "gan")!r})
        vae = AutoModel.from_pretrained({str(tmp_path / "vae")!r})
        print(type(gan).__module__, type(gan).__name__, type(vae).__name__,
              type(AutoConfig.from_pretrained({str(tmp_path / "vae")!r})).__name__)
    """)
    proc = run_python(code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["hf_dgm.gan.modeling_gan", "GANModel", "VAEModel", "VAEConfig"]


def test_saved_folder_holds_no_code_until_exported(tmp_path, tiny_gan, tiny_vae):
    """save_pretrained writes config and weights only; `hf-dgm export` attaches one generated module and auto_map."""
    tiny_gan.save_pretrained(tmp_path / "gan")
    tiny_vae.save_pretrained(tmp_path / "vae")
    for family in ("gan", "vae"):
        folder = tmp_path / family
        assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors"}
        assert "auto_map" not in json.loads((folder / "config.json").read_text())
        assert main(["export", str(folder)]) == 0
        assert {p.name for p in folder.glob("*.py")} == {f"modeling_{family}.py"}
        assert json.loads((folder / "config.json").read_text())["auto_map"] == {
            "AutoConfig": f"modeling_{family}.{family.upper()}Config",
            "AutoModel": f"modeling_{family}.{family.upper()}Model",
        }
        # module-level imports: third-party packages only. (push_to_hub imports hf_dgm.hub inside a try/except,
        # which transformers' import check skips.)
        source = (folder / f"modeling_{family}.py").read_text()
        imports = [ln for ln in source.splitlines() if ln.startswith(("import ", "from "))]
        assert not [ln for ln in imports if "hf_dgm" in ln or ln.startswith("from .")], imports


@pytest.mark.parametrize("family", sorted(BY_NAME))
def test_bundles_define_each_name_once(family):
    """A bundle concatenates modules: a top-level name defined twice would silently shadow the first."""
    for paths in (model_code_paths(BY_NAME[family]), pipeline_code_paths(BY_NAME[family])):
        tree = ast.parse(bundle(paths))
        names = [
            target.id if isinstance(target, ast.Name) else node.name
            for node in tree.body
            for target in (node.targets if isinstance(node, ast.Assign) else [node])
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) or isinstance(target, ast.Name)
        ]
        assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_bundle_refuses_imports_it_cannot_resolve(tmp_path):
    (tmp_path / "a.py").write_text("from .b import thing\n")
    with pytest.raises(ValueError, match="imports .b, which the bundle"):
        bundle([tmp_path / "a.py"])


@pytest.mark.parametrize("family", ["gan", "gan-self-conditioned", "vae", "vae-pixel-context"])
def test_trust_remote_code_without_hf_dgm(tmp_path, family):
    torch.manual_seed(0)
    if family == "vae-pixel-context":  # its likelihood (continuous: decoding rounds to 8 bits) with a live context
        model = VAEModel(VAEConfig(**tiny_vae_kwargs(likelihood="logistic_mixture", num_mixtures=2, pixel_context=3)))
        torch.nn.init.normal_(model.decoder.pixel_context.mix[-1].weight, std=0.3)
        images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)).mul(255).round().div(255)
        expected = model(images, sample_posterior=False).loss.reshape(1).detach()
        images = "torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)).mul(255).round().div(255)"
        call = f"model({images}, sample_posterior=False).loss.reshape(1)"
    elif family == "gan":
        model = GANModel(GANConfig(**tiny_gan_kwargs(use_ema=True, num_classes=10, spectral_norm=True)))
        expected = model.generate(4, generator=torch.Generator().manual_seed(0), class_labels=[0, 1, 2, 3]).sample
        call = "model.generate(4, generator=torch.Generator().manual_seed(0), class_labels=[0, 1, 2, 3]).sample"
    elif family == "gan-self-conditioned":  # within its 2 classes: the latent picks one of the class's clusters
        clusters = dict(cluster_frequencies=[0.2, 0.3, 0.5], cluster_classes=[0, 1, 1])
        model = GANModel(GANConfig(**tiny_gan_kwargs(use_ema=True, num_classes=2, **clusters)))
        call = "model.generate(8, generator=torch.Generator().manual_seed(0), class_labels=[0, 1] * 4).sample"
        expected = model.generate(8, generator=torch.Generator().manual_seed(0), class_labels=[0, 1] * 4).sample
    else:
        model = VAEModel(VAEConfig(**tiny_vae_kwargs(likelihood="gaussian")))
        expected = model.generate(4, generator=torch.Generator().manual_seed(0)).sample
        call = "model.generate(4, generator=torch.Generator().manual_seed(0)).sample"
    model.save_pretrained(tmp_path / "model")
    export_code(tmp_path / "model")
    save_file({"expected": expected.contiguous()}, str(tmp_path / "expected.safetensors"))
    code = textwrap.dedent(f"""
        import sys
        sys.modules["hf_dgm"] = None  # hf_dgm is not importable in this interpreter
        try:
            import hf_dgm
        except ImportError:
            pass
        else:
            raise SystemExit("hf_dgm should not be importable")
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel
        model = AutoModel.from_pretrained("model", trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        out = {call}
        expected = load_file("expected.safetensors")["expected"]
        # the same networks and weights; across processes a CPU convolution has once differed in the last bits (CI)
        assert torch.allclose(out, expected, rtol=0, atol=1e-5), f"outputs differ by {{(out - expected).abs().max()}}"
        print("ok", type(model).__name__)
    """)
    proc = run_python(code, cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["ok", f"{family.split('-')[0].upper()}Model"]


def test_remote_code_checks_weights_too(tmp_path, tiny_vae):
    """The strict weight check travels with the code: a mismatched folder fails without hf_dgm as well."""
    tiny_vae.save_pretrained(tmp_path / "model")
    export_code(tmp_path / "model")
    cfg_path = tmp_path / "model" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(likelihood="gaussian", gaussian_variance="learned")
    cfg_path.write_text(json.dumps(cfg))
    code = textwrap.dedent("""
        import sys
        sys.modules["hf_dgm"] = None
        from transformers import AutoModel
        try:
            AutoModel.from_pretrained("model", trust_remote_code=True)
        except ValueError as err:
            print("raised", "log_scale" in str(err))
    """)
    proc = run_python(code, cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf_home")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["raised", "True"]


def test_repo_root_is_not_needed(tmp_path):
    """Sanity: the subprocess tests run outside the source tree."""
    assert not str(tmp_path).startswith(REPO_ROOT)
