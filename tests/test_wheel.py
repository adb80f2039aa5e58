"""The wheel works without the repository: built, installed into a fresh venv outside the checkout, then
train (2 steps) -> save -> card -> sample -> push to the local Hub server, all from that venv."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from conftest import MNIST, REPO_ROOT
from hub_server import serve

OWNER = "hf_test_token_owner"


def test_wheel_trains_saves_cards_samples_and_pushes(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), REPO_ROOT],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("hf_dgm-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # hf-dgm itself comes from the wheel; its dependencies from this test environment (a .pth line adds that
    # site-packages after the venv's own, and does not run its .pth files, so this checkout's editable install
    # stays out of sight). Installing torch & co. afresh would cost minutes and test pip, not the wheel.
    (site / "test_env_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)

    server, state, url = serve()
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "PYTHONPATH", "HF_DGM_ZOO")}
        env.update(
            HF_ENDPOINT=url,
            HF_HUB_DISABLE_XET="1",
            HF_HOME=str(tmp_path / "hf_home"),
            HF_TOKEN=OWNER,
            PYTHONSAFEPATH="1",
        )
        work = tmp_path / "work"
        work.mkdir()

        def hf_dgm(*args):
            proc = subprocess.run([bin_dir / "hf-dgm", *args], cwd=work, env=env, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr[-3000:]
            return proc

        where = subprocess.run(
            [python, "-c", "import hf_dgm; print(hf_dgm.__file__)"], cwd=work, env=env, capture_output=True, text=True
        )
        assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr
        hf_dgm(
            "train", "gan", "--dataset", MNIST, "--output-dir", "run", "--max-samples", "64", "--batch-size", "16",
            "--max-steps", "2", "--generator-channels", "4", "--discriminator-channels", "4", "--latent-dim", "8",
            "--report-to", "none", "--no-progress-bar",
        )  # fmt: skip
        run = work / "run"
        assert {"config.json", "model.safetensors", "README.md", "samples.png", "training_args.json"} <= {
            p.name for p in run.iterdir()
        }
        assert "hf-dgm" in (run / "README.md").read_text()
        hf_dgm("sample", "--model", "run", "--num-images", "4", "--out", "grid.png")
        assert (work / "grid.png").stat().st_size > 0
        hf_dgm("push", "run", "--repo-id", "tester/from-wheel")
        repo = state.repos[("model", "tester/from-wheel")]
        files = repo.commits[repo.branches["main"]]["files"]
        assert {"README.md", "config.json", "model.safetensors", "modeling_gan.py"} <= set(files)
        assert json.loads(files["config.json"])["auto_map"]["AutoModel"] == "modeling_gan.GANModel"
    finally:
        server.shutdown()
