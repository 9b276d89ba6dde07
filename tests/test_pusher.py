"""The push, on a local folder and on a bucket of the GCS emulator alike: saved_model.pb last, versions never
collide or get overwritten, an interrupted push changes nothing served, a model is pushed once."""
import os
import socket
import subprocess
import sys
import threading

import pytest

from components.pusher.component import push_blessed_model, tflite_within_tolerance
from serving import rollback
from serving.serving_dir import PUSH_RECORD_FILE, ServingDir, resolve_version_dir
from serving.storage import storage_for
from tests.serving_fixtures import (MODEL_FILES, WEIGHTS_FILE, assert_every_version_complete, entries,  # noqa: F401
                                    numeric_versions, serving_root, version_files, write_model)


@pytest.fixture
def model_dir(tmp_path):
    return write_model(tmp_path / "model")


def assert_holds_model(serving_dir: str, version: int, model_dir: str) -> None:
    """Every file of the source model is in the version, byte for byte."""
    files = version_files(serving_dir, version)
    for relative in MODEL_FILES:
        with open(os.path.join(model_dir, relative), "rb") as source:
            assert files[relative] == source.read(), relative


def test_saved_model_pb_is_written_last(model_dir, serving_root):
    order = []
    storage = storage_for(serving_root)

    def recording_copy(source, destination):
        order.append(destination.rsplit("/", 1)[-1])
        storage.put_file(source, destination)

    result = ServingDir(serving_root).push(model_dir, copy_file=recording_copy)
    assert order[-1] == "saved_model.pb" and len(order) == len(MODEL_FILES)
    assert result.version == 1 and result.method == ("stage-and-copy" if "://" in serving_root else "stage-and-rename")
    assert_holds_model(serving_root, 1, model_dir)
    assert entries(serving_root) == [".version-1.claim", "1"]  # No staging left.


def test_extra_files_are_written_before_saved_model_pb(model_dir, serving_root):
    ServingDir(serving_root).push(model_dir, extra_files=lambda version: {"model_card.md": f"# version {version}"})
    assert version_files(serving_root, 1)["model_card.md"] == b"# version 1"


def test_interrupted_push_leaves_the_previous_version_intact_and_served(model_dir, serving_root, tmp_path):
    serving = ServingDir(serving_root)
    first = serving.push(model_dir)
    copied = []

    def failing_copy(source, destination):
        if len(copied) == 2:
            raise OSError("disk full (simulated interruption)")
        copied.append(destination)
        serving.storage.put_file(source, destination)

    retrained = write_model(tmp_path / "retrained", b"other weights")  # The same model would not be pushed again.
    with pytest.raises(OSError, match="disk full"):
        serving.push(retrained, copy_file=failing_copy)
    assert entries(serving_root) == [".version-1.claim", ".version-2.claim", "1"]  # No staging, no "2".
    assert_holds_model(serving_root, 1, model_dir)
    assert serving.latest_version_dir() == first.version_dir == resolve_version_dir(serving_root)
    # The failed push's number stays claimed: the next version is 3, never a reused 2.
    assert serving.push(retrained).version == 3


def test_versions_increase_and_never_collide(tmp_path):
    serving_dir = str(tmp_path / "serving")
    os.makedirs(os.path.join(serving_dir, "1700000000"))  # A version TFX's timestamp Pusher wrote.
    models = [write_model(tmp_path / f"model-{index}", f"weights {index}".encode()) for index in range(6)]
    results = []
    threads = [threading.Thread(target=lambda model=model: results.append(ServingDir(serving_dir).push(model)))
               for model in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(result.version for result in results) == list(range(1700000001, 1700000007))
    for result in results:
        assert_holds_model(serving_dir, result.version,
                           ServingDir(serving_dir).read_push_record(result.version)["source_model"])


def test_a_directory_without_saved_model_pb_is_refused(tmp_path, serving_root):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a SavedModel"):
        ServingDir(serving_root).push(str(tmp_path / "empty"))
    assert entries(serving_root) == []


def test_tflite_ships_only_within_tolerance():
    evaluation = {"savedmodel_accuracy": 0.9, "eval_examples": 100, "tflite": {
        "float16": {"accuracy": 0.89, "file": "model_float16.tflite"},
        "int8": {"accuracy": 0.80, "file": "model_int8.tflite"}}}
    assert tflite_within_tolerance(evaluation, 0.02) == {"float16": True, "int8": False}
    assert tflite_within_tolerance(None, 0.02) == {}


def test_the_newest_model_is_not_pushed_again(model_dir, serving_root):
    serving = ServingDir(serving_root)
    first = serving.push(model_dir)
    again = serving.push(model_dir)
    assert again.already_pushed and not first.already_pushed
    assert (again.version, again.version_dir) == (first.version, first.version_dir)
    assert again.fingerprint == first.fingerprint
    assert numeric_versions(serving_root) == [1]
    assert serving.read_push_record(1)["model_fingerprint"] == first.fingerprint


def test_a_changed_model_is_a_new_version(model_dir, serving_root):
    serving = ServingDir(serving_root)
    serving.push(model_dir)
    with open(os.path.join(model_dir, WEIGHTS_FILE), "wb") as handle:
        handle.write(b"retrained weights")
    assert not serving.push(model_dir).already_pushed and numeric_versions(serving_root) == [1, 2]


def test_a_model_served_only_as_an_older_version_is_pushed_as_the_newest(model_dir, serving_root, tmp_path):
    serving = ServingDir(serving_root)
    serving.push(model_dir)
    serving.push(write_model(tmp_path / "other", b"other weights"))
    assert serving.push(model_dir).version == 3


def test_a_version_without_push_record_is_not_taken_for_the_same_model(model_dir, tmp_path):
    serving_dir = str(tmp_path / "serving")
    first = ServingDir(serving_dir).push(model_dir)
    os.remove(os.path.join(first.version_dir, PUSH_RECORD_FILE))  # As pushed by an older release.
    assert ServingDir(serving_dir).push(model_dir).version == 2


def test_a_staging_folder_of_a_killed_push_is_removed_by_the_next_push(model_dir, tmp_path):
    serving_dir = tmp_path / "serving"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = serving_dir / f".staging-1-{socket.gethostname()}-{dead.pid}"
    other_host = serving_dir / ".staging-2-another-machine-1"  # Maybe in flight on shared storage: kept.
    for folder in (abandoned, other_host):
        (folder / "variables").mkdir(parents=True)
    ServingDir(str(serving_dir)).push(model_dir)
    assert not abandoned.exists() and other_host.exists()


def test_the_pusher_writes_the_model_config_tf_serving_reads_once(model_dir, serving_root, tmp_path):
    push_blessed_model(model_dir, serving_root, report=None, tolerance=0.02)
    serving = ServingDir(serving_root)
    config = rollback.read_config(serving, serving.config_path)
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path) == (rollback.DEFAULT_MODEL_NAME, serving_root)
    assert model.model_version_policy.latest.num_versions == rollback.DEFAULT_LATEST_VERSIONS
    rollback.pin_version(serving_root, 1)
    push_blessed_model(write_model(tmp_path / "next", b"next weights"), serving_root, report=None, tolerance=0.02)
    # An operator's pin survives later pushes.
    assert list(rollback.read_config(serving, serving.config_path).model_config_list.config[0]
                .model_version_policy.specific.versions) == [1]
    assert_every_version_complete(serving_root)
