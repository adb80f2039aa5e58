"""Bits per dimension of lossless codecs on a dataset's images: the numbers a VAE's held-out NLL is compared with.

    python scripts/experiments/codec_bits.py                      # the emoji, all images and the zoo's held-out tenth
    python scripts/experiments/codec_bits.py --dataset DIR --holdout-fraction F

Each image is encoded on its own, as the models see it (decoded by hf_dgm.data: RGB at --image-size), with PNG
(zlib level 9, optimize) and lossless WebP (quality 100 and method 6: the slowest and smallest) through Pillow;
bits/dim = 8 * file bytes / (C * H * W), averaged over the images, as a VAE's NLL is. File headers count: a codec
needs them to decode, as a model needs its weights (which the NLL does not count). The held-out images are those
`--holdout-fraction` keeps out of training (hf_dgm.data). On the emoji: PNG 2.993 (held-out 3.020), WebP 2.234
(held-out 2.243).
"""

import argparse
import io
import json
from pathlib import Path

from PIL import Image

from hf_dgm.data import holdout_indices, load_image_tensors

ROOT = Path(__file__).resolve().parents[2]
CODECS = {
    "PNG": dict(format="PNG", optimize=True, compress_level=9),
    "WebP": dict(format="WEBP", lossless=True, quality=100, method=6),
}


def encoded_bits_per_dim(image, options: dict) -> float:
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return 8 * buffer.tell() / (len(image.getbands()) * image.width * image.height)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=str(ROOT / "data" / "emoji"), help="scripts/build_emoji_dataset.py's")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--holdout-fraction", type=float, default=0.1, help="the zoo's vae-emoji holds out a tenth")
    args = parser.parse_args()
    decoded = load_image_tensors(args.dataset, label_column=None, resolution=args.image_size, num_channels=3).images
    images = [Image.fromarray(array) for array in decoded.permute(0, 2, 3, 1).numpy()]
    _, held_out = holdout_indices(len(images), args.holdout_fraction)
    rows = {}
    for name, options in CODECS.items():
        bits = [encoded_bits_per_dim(image, options) for image in images]
        rows[name] = {
            f"all {len(bits)} images": round(sum(bits) / len(bits), 3),
            f"{len(held_out)} held-out images": round(sum(bits[i] for i in held_out.tolist()) / len(held_out), 3),
        }
    print(json.dumps({"dataset": args.dataset, "bits_per_dim": rows}, indent=2))


if __name__ == "__main__":
    main()
