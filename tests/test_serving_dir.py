"""The serving directory's two backends behind one interface, tested the same way on a local folder and on a
bucket of the GCS emulator: listing, exclusive creates, whole-file replaces, publishing, what is complete,
claims and the cleanup of abandoned pushes."""
import json
import os
import time

import pytest

from serving.serving_dir import SAVED_MODEL_FILE, ServingDir, claim_name
from serving.storage import storage_for
from tests.serving_fixtures import all_files, entries, serving_root, write_model  # noqa: F401


def test_listing_names_direct_children_only(serving_root):
    storage = storage_for(serving_root)
    assert storage.list_names(serving_root) == []  # Absent: empty, no error.
    storage.write_bytes(f"{serving_root}/1/variables/variables.index", b"i")
    storage.write_bytes(f"{serving_root}/models.config", b"c")
    assert storage.list_names(serving_root) == ["1", "models.config"]
    assert storage.files_under(f"{serving_root}/1") == ["variables/variables.index"]


def test_an_exclusive_create_has_one_winner(serving_root):
    storage = storage_for(serving_root)
    path = f"{serving_root}/{claim_name(1)}"
    assert storage.create_exclusive(path, b"first") is True
    assert storage.create_exclusive(path, b"second") is False
    assert all_files(serving_root)[claim_name(1)] == b"first"


def test_a_write_replaces_the_whole_file(serving_root):
    storage = storage_for(serving_root)
    storage.write_bytes(f"{serving_root}/models.config", b"a much longer first version")
    storage.write_bytes(f"{serving_root}/models.config", b"short")
    assert all_files(serving_root) == {"models.config": b"short"}  # No temporary file left beside it.


def test_publishing_refuses_an_existing_version(serving_root, tmp_path):
    storage = storage_for(serving_root)
    model = write_model(tmp_path / "model")
    for name in ("a", "b"):
        storage.put_file(os.path.join(model, SAVED_MODEL_FILE), f"{serving_root}/.staging-{name}/{SAVED_MODEL_FILE}")
    storage.publish(f"{serving_root}/.staging-a", f"{serving_root}/1", [SAVED_MODEL_FILE])
    with pytest.raises(FileExistsError):
        storage.publish(f"{serving_root}/.staging-b", f"{serving_root}/1", [SAVED_MODEL_FILE])
    assert storage.list_names(serving_root) == [".staging-b", "1"]


def test_complete_means_saved_model_pb_is_there(serving_root):
    storage = storage_for(serving_root)
    storage.write_bytes(f"{serving_root}/4/variables/variables.index", b"i")
    storage.write_bytes(f"{serving_root}/3/{SAVED_MODEL_FILE}", b"g")
    storage.write_bytes(f"{serving_root}/00012/x", b"x")  # TF Serving would parse 00012 as 12; not complete.
    serving = ServingDir(serving_root)
    assert serving.numbered_versions() == [3, 4, 12] and serving.complete_versions() == [3]
    assert serving.latest_version() == 3
    with pytest.raises(ValueError, match=r"No complete version 4 .* pushed versions: \[3\]"):
        serving.require_complete(4)


def test_a_push_abandoned_on_another_machine_is_cleaned_once_stale(serving_root):
    storage = storage_for(serving_root)
    owner = json.dumps({"host": "another-pod", "pid": 1}).encode()
    storage.create_exclusive(f"{serving_root}/{claim_name(1)}", owner)
    storage.write_bytes(f"{serving_root}/.staging-1-another-pod-1/variables/variables.index", b"i")
    storage.write_bytes(f"{serving_root}/1/variables/variables.index", b"i")  # Killed while publishing.
    serving = ServingDir(serving_root)
    assert serving.remove_abandoned_pushes() == []  # Maybe still running on that pod.
    time.sleep(0.01)
    assert sorted(serving.remove_abandoned_pushes(stale_after_s=0)) == [".staging-1-another-pod-1", "1"]
    assert entries(serving_root) == [claim_name(1)]  # The number stays taken.
    assert serving.claim_next_version() == 2
