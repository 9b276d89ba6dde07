"""MultiWorkerMirroredStrategy in the Trainer: two real workers on 127.0.0.1, joined through TF_CONFIG, train a
few steps of run_fn together. TF allows the strategy only before any op ran (it configures collective ops)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from components import features
from components.trainer.run import CHECKPOINT_ROOT_KEY, TRAINING_CONFIG_KEY
from tests.conftest import COLORS, encode, noisy_color

REPO = Path(__file__).resolve().parent.parent
WORKERS = 2
# A few steps of phase 1 only: every step all-reduces across the two processes; phase 2 would add minutes.
TRAINING = {"image_size": 32, "alpha": 0.35, "weights": "none", "batch_size": 4, "phase1_epochs": 1,
            "phase2_epochs": 0, "max_steps_per_epoch": 2, "export_tflite": False, "early_stopping_patience": 0}


def free_ports(count: int):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def write_examples(path: Path, per_class: int) -> str:
    """GZIP tf.Example records with the features ingestion writes."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for label, rgb in COLORS.items():
            for _ in range(per_class):
                image = encode(noisy_color(rgb, rng), "PNG")
                values = {features.IMAGE_KEY: [image], features.LABEL_KEY: [label.encode()],
                          features.SOURCE_URI_KEY: [b"/x.png"], features.FORMAT_KEY: [b"PNG"],
                          features.HEIGHT_KEY: [40], features.WIDTH_KEY: [40], features.CHANNELS_KEY: [3],
                          features.BYTE_SIZE_KEY: [len(image)], features.SHA256_KEY: [b"0" * 64]}
                feature = {key: tf.train.Feature(bytes_list=tf.train.BytesList(value=value))
                           if isinstance(value[0], bytes) else tf.train.Feature(int64_list=tf.train.Int64List(value=value))
                           for key, value in values.items()}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return str(path)


@pytest.mark.slow
def test_two_workers_train_together_through_tf_config(tmp_path, transform_output_dir):
    examples = write_examples(tmp_path / "examples.gz", per_class=4)
    cluster = [f"127.0.0.1:{port}" for port in free_ports(WORKERS)]
    processes = []
    for index in range(WORKERS):
        arguments = {"train_files": [examples], "eval_files": [examples], "transform_output": transform_output_dir,
                     "serving_model_dir": str(tmp_path / f"serving-{index}"),
                     "model_run_dir": str(tmp_path / f"model_run-{index}"),
                     "custom_config": {TRAINING_CONFIG_KEY: TRAINING, CHECKPOINT_ROOT_KEY: str(tmp_path / "ckpt")}}
        env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "",
               "TF_CONFIG": json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})}
        log = open(tmp_path / f"worker-{index}.log", "w")
        processes.append((subprocess.Popen([sys.executable, "-m", "tests.kfp_multiworker_worker", json.dumps(arguments)],
                                           cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    for process, log in processes:
        process.wait(timeout=900)
        log.close()
    logs = [(tmp_path / f"worker-{index}.log").read_text() for index in range(WORKERS)]
    for index, (process, _) in enumerate(processes):
        assert process.returncode == 0, f"worker {index} failed:\n{logs[index][-3000:]}"
        # tf.distribute.MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy (TF 2.16).
        assert "Distribution: CollectiveAllReduceStrategy with 2 replica(s)" in logs[index]
        assert (tmp_path / f"serving-{index}" / "saved_model.pb").exists()
