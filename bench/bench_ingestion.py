"""Ingestion benchmark: ImageExampleGen on Beam versus Keras readers, and how its time grows with the data.

Each reader goes over the same tree once: ours decodes every file fully (Pillow), checks it and writes
GZIP tf.Example splits; `image_dataset_from_directory` and the seed's `flow_from_directory` decode and
resize to --image-size. Growth: synthetic trees of 1x, 2x, 4x, 8x the demo set, each copy of an image
made unique (shifted by one pixel) so that content-hash duplicate detection does not shrink them.

    python bench/bench_ingestion.py [--scales 1,2,4,8] [--image-size 160]     (part of make bench)
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench import common  # noqa: E402


def count_images(root: Path) -> int:
    return sum(1 for path in root.rglob("*") if path.suffix.lower() in (".png", ".jpg", ".jpeg"))


def time_ours(root: Path) -> float:
    started = time.perf_counter()
    common.ingest(root, Path(tempfile.mkdtemp(prefix="bench-ingest-")) / "examples")
    return time.perf_counter() - started


def time_image_dataset_from_directory(root: Path, image_size: int) -> float:
    import tf_keras

    started = time.perf_counter()
    dataset = tf_keras.utils.image_dataset_from_directory(str(root), image_size=(image_size, image_size),
                                                          batch_size=32, shuffle=False)
    for _ in dataset:
        pass
    return time.perf_counter() - started


def time_flow_from_directory(root: Path, image_size: int) -> float:
    from tf_keras.preprocessing.image import ImageDataGenerator

    started = time.perf_counter()
    flow = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(
        str(root), target_size=(image_size, image_size), batch_size=32, shuffle=False)
    for index in range(len(flow)):
        flow[index]
    return time.perf_counter() - started


def scaled_tree(source: Path, scale: int) -> Path:
    """`scale` unique copies of every image of `source` (copy k shifted k pixels, so hashes differ)."""
    target = common.DATA_DIR / f"{source.name}-x{scale}"
    if (target / ".complete").exists():
        return target
    for path in sorted(source.rglob("*")):
        if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            continue
        relative = path.relative_to(source)
        (target / relative.parent).mkdir(parents=True, exist_ok=True)
        pixels = np.asarray(Image.open(path).convert("RGB"))
        for copy in range(scale):
            name = f"{relative.stem}_{copy}{relative.suffix}"
            Image.fromarray(np.roll(pixels, copy, axis=1)).save(target / relative.parent / name)
    (target / ".complete").write_text("")
    return target


def growth_exponent(sizes, seconds) -> float:
    """Least-squares slope of log(time) against log(size): 1.0 is linear."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--scales", default="1,2,4,8")
    args = parser.parse_args()
    root = common.demo_tree()
    images = count_images(root)

    ours = time_ours(root)
    keras = time_image_dataset_from_directory(root, args.image_size)
    seed = time_flow_from_directory(root, args.image_size)
    lines = [
        f"machine: {common.machine_description()}",
        f"data: {root} ({images} images), revision {common.git_revision()}",
        f"ImageExampleGen (Beam, local): {images / ours:.0f} images/s ({ours:.1f} s)",
        f"image_dataset_from_directory: {images / keras:.0f} images/s ({keras:.1f} s)",
        f"seed flow_from_directory: {images / seed:.0f} images/s ({seed:.1f} s)",
        f"ingestion vs seed throughput: {seed / ours:.2f}x",
        f"ingestion vs image_dataset_from_directory throughput: {keras / ours:.2f}x",
    ]
    sizes, seconds = [], []
    for scale in (int(value) for value in args.scales.split(",")):
        tree = scaled_tree(root, scale)
        sizes.append(count_images(tree))
        seconds.append(time_ours(tree))
        lines.append(f"ingestion at {scale}x ({sizes[-1]} images): {seconds[-1]:.1f} s, "
                     f"{sizes[-1] / seconds[-1]:.0f} images/s")
    if len(sizes) > 1:
        lines.append(f"ingestion growth exponent: {growth_exponent(sizes, seconds):.2f}")
        # Fixed cost: the intercept of a straight-line fit of time against size (Beam start-up, listing).
        slope, intercept = np.polyfit(sizes, seconds, 1)
        lines.append(f"ingestion fixed overhead (linear fit intercept): {intercept:.1f} s; "
                     f"marginal cost {1000 * slope:.2f} ms/image")
    common.RESULTS_DIR.mkdir(exist_ok=True)
    (common.RESULTS_DIR / "ingestion.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
