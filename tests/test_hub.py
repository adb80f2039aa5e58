"""Round trips through a local Hub-compatible server (tests/hub_server.py) with the real huggingface_hub client.

huggingface_hub reads HF_ENDPOINT when it is imported, so every client runs in a fresh subprocess."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml
from hub_server import serve

OWNER, OTHER = "hf_test_token_owner", "hf_test_token_other"


@pytest.fixture(scope="module")
def hub():
    server, state, url = serve()
    yield state, url
    server.shutdown()


def run_client(code, url, tmp_path, token=OWNER, hide_hf_dgm=False, expect_ok=True):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    env.update(
        HF_ENDPOINT=url,
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        TRANSFORMERS_VERBOSITY="error",
        HF_HUB_ETAG_TIMEOUT="5",
        HF_HUB_DOWNLOAD_TIMEOUT="5",
    )
    if token:
        env["HF_TOKEN"] = token
    prefix = 'import sys\nsys.modules["hf_dgm"] = None\n' if hide_hf_dgm else ""
    proc = subprocess.run(
        [sys.executable, "-c", prefix + textwrap.dedent(code)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if expect_ok:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


GAN_CONFIG = dict(latent_dim=8, generator_channels=4, discriminator_channels=4, use_ema=True, num_classes=10)
VAE_CONFIG = dict(latent_dim=4, base_channels=4, hidden_dim=16)
MAKE_MODELS = (
    f"""
    import torch
    from hf_dgm import GANConfig, GANModel, VAEConfig, VAEModel
    from safetensors.torch import save_file
    torch.manual_seed(0)
    gan = GANModel(GANConfig(**{GAN_CONFIG!r}))
    vae = VAEModel(VAEConfig(**{VAE_CONFIG!r}))
"""
    + """
    g = lambda: torch.Generator().manual_seed(0)
    expected = {"gan": gan.generate(4, generator=g(), class_labels=[1, 2, 3, 4]).sample,
                "vae": vae.generate(4, generator=g()).sample}
    save_file({k: v.contiguous() for k, v in expected.items()}, "expected.safetensors")
"""
)

# the client's own retries (huggingface_hub's 5 for an upload), waiting 0.1-0.2 s between tries instead of 1-8 s
FAST_RETRIES = """
    import functools
    from huggingface_hub import lfs
    lfs.http_backoff = functools.partial(lfs.http_backoff, base_wait_time=0.1, max_wait_time=0.2)
"""


def tiny_models():
    """MAKE_MODELS' GAN and VAE, built in this process: saving a folder needs no Hub client."""
    import torch

    from hf_dgm import GANConfig, GANModel, VAEConfig, VAEModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return GANModel(GANConfig(**GAN_CONFIG)), VAEModel(VAEConfig(**VAE_CONFIG))


CHECK_LOADED = """
    import torch
    from safetensors.torch import load_file
    expected = load_file("expected.safetensors")
    g = lambda: torch.Generator().manual_seed(0)
    assert torch.equal(gan.generate(4, generator=g(), class_labels=[1, 2, 3, 4]).sample, expected["gan"])
    assert torch.equal(vae.generate(4, generator=g()).sample, expected["vae"])
    print("outputs identical")
"""


