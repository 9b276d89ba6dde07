"""Machine limit: achieved FLOP/s of a phase-2 training step as a fraction of measured dense matmul FLOP/s.

FLOPs of one step are counted by TensorFlow's profiler on the traced step (forward, loss, gradients of
the trainable variables: blocks from --unfreeze-from-block up and the head), not estimated from a paper.
Two steps are measured: the image path (the whole model on images) and the cached path (the top above the
unfreeze boundary on cached activations, what phase 2 runs by default). Each step is broken down by timing
its parts as separate traced functions, interleaved in turns (best of each): forward (with the loss),
backward (forward+gradients minus forward), optimizer (the whole step minus forward+gradients), host
overhead (Keras fit's time per step on the same in-memory batch minus the bare step; the per-step slope of two
fit lengths, so that fit's cost per call is not spread over a few steps) and input (producing one batch through
tf.data alone; prefetch overlaps it with the step). Process CPU seconds per step of the bare step and of fit's
step tell Keras' host work (CPU) from cores left idle (wall only).

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


def best_seconds(function, *args, repeats: int) -> float:
    """Best wall time of `repeats` calls (each ends with a host transfer, so it includes the work)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        tf.nest.map_structure(lambda tensor: tensor.numpy(), function(*args))
        best = min(best, time.perf_counter() - started)
    return best


class StepParts:
    """Forward, forward+gradients and the whole training step of one model, as traced functions."""

    def __init__(self, model: tf_keras.Model, learning_rate: float = 1e-5):
        self.model = model
        self.optimizer = tf_keras.optimizers.Adam(learning_rate)
        self.loss_fn = tf_keras.losses.CategoricalCrossentropy()
        self.forward = tf.function(self._forward)
        self.gradients = tf.function(self._gradients)
        self.step = tf.function(self._step)

    def _forward(self, x, y):
        return self.loss_fn(y, self.model(x, training=True))

    def _gradients(self, x, y):
        with tf.GradientTape() as tape:
            loss = self._forward(x, y)
        return loss, tape.gradient(loss, self.model.trainable_variables)

    def _step(self, x, y):
        loss, gradients = self._gradients(x, y)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        return loss

    def fit_per_step(self, x, y, steps: int, rounds: int = 2) -> dict:
        """Keras fit on one in-memory batch repeated, at `steps` and 3 x `steps` steps per call: the slope is the
        time of a step inside fit (the bare step plus Keras' per-step host work), the rest fit's cost per call
        (set-up, iterator, callbacks), which one fit per training phase pays once. Wall and process CPU seconds:
        CPU time tells host work from cores left idle, and is less moved by other processes' load."""
        model_lib.compile_for_phase(self.model, 1e-5)
        dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
        self.model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)  # Traces Keras' train_function.
        timings = {steps: (float("inf"), float("inf")), 3 * steps: (float("inf"), float("inf"))}
        for _ in range(rounds):  # In turns, best of each: a burst of load elsewhere skews no single length.
            for count in timings:
                wall, cpu = _wall_and_cpu(lambda: self.model.fit(dataset, steps_per_epoch=count, epochs=1, verbose=0))
                timings[count] = (min(timings[count][0], wall), min(timings[count][1], cpu))
        (short_wall, short_cpu), (long_wall, long_cpu) = timings[steps], timings[3 * steps]
        slope, slope_cpu = (long_wall - short_wall) / (2 * steps), (long_cpu - short_cpu) / (2 * steps)
        return {"fit": slope, "fit_cpu": slope_cpu, "fit_call": max(short_wall - steps * slope, 0.0),
                "fit_call_cpu": max(short_cpu - steps * slope_cpu, 0.0)}

    def step_cpu_seconds(self, x, y, steps: int) -> float:
        """Process CPU seconds of one bare step, `steps` dispatched back to back as fit dispatches them."""
        def run():
            for _ in range(steps):
                loss = self.step(x, y)
            loss.numpy()
        return _wall_and_cpu(run)[1] / steps

    def breakdown(self, x, y, steps: int, rounds: int = 3) -> dict:
        for function in (self.forward, self.gradients, self.step):
            best_seconds(function, x, y, repeats=1)  # Trace and warm up.
        times = {"forward": float("inf"), "gradients": float("inf"), "step": float("inf"), "fit": float("inf")}
        for _ in range(rounds):  # In turns, so a burst of load elsewhere skews no single part.
            times["forward"] = min(times["forward"], best_seconds(self.forward, x, y, repeats=steps))
            times["gradients"] = min(times["gradients"], best_seconds(self.gradients, x, y, repeats=steps))
            times["step"] = min(times["step"], best_seconds(self.step, x, y, repeats=steps))
        times.update(self.fit_per_step(x, y, steps))
        times["step_cpu"] = self.step_cpu_seconds(x, y, steps)
        return times


