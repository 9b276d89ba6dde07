"""The Trainer's run_fn: a thin adapter from TFX's FnArgs to the plain training functions below."""
import json
import logging
import os
from typing import Dict, List, Optional

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras
from tfx import v1 as tfx

from components import features
from components.trainer import model as model_lib
from components.trainer import serving
from components.trainer.hparams import TrainingConfig

TRAINING_CONFIG_KEY = "training"
# Transformed images are cached in memory after the first epoch when they fit in this budget.
_CACHE_BUDGET_BYTES = 4 * 1024 ** 3
_SHUFFLE_BUFFER = 4096


def _files(patterns: List[str]) -> List[str]:
    files = sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"No example files match {patterns}.")
    return files


def count_records(patterns: List[str]) -> int:
    dataset = tf.data.TFRecordDataset(_files(patterns), compression_type="GZIP")
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


def input_dataset(patterns: List[str], tft_output: tft.TFTransformOutput, config: TrainingConfig,
                  num_examples: int, shuffle: bool) -> tf.data.Dataset:
    """(image, label id) batches: raw records parsed and passed through the Transform graph.

    Decoding runs in parallel map calls; the decoded images are cached in memory when they fit, so only
    the first epoch pays for decoding.
    """
    raw_spec = tft_output.raw_feature_spec()
    spec = {key: raw_spec[key] for key in (features.IMAGE_KEY, features.LABEL_KEY)}
    tft_layer = tft_output.transform_features_layer()

    def transform(serialized):
        transformed = tft_layer(tf.io.parse_example(serialized, spec))
        return transformed[features.TRANSFORMED_IMAGE_KEY], transformed[features.TRANSFORMED_LABEL_KEY]

    dataset = tf.data.TFRecordDataset(_files(patterns), compression_type="GZIP",
                                      num_parallel_reads=tf.data.AUTOTUNE)
    dataset = dataset.batch(64).map(transform, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    if num_examples * config.image_size ** 2 * 3 * 4 <= _CACHE_BUDGET_BYTES:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(min(num_examples, _SHUFFLE_BUFFER), seed=config.seed,
                                  reshuffle_each_iteration=True)
    dataset = dataset.batch(config.batch_size)
    if config.max_steps_per_epoch:
        dataset = dataset.take(config.max_steps_per_epoch)
    return dataset.prefetch(tf.data.AUTOTUNE)


def train_two_phases(model: tf_keras.Model, base: tf_keras.Model, train_data: tf.data.Dataset,
                     eval_data: tf.data.Dataset, config: TrainingConfig, log_dir: Optional[str]) -> Dict[str, Dict]:
    """Phase 1 trains the head on the frozen base; phase 2 also trains the top blocks at a low rate."""
    callbacks = [tf_keras.callbacks.TensorBoard(log_dir=log_dir)] if log_dir else []
    history = {}
    if config.phase1_epochs:
        logging.info("Phase 1: head only, base frozen, %d epochs at lr %g", config.phase1_epochs,
                     config.phase1_learning_rate)
        base.trainable = False
        model_lib.compile_for_phase(model, config.phase1_learning_rate)
        history["phase1"] = model.fit(train_data, validation_data=eval_data, epochs=config.phase1_epochs,
                                      callbacks=callbacks, verbose=2).history
    if config.phase2_epochs:
        model_lib.unfreeze_top(base, config.unfreeze_from_block)
        logging.info("Phase 2: fine-tuning from block %d, %d epochs at lr %g", config.unfreeze_from_block,
                     config.phase2_epochs, config.phase2_learning_rate)
        model_lib.compile_for_phase(model, config.phase2_learning_rate)
        history["phase2"] = model.fit(train_data, validation_data=eval_data, initial_epoch=config.phase1_epochs,
                                      epochs=config.phase1_epochs + config.phase2_epochs, callbacks=callbacks,
                                      verbose=2).history
    return history


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    config = TrainingConfig.from_json_dict(fn_args.custom_config[TRAINING_CONFIG_KEY])
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    class_names = serving.read_class_names(tft_output)
    logging.info("Training on %d classes: %s", len(class_names), class_names)

    train_data = input_dataset(fn_args.train_files, tft_output, config, count_records(fn_args.train_files),
                               shuffle=True)
    eval_data = input_dataset(fn_args.eval_files, tft_output, config, count_records(fn_args.eval_files),
                              shuffle=False)
    model, base = model_lib.build_model(len(class_names), config)
    history = train_two_phases(model, base, train_data, eval_data, config, fn_args.model_run_dir)

    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "history.json"), "w") as handle:
        json.dump(history, handle, indent=2)
    serving.export_serving_model(model, tft_output, class_names, fn_args.serving_model_dir, config.top_k)
    logging.info("Exported the serving model to %s", fn_args.serving_model_dir)
