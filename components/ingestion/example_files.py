"""Writes a split's serialized tf.Examples as TFX's example files: GZIP TFRecords named as TFX's WriteSplit
names them (tfx/components/example_gen/write_split.py), which every TFX reader and ours open by the `.gz`
suffix, with the gzip stream stored at compression level 0.

Why not WriteSplit itself: an example's bytes are an encoded JPEG or PNG, which deflate does not shrink
(0.999 of the raw size at Beam's fixed level 6 on the camera-photo benchmark's examples, against 1.000 at
level 0), yet level 6 costs about 6 ms per 200 KB example on one core, the largest cost of ingestion after
decoding. And WriteSplit reshuffles the examples before writing, a second shuffle of every image's bytes:
ingestion has already grouped them by content hash, so they arrive in an order unrelated to class or folder.
"""
import gzip
import posixpath

import apache_beam as beam
from apache_beam import coders
from apache_beam.io import tfrecordio
from apache_beam.io.filesystem import CompressionTypes
from tfx.components.example_gen import write_split

EXAMPLE_FILE_SUFFIX = ".gz"  # What write_split.WriteSplit writes, and what readers detect GZIP by.
# Stored deflate blocks: a valid gzip stream, read by TensorFlow's and Beam's GZIP readers.
GZIP_LEVEL = 0


class _ClosingGzipFile(gzip.GzipFile):
    """A gzip writer that also closes the file it writes into (gzip.GzipFile leaves a given fileobj open)."""

    def close(self):
        raw = self.fileobj
        super().close()
        if raw is not None:
            raw.close()


class _StoredGzipTFRecordSink(tfrecordio._TFRecordSink):  # Beam's TFRecord sink (apache_beam/io/tfrecordio.py).
    """Beam's TFRecord sink writing gzip at GZIP_LEVEL: Beam's own GZIP files are always at level 6
    (apache_beam/io/filesystem.py, CompressedFile._initialize_compressor)."""

    def __init__(self, file_path_prefix: str):
        super().__init__(file_path_prefix, coders.BytesCoder(), EXAMPLE_FILE_SUFFIX, num_shards=0,
                         shard_name_template=None, compression_type=CompressionTypes.UNCOMPRESSED)

    def open(self, temp_path):
        return _ClosingGzipFile(fileobj=super().open(temp_path), mode="wb", compresslevel=GZIP_LEVEL)


@beam.ptransform_fn
def WriteExamples(serialized_examples: beam.PCollection, split_uri: str) -> beam.pvalue.PDone:  # noqa: N802
    """Writes serialized tf.Examples into `split_uri` as WriteSplit would, without its reshuffle."""
    sink = _StoredGzipTFRecordSink(posixpath.join(split_uri, write_split.DEFAULT_FILE_NAME))
    return serialized_examples | "Write" >> beam.io.Write(sink)
