"""Run the walkthrough's code blocks in order, as a reader would, and save the numbers it quotes.

    python scripts/run_tutorial.py                    # full settings: docs/figures/*.png, docs/tutorial_results.json
    python scripts/run_tutorial.py --quick --out DIR  # tiny settings and every block (tests/test_tutorial.py)

TUTORIAL.md and TUTORIAL.zh-CN.md hold the same code blocks (a test checks it); this runs TUTORIAL.md's.
Python blocks share one namespace, like the cells of a notebook. The first block holds the settings (DATASET, OUT,
STEPS, SPACE, HF_USER); the runner may override them and nothing else. A word after the fence's language marks a
block that needs something more:

* ``bash train``: training and evaluation commands (one per zoo recipe). Full runs of these are
  scripts/build_zoo.py's job, so they run only with --quick, where step and sample counts are cut
  (QUICK_SUBSTITUTIONS) and the dataset is --dataset.
* ``python hub``: needs the Hub (or a Hub-compatible HF_ENDPOINT); runs with --hub.
* ``python space``: needs the demo app at SPACE; runs with --space URL.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "TUTORIAL.md"
LANGUAGES = ((TUTORIAL, "en"), (ROOT / "TUTORIAL.zh-CN.md", "zh"))  # the walkthroughs whose tables this script writes
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)

QUICK_SETTINGS = {"STEPS": 20}
QUICK_SUBSTITUTIONS = (
    (r"--max-steps \d+", "--max-steps 3"),
    (r"--num-samples \d+", "--num-samples 200"),
    (r"--iwae-k \d+", "--iwae-k 4 --num-test-images 50"),
    (r"--sample-every \d+", "--sample-every 2"),
)


def extract_blocks(path) -> list[dict]:
    """The fenced code blocks of a Markdown file: [{"lang", "tags", "code", "line"}] (python and bash only)."""
    text = Path(path).read_text(encoding="utf-8")
    blocks = []
    for m in FENCE.finditer(text):
        if m.group(1) in ("python", "bash"):
            line = text.count("\n", 0, m.start()) + 1
            blocks.append({"lang": m.group(1), "tags": m.group(2).split(), "code": m.group(3), "line": line})
    return blocks


# The tables of numbers in both walkthroughs are written by this script (between <!-- table:NAME --> markers).
HEADERS = {
    "en": {
        "gradients": ("D(G(z))", "d/dl minimax", "d/dl non-saturating"),
        "kl-sign": ("objective", "test ELBO (nats)", "KL (nats)"),
        "kl-sign-rows": {
            "reconstruction + KL": "reconstruction + KL (correct)",
            "reconstruction - KL": "reconstruction − KL (the article's)",
        },
        "zoo": (
            "model",
            "classifier-feature FID",
            "FID / real-data floor",
            "precision",
            "recall",
            "conditional accuracy",
            "NLL (nats, IWAE bound)",
            "NLL protocol (test images, k)",
        ),
        "activations": ("activation", "test ELBO (nats, higher is better)", "KL (nats)"),
    },
    "zh": {
        "gradients": ("D(G(z))", "极小极大损失 d/dl", "非饱和损失 d/dl"),
        "kl-sign": ("目标函数", "测试集 ELBO（nats）", "KL（nats）"),
        "kl-sign-rows": {"reconstruction + KL": "重建 + KL（正确）", "reconstruction - KL": "重建 − KL（原文的写法）"},
        "zoo": (
            "模型",
            "分类器特征 FID",
            "FID / 真实数据下限",
            "precision",
            "recall",
            "条件准确率",
            "NLL（nats，IWAE 下界）",
            "NLL 协议（测试图像数，k）",
        ),
        "activations": ("激活函数", "测试集 ELBO（nats，越高越好）", "KL（nats）"),
    },
}


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_tables(results: dict, lang: str) -> dict:
    h = HEADERS[lang]
    tables = {}
    if "gan_generator_gradients" in results:
        grads = results["gan_generator_gradients"]
        tables["gradients"] = _table(h["gradients"], [(d, *g) for d, g in grads.items()])
    if "kl_sign" in results:
        rows = [(h["kl-sign-rows"][k], v["test_elbo"], v["kl"]) for k, v in results["kl_sign"].items()]
        tables["kl-sign"] = _table(h["kl-sign"], rows)
    if "zoo" in results:
        rows = []
        for name, row in results["zoo"].items():
            keys = ("FID", "FID / floor", "precision", "recall", "accuracy", "NLL", "NLL protocol")
            rows.append((f"`{name}`", *(row.get(k, "—") for k in keys)))
        tables["zoo"] = _table(h["zoo"], rows)
    if "activations" in results:
        rows = [(f"`{k}`", v["test_elbo"], v["kl"]) for k, v in results["activations"].items()]
        tables["activations"] = _table(h["activations"], rows)
    return tables


def fill_tables(path: Path, results: dict, lang: str):
    """Rewrite the tables between <!-- table:NAME --> and <!-- /table:NAME --> markers from `results`."""
    text = path.read_text(encoding="utf-8")
    for name, table in render_tables(results, lang).items():
        pattern = re.compile(rf"(<!-- table:{name} -->\n)(?:.*?\n)?(<!-- /table:{name} -->)", re.DOTALL)
        if not pattern.search(text):
            raise SystemExit(f"{path.name} has no <!-- table:{name} --> marker")
        text = pattern.sub(lambda m, table=table: m.group(1) + table + "\n" + m.group(2), text)
    path.write_text(text, encoding="utf-8")


def zoo_results() -> dict:
    """Run only the walkthrough's zoo block (it reads zoo/*/eval_results.json): the `results["zoo"]` it quotes."""
    (block,) = [b for b in extract_blocks(TUTORIAL) if "zoo_dir()" in b["code"]]
    namespace = {"results": {}}
    exec(compile(block["code"], "TUTORIAL.md zoo block", "exec"), namespace)
    return namespace["results"]["zoo"]


