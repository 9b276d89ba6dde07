"""The push: saved_model.pb last, atomic versions, no overwrite, an interrupted push changes nothing served."""
import os
import socket
import subprocess
import sys
import threading

import pytest

from components.baseline.latest_pushed import latest_version_dir
from components.pusher import push
from components.pusher.component import tflite_within_tolerance
from pipeline.predict import resolve_version_dir

MODEL_FILES = {"saved_model.pb": b"graph", "fingerprint.pb": b"fp", "variables/variables.index": b"index",
               "variables/variables.data-00000-of-00001": b"weights", "assets/label_vocabulary": b"a\nb\n"}


def write_model(root, weights: bytes = MODEL_FILES["variables/variables.data-00000-of-00001"]) -> str:
    for relative, content in {**MODEL_FILES, "variables/variables.data-00000-of-00001": weights}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return str(root)


@pytest.fixture
def model_dir(tmp_path):
    return write_model(tmp_path / "model")


def numeric_versions(serving_dir):
    return sorted(int(name) for name in os.listdir(serving_dir) if name.isdigit())


def assert_complete(version_dir, model_dir):
    """Every file of the source model is in the version, byte for byte."""
    for relative in MODEL_FILES:
        with open(os.path.join(version_dir, relative), "rb") as copied, open(os.path.join(model_dir, relative),
                                                                             "rb") as source:
            assert copied.read() == source.read()


def test_saved_model_pb_is_written_last(model_dir, tmp_path):
    order = []

    def recording_copy(source, destination):
        order.append(os.path.basename(destination))
        push._gfile_copy(source, destination)

    result = push.push_model(model_dir, str(tmp_path / "serving"), copy_file=recording_copy)
    assert order[-1] == "saved_model.pb" and len(order) == len(MODEL_FILES)
    assert result.method == "stage-and-rename" and result.version == 1
    assert_complete(result.version_dir, model_dir)


def test_extra_files_are_written_before_saved_model_pb(model_dir, tmp_path):
    result = push.push_model(model_dir, str(tmp_path / "serving"),
                             extra_files=lambda version: {"model_card.md": f"# version {version}"})
    with open(os.path.join(result.version_dir, "model_card.md")) as handle:
        assert handle.read() == "# version 1"


def test_interrupted_push_leaves_the_previous_version_intact_and_served(model_dir, tmp_path):
    serving_dir = str(tmp_path / "serving")
    first = push.push_model(model_dir, serving_dir)
    copied = []

    def failing_copy(source, destination):
        if len(copied) == 2:
            raise OSError("disk full (simulated interruption)")
        copied.append(destination)
        push._gfile_copy(source, destination)

    retrained = write_model(tmp_path / "retrained", b"other weights")  # The same model would not be pushed again.
    with pytest.raises(OSError, match="disk full"):
        push.push_model(retrained, serving_dir, copy_file=failing_copy)
    assert numeric_versions(serving_dir) == [1]  # Nothing half-copied is visible under a number.
    assert not [name for name in os.listdir(serving_dir) if name.startswith(".staging-")]
    assert_complete(first.version_dir, model_dir)
    assert latest_version_dir(serving_dir) == first.version_dir == resolve_version_dir(serving_dir)
    # The failed push's number stays claimed: the next version is 3, never a reused 2.
    assert push.push_model(retrained, serving_dir).version == 3


def test_versions_increase_and_never_collide(model_dir, tmp_path):
    serving_dir = str(tmp_path / "serving")
    os.makedirs(os.path.join(serving_dir, "1700000000"))  # A version TFX's timestamp Pusher wrote.
    models = [write_model(tmp_path / f"model-{index}", f"weights {index}".encode()) for index in range(6)]
    results = []
    threads = [threading.Thread(target=lambda model=model: results.append(push.push_model(model, serving_dir)))
               for model in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(result.version for result in results) == list(range(1700000001, 1700000007))
    for result in results:
        assert_complete(result.version_dir, push.read_push_record(result.version_dir)["source_model"])


def test_a_directory_without_saved_model_pb_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a SavedModel"):
        push.push_model(str(tmp_path / "empty"), str(tmp_path / "serving"))
    assert numeric_versions(tmp_path / "serving") == []


def test_tflite_ships_only_within_tolerance():
    evaluation = {"savedmodel_accuracy": 0.9, "eval_examples": 100, "tflite": {
        "float16": {"accuracy": 0.89, "file": "model_float16.tflite"},
        "int8": {"accuracy": 0.80, "file": "model_int8.tflite"}}}
    assert tflite_within_tolerance(evaluation, 0.02) == {"float16": True, "int8": False}
    assert tflite_within_tolerance(None, 0.02) == {}


def test_the_newest_model_is_not_pushed_again(model_dir, tmp_path):
    serving_dir = str(tmp_path / "serving")
    first = push.push_model(model_dir, serving_dir)
    again = push.push_model(model_dir, serving_dir)
    assert again.already_pushed and not first.already_pushed
    assert (again.version, again.version_dir, again.fingerprint) == (first.version, first.version_dir, first.fingerprint)
    assert numeric_versions(serving_dir) == [1]
    assert push.read_push_record(first.version_dir)["model_fingerprint"] == first.fingerprint


def test_a_changed_model_is_a_new_version(model_dir, tmp_path):
    serving_dir = str(tmp_path / "serving")
    push.push_model(model_dir, serving_dir)
    with open(os.path.join(model_dir, "variables", "variables.data-00000-of-00001"), "wb") as handle:
        handle.write(b"retrained weights")
    result = push.push_model(model_dir, serving_dir)
    assert not result.already_pushed and numeric_versions(serving_dir) == [1, 2]


def test_a_model_served_only_as_an_older_version_is_pushed_as_the_newest(model_dir, tmp_path):
    serving_dir = str(tmp_path / "serving")
    push.push_model(model_dir, serving_dir)
    other = tmp_path / "other"
    other.mkdir()
    (other / "saved_model.pb").write_bytes(b"another graph")
    push.push_model(str(other), serving_dir)
    assert push.push_model(model_dir, serving_dir).version == 3


def test_a_version_without_push_record_is_not_taken_for_the_same_model(model_dir, tmp_path):
    serving_dir = str(tmp_path / "serving")
    first = push.push_model(model_dir, serving_dir)
    os.remove(os.path.join(first.version_dir, push.PUSH_RECORD_FILE))  # As pushed by an older release.
    assert push.push_model(model_dir, serving_dir).version == 2


def test_a_staging_folder_of_a_killed_push_is_removed_by_the_next_push(model_dir, tmp_path):
    serving_dir = tmp_path / "serving"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = serving_dir / f".staging-1-{socket.gethostname()}-{dead.pid}"
    other_host = serving_dir / ".staging-2-another-machine-1"  # Maybe in flight on shared storage: kept.
    for folder in (abandoned, other_host):
        (folder / "variables").mkdir(parents=True)
    push.push_model(model_dir, str(serving_dir))
    assert not abandoned.exists() and other_host.exists()
