"""The input fingerprint of an image tree: every file under the class folders, sub-folders included.

TFX fingerprints a FileBasedExampleGen's input by globbing the split pattern and stating each match
(tfx/utils/io_utils.py `generate_fingerprint`). Our pattern "*/*" names a class folder's direct children, so a
sub-folder is one entry (its directory stat, whose mtime does not change when a file in it is rewritten) and
the files in it, or every file of a tree with explicit train/ and eval/ folders, were outside the fingerprint:
a changed image there reused the cached examples. This processor keeps TFX's span resolution and its
fingerprint format but walks the whole tree, as the executor reads it (image_tree.walk_folder).
"""
import copy
import posixpath
from typing import Iterable, Optional

import tensorflow as tf
from tfx.components.example_gen import driver, input_processor
from tfx.proto import example_gen_pb2, range_config_pb2

from components.ingestion.image_tree import tree_root

_NANOS_PER_SECOND = 10 ** 9


def tree_fingerprint(split_name: str, root: str) -> str:
    """TFX's fingerprint string (count, bytes, xor and sum of whole-second mtimes: order-independent) over every
    file under `root`, hidden and non-image files included (they are reported as ignored, so they count)."""
    num_files = total_bytes = xor_checksum = sum_checksum = 0
    for directory, _, files in tf.io.gfile.walk(root):
        for name in files:
            stat = tf.io.gfile.stat(posixpath.join(directory, name))
            mtime = int(stat.mtime_nsec // _NANOS_PER_SECOND)
            num_files += 1
            total_bytes += stat.length
            xor_checksum ^= mtime
            sum_checksum += mtime
    return (f"split:{split_name},num_files:{num_files},total_bytes:{total_bytes},xor_checksum:{xor_checksum},"
            f"sum_checksum:{sum_checksum}")


class ImageTreeInputProcessor(input_processor.FileBasedInputProcessor):
    """FileBasedInputProcessor whose fingerprint covers the whole tree of the resolved span."""

    def __init__(self, input_base_uri: str, splits: Iterable[example_gen_pb2.Input.Split],
                 range_config: Optional[range_config_pb2.RangeConfig] = None):
        # Copies: callers fill the resolved span into their split patterns in place (resolution.py does).
        self._splits_to_fingerprint = [copy.deepcopy(split) for split in splits]
        super().__init__(input_base_uri, self._splits_to_fingerprint, range_config)

    def get_input_fingerprint(self, span: int, version: Optional[int]) -> str:
        super().get_input_fingerprint(span, version)  # Keeps TFX's check that the span was resolved first.
        return "\n".join(
            tree_fingerprint(split.name, tree_root(self._input_base_uri,
                                                   self.get_pattern_for_span_version(split.pattern, span, version)))
            for split in self._splits_to_fingerprint)


class ImageTreeDriver(driver.FileBasedDriver):
    """TFX's FileBasedDriver (span resolution, cache decision) with the whole-tree fingerprint."""

    def get_input_processor(self, splits: Iterable[example_gen_pb2.Input.Split],
                            range_config: Optional[range_config_pb2.RangeConfig] = None,
                            input_base_uri: Optional[str] = None) -> input_processor.InputProcessor:
        assert input_base_uri
        return ImageTreeInputProcessor(input_base_uri, splits, range_config)
