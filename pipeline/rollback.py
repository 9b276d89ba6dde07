"""Rollback: pin TF Serving to one pushed version by writing its model config (a `specific` version policy).

TF Serving re-reads the file every --model_config_file_poll_wait_seconds (k8s/serving: 60 s) and then
serves only the pinned version; newer pushes stay on disk but are not loaded until the pin is lifted
(`unpin` writes the `latest` policy back).
"""
import os

import tensorflow as tf
from google.protobuf import text_format

from components.pusher.push import SAVED_MODEL_FILE

MODEL_CONFIG_FILE_NAME = "models.config"


def _model_config(model_name: str, base_path: str):
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = model_name, base_path, "tensorflow"
    return config, model


def _write_atomically(path: str, text: str) -> None:
    # A half-written config would be read by TF Serving's poller as a broken config: write, then rename.
    temporary = f"{path}.tmp"
    with tf.io.gfile.GFile(temporary, "w") as handle:
        handle.write(text)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def pin_version(serving_dir: str, version: int, model_name: str, config_path: str, base_path: str = "") -> str:
    """Writes a model config that serves only `version`; refuses a version that is absent or incomplete.

    `base_path` is the serving directory as TF Serving sees it (default: serving_dir).
    """
    if not tf.io.gfile.exists(os.path.join(serving_dir, str(version), SAVED_MODEL_FILE)):
        present = sorted(int(name.rstrip("/")) for name in tf.io.gfile.listdir(serving_dir)
                         if name.rstrip("/").isdigit()) if tf.io.gfile.isdir(serving_dir) else []
        raise ValueError(f"No complete version {version} under {serving_dir!r}; pushed versions: {present}.")
    config, model = _model_config(model_name, base_path or serving_dir)
    model.model_version_policy.specific.versions.append(version)
    _write_atomically(config_path, text_format.MessageToString(config))
    return config_path


def unpin(serving_dir: str, model_name: str, config_path: str, base_path: str = "") -> str:
    """Writes the config back to serving the newest version."""
    config, model = _model_config(model_name, base_path or serving_dir)
    model.model_version_policy.latest.num_versions = 1
    _write_atomically(config_path, text_format.MessageToString(config))
    return config_path


def default_config_path(serving_dir: str) -> str:
    return os.path.join(serving_dir, MODEL_CONFIG_FILE_NAME)
