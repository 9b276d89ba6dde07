"""Machine limit: achieved FLOP/s of a phase-2 training step as a fraction of measured dense matmul FLOP/s.

FLOPs of one step are counted by TensorFlow's profiler on the traced step (forward, loss, gradients of
the trainable variables: blocks from --unfreeze-from-block up and the head), not estimated from a paper.

    python bench/bench_machine.py [--image-size 160] [--batch-size 32]     (part of make bench)
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from bench import common  # noqa: E402
from components.trainer import model as model_lib  # noqa: E402
from components.trainer.hparams import TrainingConfig  # noqa: E402


def matmul_flops_per_second(size: int = 2048, repeats: int = 20) -> float:
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])

    @tf.function
    def chain(x):
        for _ in range(repeats):
            x = tf.matmul(x, b) * 1e-3
        return x

    chain(a).numpy()  # Trace and warm up.
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        chain(a).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 * repeats / best


def step_flops(step_fn, *args) -> float:
    graph = step_fn.get_concrete_function(*args).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--unfreeze-from-block", type=int, default=13)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    config = TrainingConfig(image_size=args.image_size, alpha=args.alpha, weights="none",
                            unfreeze_from_block=args.unfreeze_from_block, augment_flip=False, augment_rotation=0,
                            augment_zoom=0, augment_contrast=0)
    classifier = model_lib.build_model(10, config)
    model_lib.unfreeze_top(classifier.base, args.unfreeze_from_block)
    model = classifier.model
    optimizer = tf_keras.optimizers.Adam(1e-5)
    loss_fn = tf_keras.losses.CategoricalCrossentropy()
    images = tf.random.uniform([args.batch_size, args.image_size, args.image_size, 3], -1, 1)
    labels = tf.one_hot(tf.range(args.batch_size) % 10, 10)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    flops = step_flops(train_step, images, labels)
    # Forward alone, for comparison with published figures (MobileNetV2 1.0 at 224x224: about 0.6 GFLOP).
    forward_flops = step_flops(tf.function(lambda x: model(x, training=False)), images)
    # The limit is measured before and after the steps and the higher taken: a noisy machine then
    # understates the fraction rather than overstating it.
    peak_before = matmul_flops_per_second()
    train_step(images, labels).numpy()
    started = time.perf_counter()
    for _ in range(args.steps):
        loss = train_step(images, labels)
    loss.numpy()
    achieved = flops * args.steps / (time.perf_counter() - started)
    peak = max(peak_before, matmul_flops_per_second())
    lines = [
        f"machine: {common.machine_description()}",
        f"phase-2 step: MobileNetV2 alpha {args.alpha}, {args.image_size}x{args.image_size}, batch "
        f"{args.batch_size}, trainable from block {args.unfreeze_from_block}; revision {common.git_revision()}",
        f"FLOPs per step (profiler): {flops / 1e9:.1f} GFLOP ({flops / args.batch_size / 1e9:.2f} GFLOP/image; "
        f"forward alone {forward_flops / args.batch_size / 1e9:.2f} GFLOP/image)",
        f"achieved training FLOP/s: {achieved / 1e9:.1f} GFLOP/s",
        f"dense matmul FLOP/s (2048x2048 fp32): {peak / 1e9:.1f} GFLOP/s",
        f"fraction of machine limit: {achieved / peak:.2f}",
    ]
    common.RESULTS_DIR.mkdir(exist_ok=True)
    (common.RESULTS_DIR / "machine.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
