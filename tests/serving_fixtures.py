"""A real Transform output for the serving, blessing and client tests, from a schema of just the features
the exported model reads (image_bytes, label, source_uri): these tests stay independent of the metadata
features the ingestion schema adds for data validation."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from components.transform.preprocessing import decode_and_scale
from tests.conftest import COLORS, analyze_color_examples, encode, noisy_color

_SCHEMA = """
feature { name: "image_bytes" type: BYTES presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }
feature { name: "label" type: BYTES presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }
feature { name: "source_uri" type: BYTES presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }
"""


@pytest.fixture(scope="session")
def serving_transform_output_dir(tmp_path_factory) -> str:
    """preprocessing_fn analyzed by tf.Transform on Beam at 32x32; ids by frequency: red apple 0, grün 1, blue sky 2."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(_SCHEMA, schema_pb2.Schema())
    return analyze_color_examples(schema, str(tmp_path_factory.mktemp("serving_transform_output")))


def labelled_images(per_class, seed):
    rng = np.random.default_rng(seed)
    return [(encode(noisy_color(rgb, rng), "PNG" if i % 2 else "JPEG"), name)
            for name, rgb in COLORS.items() for i in range(per_class)]


def small_classifier(class_names, train_steps):
    """Mean color -> softmax; zero-initialized, so with 0 training steps every class scores the same."""
    model = tf_keras.Sequential([tf_keras.layers.InputLayer((32, 32, 3)), tf_keras.layers.GlobalAveragePooling2D(),
                                 tf_keras.layers.Dense(len(class_names), activation="softmax",
                                                       kernel_initializer="zeros")])
    model.compile(tf_keras.optimizers.Adam(0.1), "sparse_categorical_crossentropy")
    if train_steps:
        data = labelled_images(6, seed=10)
        images = np.stack([decode_and_scale(tf.constant(image), 32).numpy() for image, _ in data])
        labels = np.array([class_names.index(name) for _, name in data])
        model.fit(images, labels, epochs=train_steps, batch_size=len(labels), verbose=0)
    return model
