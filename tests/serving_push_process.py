"""TEST DRIVER, run as a separate process by tests/test_serving_dir_races.py: pushes models into a serving
directory the way the Pusher does (serving.serving_dir.ServingDir.push), so that two OS processes can race for
the same bucket, or one can be SIGKILLed in the middle of a push.

    python -m tests.serving_push_process SERVING_DIR --models M1 M2 ... [--go FILE] [--pause-after K --phase
        staging|publish --paused FILE] [--claims-lost FILE]

--go: wait until FILE exists before the first push (a start line for racing processes).
--barrier DIR --name NAME --peers N: before each push, wait until N processes reached the same round, so that
    their claims meet (each round they list the directory and create the next claim at about the same time).
--pause-after K: after K files of the push (copied into staging, or published into the version folder), write
    --paused and sleep until killed. --claims-lost: write how many exclusive creates of a claim were refused.
"""
import argparse
import json
import os
import sys
import time

from serving.serving_dir import ServingDir
from serving.storage import storage_for


def _counting_claims(storage, counter):
    create = storage.create_exclusive

    def create_exclusive(path, data):
        won = create(path, data)
        counter["lost"] += 0 if won else 1
        return won

    storage.create_exclusive = create_exclusive


def _pausing(function, after: int, paused_file: str):
    calls = []

    def pausing(*args, **kwargs):
        if len(calls) == after:
            with open(paused_file, "w") as handle:
                handle.write(str(os.getpid()))
            while True:
                time.sleep(1)  # Until SIGKILL.
        calls.append(args)
        return function(*args, **kwargs)

    return pausing


def _meet(barrier: str, round_number: int, name: str, peers: int) -> None:
    open(os.path.join(barrier, f"{round_number}-{name}"), "w").close()
    while len([entry for entry in os.listdir(barrier) if entry.startswith(f"{round_number}-")]) < peers:
        time.sleep(0.005)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("serving_dir")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--go")
    parser.add_argument("--pause-after", type=int)
    parser.add_argument("--phase", choices=["staging", "publish"], default="staging")
    parser.add_argument("--paused")
    parser.add_argument("--claims-lost")
    parser.add_argument("--barrier")
    parser.add_argument("--name", default="")
    parser.add_argument("--peers", type=int, default=1)
    args = parser.parse_args(argv)
    storage = storage_for(args.serving_dir)
    counter = {"lost": 0}
    _counting_claims(storage, counter)
    copy_file = None
    if args.pause_after is not None and args.phase == "staging":
        copy_file = _pausing(storage.put_file, args.pause_after, args.paused)
    if args.pause_after is not None and args.phase == "publish":
        publish = storage.publish

        def pausing_publish(staging, target, ordered_files):
            storage.put_file = _pausing(storage.put_file, args.pause_after, args.paused)
            return publish(staging, target, ordered_files)

        storage.publish = pausing_publish
    while args.go and not os.path.exists(args.go):
        time.sleep(0.01)
    serving = ServingDir(args.serving_dir, storage)
    for round_number, model in enumerate(args.models):
        if args.barrier:
            _meet(args.barrier, round_number, args.name, args.peers)
        result = serving.push(model, copy_file=copy_file)
        print(json.dumps({"model": model, "version": result.version, "method": result.method}), flush=True)
    if args.claims_lost:
        with open(args.claims_lost, "w") as handle:
            handle.write(str(counter["lost"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
