"""Transform's preprocessing_fn: the one graph that turns raw examples into model inputs.

It runs inside Transform (to analyze the label vocabulary) and is exported with the model, so training,
evaluation and TF Serving apply exactly the same decoding, resizing and scaling.
"""
from typing import Any, Dict

import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components.transform import image_decoding

DEFAULT_IMAGE_SIZE = 224
# tf.Transform traces preprocessing_fn as a TF1 graph instead of as tf.functions: in TF2 mode it traced the
# function about ten times per run (tensorflow_transform/impl_helper.py trace_preprocessing_function, then
# saved/saved_transform_io_v2.py trace_and_update_module), and tracing the decoding graph's conds and while loops
# was over half of Transform's time (cProfile); TF1 mode traces less and saves a plain graph. With the unused
# analyzer cache also off, Transform's CPU time halved (interleaved runs, README Benchmarks). Every consumer
# loads the graph through TFTransformOutput, which restores a TF1 graph too (tensorflow_transform/saved/
# saved_transform_io_v2.py, _restore_from_v1_saved_model).
# The pipeline's Transform and the tests' graphs (tests/conftest.py) use this one setting.
FORCE_TF_COMPAT_V1 = True


# Not run through AutoGraph: tf.map_fn converts its function, and AutoGraph then rewrote the whole decoding
# module (180 conversions over tf.Transform's five traces, 2.6-2.8 s of CPU in Transform's executor; README
# Benchmarks) though it has no Python control flow on tensors, only tf.cond and tf.while_loop. Python control flow on a
# tensor added here would fail loudly when traced, not change silently.
@tf.autograph.experimental.do_not_convert
def decode_and_scale(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes one encoded image to float32 [image_size, image_size, 3] in [-1, 1].

    decode_upright_rgb reads JPEG, PNG, GIF (first frame) and BMP as upright RGB, applying a JPEG's EXIF
    orientation and compositing alpha onto white as ingestion does, so a sideways or transparent file sent
    to the served model is seen as training saw it. The scaling is MobileNetV2's own preprocess_input
    (x / 127.5 - 1), not the [0, 1] rescale of the classic Keras recipe, which feeds the pretrained base
    inputs it never saw.
    """
    image = image_decoding.decode_upright_rgb(encoded)
    image = tf.image.resize(image, [image_size, image_size], method=tf.image.ResizeMethod.BILINEAR, antialias=True)
    return image / 127.5 - 1.0


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    image_size = int(custom_config.get("image_size", DEFAULT_IMAGE_SIZE))
    outputs = {}
    # Features arrive as dense [batch, 1] tensors (the schema fixes one value per example).
    encoded = tf.reshape(inputs[features.IMAGE_KEY], [-1])
    outputs[features.TRANSFORMED_IMAGE_KEY] = tf.map_fn(
        lambda one: decode_and_scale(one, image_size),
        encoded,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
    )
    # Serving feeds no label: TFT prunes this output there. Ids are assigned by frequency, so the
    # vocabulary file (line i names class i) is what names the model's outputs.
    labels = tf.reshape(inputs[features.LABEL_KEY], [-1])
    outputs[features.TRANSFORMED_LABEL_KEY] = tft.compute_and_apply_vocabulary(
        labels, vocab_filename=features.LABEL_VOCABULARY_NAME, num_oov_buckets=0, default_value=-1)
    return outputs
