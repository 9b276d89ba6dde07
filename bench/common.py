"""Shared set-up of the benchmarks: the demo tree, its split, and the real ingestion and Transform outputs."""
import functools
import hashlib
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Dict, Tuple

from components.ingestion import image_tree

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / ".data"
RESULTS_DIR = BENCH_DIR / "results"


def machine_description() -> str:
    cpu = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    return f"{cpu}, {os.cpu_count()} cores, {memory_gb:.0f} GB RAM, {platform.platform()}"


def demo_tree() -> Path:
    from pipeline.demo_data import build_digits_tree

    root = DATA_DIR / "digits"
    build_digits_tree(str(root))
    return root


def split_trees(root: Path, eval_percent: int = 20) -> Tuple[Path, Path]:
    """train/ and eval/ trees of symlinks, split exactly as ImageExampleGen splits (a hash of each file's
    content) and without the files it drops (later copies of the same content; content under two labels),
    so the seed recipe's flow_from_directory and our Trainer see the same examples."""
    target = DATA_DIR / f"{root.name}-split{eval_percent}"
    train_dir, eval_dir = target / "train", target / "eval"
    if (target / ".complete").exists():
        return train_dir, eval_dir
    first_by_hash: Dict[str, Tuple[str, str]] = {}
    labels_by_hash: Dict[str, set] = {}
    for class_name in image_tree.list_class_names(str(root)):
        for path, is_image in sorted(image_tree.walk_class_folder(str(root), class_name)):
            if is_image:
                digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                first_by_hash.setdefault(digest, (class_name, path))
                labels_by_hash.setdefault(digest, set()).add(class_name)
    for digest, (class_name, path) in first_by_hash.items():
        if len(labels_by_hash[digest]) > 1:
            continue
        split = image_tree.assign_split(digest, eval_percent, 100)
        link = (train_dir if split == image_tree.TRAIN_SPLIT else eval_dir) / os.path.relpath(path, root)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(path)
    (target / ".complete").write_text("")
    return train_dir, eval_dir


def ingest(root: Path, output_dir: Path, eval_percent: int = 20) -> Path:
    """Runs the real ImageExampleGen executor (Beam) on the tree; returns the Examples folder."""
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    from components.ingestion import executor
    from components.ingestion.component import ImageExampleGen
    from pipeline.local_runner import LOCAL_BEAM_ARGS

    component = ImageExampleGen(input_base=str(root), eval_percent=eval_percent)
    exec_properties = {key: proto_utils.proto_to_json(value) if hasattr(value, "DESCRIPTOR") else value
                       for key, value in component.exec_properties.items()}
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    executor.Executor(executor.Executor.Context(beam_pipeline_args=list(LOCAL_BEAM_ARGS))).Do(
        {}, {"examples": [examples]}, exec_properties)
    return output_dir


def analyze_transform(examples_dir: Path, output_dir: Path, image_size: int) -> Path:
    """The Transform graph of preprocessing_fn, analyzed with tf.Transform on Beam over the train split."""
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils
    from tfx.utils import io_utils

    from components.transform.preprocessing import FORCE_TF_COMPAT_V1, preprocessing_fn

    schema = io_utils.parse_pbtxt_file(str(BENCH_DIR.parent / "schemas" / "schema.pbtxt"), schema_pb2.Schema())
    metadata = dataset_metadata.DatasetMetadata(schema)
    spec = schema_utils.schema_as_feature_spec(schema).feature_spec
    import tensorflow as tf

    def parse(record: bytes) -> Dict:
        parsed = tf.io.parse_single_example(record, spec)
        return {key: value.numpy() for key, value in parsed.items()}

    with beam.Pipeline(argv=["--runner=FnApiRunner"]) as pipeline, \
            tft_beam.Context(temp_dir=str(output_dir / "tmp"), force_tf_compat_v1=FORCE_TF_COMPAT_V1):
        raw = (pipeline
               | beam.io.ReadFromTFRecord(str(examples_dir / "Split-train" / "*"), compression_type="gzip")
               | beam.Map(parse))
        transform_fn = (raw, metadata) | tft_beam.AnalyzeDataset(
            functools.partial(preprocessing_fn, custom_config={"image_size": image_size}))
        _ = transform_fn | tft_beam.WriteTransformFn(str(output_dir))
    metadata_io.write_metadata(metadata, str(output_dir / tft.TFTransformOutput.RAW_METADATA_DIR))
    return output_dir


def seed_reading_pass(root: Path, image_size: int) -> Dict[str, float]:
    """The seed recipe's reader: one pass of flow_from_directory (decode, resize, rescale) over the tree.

    Returns its wall seconds, CPU seconds of this process (less sensitive to other load on a shared machine)
    and image count."""
    from tf_keras.preprocessing.image import ImageDataGenerator

    started, cpu_started = time.perf_counter(), time.process_time()
    flow = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(
        str(root), target_size=(image_size, image_size), batch_size=32, shuffle=False)
    for index in range(len(flow)):
        flow[index]
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu_started,
            "images": flow.samples}


def git_revision() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
