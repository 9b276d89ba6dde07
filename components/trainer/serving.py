"""The exported SavedModel: the Transform graph and the model in one, behind three signatures.

- serving_default: a batch of encoded image bytes (what TF Serving's REST {"b64": ...} delivers) in;
  class probabilities and the top-k class ids, names and scores out.
- serving_tf_example: the same from serialized tf.Example records (what TFMA and InfraValidator send).
- transform_features: serialized tf.Example in, the transformed label out; TFMA uses it for labels.

Both image signatures check every image in the graph before anything is decoded (size in bytes, format,
and the pixel count read from the file header), so an empty, corrupt or oversized image fails its
request with InvalidArgumentError (HTTP 400 in TF Serving) instead of exhausting the server's memory.
Beside the SavedModel the export writes assets.extra/ (TF Serving warmup requests and model_info.json)
and tflite/ (TFLite conversions and their accuracy on the eval split next to the SavedModel's).
"""
import dataclasses
import json
import logging
import os
import time
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras

from components import features
from components.ingestion import image_tree
from components.native_stderr import native_log_path, native_stderr_to
from components.trainer.hparams import TrainingConfig

# Header bytes that hold the dimensions of every supported non-JPEG format (PNG's IHDR ends at byte 24).
_HEADER_BYTES = 32
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TFLITE_QUANTIZATIONS = ("float16", "int8")
# Warmup requests: a few real images per signature are enough to trigger TF Serving's lazy initialization.
WARMUP_IMAGES = 3


@dataclasses.dataclass(frozen=True)
class InputLimits:
    """What one served image may be. The defaults are ingestion's, so every training image is servable."""

    max_bytes: int = image_tree.DEFAULT_MAX_BYTES
    max_pixels: int = image_tree.DEFAULT_MAX_PIXELS

    def __post_init__(self):
        if self.max_bytes < 1 or self.max_pixels < 1:
            raise ValueError(f"Input limits must be positive, got {self}.")


def read_class_names(tft_output: tft.TFTransformOutput) -> List[str]:
    """Class names in id order: line i of the label vocabulary names class id i."""
    path = tft_output.vocabulary_file_by_name(features.LABEL_VOCABULARY_NAME)
    with tf.io.gfile.GFile(path, "rb") as handle:
        return [line.rstrip(b"\n").decode("utf-8") for line in handle if line.strip()]


def named_outputs(probabilities: tf.Tensor, class_names: tf.Tensor, top_k: int) -> Dict[str, tf.Tensor]:
    scores, ids = tf.math.top_k(probabilities, k=top_k)
    return {
        features.PROBABILITIES_KEY: probabilities,
        features.TOP_K_SCORES_KEY: scores,
        features.TOP_K_IDS_KEY: tf.cast(ids, tf.int64),
        features.TOP_K_NAMES_KEY: tf.gather(class_names, ids),
    }


def _unsigned(header: tf.Tensor, start: int, count: int, little_endian: bool) -> tf.Tensor:
    digits = header[start:start + count]
    powers = 256 ** (np.arange(count) if little_endian else np.arange(count)[::-1])
    return tf.reduce_sum(digits * tf.constant(powers, tf.int64))


def image_dimensions(encoded: tf.Tensor) -> tf.Tensor:
    """[height, width] of one encoded image, read from its header without decoding the pixels.

    [-1, -1] when the bytes are not JPEG, PNG, GIF or BMP. A JPEG whose markers are corrupt raises
    InvalidArgumentError here, before any decoding.
    """
    padded = tf.strings.join([tf.strings.substr(encoded, 0, _HEADER_BYTES), b"\0" * _HEADER_BYTES])
    header = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 0, _HEADER_BYTES), tf.uint8), tf.int64)

    def png():  # IHDR: width and height as big-endian uint32 at bytes 16 and 20.
        return tf.stack([_unsigned(header, 20, 4, False), _unsigned(header, 16, 4, False)])

    def gif():  # Logical screen: width and height as little-endian uint16 at bytes 6 and 8.
        return tf.stack([_unsigned(header, 8, 2, True), _unsigned(header, 6, 2, True)])

    def bmp():  # BITMAPINFOHEADER: signed int32 width and height (negative height: top-down rows).
        def signed(start):
            value = _unsigned(header, start, 4, True)
            return tf.abs(tf.where(value >= 2 ** 31, value - 2 ** 32, value))
        return tf.stack([signed(22), signed(18)])

    def jpeg():
        return tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64)

    return tf.case([
        (tf.equal(tf.strings.substr(encoded, 0, 8), _PNG_SIGNATURE), png),
        (tf.equal(tf.strings.substr(encoded, 0, 4), b"GIF8"), gif),
        (tf.equal(tf.strings.substr(encoded, 0, 2), b"BM"), bmp),
        (tf.equal(tf.strings.substr(encoded, 0, 3), b"\xff\xd8\xff"), jpeg),
    ], default=lambda: tf.constant([-1, -1], tf.int64), exclusive=False)


