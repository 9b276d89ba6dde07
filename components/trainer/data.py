"""The Trainer's tf.data input pipeline: raw examples -> Transform graph -> (image, one-hot label) batches."""
from typing import List, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components.trainer.hparams import TrainingConfig

# Decoded images are cached in memory after the first pass when they fit in this budget.
CACHE_BUDGET_BYTES = 4 * 1024 ** 3
_SHUFFLE_BUFFER = 4096
_DECODE_BATCH = 64
_HASH_BUCKETS = 2 ** 63 - 1  # to_hash_bucket_fast's largest bucket count: the whole 63-bit fingerprint range.


def example_files(patterns: List[str]) -> List[str]:
    files = sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"No example files match {patterns}.")
    return files


def count_records(patterns: List[str]) -> int:
    dataset = tf.data.TFRecordDataset(example_files(patterns), compression_type="GZIP")
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


def count_and_digest(patterns: List[str]) -> Tuple[int, str]:
    """The number of records and a digest of what training reads of them (image bytes and label) that ignores
    order and sharding: the same examples written again by another run (new URIs, other shard files, another
    order) give the same digest. Not of the serialized records: their feature map's order differs between
    runs of the same ingestion (found on KFP, where every run writes the examples anew)."""
    spec = {key: tf.io.FixedLenFeature([], tf.string) for key in (features.IMAGE_KEY, features.LABEL_KEY)}

    def record_hash(record):
        parsed = tf.io.parse_single_example(record, spec)
        return tf.strings.to_hash_bucket_fast(
            tf.strings.join([parsed[features.LABEL_KEY], parsed[features.IMAGE_KEY]], separator="\0"), _HASH_BUCKETS)

    dataset = tf.data.TFRecordDataset(example_files(patterns), compression_type="GZIP")
    # A sum, not a running hash: order-independent, and duplicates still count. int64 addition wraps.
    count, total = dataset.map(record_hash).reduce((tf.constant(0, tf.int64), tf.constant(0, tf.int64)),
                                                   lambda state, value: (state[0] + 1, state[1] + value))
    return int(count), f"{int(count)}:{int(total) & (2 ** 64 - 1):016x}"


def decoded_examples(patterns: List[str], tft_output: tft.TFTransformOutput, config: TrainingConfig,
                     num_examples: int, num_classes: int) -> tf.data.Dataset:
    """Unbatched (image, one-hot label) pairs in file order, decoded by the Transform graph.

    Parsing and decoding run batched in parallel map calls (AUTOTUNE); the result is cached in memory
    when it fits, so only the first pass pays for decoding. `num_examples` (the records counted before) is
    asserted as the cardinality: after `unbatch` tf.data cannot tell it, and then Keras' fit synchronizes
    after every step to catch the end of an epoch (tf_keras/src/engine/data_adapter.py, `should_sync`) and
    the phase-2 cache's size check had to count the examples with a decoding pass of its own. A record count
    that no longer holds fails with tf.data's "expected to contain N elements" error.
    """
    raw_spec = tft_output.raw_feature_spec()
    spec = {key: raw_spec[key] for key in (features.IMAGE_KEY, features.LABEL_KEY)}
    tft_layer = tft_output.transform_features_layer()

    def transform(serialized):
        transformed = tft_layer(tf.io.parse_example(serialized, spec))
        labels = tf.one_hot(transformed[features.TRANSFORMED_LABEL_KEY], num_classes)
        return transformed[features.TRANSFORMED_IMAGE_KEY], labels

    dataset = tf.data.TFRecordDataset(example_files(patterns), compression_type="GZIP",
                                      num_parallel_reads=tf.data.AUTOTUNE)
    dataset = dataset.batch(_DECODE_BATCH).map(transform, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_examples))
    if num_examples * config.image_size ** 2 * 3 * 4 <= CACHE_BUDGET_BYTES:
        dataset = dataset.cache()
    return dataset


def batched(dataset: tf.data.Dataset, config: TrainingConfig, num_examples: int, shuffle: bool) -> tf.data.Dataset:
    if shuffle:
        dataset = dataset.shuffle(min(num_examples, _SHUFFLE_BUFFER), seed=config.seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(config.batch_size)
    if config.max_steps_per_epoch:
        dataset = dataset.take(config.max_steps_per_epoch)
    return dataset.prefetch(tf.data.AUTOTUNE)


def class_weights_from_counts(counts: np.ndarray) -> dict:
    """Inverse-frequency weights, normalized so that a balanced data set gets 1.0 for every class."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return {index: float(weight) for index, weight in enumerate(weights)}
