"""The push: saved_model.pb last, atomic versions, no overwrite, an interrupted push changes nothing served."""
import os
import threading

import pytest

from components.baseline.latest_pushed import latest_version_dir
from components.pusher import push
from components.pusher.component import tflite_within_tolerance
from pipeline.predict import resolve_version_dir

MODEL_FILES = {"saved_model.pb": b"graph", "fingerprint.pb": b"fp", "variables/variables.index": b"index",
               "variables/variables.data-00000-of-00001": b"weights", "assets/label_vocabulary": b"a\nb\n"}


@pytest.fixture
def model_dir(tmp_path):
    root = tmp_path / "model"
    for relative, content in MODEL_FILES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return str(root)


def numeric_versions(serving_dir):
    return sorted(int(name) for name in os.listdir(serving_dir) if name.isdigit())


def assert_complete(version_dir):
    for relative, content in MODEL_FILES.items():
        with open(os.path.join(version_dir, relative), "rb") as handle:
            assert handle.read() == content


def test_saved_model_pb_is_written_last(model_dir, tmp_path):
    order = []

    def recording_copy(source, destination):
        order.append(os.path.basename(destination))
        push._gfile_copy(source, destination)

    result = push.push_model(model_dir, str(tmp_path / "serving"), copy_file=recording_copy)
    assert order[-1] == "saved_model.pb" and len(order) == len(MODEL_FILES)
    assert result.method == "stage-and-rename" and result.version == 1
    assert_complete(result.version_dir)


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

    with pytest.raises(OSError, match="disk full"):
        push.push_model(model_dir, serving_dir, copy_file=failing_copy)
    assert numeric_versions(serving_dir) == [1]  # Nothing half-copied is visible under a number.
    assert not [name for name in os.listdir(serving_dir) if name.startswith(".staging-")]
    assert_complete(first.version_dir)
    assert latest_version_dir(serving_dir) == first.version_dir == resolve_version_dir(serving_dir)
    # The failed push's number stays claimed: the next version is 3, never a reused 2.
    assert push.push_model(model_dir, serving_dir).version == 3


def test_versions_increase_and_never_collide(model_dir, tmp_path):
    serving_dir = str(tmp_path / "serving")
    os.makedirs(os.path.join(serving_dir, "1700000000"))  # A version TFX's timestamp Pusher wrote.
    results = []
    threads = [threading.Thread(target=lambda: results.append(push.push_model(model_dir, serving_dir)))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(result.version for result in results) == list(range(1700000001, 1700000007))
    for result in results:
        assert_complete(result.version_dir)


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
