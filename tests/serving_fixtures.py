"""A real Transform output for the serving, blessing and client tests, from a schema of just the features
the exported model reads (image_bytes, label, source_uri): these tests stay independent of the metadata
features the ingestion schema adds for data validation."""
import functools
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from components.transform.preprocessing import decode_and_scale
from tests.conftest import COLORS, encode, noisy_color

_SCHEMA = """
feature { name: "image_bytes" type: BYTES presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }
feature { name: "label" type: BYTES presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }
feature { name: "source_uri" type: BYTES presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }
"""


@pytest.fixture(scope="session")
def serving_transform_output_dir(tmp_path_factory) -> str:
    """preprocessing_fn analyzed by tf.Transform on Beam at 32x32; ids by frequency: red apple 0, grün 1, blue sky 2."""
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

    from components import features
    from components.transform.preprocessing import preprocessing_fn

    schema = text_format.Parse(_SCHEMA, schema_pb2.Schema())
    rng = np.random.default_rng(1)
    labels = ["red apple"] * 3 + ["grün"] * 2 + ["blue sky"]
    instances = [
        {features.IMAGE_KEY: [encode(noisy_color(COLORS[label], rng), "PNG")],
         features.LABEL_KEY: [label.encode()], features.SOURCE_URI_KEY: [f"/images/{i}.png".encode()]}
        for i, label in enumerate(labels)
    ]
    output_dir = str(tmp_path_factory.mktemp("serving_transform_output"))
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=os.path.join(output_dir, "tmp")):
        raw = pipeline | beam.Create(instances)
        transform_fn = (raw, dataset_metadata.DatasetMetadata(schema)) | tft_beam.AnalyzeDataset(
            functools.partial(preprocessing_fn, custom_config={"image_size": 32}))
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema),
                               os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    return output_dir


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