def checked_image_bytes(image_bytes: tf.Tensor, limits: InputLimits) -> tf.Tensor:
    """The [batch] encoded images, passed on only after every one of them is within the limits.

    The checks run before decode_image sees the bytes, so a decompression bomb (a small file that
    declares a huge image) is refused before anything is allocated for its pixels.
    """
    lengths = tf.strings.length(image_bytes)
    size_checks = [
        tf.debugging.assert_positive(lengths, message="Image rejected: an image is empty (0 bytes).",
                                     summarize=1),
        tf.debugging.assert_less_equal(lengths, tf.constant(limits.max_bytes, tf.int32), summarize=1,
                                       message=f"Image rejected: an image is larger than {limits.max_bytes} bytes."),
    ]
    with tf.control_dependencies(size_checks):
        dimensions = tf.map_fn(image_dimensions, image_bytes, fn_output_signature=tf.TensorSpec([2], tf.int64))
    pixels = tf.reduce_prod(dimensions, axis=1)
    pixel_checks = [
        tf.debugging.assert_non_negative(
            dimensions[:, 0], summarize=1,
            message="Image rejected: not a JPEG, PNG, GIF or BMP image (unrecognized or corrupt header)."),
        tf.debugging.assert_positive(pixels, summarize=1, message="Image rejected: its header declares no pixels."),
        tf.debugging.assert_less_equal(pixels, tf.constant(limits.max_pixels, tf.int64), summarize=1,
                                       message=f"Image rejected: an image has more than {limits.max_pixels} pixels."),
    ]
    with tf.control_dependencies(pixel_checks):
        return tf.identity(image_bytes)


def export_serving_model(model: tf_keras.Model, tft_output: tft.TFTransformOutput, class_names: List[str],
                         export_dir: str, top_k: int, limits: InputLimits = InputLimits(),
                         warmup_images: Sequence[bytes] = (), model_info: Optional[Dict] = None) -> None:
    """Saves the SavedModel, then its assets.extra/ files: warmup requests (from `warmup_images`, real
    encoded images) and model_info.json (class names, limits and whatever `model_info` adds)."""
    tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    names = tf.constant(class_names)
    k = min(top_k, len(class_names))

    def classify(image_bytes: tf.Tensor) -> Dict[str, tf.Tensor]:
        image_bytes = checked_image_bytes(image_bytes, limits)
        # The raw feature spec holds one value per example: [batch] -> [batch, 1].
        transformed = tft_layer({features.IMAGE_KEY: tf.reshape(image_bytes, [-1, 1])})
        return named_outputs(model(transformed[features.TRANSFORMED_IMAGE_KEY], training=False), names, k)

    # autograph=False: these functions have no Python control flow on tensors (tf.case and map_fn take plain
    # functions), and AutoGraph transpiled 25 functions from their source on every export (first export of
    # a process: CPU 7.4 -> 5.6 s, medians of 3 fresh processes each, MobileNetV2 96x96, load average 4.5-5.9).
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.IMAGE_KEY)], autograph=False)
    def serve_image_bytes(image_bytes):
        return classify(image_bytes)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def serve_tf_examples(serialized):
        parsed = tf.io.parse_example(serialized, {features.IMAGE_KEY: raw_spec[features.IMAGE_KEY]})
        # The other signature's function, not classify again: its one trace (the Transform graph and the whole
        # model) becomes a function both signatures call, where a second classify traced and saved it twice.
        return serve_image_bytes(tf.reshape(parsed[features.IMAGE_KEY], [-1]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def transform_features(serialized):
        # Only the label is fed: TFT prunes the image branch, so TFMA does not decode every image twice.
        raw = tf.io.parse_example(serialized, {features.LABEL_KEY: raw_spec[features.LABEL_KEY]})
        transformed = tft_layer(raw)
        return {features.TRANSFORMED_LABEL_KEY: transformed[features.TRANSFORMED_LABEL_KEY]}

    # The tf.functions themselves, not concrete functions traced here: under MultiWorkerMirroredStrategy a
    # concrete function that reads distributed variables "cannot be saved" (concrete_function.py,
    # _export_to_saved_model_graph); saving traces them itself from their input signatures.
    with without_keras_layer_traces():
        tf.saved_model.save(servable(model, tft_layer), export_dir, signatures={
            features.SERVING_SIGNATURE: serve_image_bytes,
            features.TF_EXAMPLE_SIGNATURE: serve_tf_examples,
            features.TRANSFORM_SIGNATURE: transform_features,
        })
    info = {"class_names": list(class_names), "top_k": k, "input_limits": dataclasses.asdict(limits),
            "signatures": [features.SERVING_SIGNATURE, features.TF_EXAMPLE_SIGNATURE], **(model_info or {})}
    write_json(os.path.join(export_dir, features.ASSETS_EXTRA_DIR, features.MODEL_INFO_FILE_NAME), info)
    if warmup_images:
        write_warmup_requests(export_dir, list(warmup_images)[:WARMUP_IMAGES])


def servable(model: tf_keras.Model, tft_layer: tf.Module) -> tf.Module:
    """What the SavedModel holds besides its signatures: the model's variables and the Transform graph (with its
    assets, the vocabulary), in a plain tf.Module rather than the Keras model.

    Nothing loads the export as Keras (TF Serving, TFMA's TF_GENERIC and the clients call the signatures), and
    Keras' own save pays for that: it traced every layer's call functions (save_traces; MobileNetV2 78 s -> 18 s
    without them, under load), and even without them it serializes every layer's config to keras_metadata.pb
    and walks its layers' object graph (tf_keras/src/saving/legacy/saved_model/layer_serialization.py,
    python_properties; about 1/5 of a MobileNetV2 export in cProfile). Export CPU 5.9 -> 3.9 s (MobileNetV2
    96x96, medians of 3 fresh processes each, load average 5.7-10), same probabilities.
    """
    servable_module = tf.Module()
    servable_module.variables_of_the_model = list(model.variables)
    servable_module.tft_layer = tft_layer
    return servable_module


def without_keras_layer_traces():
    """Keras' save_traces=False for a tf.saved_model.save: the Transform graph's layer (TFT's
    TransformFeaturesLayer is a Keras model) is saved without traces of its call functions, as model.save(...,
    save_traces=False) did. The one use of this private tf_keras scope, which that save enters itself
    (tf_keras/src/saving/legacy/save.py, save_model; tf_keras/src/saving/legacy/saved_model/utils.py)."""
    from tf_keras.src.saving.legacy.saved_model.utils import keras_option_scope

    return keras_option_scope(save_traces=False)


def write_json(path: str, values: Dict) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(json.dumps(values, indent=2, ensure_ascii=False))


def tf_example(image: bytes) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))})).SerializeToString()