def wanted(block, args) -> bool:
    tags = set(block["tags"])
    if "train" in tags and not args.quick:
        return False
    if "hub" in tags and not args.hub:
        return False
    if "space" in tags and not args.space:
        return False
    return True


def run_bash(code: str, args, cwd: Path):
    if args.quick:
        for pattern, repl in QUICK_SUBSTITUTIONS:
            code = re.sub(pattern, repl, code)
        code = code.replace("ylecun/mnist", args.dataset)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env, check=True)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny settings; also runs the `bash train` blocks")
    parser.add_argument("--out", default=None, help="OUT (default: docs/figures; with --quick: required)")
    parser.add_argument("--dataset", default=None, help="DATASET (default: the tutorial's, ylecun/mnist)")
    parser.add_argument("--hub", action="store_true", help="run the `python hub` blocks (network or HF_ENDPOINT)")
    parser.add_argument("--hf-user", default=None, help="HF_USER for the push example")
    parser.add_argument("--space", default=None, help="run the `python space` blocks against this app URL or id")
    parser.add_argument("--results", default=None, help="where to save the numbers (default: docs/ or OUT)")
    parser.add_argument("--tables-only", action="store_true", help="rewrite the tables from the saved results only")
    parser.add_argument("--zoo-only", action="store_true", help="re-read the zoo's results only (after a zoo change)")
    args = parser.parse_args(argv)
    if args.quick and not args.out:
        parser.error("--quick needs --out (the committed figures are made by a full run)")
    args.dataset = args.dataset or "ylecun/mnist"
    return args


def settings(args, out: Path) -> dict:
    """The first block's settings that the runner overrides."""
    overrides = {"OUT": out, "DATASET": args.dataset}
    if args.quick:
        overrides.update(QUICK_SETTINGS)
    if args.space:
        overrides["SPACE"] = args.space
    if args.hf_user:
        overrides["HF_USER"] = args.hf_user
    return overrides


def rewrite_tables(zoo_only: bool):
    """The walkthroughs' tables from the saved results (re-reading the zoo's first with `zoo_only`)."""
    saved = ROOT / "docs" / "tutorial_results.json"
    results = json.loads(saved.read_text(encoding="utf-8"))
    if zoo_only:
        results["zoo"] = zoo_results()
        saved.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for path, lang in LANGUAGES:
        fill_tables(path, results, lang)


def run_blocks(args, overrides: dict, workdir: Path) -> dict:
    """Run TUTORIAL.md's wanted blocks in order, in `workdir`; returns the numbers they saved (`results`)."""
    namespace = {"__name__": "__tutorial__"}
    old_cwd = os.getcwd()
    os.chdir(workdir)  # relative paths in the blocks (out/..., runs/...) land here
    try:
        for i, block in enumerate(extract_blocks(TUTORIAL)):
            label = f"TUTORIAL.md:{block['line']} ({block['lang']} {' '.join(block['tags'])})".rstrip()
            if not wanted(block, args):
                print(f"--- skip {label}", flush=True)
                continue
            print(f"--- run {label}", flush=True)
            start = time.perf_counter()
            if block["lang"] == "python":
                exec(compile(block["code"], label, "exec"), namespace)
                if i == 0:
                    namespace.update(overrides)
                    Path(namespace["OUT"]).mkdir(parents=True, exist_ok=True)
            else:
                run_bash(block["code"], args, workdir)
            print(f"--- ok {label} ({time.perf_counter() - start:.1f} s)", flush=True)
    finally:
        os.chdir(old_cwd)
    return namespace.get("results", {})


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out or ROOT / "docs" / "figures").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.tables_only or args.zoo_only:
        rewrite_tables(args.zoo_only)
        return
    results = run_blocks(args, settings(args, out), out if args.quick else ROOT)
    default_path = out / "results.json" if args.quick else ROOT / "docs" / "tutorial_results.json"
    results_path = Path(args.results) if args.results else default_path
    results_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"saved the numbers the walkthrough quotes to {results_path}")
    if not args.quick:
        for path, lang in LANGUAGES:
            fill_tables(path, results, lang)
            print(f"rewrote the tables of {path.name}")


if __name__ == "__main__":
    main()
