"""Generator of a bad-input image corpus: what people's hand-filled folders contain, written with Pillow.

Nothing binary is committed: `write_corpus(root)` writes the files and returns, per file (path relative to
root), what ingestion must do with it. Also usable by hand: `python -m tests.corpus /tmp/corpus`.
"""
import dataclasses
import io
import struct
import sys
import zlib
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
from PIL import Image

EXAMPLE, QUARANTINED, IGNORED = "example", "quarantined", "ignored"
EMPTY_CLASS = "empty class"
ONE_IMAGE_CLASS = "café solo"


@dataclasses.dataclass(frozen=True)
class Expected:
    outcome: str  # EXAMPLE, QUARANTINED or IGNORED.
    reason: Optional[str] = None  # Quarantine reason.
    steps: Tuple[str, ...] = ()  # Normalization steps of an example ingestion re-encoded.
    size: Optional[Tuple[int, int]] = None  # (width, height) of the stored example.


def _pixels(seed: int, width: int = 24, height: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def header_bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose header claims width x height pixels (2.7 GB of RGB) but holds almost no data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))


def exif_rotated_jpeg(seed: int) -> bytes:
    """Stored 32 wide x 16 high with EXIF orientation 6 (rotate 90° clockwise to view): upright it is 16x32."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(Image.fromarray(_pixels(seed, 32, 16)), "JPEG", exif=exif.tobytes())


def animated_gif(seed: int) -> bytes:
    frames = [Image.fromarray(_pixels(seed + index)).convert("P") for index in range(3)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def write_corpus(root: Path) -> Dict[str, Expected]:
    """Writes the corpus under root (classes 'cat', 'dog', a one-image class, an empty class)."""
    files: Dict[str, Tuple[bytes, Expected]] = {
        # Plain files of every supported format; extensions in any case; spaces and non-ASCII names.
        "cat/plain.jpg": (_save(Image.fromarray(_pixels(1)), "JPEG"), Expected(EXAMPLE)),
        "cat/UPPER CASE.PNG": (_save(Image.fromarray(_pixels(2)), "PNG"), Expected(EXAMPLE)),
        "cat/kätzchen 猫.png": (_save(Image.fromarray(_pixels(3)), "PNG"), Expected(EXAMPLE)),
        "cat/deep/deeper/nested.jpeg": (_save(Image.fromarray(_pixels(4)), "JPEG"), Expected(EXAMPLE)),
        "cat/gray.jpg": (_save(Image.fromarray(_pixels(5)).convert("L"), "JPEG"), Expected(EXAMPLE)),
        "cat/bitmap.bmp": (_save(Image.fromarray(_pixels(6)), "BMP"), Expected(EXAMPLE, steps=("bmp_to_png",))),
        "cat/web.WebP": (_save(Image.fromarray(_pixels(7)), "WEBP", lossless=True),
                         Expected(EXAMPLE, steps=("webp_to_png",))),
        # Normalized at ingestion.
        "cat/cmyk.jpg": (_save(Image.fromarray(_pixels(8)).convert("CMYK"), "JPEG"),
                         Expected(EXAMPLE, steps=("cmyk_to_rgb",))),
        "cat/sixteen bit.png": (_save(Image.fromarray(
            (np.random.default_rng(9).integers(0, 65536, (24, 24))).astype(np.uint16)), "PNG"),
            Expected(EXAMPLE, steps=("16_bit_to_8_bit",))),
        "cat/transparent.png": (_save(Image.fromarray(np.dstack([_pixels(10), np.full((24, 24), 128, np.uint8)]),
                                                      "RGBA"), "PNG"),
                                Expected(EXAMPLE, steps=("alpha_composited_on_white",))),
        "cat/palette.png": (_save(Image.fromarray(_pixels(11)).convert("P"), "PNG"),
                            Expected(EXAMPLE, steps=("palette_to_rgb",))),
        "cat/animated.gif": (animated_gif(12), Expected(
            EXAMPLE, steps=("first_frame_of_animation", "palette_to_rgb", "gif_to_png"))),
        "cat/rotated.jpg": (exif_rotated_jpeg(13), Expected(EXAMPLE, steps=("exif_orientation",), size=(16, 32))),
        # Quarantined.
        "cat/truncated.jpg": (_save(Image.fromarray(_pixels(14, 64, 64)), "JPEG")[:400],
                              Expected(QUARANTINED, "undecodable")),
        "cat/zero bytes.jpg": (b"", Expected(QUARANTINED, "empty_file")),
        "cat/actually text.jpg": (b"name,label\nphoto,cat\n", Expected(QUARANTINED, "not_an_image")),
        "cat/bomb.png": (header_bomb_png(), Expected(QUARANTINED, "too_many_pixels")),
        # Ignored.
        "cat/.DS_Store": (b"\0\0\0\1Bud1", Expected(IGNORED)),
        "cat/.ipynb_checkpoints/plain-checkpoint.png": (_save(Image.fromarray(_pixels(1)), "PNG"), Expected(IGNORED)),
        "cat/notes.txt": (b"these are cats", Expected(IGNORED)),
        "dog/plain.png": (_save(Image.fromarray(_pixels(20)), "PNG"), Expected(EXAMPLE)),
        # Same content twice in one class: the first path (sorted) is kept, the copy quarantined.
        "dog/copy a.png": (_save(Image.fromarray(_pixels(21)), "PNG"), Expected(EXAMPLE)),
        "dog/sub/copy b.png": (_save(Image.fromarray(_pixels(21)), "PNG"), Expected(QUARANTINED, "duplicate")),
        # Same content in two classes: the label is contradictory, every copy is quarantined.
        "dog/both.jpg": (_save(Image.fromarray(_pixels(22)), "JPEG"), Expected(QUARANTINED, "conflicting_labels")),
        "cat/both.jpg": (_save(Image.fromarray(_pixels(22)), "JPEG"), Expected(QUARANTINED, "conflicting_labels")),
        f"{ONE_IMAGE_CLASS}/only one.png": (_save(Image.fromarray(_pixels(30)), "PNG"), Expected(EXAMPLE)),
    }
    (root / EMPTY_CLASS).mkdir(parents=True, exist_ok=True)
    for relative, (data, _) in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return {relative: expected for relative, (_, expected) in files.items()}


def write_explicit_split_corpus(root: Path) -> Dict[str, Expected]:
    """train/ and eval/ folders chosen by the user; one image is in both (a leak): the train copy is kept."""
    leaked = _save(Image.fromarray(_pixels(40)), "PNG")
    files = {
        "train/cat/a.png": (_save(Image.fromarray(_pixels(41)), "PNG"), Expected(EXAMPLE)),
        "train/cat/leaked.png": (leaked, Expected(EXAMPLE)),
        "train/dog/b.png": (_save(Image.fromarray(_pixels(42)), "PNG"), Expected(EXAMPLE)),
        "eval/cat/leaked copy.png": (leaked, Expected(QUARANTINED, "duplicate")),
        "eval/dog/c.png": (_save(Image.fromarray(_pixels(43)), "PNG"), Expected(EXAMPLE)),
    }
    for relative, (data, _) in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return {relative: expected for relative, (_, expected) in files.items()}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_input_corpus")
    for relative, expected in sorted(write_corpus(target).items()):
        print(f"{expected.outcome:<12} {expected.reason or ','.join(expected.steps):<40} {relative}")
