"""Pushes from separate OS processes into the same serving directory, on a local folder and on a bucket of the
GCS emulator: two pushers racing for version numbers (several bounded rounds), and a push SIGKILLed midway
followed by a clean push. Looked at object by object (tests/serving_fixtures.py lists with os / the
google-cloud-storage client, not with the code under test)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from serving.serving_dir import ServingDir
from tests.serving_fixtures import (WEIGHTS_FILE, assert_complete, assert_every_version_complete,  # noqa: F401
                                    entries, files_by_version, numeric_versions, serving_root, version_files,
                                    write_model)

REPO_ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 6  # Pushes per process; a push is a few requests to the emulator, so a round takes well under a second.
PROCESS_TIMEOUT_S = 120


def start_pusher(serving_dir, models, *options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.serving_push_process", serving_dir, "--models", *models,
                             *options], cwd=REPO_ROOT, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> list:
    stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT_S)
    assert process.returncode == 0, stderr[-3000:]
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def weights_of(serving_dir: str, version: int) -> bytes:
    return version_files(serving_dir, version)[WEIGHTS_FILE]


def test_two_pushers_racing_for_the_same_directory_get_distinct_complete_versions(serving_root, tmp_path):
    models = {name: [write_model(tmp_path / f"{name}-{index}", f"{name} weights {index}".encode())
                     for index in range(ROUNDS)] for name in ("a", "b")}
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    # Each round both processes wait for each other, then push: their claims meet.
    processes = {name: start_pusher(serving_root, paths, "--barrier", str(barrier), "--name", name, "--peers", "2",
                                    "--claims-lost", str(tmp_path / f"lost-{name}")) for name, paths in models.items()}
    pushed = [push for process in processes.values() for push in finish(process)]
    claims_lost = {name: int((tmp_path / f"lost-{name}").read_text()) for name in models}
    print(f"race on {serving_root.split(':')[0] if '://' in serving_root else 'local'}: {len(pushed)} pushes, "
          f"claims lost to the other process: {claims_lost}")

    # Every model pushed exactly once, each into its own number; 1..2*ROUNDS with no gap and no reuse.
    assert sorted(push["version"] for push in pushed) == list(range(1, 2 * ROUNDS + 1))
    versions = files_by_version(serving_root)  # One listing and download of every object.
    assert sorted(versions) == list(range(1, 2 * ROUNDS + 1))
    assert_complete(versions)
    for push in pushed:
        with open(os.path.join(push["model"], WEIGHTS_FILE), "rb") as source:
            assert versions[push["version"]][WEIGHTS_FILE] == source.read()  # One model's files, not a mix.
    assert not [name for name in entries(serving_root) if name.startswith(".staging-")]


def test_a_push_killed_while_staging_leaves_nothing_loadable_and_the_next_push_cleans_it(serving_root, tmp_path):
    kill_midway_then_push_cleanly(serving_root, tmp_path, "staging")


def test_a_push_killed_while_publishing_to_a_bucket_is_cleaned_by_the_next_push(gcs_emulator, tmp_path):
    # Locally a version is published by one rename: there is no midway. A bucket copies object by object.
    kill_midway_then_push_cleanly(f"gs://{gcs_emulator.new_bucket('killed')}/serving", tmp_path, "publish")


def kill_midway_then_push_cleanly(serving_root: str, tmp_path: Path, phase: str) -> None:
    serving = ServingDir(serving_root)
    first = write_model(tmp_path / "first", b"first weights")
    serving.push(first)
    paused = tmp_path / "paused"
    killed = start_pusher(serving_root, [write_model(tmp_path / "killed", b"killed weights")],
                          "--pause-after", "2", "--phase", phase, "--paused", str(paused))
    wait_for(paused, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=PROCESS_TIMEOUT_S)

    # What TF Serving would load now: only version 1, whole. Version 2 was claimed; in the publish phase on a
    # bucket its folder holds two files and no saved_model.pb (a load of it fails and the previous version stays
    # served; see serving/serving_dir.py).
    assert serving.latest_version() == 1
    left = [name for name in entries(serving_root) if name.startswith(".staging-2-")]
    assert left, entries(serving_root)
    if phase == "publish":
        partial = version_files(serving_root, 2)
        assert len(partial) == 2 and "saved_model.pb" not in partial
    else:
        assert numeric_versions(serving_root) == [1]

    clean = start_pusher(serving_root, [write_model(tmp_path / "clean", b"clean weights")])
    (pushed,) = finish(clean)
    assert pushed["version"] == 3  # Number 2 stays claimed by the killed push, never reused.
    assert entries(serving_root) == [".version-1.claim", ".version-2.claim", ".version-3.claim", "1", "3"]
    assert_every_version_complete(serving_root)
    assert weights_of(serving_root, 1) == b"first weights" and weights_of(serving_root, 3) == b"clean weights"