def test_push_models_and_load_three_ways(hub, tmp_path):
    state, url = hub
    run_client(
        MAKE_MODELS
        + """
    gan.push_to_hub("tester/gan-roundtrip")
    vae.push_to_hub("tester/vae-roundtrip", commit_message="first VAE")
    """,
        url,
        tmp_path,
    )
    files = state.repos[("model", "tester/gan-roundtrip")]
    head = files.commits[files.branches["main"]]["files"]
    assert {"config.json", "model.safetensors", "modeling_gan.py", "README.md"} <= set(head)
    assert json.loads(head["config.json"])["auto_map"]["AutoModel"] == "modeling_gan.GANModel"
    card = head["README.md"].decode()
    assert "[More Information Needed]" not in card and "hf-dgm" in card
    assert "has not been evaluated yet" in card and "No training record" in card  # says what is missing
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "hf-dgm" and "class-conditional-image-generation" in meta["tags"]
    assert meta["license"] == "cc-by-sa-3.0"

    loaders = {
        "ours": """
    from hf_dgm import GANModel, VAEModel
    gan = GANModel.from_pretrained("tester/gan-roundtrip")
    vae = VAEModel.from_pretrained("tester/vae-roundtrip")
    """,
        "auto": """
    import hf_dgm
    from transformers import AutoModel
    gan = AutoModel.from_pretrained("tester/gan-roundtrip")
    vae = AutoModel.from_pretrained("tester/vae-roundtrip")
    assert type(gan).__module__ == "hf_dgm.gan.modeling_gan"
    """,
        "remote": """
    from transformers import AutoModel
    gan = AutoModel.from_pretrained("tester/gan-roundtrip", trust_remote_code=True)
    vae = AutoModel.from_pretrained("tester/vae-roundtrip", trust_remote_code=True)
    assert type(gan).__module__.startswith("transformers_modules")
    """,
    }
    for way, loader in loaders.items():
        proc = run_client(loader + CHECK_LOADED, url, tmp_path, hide_hf_dgm=way == "remote")
        assert "outputs identical" in proc.stdout, way


def test_push_pipelines_and_load_without_hf_dgm(hub, tmp_path):
    state, url = hub
    run_client(
        MAKE_MODELS
        + """
    from hf_dgm import GANPipeline, VAEPipeline
    GANPipeline(gan=gan).push_to_hub("tester/gan-pipe")
    VAEPipeline(vae=vae).push_to_hub("tester/vae-pipe")
    import numpy as np
    np.save("gan.npy", GANPipeline(gan=gan)(batch_size=3, generator=g(), class_labels=5, output_type="np").images)
    np.save("vae.npy", VAEPipeline(vae=vae)(batch_size=3, generator=g(), output_type="np").images)
    """,
        url,
        tmp_path,
    )
    repo = state.repos[("model", "tester/gan-pipe")]
    head = repo.commits[repo.branches["main"]]["files"]
    index = json.loads(head["model_index.json"])
    assert index["_class_name"] == ["pipeline_gan", "GANPipeline"] and index["gan"] == ["modeling_gan", "GANModel"]
    assert {"pipeline_gan.py", "README.md", "gan/modeling_gan.py", "gan/model.safetensors"} <= set(head)
    check = """
    import numpy as np, torch
    g = lambda: torch.Generator().manual_seed(0)
    a = gpipe(batch_size=3, generator=g(), class_labels=5, output_type="np").images
    b = vpipe(batch_size=3, generator=g(), output_type="np").images
    assert np.array_equal(a, np.load("gan.npy")) and np.array_equal(b, np.load("vae.npy"))
    print("pipelines identical")
    """
    loaders = {
        "ours": """
    from hf_dgm import GANPipeline, VAEPipeline
    gpipe = GANPipeline.from_pretrained("tester/gan-pipe")
    vpipe = VAEPipeline.from_pretrained("tester/vae-pipe")
    """,
        "remote": """
    from diffusers import DiffusionPipeline
    gpipe = DiffusionPipeline.from_pretrained("tester/gan-pipe", trust_remote_code=True)
    vpipe = DiffusionPipeline.from_pretrained("tester/vae-pipe", trust_remote_code=True)
    assert type(gpipe).__name__ == "GANPipeline"
    """,
    }
    for way, loader in loaders.items():
        proc = run_client(loader + check, url, tmp_path, hide_hf_dgm=way == "remote")
        assert "pipelines identical" in proc.stdout, way


