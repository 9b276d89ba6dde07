"""The Trainer's run_fn: a thin adapter from TFX's FnArgs to the plain training functions."""
import contextlib
import hashlib
import json
import logging
import math
import os
import posixpath
import time
from typing import Dict, Iterator, List, Optional

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from components.trainer import data, serving, training
from components.trainer import model as model_lib
from components.trainer.hparams import TrainingConfig

TRAINING_CONFIG_KEY = "training"
# Beside history.json in model_run: the wall seconds of each step of run_fn (bench/bench_e2e.py prints them).
# A file of its own: the run report reads every key of history.json as a training phase.
STEP_SECONDS_FILE = "trainer_steps.json"
# custom_config key of the folder that holds the checkpoints of every run of the pipeline (see checkpoint_root).
CHECKPOINT_ROOT_KEY = "checkpoint_root"


def checkpoint_root(pipeline_root: str) -> str:
    """`<pipeline root>/Trainer/checkpoints`: the same folder for every run, whatever the orchestrator's artifact
    layout. Output folders are not: TFX locally writes `<root>/Trainer/model_run/<execution id>`, KFP writes
    `<root>/<pipeline>/<run id>/Trainer/<uuid>/model_run` (kubeflow/pipelines backend/src/v2/driver/driver.go,
    `provisionOutputs`), so a folder derived from the output URI differs between KFP runs."""
    return posixpath.join(pipeline_root, "Trainer", "checkpoints")


def checkpoint_dir_for(fn_args: tfx.components.FnArgs, digest: Optional[str] = None) -> str:
    """A checkpoint folder that a re-run of the same Trainer inputs finds again after a crash.

    Each execution gets new output folders, and on KFP new input URIs too: every run re-runs ImageExampleGen
    (uncached there) and so writes the same examples under its own run id. So the key is what the training
    depends on by content: the config (with the code version) and the inputs' digest (`inputs_digest`, which
    run_fn passes as `digest` from its own pass over the records), under the pipeline's checkpoint root.
    """
    digest = inputs_digest(fn_args) if digest is None else digest
    key = hashlib.sha256(json.dumps([fn_args.custom_config, digest], sort_keys=True,
                                    default=str).encode()).hexdigest()[:16]
    root = fn_args.custom_config.get(CHECKPOINT_ROOT_KEY)
    if not root:  # A hand-written custom_config without it: TFX's local layout, <root>/Trainer/model_run/<id>.
        root = posixpath.join(posixpath.dirname(posixpath.dirname(fn_args.model_run_dir.rstrip("/"))), "checkpoints")
        logging.warning("custom_config has no %s; checkpoints go to %s, which only TFX's local layout keeps "
                        "from one run to the next", CHECKPOINT_ROOT_KEY, root)
    return posixpath.join(root, key)


def inputs_digest(fn_args: tfx.components.FnArgs) -> str:
    """The Trainer's inputs by content, wherever they are stored (see digest_of)."""
    _, train_digest = data.count_and_digest(fn_args.train_files)
    _, eval_digest = data.count_and_digest(fn_args.eval_files)
    return digest_of(train_digest, eval_digest, serving.read_class_names(tft.TFTransformOutput(
        fn_args.transform_output)))


def digest_of(train_digest: str, eval_digest: str, class_names: List[str]) -> str:
    """The examples of each split (data.count_and_digest) and the Transform graph's vocabulary; the rest of the
    graph is code and image size, both in custom_config."""
    return json.dumps({"train": train_digest, "eval": eval_digest, "classes": list(class_names)})


def _stage_features(fn_args: tfx.components.FnArgs, config: TrainingConfig, class_names, num_train: int,
                    num_eval: int):
    """The base features the data-quality stage kept beside the examples, when computed with this config's base
    (components/quality/feature_cache.py); None otherwise, and phase 1 computes its own."""
    from components.quality import feature_cache

    featurization = feature_cache.featurization_config(config).to_json_dict()
    found = {split: feature_cache.read(feature_cache.examples_uri_of(files), split, featurization,
                                       len(class_names), count)
             for split, files, count in (("train", fn_args.train_files, num_train),
                                         ("eval", fn_args.eval_files, num_eval))}
    return found if found["train"] is not None and (found["eval"] is not None or not num_eval) else None


