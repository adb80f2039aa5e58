"""Train a domain classifier, the feature extractor of `hf-dgm evaluate --features FOLDER`: the shipped
zoo/mnist-classifier (test accuracy >= 99.3 %) and zoo/emoji-classifier, or one for your own dataset.

    python scripts/train_classifier.py --preset mnist      # zoo/mnist-classifier: 6 epochs, the MNIST test split
    python scripts/train_classifier.py --preset emoji      # zoo/emoji-classifier: the 9 groups, 32x32 RGB
    python scripts/train_classifier.py --dataset DATA --image-size 32 --num-channels 3 --out my-classifier

AdamW + one-cycle LR, label smoothing 0.05, random translations (+-2 px) and for emoji horizontal flips, seed 0,
one thread. Accuracy is measured on the dataset's test split, or where it has none on the tenth of its train split
that hf-dgm's trainer holds out (`--holdout-fraction 0.1`: the same seeded draw, so a model trained with it and
this classifier never saw the same held-out images). Writes the weights, eval_results.json (overall and per-class
accuracy) and a card.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
PRESETS = {
    "mnist": dict(dataset=str(DATA / "mnist"), image_size=28, num_channels=1, channels=[32, 64], pool_size=None,
                  epochs=6, flip=False, balance=False, holdout_fraction=None, min_accuracy=0.993, out=str(ROOT / "zoo" / "mnist-classifier")),
    # small enough for the zoo's weight budget (0.9 MB); at 32 px, where both gan-emoji sizes can be compared
    "emoji": dict(dataset=str(DATA / "emoji"), image_size=32, num_channels=3, channels=[32, 48, 96], pool_size=2,
                  epochs=12, flip=True, balance=True, holdout_fraction=0.1, min_accuracy=0.0, out=str(ROOT / "zoo" / "emoji-classifier")),
}  # fmt: skip


LICENCES = {
    "mnist": "Weights trained on MNIST: CC BY-SA 3.0.",
    "emoji": "Weights trained on renderings of the Noto Color Emoji artwork (Apache-2.0).",
}


def shift(x, gen, max_shift=2):
    """Random translation by up to max_shift pixels (zero padding), one offset per image."""
    n, c, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None]).view(n, 1, h, 1).expand(n, c, h, w + 2 * max_shift)
    x = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None]).view(n, 1, 1, w).expand(n, c, h, w)
    return x.gather(3, cols)


@torch.no_grad()
def predictions(model, images, batch=1000):
    model.eval()
    return torch.cat(
        [model(images[i : i + batch].float() / 255).logits.argmax(1) for i in range(0, len(images), batch)]
    )


def accuracies(model, images, labels, num_classes: int) -> tuple[float, list[float]]:
    pred = predictions(model, images)
    per_class = [
        (pred[labels == c] == c).float().mean().item() if (labels == c).any() else None for c in range(num_classes)
    ]
    return (pred == labels).float().mean().item(), per_class


def write_card(out: Path, result: dict, config: dict):
    from huggingface_hub import ModelCard, ModelCardData

    mnist = config.get("dataset_name") == "mnist"
    data = ModelCardData(
        license="cc-by-sa-3.0" if mnist else "other",
        library_name="hf-dgm",
        tags=["hf-dgm", config.get("dataset_name") or "images", "feature-extractor"],
        datasets=["ylecun/mnist"] if mnist else None,
        pipeline_tag="image-classification",
    )
    t, names = result["training"], config.get("id2label") or {}
    accuracy = result.get("held_out_accuracy", result.get("test_accuracy"))  # mnist-classifier's older record
    per_class = ", ".join(
        f"{names.get(str(c), c)} {a:.1%}"
        for c, a in enumerate(result.get("held_out_accuracy_per_class") or [])
        if a is not None
    )
    widths = ", ".join(map(str, config["channels"]))
    weights = f", class weights {t['class_weights']}" if t.get("class_weights") else ""
    content = f"""---
{data.to_yaml()}
---

# {out.name}

The feature extractor behind hf-dgm's **classifier-feature** FID/KID, precision/recall and Inception Score on
{config.get("dataset_name")} (`hf-dgm evaluate --features {out.name}`), and the judge of a conditional model's
samples. A small CNN at {config["image_size"]}x{config["image_size"]} with {config["num_channels"]} channel(s): two
3x3 conv layers with BatchNorm and ReLU per stage ({widths} channels, a max-pool after each), a
{config["feature_dim"]}-d feature layer (the features), a {config["num_classes"]}-way head.

- Held-out accuracy: **{accuracy:.2%}** ({result["protocol"]}).
{f"- Per class: {per_class}." if per_class else ""}
- Trained by `scripts/train_classifier.py`: {t["epochs"]} epochs, batch {t["batch_size"]}, AdamW + one-cycle LR
  {t["lr"]}, {t.get("augmentation", "+-2 px random shifts")}, label smoothing 0.05{weights}, seed {t["seed"]}; {t["time_s"]:.0f} s on {t["hardware"]}.