def test_second_push_and_revisions(hub, tmp_path):
    state, url = hub
    code = (
        MAKE_MODELS
        + """
    import sys
    vae.save_pretrained("folder")
    from hf_dgm.hub import push_model_folder
    push_model_folder("folder", "tester/vae-revs")
    push_model_folder("folder", "tester/vae-revs")  # unchanged: nothing new
    """
    )
    run_client(code, url, tmp_path)
    repo = state.repos[("model", "tester/vae-revs")]
    assert len(repo.commits) == 1
    first = repo.branches["main"]
    blobs_before = len(state.blobs)
    run_client(
        """
    import torch
    from hf_dgm import VAEModel
    from hf_dgm.hub import push_model_folder
    vae = VAEModel.from_pretrained("folder")
    with torch.no_grad():
        vae.decoder.net[-1].bias.add_(1.0)
    vae.save_pretrained("folder")
    push_model_folder("folder", "tester/vae-revs", commit_message="changed weights")
    """,
        url,
        tmp_path,
    )
    assert len(repo.commits) == 2 and repo.branches["main"] != first
    assert len(state.blobs) == blobs_before + 1  # only the changed weights were uploaded
    proc = run_client(
        f"""
    import torch
    from hf_dgm import VAEModel
    old = VAEModel.from_pretrained("tester/vae-revs", revision="{first}")
    new = VAEModel.from_pretrained("tester/vae-revs")
    diff = (new.decoder.net[-1].bias - old.decoder.net[-1].bias)
    assert torch.allclose(diff, torch.ones_like(diff)), diff
    print("revisions ok")
    """,
        url,
        tmp_path,
    )
    assert "revisions ok" in proc.stdout


def test_private_repo_and_token_hygiene(hub, tmp_path):
    state, url = hub
    tiny_models()[0].save_pretrained(tmp_path / "folder")
    push = """
    from hf_dgm.hub import push_model_folder
    push_model_folder("folder", "tester/private-gan", private=True)
    """
    run_client(push, url, tmp_path)
    assert state.repos[("model", "tester/private-gan")].private
    load = """
    from hf_dgm import GANModel
    GANModel.from_pretrained("tester/private-gan")
    print("loaded")
    """
    assert "loaded" in run_client(load, url, tmp_path, token=OWNER).stdout
    for token in (None, OTHER):
        (tmp_path / f"t{token}").mkdir()
        proc = run_client(load, url, tmp_path / f"t{token}", token=token, expect_ok=False)
        assert proc.returncode != 0
        assert "RepositoryNotFound" in proc.stderr or "Repository Not Found" in proc.stderr or "401" in proc.stderr
        assert OWNER not in proc.stderr and OWNER not in proc.stdout
        if token:
            assert token not in proc.stderr
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hf_dgm.cli",
            "push",
            str(tmp_path / "folder"),
            "--repo-id",
            "tester/cli-push",
            "--token",
            OWNER,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_ENDPOINT": url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf_cli")},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert OWNER not in proc.stdout + proc.stderr
    head = state.repos[("model", "tester/cli-push")]
    for content in head.commits[head.branches["main"]]["files"].values():
        assert OWNER.encode() not in content and OTHER.encode() not in content


def test_failures_are_clear_and_retries_succeed(hub, tmp_path):
    import torch

    state, url = hub
    vae = tiny_models()[1]  # with weights of its own, so no other test has uploaded these blobs already
    torch.nn.init.normal_(vae.decoder.net[-1].bias, generator=torch.Generator().manual_seed(7))
    vae.save_pretrained(tmp_path / "folder")
    before = {p.name: p.read_bytes() for p in (tmp_path / "folder").iterdir()}
    push = """
    from hf_dgm.hub import push_model_folder
    push_model_folder("folder", "tester/flaky")
    print("pushed tester/flaky")
    """
    down = run_client(push, "http://127.0.0.1:9", tmp_path, expect_ok=False)  # nothing listens on port 9
    assert down.returncode != 0 and ("Connect" in down.stderr or "connect" in down.stderr)
    try:
        state.cut_uploads = 100  # every upload cut off: a clear error
        cut = run_client(FAST_RETRIES + push.replace("flaky", "flaky-cut"), url, tmp_path, expect_ok=False)
        assert cut.returncode != 0 and "Error" in cut.stderr
        state.cut_uploads = 1  # one upload cut off: the client's own retry recovers, with intact data
        assert "pushed" in run_client(FAST_RETRIES + push.replace("flaky", "flaky-once"), url, tmp_path).stdout
    finally:
        state.cut_uploads = 0
    try:
        state.fail_commits = 1
        failed = run_client(push, url, tmp_path, expect_ok=False)
        assert failed.returncode != 0 and "500" in failed.stderr
    finally:
        state.fail_commits = 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "folder").iterdir()} == before  # local files untouched
    both = run_client(push + push.replace("flaky", "flaky-cut"), url, tmp_path).stdout  # both now go through
    assert "pushed tester/flaky\n" in both and "pushed tester/flaky-cut\n" in both


