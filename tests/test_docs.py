"""What ships as text: the README is a front door whose links, and the docs' links, resolve; records and docs hold no
path of the machine that wrote them, and no words of the workplace that built them."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# pages other branches add (linked from the README before they land)
EXPECTED_PAGES = {"docs/evaluation.md", "docs/projected_gan.md", "docs/hierarchical_vae.md"}
MACHINE_PATH = re.compile(r"(?<![\w.~-])(/(work|home|tmp|root|mnt|private|Users)/|[A-Z]:\\Users\\)")
WORKPLACE_WORDS = re.compile(
    r"\blent\b|no GPU was lent|the issue's|\bissue #\d|device tool|carry=\[|files_at|\bsession's\b", re.IGNORECASE
)
TRACKER_NUMBER = re.compile(r"(?<![\w/#-])#\d{1,4}\b")  # "#13"; "safetensors#782" names a public tracker
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def tracked_files() -> list[Path]:
    """The files a clone carries: git's list where this is a checkout, else the shipped text folders."""
    if shutil.which("git") and (ROOT / ".git").exists():
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return [ROOT / n for n in names.splitlines() if (ROOT / n).is_file()]
    return [p for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts]


def records_and_docs() -> list[Path]:
    return [p for p in tracked_files() if p.suffix in (".md", ".json", ".cff", ".txt", ".yaml", ".yml")]


def shipped_text() -> list[Path]:
    """Everything a user reads: records, docs, cards, code, scripts, build files (the tests are ours)."""
    code = (".py", ".sh", ".toml", ".cfg")
    files = [p for p in tracked_files() if p.suffix in code or p.name == "Makefile"]
    return [p for p in records_and_docs() + files if "tests" not in p.relative_to(ROOT).parts]


def test_records_and_docs_hold_no_machine_path():
    found = []
    for path in records_and_docs():
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    assert records_and_docs() and not found, "\n".join(found)


def test_no_workplace_words_or_private_tracker_numbers():
    found = []
    for path in shipped_text():
        text = path.read_text(encoding="utf-8", errors="replace")
        for i, line in enumerate(text.splitlines(), 1):
            public = "pytorch-fid #" in line or "TTUR #" in line  # public trackers, named
            if WORKPLACE_WORDS.search(line) or (TRACKER_NUMBER.search(line) and not public):
                found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    assert not found, "\n".join(found)


def _local_links(path: Path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)  # code is not links
    for target in MARKDOWN_LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        yield target.split("#", 1)[0]


@pytest.mark.parametrize(
    "page", ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]
)
def test_local_links_resolve(page):
    path = ROOT / page
    missing = []
    for target in _local_links(path):
        resolved = (path.parent / target).resolve()
        name = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(resolved)
        if not resolved.exists() and name not in EXPECTED_PAGES:
            missing.append(target)
    assert not missing, f"{page} links to missing files: {missing}"


def test_readme_is_a_front_door():
    """At most 200 lines, with the two commands, the CPU build of torch, and every docs page it names linked."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert "make demo" in readme and "make test" in readme
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme
    linked = {t for t in _local_links(ROOT / "README.md")}
    assert EXPECTED_PAGES <= {f"{t}" for t in linked}
    assert "../shared" not in readme


def test_torch_spec_carries_pip_options(tmp_path):
    """`make TORCH_SPEC="torch --index-url URL"` passes the option to pip (a quoted spec would not)."""
    if not shutil.which("make"):
        pytest.fail("make is missing: the two commands need it")
    spec = "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    dry = subprocess.run(
        ["make", "-n", "venv", f"VENV={tmp_path / 'venv'}", f"TORCH_SPEC={spec}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"pip install -q {spec}\n" in dry
