"""Build the emoji dataset of the zoo's colour models from two Debian packages, and check it against its checksum:

    apt-get install fonts-noto-color-emoji unicode-data   # Debian 12: the font 2.042, Unicode 15.0
    python scripts/build_emoji_dataset.py data/emoji       # about 15 s; then: hf-dgm train gan --dataset data/emoji ...

Every fully-qualified emoji of Unicode's emoji-test.txt (package unicode-data) rendered once with the Noto Color Emoji
font (package fonts-noto-color-emoji), cropped to its bounding box, centred on a white square and resized to 64x64
with Lanczos, labelled with its Unicode emoji group. Sequences the font cannot draw as one glyph, and exact
duplicates, are left out. Written in the Hugging Face `datasets` parquet layout (image {bytes, path}, label
(ClassLabel of the 9 groups), name, group) as OUT/train-00000-of-00001.parquet, with OUT/SHA256SUMS and the dataset
card docs/emoji_dataset.md as OUT/README.md. At 64 px the file must match the checksum of the zoo's training data
(EXPECTED_SHA256); a mismatch (other package versions, another Pillow) is reported and the exit status is 1.
Needs pillow with raqm (`python -c "from PIL import features; print(features.check('raqm'))"`) and pyarrow.
"""

import argparse
import hashlib
import io
import json
import re
import shutil
import sys
from pathlib import Path

FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"  # Debian's fonts-noto-color-emoji
EMOJI_TEST = "/usr/share/unicode/emoji/emoji-test.txt"  # Debian's unicode-data
GROUPS = ["Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
          "Activities", "Objects", "Symbols", "Flags"]  # fmt: skip
FONT_SIZE = 109  # the size of the font's bitmap strikes
PARQUET = "train-00000-of-00001.parquet"
# the file the zoo's emoji models were trained on (fonts-noto-color-emoji 2.042, unicode-data 15.0.0, 64 px)
EXPECTED_SHA256 = {64: "bf61988708619000e07e87dbddb57d09c3755276e03f8a10c62e08c6671a3fbd"}
CARD = Path(__file__).resolve().parent.parent / "docs" / "emoji_dataset.md"
LINE = re.compile(r"^([0-9A-F ]+?)\s*; fully-qualified\s*# \S+ E[\d.]+ (.*)$")


def entries(emoji_test: Path):
    """(text, name, group) of each fully-qualified emoji of the nine groups, in the file's order."""
    group = None
    for line in emoji_test.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        match = LINE.match(line)
        if match and group in GROUPS:
            yield "".join(chr(int(c, 16)) for c in match.group(1).split()), match.group(2).strip(), group


def render(text: str, font, size: int):
    """The emoji on a white square, size x size RGB; None where the font draws it as several glyphs."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGBA", (300, 160), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((10, 10), text, font=font, embedded_color=True, layout_engine=ImageFont.Layout.RAQM)
    box = image.getbbox()
    if box is None:
        return None
    image = image.crop(box)
    width, height = image.size
    if width > 1.6 * height:  # the font fell back to several glyphs: not one emoji
        return None
    side = max(width, height)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    square.alpha_composite(image, ((side - width) // 2, (side - height) // 2))
    return square.convert("RGB").resize((size, size), Image.LANCZOS)


def build_rows(font_path: Path, emoji_test: Path, size: int) -> tuple[list[dict], int]:
    """The dataset's rows (PNG bytes, label, name, group) and the number of emoji left out."""
    from PIL import ImageFont

    font = ImageFont.truetype(str(font_path), FONT_SIZE)
    rows, seen, skipped = [], set(), 0
    for text, name, group in entries(emoji_test):
        image = render(text, font, size)
        if image is None:
            skipped += 1
            continue
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        png = buffer.getvalue()
        if png in seen:
            skipped += 1
            continue
        seen.add(png)
        rows.append({"image": {"bytes": png, "path": None}, "label": GROUPS.index(group), "name": name, "group": group})
    return rows, skipped


def write_parquet(rows: list[dict], path: Path) -> None:
    """The rows as `datasets` parquet: its features (Image, ClassLabel) in the schema's metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = {
        "image": {"_type": "Image"},
        "label": {"names": GROUPS, "_type": "ClassLabel"},
        "name": {"dtype": "string", "_type": "Value"},
        "group": {"dtype": "string", "_type": "Value"},
    }
    # the metadata's exact text, as the zoo's file has it (json.dumps with its default separators)
    metadata = {"huggingface": json.dumps({"info": {"features": features}}, ensure_ascii=False)}
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    fields = [("image", image_type), ("label", pa.int64()), ("name", pa.string()), ("group", pa.string())]
    schema = pa.schema(fields, metadata=metadata)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), str(path))


def check_inputs(args) -> None:
    from PIL import features

    for path, package in ((args.font, "fonts-noto-color-emoji"), (args.emoji_test, "unicode-data")):
        if not Path(path).is_file():
            sys.exit(f"{path} is missing: install Debian's {package} (apt-get install {package}) or pass its path.")
    if not features.check("raqm"):
        sys.exit("Pillow was built without raqm (complex text layout): emoji sequences would not render as one glyph.")
    if args.size < 8:
        sys.exit(f"--size {args.size} is too small: expected at least 8 pixels.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the dataset folder to write (created if missing)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64, the zoo's)")
    parser.add_argument("--font", type=Path, default=Path(FONT), help=f"the font file (default {FONT})")
    parser.add_argument("--emoji-test", type=Path, default=Path(EMOJI_TEST), help=f"default {EMOJI_TEST}")
    args = parser.parse_args()
    check_inputs(args)
    rows, skipped = build_rows(args.font, args.emoji_test, args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    write_parquet(rows, args.out / PARQUET)
    digest = hashlib.sha256((args.out / PARQUET).read_bytes()).hexdigest()
    (args.out / "SHA256SUMS").write_text(f"{digest}  {PARQUET}\n")
    shutil.copyfile(CARD, args.out / "README.md")
    print(f"{len(rows)} emoji written ({skipped} left out), {args.size}x{args.size} RGB: {args.out / PARQUET}")
    expected = EXPECTED_SHA256.get(args.size)
    if expected is None:
        print(f"sha256 {digest} (no reference checksum at {args.size} px)")
        return 0
    if digest != expected:
        print(f"sha256 {digest} differs from the zoo's {expected}: other package or Pillow versions?")
        return 1
    print(f"sha256 {digest}: the file the zoo's emoji models were trained on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
