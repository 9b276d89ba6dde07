"""Fixtures of the serving tests: a real Transform output for the serving, blessing and client tests, from a
schema of just the features the exported model reads (image_bytes, label, source_uri), so these tests stay
independent of the metadata features the ingestion schema adds for data validation; and a serving directory on
both backends (a local folder, a bucket of the shared GCS emulator) with helpers that look at it object by
object without the code under test."""

import os

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
    return analyze_color_examples(serving_schema(), str(tmp_path_factory.mktemp("serving_transform_output")))


def serving_schema():
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    return text_format.Parse(_SCHEMA, schema_pb2.Schema())


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


# The serving directory on both backends, looked at without the code under test: os for a local folder,
# google-cloud-storage's own listing for a bucket on the shared emulator (tests/gcs_emulator.py).

MODEL_FILES = {"saved_model.pb": b"graph", "fingerprint.pb": b"fp", "variables/variables.index": b"index",
               "variables/variables.data-00000-of-00001": b"weights", "assets/label_vocabulary": b"a\nb\n"}
WEIGHTS_FILE = "variables/variables.data-00000-of-00001"


def write_model(root, weights: bytes = MODEL_FILES[WEIGHTS_FILE]) -> str:
    """A small SavedModel-shaped folder (not loadable: the push only copies files); `weights` makes it unique."""
    for relative, content in {**MODEL_FILES, WEIGHTS_FILE: weights}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return str(root)


@pytest.fixture(params=["local", "gcs"])
def serving_root(request, tmp_path) -> str:
    """An empty serving directory: a local folder, or a prefix in a fresh bucket of the GCS emulator."""
    if request.param == "local":
        return str(tmp_path / "serving")
    emulator = request.getfixturevalue("gcs_emulator")
    return f"gs://{emulator.new_bucket('serving')}/models/imagepipe"


def _gcs_objects(root: str) -> dict:
    """{relative name: object} under a gs:// prefix, listed with google-cloud-storage directly."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    bucket, _, prefix = root[len("gs://"):].partition("/")
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    return {blob.name[len(prefix) + 1:]: blob for blob in client.list_blobs(bucket, prefix=prefix + "/")}


def all_files(root: str) -> dict:
    """{relative posix path: bytes} of every file under a serving directory, local or gs://."""
    if root.startswith("gs://"):
        return {name: blob.download_as_bytes() for name, blob in _gcs_objects(root).items()}
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root).replace(os.sep, "/")] = handle.read()
    return found


def entries(root: str) -> list:
    """Names directly under the serving directory (what TF Serving's poll lists), sorted."""
    if root.startswith("gs://"):
        return sorted({name.split("/", 1)[0] for name in _gcs_objects(root)})
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


def numeric_versions(root: str) -> list:
    return sorted(int(name) for name in entries(root) if name.isdigit())


def files_by_version(root: str) -> dict:
    """{version: {relative path: bytes}} of every numbered folder, from one listing."""
    versions = {}
    for name, data in all_files(root).items():
        folder, _, relative = name.partition("/")
        if folder.isdigit() and relative:
            versions.setdefault(int(folder), {})[relative] = data
    return versions


def version_files(root: str, version: int) -> dict:
    return files_by_version(root).get(version, {})


def assert_complete(versions: dict) -> None:
    """What TF Serving would load is whole: every numbered folder holds saved_model.pb and all model files."""
    for version, files in versions.items():
        missing = set(MODEL_FILES) - set(files)
        assert not missing, f"version {version} lacks {sorted(missing)}"


def assert_every_version_complete(root: str) -> None:
    assert_complete(files_by_version(root))
