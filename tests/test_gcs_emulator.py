"""Each storage client the pipeline uses reads, writes, lists, copies/renames and deletes on the shared GCS
emulator (tests/gcs_emulator.py): real calls against fake-gcs-server, nothing mocked. TensorFlow's gfile is its
built-in gs:// filesystem (what TFX, TFT and TFMA use), reaching the emulator through tests/gcs_emulator_route.py."""
import json
import os
import subprocess
import sys
from pathlib import Path


def test_google_cloud_storage_reaches_the_emulator(gcs_emulator):
    client = gcs_emulator.client()
    bucket = client.bucket(gcs_emulator.new_bucket())
    bucket.blob("a/one.txt").upload_from_string(b"first")
    bucket.blob("a/two.txt").upload_from_string(b"second")

    assert sorted(blob.name for blob in client.list_blobs(bucket, prefix="a/")) == ["a/one.txt", "a/two.txt"]
    bucket.copy_blob(bucket.blob("a/one.txt"), bucket, "b/copy.txt")
    bucket.rename_blob(bucket.blob("a/two.txt"), "b/renamed.txt")
    bucket.blob("a/one.txt").delete()

    assert sorted(blob.name for blob in client.list_blobs(bucket)) == ["b/copy.txt", "b/renamed.txt"]
    assert bucket.blob("b/copy.txt").download_as_bytes() == b"first"
    assert bucket.blob("b/renamed.txt").download_as_bytes() == b"second"


def test_tensorflow_gfile_reaches_the_emulator(gcs_emulator):
    import tensorflow as tf

    gfile = tf.io.gfile
    root = f"gs://{gcs_emulator.new_bucket()}"
    # Larger than one upload chunk and one read block of a small client, binary, with every byte value.
    payload = bytes(range(256)) * 12_000
    gfile.makedirs(f"{root}/d/sub")
    with gfile.GFile(f"{root}/d/sub/big.bin", "wb") as file:
        file.write(payload)
    with gfile.GFile(f"{root}/d/note ü.txt", "w") as file:
        file.write("hello")

    assert gfile.isdir(f"{root}/d/sub")
    assert sorted(gfile.listdir(f"{root}/d")) == ["note ü.txt", "sub/"]
    assert gfile.glob(f"{root}/d/*.txt") == [f"{root}/d/note ü.txt"]
    assert gfile.stat(f"{root}/d/sub/big.bin").length == len(payload)
    assert gfile.GFile(f"{root}/d/sub/big.bin", "rb").read() == payload

    gfile.copy(f"{root}/d/note ü.txt", f"{root}/e/copy.txt")
    gfile.rename(f"{root}/e/copy.txt", f"{root}/e/renamed.txt")
    assert not gfile.exists(f"{root}/e/copy.txt")
    assert gfile.GFile(f"{root}/e/renamed.txt").read() == "hello"
    gfile.remove(f"{root}/e/renamed.txt")
    gfile.rmtree(f"{root}/d")
    assert not gfile.exists(f"{root}/e/renamed.txt") and not gfile.exists(f"{root}/d/sub/big.bin")


def test_tensorflow_folders_are_empty_objects_that_other_clients_list(gcs_emulator):
    """gfile.makedirs on GCS writes an empty object per folder, named with a trailing "/" (GcsFileSystem::CreateDir
    in tsl/platform/cloud/gcs_file_system.cc); the Trainer's model folders have them. A google-cloud-storage
    listing returns them beside the files: code that copies or hashes "every object under a folder" must skip
    names ending in "/" (reading one as a file fails with 404)."""
    import tensorflow as tf

    bucket = gcs_emulator.new_bucket()
    tf.io.gfile.makedirs(f"gs://{bucket}/model/variables")
    with tf.io.gfile.GFile(f"gs://{bucket}/model/saved_model.pb", "wb") as file:
        file.write(b"graph")

    listed = {blob.name: blob.size for blob in gcs_emulator.client().list_blobs(bucket, prefix="model/")}
    assert listed == {"model/": 0, "model/variables/": 0, "model/saved_model.pb": 5}


def test_tensorflow_saves_and_loads_a_saved_model_on_the_emulator(gcs_emulator):
    import tensorflow as tf

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, x):
            return 2.0 * x

    export_dir = f"gs://{gcs_emulator.new_bucket()}/serving/1"
    tf.saved_model.save(Doubler(), export_dir)

    assert tf.saved_model.load(export_dir)(tf.constant([1.0, 3.0])).numpy().tolist() == [2.0, 6.0]


def test_beam_filesystems_reach_the_emulator(gcs_emulator):
    from apache_beam.io.filesystems import FileSystems

    root = f"gs://{gcs_emulator.new_bucket()}"
    for name, data in (("a/one.bin", b"\x00first"), ("a/two.bin", b"second")):
        with FileSystems.create(f"{root}/{name}") as file:
            file.write(data)

    assert sorted(m.path for m in FileSystems.match([f"{root}/a/*"])[0].metadata_list) == [
        f"{root}/a/one.bin", f"{root}/a/two.bin"]
    FileSystems.copy([f"{root}/a/one.bin"], [f"{root}/b/copy.bin"])
    FileSystems.rename([f"{root}/a/two.bin"], [f"{root}/b/renamed.bin"])
    FileSystems.delete([f"{root}/a/one.bin"])

    assert sorted(m.path for m in FileSystems.match([f"{root}/**"])[0].metadata_list) == [
        f"{root}/b/copy.bin", f"{root}/b/renamed.bin"]
    assert FileSystems.open(f"{root}/b/copy.bin").read() == b"\x00first"
    assert FileSystems.open(f"{root}/b/renamed.bin").read() == b"second"


