"""Side by side: hf-dgm's default GAN recipe against the plain pytorch/examples DCGAN recipe (same networks, same
steps, same seed), with the `hf-dgm evaluate` protocol.

    python scripts/compare_gan_recipes.py [--model zoo/dcgan-mnist] [--num-samples 10000]

* Plain recipe (pytorch/examples/dcgan): BCE on D's output (the non-saturating generator loss), Adam lr 2e-4,
  beta1 0.5, no EMA and no other tricks.
* hf-dgm's default: the same, plus an exponential moving average of the generator (decay 0.999, warm-up
  (1 + step) / (10 + step)), which is what gets sampled.

EMA only reads the generator's weights and never feeds back into training. A run with EMA is therefore bit-identical
to the plain recipe's run with the same seed (tests/test_training.py::test_ema_only_reads_the_generator). So one
training run gives both: its raw generator is the plain recipe, and its EMA generator is ours. The script checks
that the run used no other trick and writes docs/gan_recipe_comparison.json.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAIN = {
    "loss": "non_saturating",
    "lr_g": 2e-4,
    "lr_d": 2e-4,
    "beta1_g": 0.5,
    "beta1_d": 0.5,
    "d_steps": 1,
    "label_smoothing": 0.0,
    "r1_gamma": 0.0,
    "spectral_norm": False,
    "minibatch_std": False,
    "minibatch_discrimination_kernels": 0,
}
NO_TRICKS = ("feature_matching", "historical_averaging")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "zoo" / "dcgan-mnist"))
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--out", default=str(ROOT / "docs" / "gan_recipe_comparison.json"))
    args = parser.parse_args()

    from hf_dgm import GANConfig, GANModel
    from hf_dgm.evaluation.evaluate import evaluate

    model_dir = Path(args.model)
    run = json.loads((model_dir / "training_args.json").read_text())
    differs = {k: (run.get(k), v) for k, v in PLAIN.items() if run.get(k) != v}
    differs.update({k: (run[k], "off") for k in NO_TRICKS if run.get(k) not in (None, False, 0, 0.0)})
    if differs or not run.get("ema_decay"):
        sys.exit(f"{model_dir} is not the plain recipe + EMA: {differs or 'no EMA generator'}")

    model = GANModel.from_pretrained(model_dir)
    config = GANConfig(**{**model.config.to_dict(), "use_ema": False})
    plain = GANModel(config)  # every weight is replaced below
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("generator_ema.")}
    plain.load_state_dict(state, strict=True)

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        plain.save_pretrained(tmp)
        for name, path in (
            ("pytorch/examples recipe (raw generator)", tmp),
            ("hf-dgm default (EMA generator)", model_dir),
        ):
            start = time.time()
            results = evaluate(path, dataset=args.dataset, num_samples=args.num_samples, progress=False)
            metrics = {m["name"]: m["value"] for m in results["metrics"]}
            rows[name] = {
                "classifier-feature FID": metrics["classifier-feature FID"],
                "FID / real-data floor": metrics["classifier-feature FID / floor"],
                "precision (k=3)": metrics["precision (k=3)"],
                "recall (k=3)": metrics["recall (k=3)"],
                "class histogram range": [min(results["class_histogram"]), max(results["class_histogram"])],
            }
            print(f"{name}: {rows[name]} ({time.time() - start:.0f} s)", flush=True)
    report = {
        "model": model_dir.name,
        "steps": run["max_steps"],
        "batch_size": run["batch_size"],
        "seed": run["seed"],
        "protocol": results["protocol"],
        "recipes": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