def _wall_and_cpu(function) -> tuple:
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def input_seconds_per_batch(x, y, batches: int = 50) -> float:
    """One batch through shuffle -> batch -> prefetch from in-memory examples, timed alone."""
    examples = tf.data.Dataset.from_tensor_slices((tf.repeat(x, 8, axis=0), tf.repeat(y, 8, axis=0)))
    dataset = examples.shuffle(len(x) * 8).batch(len(x)).repeat().prefetch(tf.data.AUTOTUNE)
    iterator = iter(dataset)
    next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return (time.perf_counter() - started) / batches


def breakdown_line(name: str, times: dict, input_seconds: float) -> str:
    parts = {
        "input": input_seconds,
        "forward": times["forward"],
        "backward": max(times["gradients"] - times["forward"], 0.0),
        "optimizer": max(times["step"] - times["gradients"], 0.0),
        "host overhead": max(times["fit"] - times["step"], 0.0),
    }
    return (f"{name} step breakdown (ms per step, batch timed alone): "
            + ", ".join(f"{part} {1000 * seconds:.1f}" for part, seconds in parts.items())
            + f"; Keras fit {1000 * times['fit']:.1f} ms/step (slope of two fit lengths; fit's cost per call "
            f"{1000 * times['fit_call']:.0f} ms apart, CPU {1000 * times['fit_call_cpu']:.0f} ms); CPU ms per step: "
            f"bare step {1000 * times['step_cpu']:.1f}, inside fit {1000 * times['fit_cpu']:.1f}")


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
    split = model_lib.split_at_block(classifier, args.unfreeze_from_block)
    images = tf.random.uniform([args.batch_size, args.image_size, args.image_size, 3], -1, 1)
    labels = tf.one_hot(tf.range(args.batch_size) % 10, 10)
    activations = split.bottom(images, training=False)

    on_images, on_cache = StepParts(classifier.model), StepParts(split.top)
    flops = step_flops(on_images.step, images, labels)
    cached_flops = step_flops(on_cache.step, activations, labels)
    # Forward alone, for comparison with published figures (MobileNetV2 1.0 at 224x224: about 0.6 GFLOP).
    forward_flops = step_flops(tf.function(lambda x: classifier.model(x, training=False)), images)
    bottom_flops = step_flops(tf.function(lambda x: split.bottom(x, training=False)), images)
    # The limit is measured before and after the steps and the higher taken: a noisy machine then
    # understates the fraction rather than overstating it.
    peak_before = matmul_flops_per_second()
    image_times = on_images.breakdown(images, labels, args.steps)
    cache_times = on_cache.breakdown(activations, labels, args.steps)
    image_input, cache_input = input_seconds_per_batch(images, labels), input_seconds_per_batch(activations, labels)
    peak = max(peak_before, matmul_flops_per_second())
    achieved, cached_achieved = flops / image_times["step"], cached_flops / cache_times["step"]
    per_image = 1e9 * args.batch_size
    lines = [
        f"machine: {common.machine_description()}",
        f"phase-2 step: MobileNetV2 alpha {args.alpha}, {args.image_size}x{args.image_size}, batch "
        f"{args.batch_size}, trainable from block {args.unfreeze_from_block}; revision {common.git_revision()}",
        f"threads: intra-op {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, inter-op "
        f"{tf.config.threading.get_inter_op_parallelism_threads() or 'default'}, "
        f"oneDNN {os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default (on)')}",
        f"FLOPs per step (profiler): {flops / 1e9:.1f} GFLOP ({flops / per_image:.2f} GFLOP/image; "
        f"forward alone {forward_flops / per_image:.2f} GFLOP/image, of which frozen bottom "
        f"{bottom_flops / per_image:.2f})",
        f"FLOPs per cached step (top on boundary activations): {cached_flops / 1e9:.1f} GFLOP "
        f"({cached_flops / per_image:.2f} GFLOP/image)",
        breakdown_line("image-path", image_times, image_input),
        breakdown_line("cached-path", cache_times, cache_input),
        f"achieved training FLOP/s: {achieved / 1e9:.1f} GFLOP/s (cached path {cached_achieved / 1e9:.1f})",
        f"dense matmul FLOP/s (2048x2048 fp32): {peak / 1e9:.1f} GFLOP/s",
        f"fraction of machine limit: {achieved / peak:.2f}",
        f"fraction of machine limit, cached path: {cached_achieved / peak:.2f}",
        f"cached step vs image step, time per step: {image_times['step'] / cache_times['step']:.1f}x faster",
    ]
    common.RESULTS_DIR.mkdir(exist_ok=True)
    (common.RESULTS_DIR / "machine.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