def test_a_beam_pipeline_writes_tfrecords_that_tensorflow_reads_on_the_emulator(gcs_emulator):
    """What ExampleGen, StatisticsGen and Transform do: Beam writes gs:// TFRecords, TensorFlow reads them."""
    import apache_beam as beam
    import tensorflow as tf
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.util import assert_that, equal_to

    prefix = f"gs://{gcs_emulator.new_bucket()}/examples/train"
    records = [f"record {i}".encode() for i in range(50)]
    options = PipelineOptions(["--runner=FnApiRunner"])
    with beam.Pipeline(options=options) as pipeline:
        _ = (pipeline | beam.Create(records)
             | beam.io.WriteToTFRecord(prefix, file_name_suffix=".gz", num_shards=2))

    files = tf.io.gfile.glob(f"{prefix}*.gz")
    assert len(files) == 2
    read = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    assert sorted(read) == sorted(records)
    with beam.Pipeline(options=options) as pipeline:
        counted = (pipeline | beam.io.ReadFromTFRecord(f"{prefix}*") | beam.combiners.Count.Globally())
        assert_that(counted, equal_to([len(records)]))


_IN_A_FRESH_PROCESS = """
import json, sys
import tensorflow as tf
from google.cloud import storage
root = sys.argv[1]
with tf.io.gfile.GFile(root + "/from-tensorflow.json", "w") as file:
    file.write(json.dumps({"written_by": "tensorflow"}))
bucket = storage.Client().bucket(root[len("gs://"):])
print(json.dumps({"read_by_google_cloud_storage": json.loads(bucket.blob("from-tensorflow.json").download_as_text()),
                  "listed_by_tensorflow": tf.io.gfile.listdir(root)}))
"""


def test_a_subprocess_with_the_emulator_env_reaches_it(gcs_emulator):
    """`env` is all a subprocess needs (what the KFP-executor tests pass to each task)."""
    root = f"gs://{gcs_emulator.new_bucket()}"
    keep = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    result = subprocess.run([sys.executable, "-c", _IN_A_FRESH_PROCESS, root], env={**keep, **gcs_emulator.env},
                            capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "read_by_google_cloud_storage": {"written_by": "tensorflow"}, "listed_by_tensorflow": ["from-tensorflow.json"]}



def _upload_tree(gcs_emulator, tree: Path, bucket: str, prefix: str) -> str:
    blobs = gcs_emulator.client().bucket(bucket)
    for path in sorted(tree.rglob("*")):
        if path.is_file():
            blobs.blob(f"{prefix}/{path.relative_to(tree).as_posix()}").upload_from_filename(str(path))
    return f"gs://{bucket}/{prefix}"


def test_image_example_gen_reads_and_writes_a_bucket(gcs_emulator, color_tree):
    """Our ExampleGen executor (Beam on FnApiRunner, tf.io.gfile) with its input tree and its output in a bucket:
    every file accounted for, the quarantined one named by its gs:// URI, the splits readable from the bucket."""
    import tensorflow as tf

    from components import features
    from components.ingestion.executor import REPORT_FILE_NAME
    from tests.test_ingestion import _run_executor

    (color_tree / "grün" / "broken.png").write_bytes(b"not a png")
    bucket = gcs_emulator.new_bucket()
    images = _upload_tree(gcs_emulator, color_tree, bucket, "images")
    output = f"gs://{bucket}/pipeline_root/ImageExampleGen/examples/1"
    artifact = _run_executor(images, output)

    report = json.loads(tf.io.gfile.GFile(f"{output}/{REPORT_FILE_NAME}").read())
    assert report["examples_written"] == 18 and report["quarantined_by_reason"] == {"not_an_image": 1}
    assert [entry["uri"] for entry in report["quarantined"]] == [f"{images}/grün/broken.png"]
    assert artifact.get_int_custom_property("examples_written") == 18
    examples = [tf.train.Example.FromString(record.numpy()) for split in ("train", "eval")
                for record in tf.data.TFRecordDataset(tf.io.gfile.glob(f"{output}/Split-{split}/*.gz"),
                                                      compression_type="GZIP")]
    assert len(examples) == 18
    assert all(e.features.feature[features.SOURCE_URI_KEY].bytes_list.value[0].decode().startswith(images + "/")
               for e in examples)


def test_a_model_copied_into_a_bucket_by_tensorflow_has_the_same_fingerprint(gcs_emulator, tmp_path):
    """The Pusher fingerprints the Trainer's model (serving/serving_dir.py, `model_fingerprint`); on a bucket that
    model's folders are empty "name/" objects (see above), which must not count as files."""
    import tensorflow as tf

    from serving.serving_dir import model_fingerprint

    local = tmp_path / "model"
    (local / "variables").mkdir(parents=True)
    (local / "saved_model.pb").write_bytes(b"graph")
    (local / "variables" / "variables.index").write_bytes(b"index")
    remote = f"gs://{gcs_emulator.new_bucket()}/Trainer/model/1/Format-Serving"
    for path in sorted(local.rglob("*")):
        target = f"{remote}/{path.relative_to(local).as_posix()}"
        if path.is_dir():
            tf.io.gfile.makedirs(target)
        else:
            tf.io.gfile.copy(str(path), target)

    assert model_fingerprint(remote) == model_fingerprint(str(local))