def write_warmup_requests(export_dir: str, images: List[bytes]) -> str:
    """assets.extra/tf_serving_warmup_requests: one PredictionLog per image signature, with real images.

    TF Serving replays these after loading a version and before marking it available, so the first real
    request does not pay for graph initialization.
    """
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path = os.path.join(export_dir, features.ASSETS_EXTRA_DIR, features.WARMUP_FILE_NAME)
    tf.io.gfile.makedirs(os.path.dirname(path))
    requests = (
        (features.SERVING_SIGNATURE, features.IMAGE_KEY, images),
        (features.TF_EXAMPLE_SIGNATURE, "examples", [tf_example(image) for image in images]),
    )
    with tf.io.TFRecordWriter(path) as writer:
        for signature, input_name, values in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature
            request.inputs[input_name].CopyFrom(tf.make_tensor_proto(values, dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def sample_image_bytes(example_patterns: Iterable[str], count: int) -> List[bytes]:
    """The encoded images of the first `count` examples of GZIP tf.Example files (for warmup requests)."""
    files = [path for pattern in example_patterns for path in tf.io.gfile.glob(pattern)]
    if not files:
        return []
    spec = {features.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
    dataset = tf.data.TFRecordDataset(sorted(files), compression_type="GZIP").take(count)
    return [tf.io.parse_single_example(record, spec)[features.IMAGE_KEY].numpy() for record in dataset]


def convert_to_tflite(model: tf_keras.Model, image_size: int, quantization: str,
                      representative_images: Optional[np.ndarray] = None) -> bytes:
    """The model alone (transformed float images in, probabilities out) as a TFLite flatbuffer.

    The Transform graph's decode ops are not TFLite builtins, so on-device callers decode and scale
    ([-1, 1]) themselves. "float16" halves the weights; "int8" quantizes with `representative_images`.
    """
    if quantization not in TFLITE_QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {TFLITE_QUANTIZATIONS}, got {quantization!r}.")

    @tf.function(input_signature=[tf.TensorSpec([1, image_size, image_size, 3], tf.float32, name="image")],
                 autograph=False)  # Nothing to transpile, as for the SavedModel's signatures.
    def infer(image):
        return {features.PROBABILITIES_KEY: model(image, training=False)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([infer.get_concrete_function()], model)
    # By default the converter first saves `model` as a temporary SavedModel and loads it back
    # (tensorflow/lite/python/lite.py, TFLiteFrozenGraphConverterV2._convert_concrete_functions_to_saved_model):
    # for a Keras model that traces every layer's call functions, 52 of 57 s of a MobileNetV2 conversion.
    # Off, it freezes the concrete function's variables into constants directly: same flatbuffer, ~3 s.
    converter.experimental_lower_to_saved_model = False
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    else:
        if representative_images is None or not len(representative_images):
            raise ValueError("int8 quantization needs representative images from the training split.")
        converter.representative_dataset = lambda: ([image[None]] for image in representative_images)
    with native_stderr_to(native_log_path("tflite")):  # The converter's absl lines (see native_stderr.py).
        return converter.convert()


def tflite_probabilities(content: bytes, images: np.ndarray) -> np.ndarray:
    with native_stderr_to(native_log_path("tflite")):  # "Created TensorFlow Lite XNNPACK delegate for CPU."
        interpreter = tf.lite.Interpreter(model_content=content)
        interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    rows = []
    for image in images:
        interpreter.set_tensor(input_index, image[None].astype(np.float32))
        interpreter.invoke()
        rows.append(interpreter.get_tensor(output_index)[0])
    return np.array(rows)


def sampled(examples: tf.data.Dataset, count: Optional[int], seed: int) -> tf.data.Dataset:
    """A fixed, seeded random sample of `count` elements of a finite dataset, in their order (the whole dataset
    when it holds no more, or when `count` is None). Random, not the first `count`: splits are written in file
    order, which is often class by class. Taken by index, so a cached dataset (the Trainer's decoded eval split,
    components/trainer/data.py) is not decoded again for the elements left out."""
    total = int(examples.cardinality())
    if total == tf.data.INFINITE_CARDINALITY:
        raise ValueError("Cannot sample an infinite dataset: pass a finite one (no repeat()).")
    if total == tf.data.UNKNOWN_CARDINALITY:  # Counted (one pass); the Trainer's datasets carry their count.
        total = int(examples.reduce(tf.constant(0, tf.int64), lambda counted, _: counted + 1))
    if count is None or total <= count:
        return examples
    chosen = tf.constant(np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False)), tf.int64)
    return (examples.enumerate()
            .filter(lambda index, _: tf.reduce_any(tf.equal(chosen, index)))
            .map(lambda _, element: element))


def _as_arrays(examples: tf.data.Dataset, limit: Optional[int], seed: int = 0) -> tuple:
    """(images, class ids) of an unbatched (image, one-hot label) dataset, at most `limit` of them (sampled)."""
    examples = sampled(examples, limit, seed)
    images, labels = [], []
    for image, label in examples.as_numpy_iterator():
        images.append(image)
        labels.append(int(np.argmax(label)))
    return np.array(images, np.float32), np.array(labels)


def export_tflite(model: tf_keras.Model, image_size: int, export_dir: str, eval_examples: tf.data.Dataset,
                  representative_examples: Optional[tf.data.Dataset] = None,
                  quantizations: Sequence[str] = ("float16",),
                  max_eval_examples: Optional[int] = TrainingConfig.tflite_eval_examples, seed: int = 0,
                  representative_count: int = 100) -> Dict:
    """Writes tflite/model_<quantization>.tflite beside the SavedModel and tflite/tflite_evaluation.json:
    each conversion's accuracy on a seeded random sample of at most `max_eval_examples` of `eval_examples`
    (None: all) next to the Keras model's on the same images, and how often the two agree on the top class.
    The Pusher decides from that file whether the TFLite files ship.
    """
    images, labels = _as_arrays(eval_examples, max_eval_examples, seed)
    reference = model.predict(images, batch_size=32, verbose=0).argmax(axis=1) if len(images) else np.array([])
    evaluation = {"eval_examples": int(len(images)),
                  "savedmodel_accuracy": float(np.mean(reference == labels)) if len(images) else None,
                  "tflite": {}}
    representative = None
    if "int8" in quantizations and representative_examples is not None:
        representative, _ = _as_arrays(representative_examples, representative_count)
    tflite_dir = os.path.join(export_dir, features.TFLITE_DIR)
    tf.io.gfile.makedirs(tflite_dir)
    for quantization in quantizations:
        started = time.monotonic()
        content = convert_to_tflite(model, image_size, quantization, representative)
        seconds = time.monotonic() - started
        file_name = f"model_{quantization}.tflite"
        with tf.io.gfile.GFile(os.path.join(tflite_dir, file_name), "wb") as handle:
            handle.write(content)
        predicted = tflite_probabilities(content, images).argmax(axis=1) if len(images) else np.array([])
        evaluation["tflite"][quantization] = {
            "file": file_name, "bytes": len(content), "conversion_seconds": round(seconds, 1),
            "accuracy": float(np.mean(predicted == labels)) if len(images) else None,
            "agreement_with_savedmodel": float(np.mean(predicted == reference)) if len(images) else None,
        }
        logging.info("TFLite %s: %s", quantization, evaluation["tflite"][quantization])
    write_json(os.path.join(tflite_dir, features.TFLITE_EVALUATION_FILE_NAME), evaluation)
    return evaluation