def test_card_model_index_holds_eval_results(hub, tmp_path):
    state, url = hub
    results = {
        "protocol": "test protocol",
        "metrics": [
            {"name": "classifier-feature FID", "type": "fid", "value": 3.25},
            {"name": "precision (k=3)", "type": "precision", "value": 0.91},
        ],
    }
    run_client(
        MAKE_MODELS
        + f"""
    import json
    gan.save_pretrained("folder")
    open("folder/eval_results.json", "w").write(json.dumps({results!r}))
    open("folder/training_args.json", "w").write(json.dumps({{"dataset": "ylecun/mnist", "steps": 10}}))
    from PIL import Image
    Image.new("L", (8, 8)).save("folder/samples.png")
    from hf_dgm.hub import push_model_folder
    push_model_folder("folder", "tester/evaluated")
    # the share round trip: a model loaded from the folder keeps its record while its weights are the folder's
    from hf_dgm import GANModel
    loaded = GANModel.from_pretrained("folder")
    loaded.push_to_hub("tester/reshared")
    with torch.no_grad():
        next(loaded.parameters()).add_(1.0)
    loaded.push_to_hub("tester/changed")
    """,
        url,
        tmp_path,
    )
    for name in ("evaluated", "reshared"):
        repo = state.repos[("model", f"tester/{name}")]
        head = repo.commits[repo.branches["main"]]["files"]
        assert {"samples.png", "training_args.json", "eval_results.json"} <= set(head)
        card = head["README.md"].decode()
        meta = yaml.safe_load(card.split("---")[1])
        values = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
        assert values == {"classifier-feature FID": 3.25, "precision (k=3)": 0.91}
        assert "![Samples drawn with a fixed seed](samples.png)" in card and "test protocol" in card
        assert f"\n# {name}\n" in card  # named after the repo
    changed = state.repos[("model", "tester/changed")]
    head = changed.commits[changed.branches["main"]]["files"]
    card = head["README.md"].decode()
    assert not {"samples.png", "training_args.json", "eval_results.json"} & set(head)
    assert "these weights differ from those of the folder" in card and "model-index" not in card


def test_deploy_space(hub, tmp_path):
    state, url = hub
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text("print('hello')\n")
    (app / "README.md").write_text("---\ntitle: t\nsdk: gradio\napp_file: app.py\n---\n")
    (app / "requirements.txt").write_text("hf-dgm\n")
    run_client(
        f"""
    from hf_dgm.hub import deploy_space
    deploy_space("tester/demo", app_dir={str(app)!r})
    """,
        url,
        tmp_path,
    )
    repo = state.repos[("space", "tester/demo")]
    files = set(repo.commits[repo.branches["main"]]["files"])
    assert {"app.py", "README.md", "requirements.txt", "hf_dgm/__init__.py", "hf_dgm/gan/modeling_gan.py"} <= files


def test_train_with_push_to_hub(hub, tmp_path):
    from conftest import MNIST

    state, url = hub
    proc = run_client(
        f"""
    from hf_dgm.cli import main
    rc = main(["train", "vae", "--dataset", {MNIST!r}, "--output-dir", "out", "--max-samples", "64",
               "--batch-size", "16", "--max-steps", "2", "--base-channels", "4", "--hidden-dim", "16",
               "--latent-dim", "4", "--report-to", "none", "--no-progress-bar", "--checkpoint-every", "1",
               "--push-to-hub", "--hub-model-id", "tester/trained-vae", "--hub-checkpoint-branch", "checkpoints"])
    assert rc == 0
    """,
        url,
        tmp_path,
    )
    repo = state.repos[("model", "tester/trained-vae")]
    main_files = repo.commits[repo.branches["main"]]["files"]
    assert {"config.json", "model.safetensors", "training_args.json", "samples.png", "README.md"} <= set(main_files)
    assert "checkpoints" in repo.branches and repo.branches["checkpoints"] != repo.branches["main"]
    assert "tester/trained-vae" in main_files["README.md"].decode()  # snippets name the repo
    assert OWNER.encode() not in main_files["training_args.json"]
    assert OWNER not in proc.stdout + proc.stderr