class StepTimes:
    """Wall seconds of each step of run_fn, logged as each ends (INFO, shown with -v) and kept for history.json:
    what the Trainer spends besides its two phases is measured, not guessed."""

    def __init__(self):
        self.seconds: Dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[step] = round(time.perf_counter() - started, 2)
        logging.info("Trainer step %r took %.1f s", step, self.seconds[step])


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    # First, before TensorFlow runs any op: MultiWorkerMirroredStrategy configures collective ops, which TF
    # allows only at program start (a later creation raises "Collective ops must be configured at program
    # startup": tensorflow/python/eager/context.py, configure_collective_ops).
    strategy = training.choose_strategy()
    config = TrainingConfig.from_json_dict(fn_args.custom_config[TRAINING_CONFIG_KEY])
    training.set_precision(config)
    timed = StepTimes()
    with timed("read inputs"):
        tft_output = tft.TFTransformOutput(fn_args.transform_output)
        class_names = serving.read_class_names(tft_output)
        # One pass over the records counts them and digests them (the checkpoint folder's key).
        (num_train, train_digest), (num_eval, eval_digest) = (data.count_and_digest(fn_args.train_files),
                                                              data.count_and_digest(fn_args.eval_files))
    logging.info("Training on %d examples (%d for eval) of %d classes: %s", num_train, num_eval,
                 len(class_names), class_names)

    train_examples = data.decoded_examples(fn_args.train_files, tft_output, config, num_train, len(class_names))
    eval_examples = data.decoded_examples(fn_args.eval_files, tft_output, config, num_eval, len(class_names))
    steps_per_epoch = math.ceil(num_train / config.batch_size)
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    phase_data = training.PhaseData(
        train=data.batched(train_examples, config, num_train, shuffle=True),
        eval=data.batched(eval_examples, config, num_eval, shuffle=False) if num_eval else None,
        steps_per_epoch=steps_per_epoch)

    checkpoint_dir = checkpoint_dir_for(fn_args, digest_of(train_digest, eval_digest, class_names))
    logging.info("Distribution: %s with %d replica(s); checkpoints in %s", type(strategy).__name__,
                 strategy.num_replicas_in_sync, checkpoint_dir)
    with strategy.scope():
        with timed("model build (weights loaded)"):
            classifier = model_lib.build_model(len(class_names), config)
        with timed("data-quality features read"):
            precomputed = _stage_features(fn_args, config, class_names, num_train, num_eval)
        with timed("training (both phases)"):
            history = training.train_two_phases(classifier, train_examples, eval_examples if num_eval else None,
                                                phase_data, config, log_dir=fn_args.model_run_dir,
                                                checkpoint_dir=checkpoint_dir, precomputed_features=precomputed)

    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "history.json"), "w") as handle:
        json.dump(history, handle, indent=2)
    with timed("warm-up requests sampled"):
        warmup_images = serving.sample_image_bytes(fn_args.eval_files or fn_args.train_files, serving.WARMUP_IMAGES)
    with timed("SavedModel export"):
        serving.export_serving_model(
            classifier.model, tft_output, class_names, fn_args.serving_model_dir, config.top_k,
            warmup_images=warmup_images,
            model_info={"training": config.to_json_dict(), "examples": {"train": num_train, "eval": num_eval}})
    logging.info("Exported the serving model to %s", fn_args.serving_model_dir)
    # TFLite beside the SavedModel, with both accuracies on the eval split (the Pusher gates it).
    if num_eval and config.export_tflite:
        with timed("TFLite conversion and scoring"):
            serving.export_tflite(classifier.model, config.image_size, fn_args.serving_model_dir, eval_examples,
                                  representative_examples=train_examples,
                                  max_eval_examples=config.tflite_eval_examples, seed=config.seed)
    # Training is complete: a later run with the same inputs must start fresh, not resume.
    if training.is_chief(strategy) and tf.io.gfile.exists(checkpoint_dir):
        tf.io.gfile.rmtree(checkpoint_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, STEP_SECONDS_FILE), "w") as handle:
        json.dump(timed.seconds, handle, indent=2)
    logging.info("Trainer steps (seconds): %s", timed.seconds)
