"""The two training phases, as plain functions of a Classifier and tf.data datasets.

Phase 1 trains the head only. The base is frozen, so its output for an image never changes: with the
bottleneck cache on, each image goes through the base once and the head trains on the cached pooled
features for every phase-1 epoch (the classic recipe runs the whole base over every image every epoch).
Phase 2 unfreezes the top blocks. Below them the base stays frozen (BatchNorm in inference mode), so with
the activation cache on, each image (or each of a few augmented views of it) goes through the frozen bottom
once and only the top trains on the cached boundary activations; otherwise the whole model trains on images.
"""
import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from components.trainer import fault_injection
from components.trainer import model as model_lib
from components.trainer.data import class_weights_from_counts
from components.trainer.hparams import TrainingConfig

PHASE1, PHASE2 = "phase1", "phase2"
_PHASE1_DONE = "phase1_done"


class PhaseSchedule(tf_keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak`, then constant or cosine decay to 0 at the phase's last step."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, cosine: bool):
        self.peak, self.warmup_steps, self.total_steps, self.cosine = peak, warmup_steps, total_steps, cosine

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(self.warmup_steps, tf.float32)
        warming = self.peak * (step + 1.0) / tf.maximum(warmup, 1.0)
        progress = tf.clip_by_value((step - warmup) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0)
        after = self.peak * 0.5 * (1.0 + tf.cos(math.pi * progress)) if self.cosine else tf.constant(self.peak)
        return tf.where(step < warmup, warming, after)

    def get_config(self):
        return dict(peak=self.peak, warmup_steps=self.warmup_steps, total_steps=self.total_steps, cosine=self.cosine)


def learning_rate(peak: float, config: TrainingConfig, steps_per_epoch: int, epochs: int):
    if config.lr_schedule == "constant" and not config.warmup_epochs:
        return peak
    return PhaseSchedule(peak, int(config.warmup_epochs * steps_per_epoch), steps_per_epoch * epochs,
                         cosine=config.lr_schedule == "cosine")


def choose_strategy() -> tf.distribute.Strategy:
    """Multi-worker when TF_CONFIG describes a cluster, mirrored over several local GPUs, else one device."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    if len(tf_config.get("cluster", {}).get("worker", [])) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: Optional[tf.distribute.Strategy] = None) -> bool:
    """Whether this process writes the files all workers share (checkpoint folder, history): TF's multi-worker
    rule, the chief, or worker 0 of a cluster without one (tensorflow/python/distribute/multi_worker_util.py,
    `is_chief`). Outside multi-worker training every process is its own chief."""
    resolver = getattr(strategy or tf.distribute.get_strategy(), "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


def save_weights_once(model: tf_keras.Model, path: str) -> None:
    """Every worker takes part in saving distributed variables; only the chief writes `path`, the others write
    to a scratch folder they remove (two workers writing one checkpoint raced: one merged shards the other had
    already moved)."""
    if is_chief():
        model.save_weights(path)
        return
    scratch = tempfile.mkdtemp(prefix="imagepipe-worker-weights-")
    try:
        model.save_weights(os.path.join(scratch, os.path.basename(path)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def set_precision(config: TrainingConfig) -> None:
    gpus = tf.config.list_logical_devices("GPU")
    policy = "mixed_float16" if config.mixed_precision and gpus else "float32"
    if config.mixed_precision and not gpus:
        logging.warning("mixed_precision ignored: no GPU is visible")
    tf_keras.mixed_precision.set_global_policy(policy)


@dataclasses.dataclass(frozen=True)
class PhaseData:
    """One phase's inputs: batched training and eval datasets, and how many steps make an epoch."""

    train: tf.data.Dataset
    eval: Optional[tf.data.Dataset]
    steps_per_epoch: int


def _callbacks(phase: str, config: TrainingConfig, log_dir: Optional[str], checkpoint_dir: Optional[str],
               has_eval: bool, extra: Sequence[tf_keras.callbacks.Callback] = ()) -> List[tf_keras.callbacks.Callback]:
    # Test-only: empty unless IMAGEPIPE_FAULT_INJECT names this phase (see fault_injection.py).
    callbacks: List[tf_keras.callbacks.Callback] = list(extra) + fault_injection.callbacks_for(phase)
    if log_dir:
        # One TensorBoard run per phase: the phase boundary is where one run ends and the next begins.
        callbacks.append(tf_keras.callbacks.TensorBoard(log_dir=os.path.join(log_dir, phase)))
    if config.early_stopping_patience and has_eval:
        callbacks.append(tf_keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True, verbose=1))
    if checkpoint_dir:
        # First, so that an epoch is recorded before any other callback can fail at its end.
        callbacks.insert(0, EpochHistory(epoch_history_path(checkpoint_dir, phase)))
        # Saves model, optimizer and epoch after every epoch; a restarted Trainer resumes from there.
        callbacks.append(tf_keras.callbacks.BackupAndRestore(os.path.join(checkpoint_dir, phase)))
    return callbacks


def epoch_history_path(checkpoint_dir: str, phase: str) -> str:
    # Beside the phase's backup folder, which BackupAndRestore deletes when the phase ends.
    return os.path.join(checkpoint_dir, f"{phase}_history.json")


class EpochHistory(tf_keras.callbacks.Callback):
    """Keeps a phase's per-epoch logs in the checkpoint folder, so that the history of a resumed phase starts at
    its first epoch (Keras' own History holds only the epochs of the current fit) and a finished phase 1 that
    is restored, not retrained, still has its history."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.epochs: List[Dict[str, float]] = []

    def on_train_begin(self, logs=None):
        self.epochs = read_epoch_logs(self.path)

    def on_epoch_begin(self, epoch, logs=None):
        # A resumed fit starts after the last epoch BackupAndRestore saved: later ones logged before the
        # process died are run again.
        del self.epochs[epoch:]

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append({key: float(value) for key, value in (logs or {}).items()})
        if not is_chief():  # One writer of the shared checkpoint folder.
            return
        tf.io.gfile.makedirs(os.path.dirname(self.path))  # Before BackupAndRestore's first save makes it.
        with tf.io.gfile.GFile(self.path, "w") as handle:
            handle.write(json.dumps(self.epochs))


def read_epoch_logs(path: str) -> List[Dict[str, float]]:
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path, "r") as handle:
        return json.loads(handle.read())


def _phase_history(fit_history: Dict, checkpoint_dir: Optional[str], phase: str) -> Dict:
    """The phase's history from its first epoch: Keras' History of this fit, with a resumed phase's earlier
    epochs (EpochHistory) in front."""
    epochs = read_epoch_logs(epoch_history_path(checkpoint_dir, phase)) if checkpoint_dir else []
    if not epochs:
        return fit_history
    return {key: [epoch.get(key) for epoch in epochs] for key in epochs[-1]}


# Inference needs no gradients, so featurization runs larger batches than training (measured on 2 cores:
# 8.5 ms/image at 32, 7.4 at 128).
FEATURIZE_BATCH = 128


class FeatureExtractor:
    """The frozen base's pooled features of image batches, traced once for any batch size.

    One trace serves the training and eval sets and the last, partial batch: each retrace of MobileNetV2
    costs seconds. On one device a traced forward pass does the work (Keras predict took twice as long per
    image here); under a distribution strategy, predict spreads the batches over the replicas.
    """

    def __init__(self, classifier: model_lib.Classifier):
        self.classifier = classifier
        spec = tf.TensorSpec([None, *classifier.features.input_shape[1:]], tf.float32)
        self._extract = tf.function(lambda images: classifier.features(images, training=False),
                                    input_signature=[spec])
        self._augment = tf.function(lambda images: classifier.augmentation(images, training=True),
                                    input_signature=[spec]) if classifier.augmentation is not None else None

    def __call__(self, dataset: tf.data.Dataset, augmented_views: int = 0) -> Tuple[np.ndarray, np.ndarray]:
        """Features and labels of every (image, label) example, plus `augmented_views` augmented copies."""
        if augmented_views and self._augment is None:
            raise ValueError("augmented_views needs a classifier with augmentation layers")
        batches = dataset.batch(FEATURIZE_BATCH).prefetch(tf.data.AUTOTUNE)
        if tf.distribute.has_strategy():
            return _featurize_distributed(self.classifier, batches, augmented_views)
        feature_sets, label_sets = [], []
        for view in range(1 + augmented_views):
            for images, labels in batches:
                feature_sets.append(self._extract(self._augment(images) if view else images).numpy())
                label_sets.append(labels.numpy())
        return np.concatenate(feature_sets), np.concatenate(label_sets)


def featurize(classifier: model_lib.Classifier, dataset: tf.data.Dataset,
              augmented_views: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Pooled base features and labels of every example, plus `augmented_views` augmented copies."""
    return FeatureExtractor(classifier)(dataset, augmented_views)


def _featurize_distributed(classifier: model_lib.Classifier, batches: tf.data.Dataset,
                           augmented_views: int) -> Tuple[np.ndarray, np.ndarray]:
    labels = np.concatenate([y for _, y in batches.as_numpy_iterator()])

    def images(x, y):
        return x

    def augmented_images(x, y):
        return classifier.augmentation(x, training=True)

    feature_sets = [classifier.features.predict(batches.map(images), verbose=0)]
    for _ in range(augmented_views):
        feature_sets.append(classifier.features.predict(batches.map(augmented_images), verbose=0))
    return np.concatenate(feature_sets), np.concatenate([labels] * len(feature_sets))


def train_phase1_on_cached_features(classifier: model_lib.Classifier, train: tf.data.Dataset,
                                    eval_: Optional[tf.data.Dataset], config: TrainingConfig,
                                    class_weight: Optional[Dict], log_dir: Optional[str],
                                    checkpoint_dir: Optional[str], extra_callbacks=(),
                                    precomputed: Optional[Dict[str, Tuple[np.ndarray, np.ndarray]]] = None) -> Dict:
    """`precomputed`: {"train": (features, one-hot labels), "eval": ...} that the data-quality stage computed
    with this base (components/quality/feature_cache.py); used instead of running the base again when given
    and no augmented views are asked for."""
    views = config.augmented_views if classifier.augmentation is not None else 0
    if precomputed and not views:
        train_x, train_y = precomputed["train"]
        validation = precomputed.get("eval") if eval_ is not None else None
        logging.info("Phase 1: base features from the data-quality stage (no second forward pass)")
    else:
        extract = FeatureExtractor(classifier)
        train_x, train_y = extract(train, views)
        validation = extract(eval_) if eval_ is not None else None
    logging.info("Phase 1: cached base features of %d training examples (%d augmented views)",
                 len(train_x), views)
    steps = math.ceil(len(train_x) / config.batch_size)
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
        train_x, train_y = train_x[: steps * config.batch_size], train_y[: steps * config.batch_size]
    # A standalone copy of the head trains, then hands its weights back. It once saved 17-40 s before the
    # first step, most of which was AutoGraph converting tf_keras (see autograph.py); with that fixed, the
    # copy fit ten epochs of 1,438 features in 1.7 s, the shared head in 3.0 s (one process, shared first).
    head = tf_keras.models.clone_model(classifier.head)
    head.set_weights(classifier.head.get_weights())
    model_lib.compile_for_phase(head, learning_rate(config.phase1_learning_rate, config, steps, config.phase1_epochs),
                                config.label_smoothing)
    history = head.fit(
        train_x, train_y, batch_size=config.batch_size, epochs=config.phase1_epochs, shuffle=True,
        validation_data=validation, class_weight=class_weight, verbose=2,
        callbacks=_callbacks(PHASE1, config, log_dir, checkpoint_dir, validation is not None, extra_callbacks)).history
    classifier.head.set_weights(head.get_weights())
    return history


def train_phase1_on_images(classifier: model_lib.Classifier, data: PhaseData, config: TrainingConfig,
                           class_weight: Optional[Dict], log_dir: Optional[str],
                           checkpoint_dir: Optional[str], extra_callbacks=()) -> Dict:
    model_lib.compile_for_phase(classifier.model, learning_rate(
        config.phase1_learning_rate, config, data.steps_per_epoch, config.phase1_epochs), config.label_smoothing)
    return classifier.model.fit(
        data.train, validation_data=data.eval, epochs=config.phase1_epochs, class_weight=class_weight, verbose=2,
        callbacks=_callbacks(PHASE1, config, log_dir, checkpoint_dir, data.eval is not None, extra_callbacks)).history


def train_phase2(classifier: model_lib.Classifier, data: PhaseData, config: TrainingConfig,
                 class_weight: Optional[Dict], log_dir: Optional[str], checkpoint_dir: Optional[str],
                 extra_callbacks=()) -> Dict:
    model_lib.unfreeze_top(classifier.base, config.unfreeze_from_block)
    model_lib.compile_for_phase(classifier.model, learning_rate(
        config.phase2_learning_rate, config, data.steps_per_epoch, config.phase2_epochs), config.label_smoothing)
    return classifier.model.fit(
        data.train, validation_data=data.eval, epochs=config.phase2_epochs, class_weight=class_weight, verbose=2,
        callbacks=_callbacks(PHASE2, config, log_dir, checkpoint_dir, data.eval is not None, extra_callbacks)).history


# Boundary activations are cached in memory, float16, up to this size; a larger set trains phase 2 on
# images. Kept under 2 GB: tf.data serializes captured tensors into a GraphDef, which cannot exceed 2 GB.
ACTIVATION_CACHE_BUDGET_BYTES = 1536 * 1024 ** 2
# float16 halves the cache; measured on the digits set at 160x160, gradients of the top differ from
# float32 activations' by about 1e-3 relative (tests/test_phase2_cache.py bounds it).
ACTIVATION_CACHE_DTYPE = tf.float16


@dataclasses.dataclass(frozen=True)
class CachedActivations:
    """Boundary activations of `views` passes over a data set, view-major: one plain view, or only augmented
    ones (training never reads a plain view beside augmented ones, so none is computed)."""

    activations: np.ndarray  # [views * examples, height, width, channels], ACTIVATION_CACHE_DTYPE
    labels: np.ndarray  # [views * examples, classes]
    views: int

    @property
    def examples(self) -> int:
        return len(self.labels) // self.views


class BoundaryActivations:
    """The frozen bottom's activations of image batches, traced once for any batch size (as FeatureExtractor)."""

    def __init__(self, split: model_lib.BoundarySplit, augmentation: Optional[tf_keras.Model]):
        spec = tf.TensorSpec([None, *split.bottom.input_shape[1:]], tf.float32)

        def bottom(images):
            activations = split.bottom(images, training=False)
            stored = tf.cast(activations, ACTIVATION_CACHE_DTYPE)
            # Values too small for float16 become 0; counted so that a lossy cache does not go unnoticed.
            return stored, tf.math.count_nonzero(activations) - tf.math.count_nonzero(stored)

        self._bottom = tf.function(bottom, input_signature=[spec])
        self._augment = tf.function(lambda images: augmentation(images, training=True),
                                    input_signature=[spec]) if augmentation is not None else None

    def __call__(self, dataset: tf.data.Dataset, augmented_views: int = 0) -> CachedActivations:
        """The plain activations of every example, or with `augmented_views` that many augmented views only."""
        if augmented_views and self._augment is None:
            raise ValueError("augmented views need a classifier with augmentation layers")
        batches = dataset.batch(FEATURIZE_BATCH).prefetch(tf.data.AUTOTUNE)
        activation_sets, label_sets, flushed = [], [], 0
        for _ in range(max(augmented_views, 1)):
            for images, labels in batches:
                activations, flushed_to_zero = self._bottom(self._augment(images) if augmented_views else images)
                activation_sets.append(activations.numpy())
                label_sets.append(labels.numpy())
                flushed += int(flushed_to_zero)
        cache = CachedActivations(np.concatenate(activation_sets), np.concatenate(label_sets),
                                  max(augmented_views, 1))
        if flushed > 1e-3 * cache.activations.size:
            logging.warning("%.1f%% of the cached boundary activations were too small for %s and became 0 (a "
                            "base without pretrained weights?); --no-phase2-activation-cache trains on images",
                            100 * flushed / cache.activations.size, ACTIVATION_CACHE_DTYPE.name)
        return cache


def activation_cache_bytes(split: model_lib.BoundarySplit, examples: int) -> int:
    per_example = int(np.prod(split.bottom.output_shape[1:])) * ACTIVATION_CACHE_DTYPE.size
    return per_example * examples


def _as_float32(activations, labels):
    return tf.cast(activations, tf.float32), labels


def cached_training_batches(cache: CachedActivations, config: TrainingConfig) -> tf.data.Dataset:
    """Each epoch: every example once, in a new order, as one of its cached views drawn at random (with
    augmentation all views are augmented ones, as on the image path, where augmentation acts on every step)."""
    activations, labels = tf.constant(cache.activations), tf.constant(cache.labels)
    examples, views = cache.examples, cache.views
    order = tf.data.Dataset.range(examples).shuffle(examples, seed=config.seed, reshuffle_each_iteration=True)
    draws = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True)

    def pick(index, draw):
        row = index + examples * (draw % views)
        return tf.gather(activations, row), tf.gather(labels, row)

    dataset = tf.data.Dataset.zip((order, draws)).batch(config.batch_size).map(pick).map(_as_float32)
    if config.max_steps_per_epoch:
        dataset = dataset.take(config.max_steps_per_epoch)
    return dataset.prefetch(tf.data.AUTOTUNE)


def cached_eval_batches(cache: CachedActivations, config: TrainingConfig) -> tf.data.Dataset:
    return (tf.data.Dataset.from_tensor_slices((cache.activations, cache.labels)).batch(config.batch_size)
            .map(_as_float32).prefetch(tf.data.AUTOTUNE))


def phase2_uses_activation_cache(split: model_lib.BoundarySplit, num_train: int, num_eval: int,
                                 config: TrainingConfig, augments: bool) -> bool:
    """The cache is used when asked for, on one device, and when it fits in ACTIVATION_CACHE_BUDGET_BYTES."""
    if not config.phase2_activation_cache:
        return False
    if tf.distribute.has_strategy():
        logging.info("Phase 2 trains on images: the activation cache is not distributed over replicas")
        return False
    views = max(config.phase2_augmented_views if augments else 0, 1)
    needed = activation_cache_bytes(split, views * num_train + num_eval)
    if needed > ACTIVATION_CACHE_BUDGET_BYTES:
        logging.info("Phase 2 trains on images: its activation cache would take %.1f GB (budget %.1f GB)",
                     needed / 1024 ** 3, ACTIVATION_CACHE_BUDGET_BYTES / 1024 ** 3)
        return False
    return True


def train_phase2_on_cached_activations(classifier: model_lib.Classifier, train: tf.data.Dataset,
                                       eval_: Optional[tf.data.Dataset], config: TrainingConfig,
                                       class_weight: Optional[Dict], log_dir: Optional[str],
                                       checkpoint_dir: Optional[str], extra_callbacks=(),
                                       split: Optional[model_lib.BoundarySplit] = None) -> Dict:
    """Phase 2 on the frozen bottom's cached activations: trains exactly what train_phase2 trains."""
    model_lib.unfreeze_top(classifier.base, config.unfreeze_from_block)
    split = split or model_lib.split_at_block(classifier, config.unfreeze_from_block)
    views = config.phase2_augmented_views if classifier.augmentation is not None else 0
    started = time.perf_counter()
    extract = BoundaryActivations(split, classifier.augmentation)
    train_cache = extract(train, views)
    validation = cached_eval_batches(extract(eval_), config) if eval_ is not None else None
    logging.info("Phase 2: cached activations at block %d of %d training examples (%d augmented views) in %.1f s",
                 config.unfreeze_from_block, train_cache.examples, views, time.perf_counter() - started)
    batches = cached_training_batches(train_cache, config)
    steps = math.ceil(train_cache.examples / config.batch_size)
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    model_lib.compile_for_phase(split.top, learning_rate(config.phase2_learning_rate, config, steps,
                                                         config.phase2_epochs), config.label_smoothing)
    started = time.perf_counter()
    history = split.top.fit(
        batches, validation_data=validation, epochs=config.phase2_epochs, class_weight=class_weight, verbose=2,
        callbacks=_callbacks(PHASE2, config, log_dir, checkpoint_dir, validation is not None, extra_callbacks)).history
    logging.info("Phase 2: %d epochs of the top on cached activations in %.1f s (first step's trace included)",
                 config.phase2_epochs, time.perf_counter() - started)
    return history


def train_two_phases(classifier: model_lib.Classifier, train_examples: tf.data.Dataset,
                     eval_examples: Optional[tf.data.Dataset], data: PhaseData, config: TrainingConfig,
                     log_dir: Optional[str] = None, checkpoint_dir: Optional[str] = None,
                     callbacks: Sequence[tf_keras.callbacks.Callback] = (),
                     precomputed_features: Optional[Dict[str, Tuple[np.ndarray, np.ndarray]]] = None
                     ) -> Dict[str, Dict]:
    """Runs phase 1 then phase 2; returns each phase's Keras history and wall time ("seconds").

    `train_examples`/`eval_examples` are the unbatched, unshuffled (image, label) pairs (for the bottleneck
    cache); `data` holds the batched datasets that train on images. With a checkpoint_dir, a finished
    phase 1 is saved and skipped on restart, and each phase resumes from its last finished epoch.
    `callbacks` are added to both phases' fits (progress, profiling, fault injection in tests).
    """
    class_weight = _class_weight(train_examples) if config.class_weights else None
    history: Dict[str, Dict] = {}
    phase1_done = os.path.join(checkpoint_dir, _PHASE1_DONE, "weights") if checkpoint_dir else None
    if config.phase1_epochs and phase1_done and tf.io.gfile.exists(phase1_done + ".index"):
        logging.info("Phase 1 finished in an earlier attempt: restoring its weights from %s", phase1_done)
        # Phase 1's optimizer state is not needed any more: only the weights are restored.
        classifier.model.load_weights(phase1_done).expect_partial()
        restored = _phase_history({}, checkpoint_dir, PHASE1)
        if restored:
            history[PHASE1] = restored
    elif config.phase1_epochs:
        logging.info("Phase 1: head only, base frozen, %d epochs at lr %g (%s)", config.phase1_epochs,
                     config.phase1_learning_rate, "cached features" if config.bottleneck_cache else "images")
        classifier.base.trainable = False
        started = time.perf_counter()
        if config.bottleneck_cache:
            history[PHASE1] = train_phase1_on_cached_features(
                classifier, train_examples, eval_examples, config, class_weight, log_dir, checkpoint_dir, callbacks,
                precomputed=precomputed_features)
        else:
            history[PHASE1] = train_phase1_on_images(classifier, data, config, class_weight, log_dir, checkpoint_dir,
                                                     callbacks)
        history[PHASE1] = _phase_history(history[PHASE1], checkpoint_dir, PHASE1)
        history[PHASE1]["seconds"] = round(time.perf_counter() - started, 2)
        if phase1_done:
            save_weights_once(classifier.model, phase1_done)
    if config.phase2_epochs:
        logging.info("Phase 2: fine-tuning from block %d, %d epochs at lr %g", config.unfreeze_from_block,
                     config.phase2_epochs, config.phase2_learning_rate)
        started = time.perf_counter()
        split = _phase2_split_if_cached(classifier, train_examples, eval_examples, config)
        if split is not None:
            history[PHASE2] = train_phase2_on_cached_activations(
                classifier, train_examples, eval_examples, config, class_weight, log_dir, checkpoint_dir, callbacks,
                split=split)
        else:
            history[PHASE2] = train_phase2(classifier, data, config, class_weight, log_dir, checkpoint_dir,
                                           callbacks)
        history[PHASE2] = _phase_history(history[PHASE2], checkpoint_dir, PHASE2)
        history[PHASE2]["seconds"] = round(time.perf_counter() - started, 2)
    return history


def _phase2_split_if_cached(classifier: model_lib.Classifier, train_examples: tf.data.Dataset,
                            eval_examples: Optional[tf.data.Dataset],
                            config: TrainingConfig) -> Optional[model_lib.BoundarySplit]:
    """The boundary split when phase 2 is to train on cached activations, else None (the image path)."""
    if not config.phase2_activation_cache:
        return None
    split = model_lib.split_at_block(classifier, config.unfreeze_from_block)
    num_train = _cardinality(train_examples)
    num_eval = _cardinality(eval_examples) if eval_examples is not None else 0
    use = phase2_uses_activation_cache(split, num_train, num_eval, config, classifier.augmentation is not None)
    return split if use else None


def _cardinality(dataset: tf.data.Dataset) -> int:
    """Examples in a dataset; counted by a pass when tf.data cannot tell (a cached pass: cheap)."""
    count = int(dataset.cardinality())
    if count >= 0:
        return count
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda total, _: total + 1))


def _class_weight(train_examples: tf.data.Dataset) -> Dict[int, float]:
    """Weights from the training split's label counts (one-hot labels summed over the split)."""
    totals = train_examples.map(lambda x, y: y).reduce(
        tf.zeros(train_examples.element_spec[1].shape), lambda total, y: total + y).numpy()
    weights = class_weights_from_counts(totals)
    logging.info("Class weights from training counts %s: %s", totals.astype(int).tolist(), weights)
    return weights
