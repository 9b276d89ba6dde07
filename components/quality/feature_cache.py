"""The base's pooled features that the data-quality stage computed, kept beside its filtered examples so that
the Trainer's phase 1 trains its head on them instead of running the frozen base over every image again.

Written into the filtered Examples artifact (which the Trainer reads): <examples>/pooled_features/<split>.npz
with the features and the label ids (the Transform vocabulary's) of the records of that split, in record order,
and featurization.json, the settings that decide the features (component.featurization_config). The Trainer
uses them only when those settings are its own and every record has its row.
"""
import io
import json
import posixpath
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from components.trainer.hparams import TrainingConfig

CACHE_DIR = "pooled_features"
SETTINGS_FILE_NAME = "featurization.json"

Features = Tuple[np.ndarray, np.ndarray]  # [N, D] features, [N, classes] one-hot labels.


def featurization_config(training: TrainingConfig) -> TrainingConfig:
    """The Trainer's settings that decide the base's features, the rest at their defaults: changing epochs or
    learning rates neither invalidates the stage's cached findings nor this cache."""
    return TrainingConfig(image_size=training.image_size, alpha=training.alpha, weights=training.weights,
                          seed=training.seed)


def write(examples_uri: str, by_split: Dict[str, Tuple[np.ndarray, np.ndarray]], featurization: Dict) -> None:
    """by_split: {split: (features [N, D], label ids [N])} of the records written, in order."""
    folder = posixpath.join(examples_uri, CACHE_DIR)
    tf.io.gfile.makedirs(folder)
    for split, (features, label_ids) in by_split.items():
        buffer = io.BytesIO()
        np.savez(buffer, features=features.astype(np.float32), label_ids=label_ids.astype(np.int64))
        with tf.io.gfile.GFile(posixpath.join(folder, f"{split}.npz"), "wb") as handle:
            handle.write(buffer.getvalue())
    with tf.io.gfile.GFile(posixpath.join(folder, SETTINGS_FILE_NAME), "w") as handle:
        json.dump(featurization, handle, sort_keys=True)


def examples_uri_of(file_patterns: List[str]) -> Optional[str]:
    """The Examples artifact of the Trainer's split file patterns (TFX: <uri>/Split-<name>/*)."""
    uris = {posixpath.dirname(posixpath.dirname(pattern.rstrip("/"))) for pattern in file_patterns}
    return uris.pop() if len(uris) == 1 else None


def read(examples_uri: Optional[str], split: str, featurization: Dict, num_classes: int,
         num_records: int) -> Optional[Features]:
    """The split's (features, one-hot labels), or None when there is no cache, it was computed with other
    settings, or it does not cover every record."""
    if not examples_uri:
        return None
    folder = posixpath.join(examples_uri, CACHE_DIR)
    settings_path, data_path = posixpath.join(folder, SETTINGS_FILE_NAME), posixpath.join(folder, f"{split}.npz")
    if not (tf.io.gfile.exists(settings_path) and tf.io.gfile.exists(data_path)):
        return None
    with tf.io.gfile.GFile(settings_path) as handle:
        if json.load(handle) != json.loads(json.dumps(featurization, sort_keys=True)):
            return None
    with tf.io.gfile.GFile(data_path, "rb") as handle:
        arrays = np.load(io.BytesIO(handle.read()))
        features, label_ids = arrays["features"], arrays["label_ids"]
    if len(features) != num_records or (len(label_ids) and label_ids.max() >= num_classes):
        return None
    return features, np.eye(num_classes, dtype=np.float32)[label_ids]
