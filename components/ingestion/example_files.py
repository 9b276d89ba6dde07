"""Writes ingestion's serialized tf.Examples as TFX's example files: GZIP TFRecords named as TFX's WriteSplit
names them (tfx/components/example_gen/write_split.py), which every TFX reader and ours open by the `.gz`
suffix, with the gzip stream stored at compression level 0.

Why not WriteSplit itself: an example's bytes are an encoded JPEG or PNG, which deflate does not shrink
(0.999 of the raw size at Beam's fixed level 6 on the camera-photo benchmark's examples, against 1.000 at
level 0), yet level 6 costs about 6 ms per 200 KB example on one core, the largest cost of ingestion after
decoding. And WriteSplit reshuffles the examples before writing, a second shuffle of every image's bytes:
ingestion has already grouped them by content hash, so they arrive in an order unrelated to class or folder.

Why not Beam's `beam.io.Write` either: it expands into eight transforms per split, with three stages that
read side inputs, and the local runner sizes every side input it loads by walking the globals of every
imported module (apache_beam/runners/worker/statecache.py, get_deep_size; about 10 ms each with TensorFlow
imported). Here one DoFn writes each bundle's examples into a new temporary file per split, and one step
after them renames the files of the bundles that succeeded to their final names, as Beam's finalization
does (apache_beam/io/iobase.py, WriteImpl): a retried bundle's failed attempt leaves a file no one renames,
removed with the temporary folder.
"""
import posixpath
import uuid
from typing import Dict, List, Tuple

import apache_beam as beam
import tensorflow as tf
from apache_beam.transforms.window import GlobalWindows
from tfx.components.example_gen import write_split

from components.ingestion import example_spill

EXAMPLE_FILE_SUFFIX = ".gz"  # What write_split.WriteSplit writes, and what readers detect GZIP by.
# Stored deflate blocks: a valid gzip stream, read by TensorFlow's and Beam's GZIP readers.
GZIP_LEVEL = 0


def shard_name(index: int, count: int) -> str:
    """The name WriteSplit gives shard `index` of `count` (Beam's default shard name template)."""
    return f"{write_split.DEFAULT_FILE_NAME}-{index:05d}-of-{count:05d}{EXAMPLE_FILE_SUFFIX}"


def _record_writer(path: str) -> tf.io.TFRecordWriter:
    return tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP", compression_level=GZIP_LEVEL))


class _WriteBundleFiles(beam.DoFn):
    """Writes the (split, serialized example) pairs of a bundle into one new temporary file per split; outputs
    (split, temporary file) for each file when the bundle is done."""

    def __init__(self, temp_folder: str):
        self._temp_folder = temp_folder
        self._files: Dict[str, Tuple[str, tf.io.TFRecordWriter]] = {}

    def start_bundle(self):
        self._files = {}

    def process(self, split_and_example: Tuple[str, bytes]):
        split, serialized = split_and_example
        if split not in self._files:
            folder = posixpath.join(self._temp_folder, split)
            tf.io.gfile.makedirs(folder)
            # A unique name per bundle: a retried bundle writes a new file and its failed attempt's is unused.
            path = posixpath.join(folder, uuid.uuid4().hex + EXAMPLE_FILE_SUFFIX)
            self._files[split] = (path, _record_writer(path))
        self._files[split][1].write(serialized)

    def finish_bundle(self):
        # Outputs of finish_bundle carry their window (Beam's DoFn contract); the pipeline is globally windowed.
        for split, (path, writer) in sorted(self._files.items()):
            writer.close()
            yield GlobalWindows.windowed_value((split, path))
        self._files = {}


def finalize(written: List[Tuple[str, str]], split_uris: Dict[str, str], temp_folder: str) -> None:
    """Moves each split's temporary files to their shard names (one empty shard for a split without
    examples, as WriteSplit leaves one), then removes the temporary folder."""
    for split, split_uri in sorted(split_uris.items()):
        files = sorted(path for file_split, path in written if file_split == split)
        tf.io.gfile.makedirs(split_uri)
        if not files:
            _record_writer(posixpath.join(split_uri, shard_name(0, 1))).close()
        for index, path in enumerate(files):
            tf.io.gfile.rename(path, posixpath.join(split_uri, shard_name(index, len(files))), overwrite=True)
    example_spill.remove(temp_folder)


@beam.ptransform_fn
def WriteExamples(split_and_examples: beam.PCollection, split_uris: Dict[str, str],  # noqa: N802
                  temp_folder: str) -> beam.PCollection:
    """Writes (split, serialized tf.Example) pairs into `split_uris[split]` as WriteSplit names its files,
    without its reshuffle. `temp_folder` holds the unfinished files; the caller removes it if the run fails."""
    return (split_and_examples
            | "WriteBundleFiles" >> beam.ParDo(_WriteBundleFiles(temp_folder))
            | "GatherFiles" >> beam.combiners.ToList()
            | "Finalize" >> beam.Map(finalize, split_uris, temp_folder))