- Input: (N, {config["num_channels"]}, {config["image_size"]}, {config["image_size"]}) in [0, 1]. Load with
  `hf_dgm.evaluation.classifier.ImageClassifier.from_pretrained`.

{LICENCES.get(config.get("dataset_name"), "Weights trained on that dataset: its licence applies.")} Code: Apache-2.0.
"""
    ModelCard(content).save(out / "README.md")


def load_split(args):
    """(train images, train labels, held-out images, held-out labels, the protocol's words, class names)."""
    from hf_dgm.data import holdout_indices, load_image_tensors

    def load(split):
        return load_image_tensors(args.dataset, split, resolution=args.image_size, num_channels=args.num_channels)

    train = load("train")
    if args.holdout_fraction is None:
        test = load("test")
        return train, test, f"the test split ({len(test)} images), no augmentation"
    kept, held = holdout_indices(len(train), args.holdout_fraction)
    words = f"the {len(held)} images of the train split held out like hf-dgm's trainer does (fraction {args.holdout_fraction}, seed 0)"
    return train.select(kept), train.select(held), words


def train(model, data, args, gen):
    steps_per_epoch = len(data) // args.batch_size
    counts = torch.bincount(data.labels, minlength=model.config.num_classes).float()
    weight = (counts.mean() / counts.clamp(min=1)).sqrt() if args.balance else None  # rare classes count more
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * steps_per_epoch)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(data), generator=gen)
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            x = shift(data.images[idx].float() / 255, gen)
            if args.flip:
                flip = torch.rand(len(idx), generator=gen) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
            loss = F.cross_entropy(model(x).logits, data.labels[idx], weight=weight, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.4f}", flush=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="a zoo classifier's recipe")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--num-channels", type=int, default=None)
    parser.add_argument("--channels", type=int, nargs="+", default=None)
    parser.add_argument("--pool-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--balance", action=argparse.BooleanOptionalAction, default=None, help="class weights")
    parser.add_argument("--holdout-fraction", type=float, default=None, help="none: the test split")
    parser.add_argument("--min-accuracy", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--card-only", action="store_true", help="rewrite README.md from eval_results.json only")
    args = parser.parse_args()
    preset = PRESETS.get(args.preset, PRESETS["mnist"] | dict(dataset=None, out=None, holdout_fraction=None))
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.dataset is None or args.out is None:
        parser.error("give --preset, or --dataset and --out")
    return args


def main():
    args = parse_args()
    if args.card_only:
        from hf_dgm.evaluation.classifier import ImageClassifierConfig

        out = Path(args.out)
        config = ImageClassifierConfig.from_pretrained(out).to_dict()  # with the defaults of older configs
        config["dataset_name"] = config.get("dataset_name") or args.preset
        write_card(out, json.loads((out / "eval_results.json").read_text()), config)
        return

    from hf_dgm.evaluation.classifier import ImageClassifier, ImageClassifierConfig

    torch.set_num_threads(1)
    data, held, protocol = load_split(args)
    names = data.class_names or [str(c) for c in range(int(data.labels.max()) + 1)]
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    dataset_name = "mnist" if args.preset == "mnist" else Path(args.dataset.rstrip("/")).name
    config = ImageClassifierConfig(
        num_channels=args.num_channels, image_size=args.image_size, num_classes=len(names), channels=args.channels,
        pool_size=args.pool_size, dataset_name=dataset_name, id2label=dict(enumerate(names)),
    )  # fmt: skip
    model = ImageClassifier(config)
    start = time.time()
    train(model, data, args, gen)
    elapsed = time.time() - start
    acc, per_class = accuracies(model, held.images, held.labels, len(names))
    model.save_pretrained(args.out)
    augmentation = "+-2 px random shifts" + (", horizontal flips" if args.flip else "")
    result = {
        "held_out_accuracy": acc,
        "held_out_accuracy_per_class": per_class,
        "protocol": protocol,
        "dataset_name": dataset_name,
        "training": {
            "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "augmentation": augmentation, "class_weights": "1/sqrt(class frequency)" if args.balance else None, "time_s": round(elapsed, 1), "hardware": f"CPU, {torch.get_num_threads()} thread(s)",
        },
    }  # fmt: skip
    Path(args.out, "eval_results.json").write_text(json.dumps(result, indent=2))
    write_card(Path(args.out), result, config.to_dict())
    print(f"saved {args.out}: held-out accuracy {acc:.4%} ({elapsed:.0f} s); per class {per_class}")
    if acc < args.min_accuracy:
        raise SystemExit(f"held-out accuracy {acc:.4%} is below the {args.min_accuracy:.1%} target")


if __name__ == "__main__":
    main()