TRAIN_WITH_PUSH = """
    from hf_dgm.cli import main
    rc = main(["train", "vae", "--dataset", {mnist!r}, "--output-dir", "out", "--max-samples", "64",
               "--batch-size", "16", "--max-steps", "2", "--base-channels", "4", "--hidden-dim", "16",
               "--latent-dim", "4", "--report-to", "none", "--no-progress-bar", "--checkpoint-every", "1",
               "--push-to-hub", "--hub-model-id", {repo!r}, *{extra!r}])
    assert rc == 0, rc
"""


def _summary(stderr: str) -> list[str]:
    """The lines of the end-of-run summary of failed pushes, after its heading."""
    return [line.strip() for line in stderr.split("pushes to the Hub failed", 1)[1].splitlines()[1:] if line.strip()]


def test_training_survives_an_unreachable_hub(hub, tmp_path):
    """Every push fails (nothing listens): each failure is one log line, the run finishes and saves its model, and
    the summary names what was not uploaded with the command that uploads it, which then does (it used to end in a
    traceback, and a failed checkpoint push killed the run before the final model was written)."""
    import shlex

    from conftest import MNIST

    state, url = hub
    repo_id = "tester/offline-vae"
    code = TRAIN_WITH_PUSH.format(mnist=MNIST, repo=repo_id, extra=["--hub-checkpoint-branch", "ckpt"])
    proc = run_client(code, "http://127.0.0.1:9", tmp_path, expect_ok=False)  # nothing listens on port 9
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "out" / "model.safetensors").is_file() and (tmp_path / "out" / "README.md").is_file()
    failures = [line for line in proc.stderr.splitlines() if "could not push" in line]
    assert len(failures) == 3, failures  # two checkpoints, then the final model: one line each
    assert f"could not push the final model to {repo_id} (ConnectError" in failures[-1]
    lines = _summary(proc.stderr)
    assert lines == [
        f"the checkpoint of step 1 was not uploaded to {repo_id} (branch 'ckpt'): superseded by the checkpoint of "
        "step 2, which was not uploaded either, see below",
        f"the checkpoint of step 2 was not uploaded to {repo_id} (branch 'ckpt'): upload it with: hf-dgm push "
        f"out/checkpoints/checkpoint-00000002/model --repo-id {repo_id} --revision ckpt",
        f"the final model was not uploaded to {repo_id}: upload it with: hf-dgm push out --repo-id {repo_id}",
    ]
    assert OWNER not in proc.stdout + proc.stderr
    for line in lines[1:]:  # the Hub is back: the summary's commands upload what was missed
        command = shlex.split(line.split("upload it with: ", 1)[1])[1:]  # after "hf-dgm"
        run_client(f"from hf_dgm.cli import main\nassert main({command!r}) == 0\n", url, tmp_path)
    repo = state.repos[("model", repo_id)]
    for branch in ("main", "ckpt"):
        assert {"config.json", "model.safetensors", "README.md"} <= set(repo.commits[repo.branches[branch]]["files"])


def test_failed_checkpoint_push_is_superseded(hub, tmp_path):
    """A server error on the first checkpoint's push: the run goes on, pushes the next checkpoint and the final model,
    and the summary says the missed one is superseded."""
    from conftest import MNIST

    state, url = hub
    repo_id = "tester/flaky-training"
    try:
        state.fail_commits = 1  # the first commit: the checkpoint of step 1
        code = TRAIN_WITH_PUSH.format(mnist=MNIST, repo=repo_id, extra=["--hub-checkpoint-branch", "ckpt"])
        proc = run_client(code, url, tmp_path)
    finally:
        state.fail_commits = 0
    repo = state.repos[("model", repo_id)]
    for branch in ("main", "ckpt"):
        assert "model.safetensors" in repo.commits[repo.branches[branch]]["files"]
    assert _summary(proc.stderr) == [
        f"the checkpoint of step 1 was not uploaded to {repo_id} (branch 'ckpt'): superseded by the checkpoint of "
        "step 2, which was uploaded"
    ]
