"""Reading the examples for the data-quality stage, featurizing them with the Trainer's own code, and writing
the filtered copy that training and evaluation read.

Featurization is the Trainer's: its model builder (components/trainer/model.py `build_model`, so the same
base, weights and input size) and its feature extractor (components/trainer/training.py `featurize`), on
images decoded by the Transform graph as the Trainer decodes them (components/trainer/data.py
`decoded_examples`). Records are read in file order, one file after the other, so that row i of the features
is record i of the table.
"""
import dataclasses
import io
import posixpath
from typing import Dict, Iterator, List, Sequence, Set, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from PIL import Image

from components import features as feature_keys
from components.quality import near_duplicates, outliers
from components.quality.assessment import ExampleTable
from components.trainer import data as trainer_data
from components.trainer import model as model_lib
from components.trainer import training
from components.trainer.hparams import TrainingConfig

# Records are decoded through the Transform graph in batches, as the Trainer's input pipeline does.
_DECODE_BATCH = 64
OUTPUT_FILE_NAME = "data_tfrecord-00000-of-00001.gz"
THUMBNAIL_SIDE = 96


def split_files(examples_uri: str, split: str) -> List[str]:
    """The split's record files, sorted (the order every pass reads them in)."""
    return trainer_data.example_files([posixpath.join(examples_uri, f"Split-{split}", "*")])


# Records are fetched from tf.data this many at a time: one eager iterator step per record cost about 1 ms
# (py-spy, 7,188 digits under load: 7.9 s of reading's 14.5 s), a batch's step costs about as much as a record's.
_READ_BATCH = 256


def _records(files: Sequence[str]) -> Iterator[bytes]:
    """Every record of the files, in file order."""
    dataset = tf.data.TFRecordDataset(list(files), compression_type="GZIP").batch(_READ_BATCH)
    for batch in dataset.as_numpy_iterator():
        yield from batch


def _bytes_feature(example: tf.train.Example, key: str) -> bytes:
    values = example.features.feature[key].bytes_list.value
    return values[0] if values else b""


@dataclasses.dataclass
class ReadExamples:
    table: ExampleTable
    signatures: np.ndarray  # [N, 256] perceptual signatures (near_duplicates.perceptual_signature).
    statistics: np.ndarray  # [N, S] low-level image statistics (outliers.image_statistics).
    files: Dict[str, List[str]]  # Record files per split, in reading order.


def read_examples(examples_uri: str, splits: Sequence[str]) -> ReadExamples:
    """One pass over every split: the table (URI, label, split, sha256), each image's perceptual signature and
    its low-level statistics."""
    uris, labels, split_of, hashes, signatures, statistics = [], [], [], [], [], []
    files = {split: split_files(examples_uri, split) for split in splits}
    for split in splits:
        for record in _records(files[split]):
            example = tf.train.Example.FromString(record)
            uris.append(_bytes_feature(example, feature_keys.SOURCE_URI_KEY).decode("utf-8"))
            labels.append(_bytes_feature(example, feature_keys.LABEL_KEY).decode("utf-8"))
            hashes.append(_bytes_feature(example, feature_keys.SHA256_KEY).decode("ascii"))
            split_of.append(split)
            image = _bytes_feature(example, feature_keys.IMAGE_KEY)
            signatures.append(near_duplicates.perceptual_signature(image))
            statistics.append(outliers.image_statistics(image))
    table = ExampleTable(uris=uris, labels=labels, splits=split_of, sha256=hashes)
    signature_array = np.array(signatures, dtype=np.float32).reshape(len(uris), -1)
    statistics_array = np.array(statistics, dtype=np.float32).reshape(len(uris), -1)
    return ReadExamples(table, signature_array, statistics_array, files)


def _decoded_images(files: Sequence[str], tft_output: tft.TFTransformOutput) -> tf.data.Dataset:
    """(image, 0) pairs in file order, decoded by the Transform graph (as trainer/data.py decoded_examples,
    without its parallel interleaved reads, which would reorder records across files)."""
    raw_spec = tft_output.raw_feature_spec()
    spec = {key: raw_spec[key] for key in (feature_keys.IMAGE_KEY, feature_keys.LABEL_KEY)}
    tft_layer = tft_output.transform_features_layer()

    def transform(serialized):
        images = tft_layer(tf.io.parse_example(serialized, spec))[feature_keys.TRANSFORMED_IMAGE_KEY]
        return images, tf.zeros(tf.shape(images)[:1], tf.int32)

    dataset = tf.data.TFRecordDataset(list(files), compression_type="GZIP")
    return dataset.batch(_DECODE_BATCH).map(transform, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def featurizing_model(config: TrainingConfig, num_classes: int) -> model_lib.Classifier:
    """The Trainer's classifier (base with its weights loaded): what featurize_examples runs."""
    return model_lib.build_model(max(num_classes, 2), config)


def featurize_examples(classifier: model_lib.Classifier, files: Dict[str, List[str]], splits: Sequence[str],
                       tft_output: tft.TFTransformOutput) -> np.ndarray:
    """[N, D] pooled features of the frozen base, split after split, in the order read_examples reads.

    One dataset over every split's files: the decoding graph and the base are traced once (each trace costs
    seconds)."""
    all_files = [path for split in splits for path in files[split]]
    return training.FeatureExtractor(classifier)(_decoded_images(all_files, tft_output))[0]


def thumbnail_png(image_bytes: bytes, side: int = THUMBNAIL_SIDE) -> bytes:
    with Image.open(io.BytesIO(image_bytes)) as image:
        image.draft("RGB", (side, side))
        picture = image.convert("RGB")
        picture.thumbnail((side, side))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
    return buffer.getvalue()


def write_filtered(read: ReadExamples, splits: Sequence[str], output_uri: str, dropped: Set[int],
                   thumbnails_of: Set[int], thumbnail_dir: str) -> Dict[str, Tuple[int, int]]:
    """Copies every record not in `dropped` into <output_uri>/Split-<split>/, and writes a PNG thumbnail of
    each record in `thumbnails_of` as <thumbnail_dir>/<index>.png. Returns {split: (kept, dropped)}."""
    tf.io.gfile.makedirs(thumbnail_dir)
    counts, index = {}, 0
    for split in splits:
        split_dir = posixpath.join(output_uri, f"Split-{split}")
        tf.io.gfile.makedirs(split_dir)
        kept = removed = 0
        with tf.io.TFRecordWriter(posixpath.join(split_dir, OUTPUT_FILE_NAME), options="GZIP") as writer:
            for record in _records(read.files[split]):
                if index in thumbnails_of:
                    image = _bytes_feature(tf.train.Example.FromString(record), feature_keys.IMAGE_KEY)
                    with tf.io.gfile.GFile(thumbnail_path(thumbnail_dir, index), "wb") as handle:
                        handle.write(thumbnail_png(image))
                if index in dropped:
                    removed += 1
                else:
                    writer.write(record)
                    kept += 1
                index += 1
        counts[split] = (kept, removed)
    if index != len(read.table.uris):
        raise RuntimeError(f"The examples changed while being read: {index} records now, "
                           f"{len(read.table.uris)} before.")
    return counts


def thumbnail_path(thumbnail_dir: str, index: int) -> str:
    return posixpath.join(thumbnail_dir, f"{index}.png")
