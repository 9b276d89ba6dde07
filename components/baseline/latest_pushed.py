"""Plain logic of the baseline import: find the newest complete model version in a serving directory."""
import os
from typing import Optional

import tensorflow as tf

# The Pusher copies saved_model.pb last, so a version directory without it is still being written.
_COMPLETE_MARKER = "saved_model.pb"


def latest_version_dir(serving_dir: str) -> Optional[str]:
    """The highest numeric version directory under `serving_dir` that holds a complete SavedModel.

    None when nothing has been pushed yet (no directory, or no complete version in it).
    """
    if not tf.io.gfile.isdir(serving_dir):
        return None
    versions = [entry.rstrip("/") for entry in tf.io.gfile.listdir(serving_dir)]
    complete = [version for version in versions
                if version.isdigit() and tf.io.gfile.exists(os.path.join(serving_dir, version, _COMPLETE_MARKER))]
    if not complete:
        return None
    return os.path.join(serving_dir, max(complete, key=int))


def copy_tree(source_dir: str, destination_dir: str) -> None:
    """Copies a directory tree with tf.io.gfile, so local paths, gs:// and s3:// URIs all work."""
    for directory, _, file_names in tf.io.gfile.walk(source_dir):
        relative = os.path.relpath(directory, source_dir)
        target = os.path.normpath(os.path.join(destination_dir, relative))
        tf.io.gfile.makedirs(target)
        for file_name in file_names:
            tf.io.gfile.copy(os.path.join(directory, file_name), os.path.join(target, file_name), overwrite=True)
