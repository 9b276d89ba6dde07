"""Typed hyperparameters of the model and its two training phases (the Trainer's custom_config)."""
import dataclasses
from typing import Dict, Optional

# MobileNetV2 has 16 inverted-residual blocks, named block_1 ... block_16 in Keras (block 0 is unnamed).
FIRST_BLOCK, LAST_BLOCK = 1, 16
LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Model and two-phase fine-tuning settings; passed to the Trainer as its custom_config."""

    image_size: int = 224
    alpha: float = 1.0
    # "imagenet" (the Keras download), "none" (random init) or a path/URI of an .h5 weights or model file.
    weights: str = "imagenet"
    batch_size: int = 32
    dropout: float = 0.2
    # Phase 1: base frozen, only the new head trains (on cached base features: see bottleneck_cache).
    phase1_epochs: int = 10
    phase1_learning_rate: float = 1e-3
    # Phase 2: blocks from `unfreeze_from_block` to the top of the base train too, at a low learning rate.
    phase2_epochs: int = 5
    phase2_learning_rate: float = 1e-5
    unfreeze_from_block: int = 13
    # Each phase: "constant" or "cosine" decay to 0 over the phase, after `warmup_epochs` of linear warmup.
    lr_schedule: str = "constant"
    warmup_epochs: float = 0.0
    # Stop a phase when eval loss has not improved for this many epochs, keeping the best weights (0: off).
    early_stopping_patience: int = 3
    label_smoothing: float = 0.0
    # Weights the loss by inverse class frequency of the training split.
    class_weights: bool = False
    # Augmentation (Keras preprocessing layers, active only while training; all 0/False: none).
    augment_flip: bool = True
    augment_rotation: float = 0.05  # Fraction of a full turn.
    augment_zoom: float = 0.1
    augment_contrast: float = 0.1
    # Phase 1 computes the frozen base's features once and trains the head on them. With augmentation,
    # `augmented_views` extra augmented copies of each training image are featurized and cached too;
    # with 0, phase 1 sees unaugmented features and augmentation acts in phase 2 only.
    bottleneck_cache: bool = True
    augmented_views: int = 0
    # Phase 2 likewise: below `unfreeze_from_block` the base stays frozen, so its activations at that
    # boundary are computed once per image (float16, in memory) and only the top trains on them. With
    # augmentation, `phase2_augmented_views` augmented copies of each training image are cached (no plain
    # one: training never draws it) and each epoch draws one of them per image; 0 caches the plain image.
    # phase2_activation_cache False trains phase 2 on images every epoch.
    phase2_activation_cache: bool = True
    phase2_augmented_views: int = 2
    # float16 compute on GPUs (ignored without one); the softmax stays float32.
    mixed_precision: bool = False
    # A float16 TFLite model beside the SavedModel, scored on the eval split (the Pusher ships it only
    # within a tolerance). Converting MobileNetV2 takes over a minute on 2 CPU cores.
    export_tflite: bool = True
    # The TFLite model is scored on a seeded random sample of this many eval images (all when fewer), next to
    # the SavedModel on the same images: the Pusher's check compares the two, so it estimates their disagreement,
    # and over 512 images a true drop of 2 points has a standard error of at most 0.6 point (sqrt(0.02 / 512)).
    # Scoring every image grew with the split (3.4 s at 1x the demo, 15.1 s at 8x).
    tflite_eval_examples: int = 512
    # Caps the batches per epoch (None: a full pass); tests use it to keep runs short.
    max_steps_per_epoch: Optional[int] = None
    top_k: int = 5
    seed: int = 42

    def __post_init__(self):
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32 (MobileNetV2's minimum), got {self.image_size}.")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}.")
        if not FIRST_BLOCK <= self.unfreeze_from_block <= LAST_BLOCK + 1:
            raise ValueError(
                f"unfreeze_from_block must be a MobileNetV2 block number from {FIRST_BLOCK} to {LAST_BLOCK} "
                f"(or {LAST_BLOCK + 1} to unfreeze only the last 1x1 convolution), got {self.unfreeze_from_block}."
            )
        for name in ("phase1_epochs", "phase2_epochs", "early_stopping_patience", "augmented_views",
                     "phase2_augmented_views"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.phase1_epochs + self.phase2_epochs == 0:
            raise ValueError("At least one of phase1_epochs and phase2_epochs must be positive.")
        if self.batch_size < 1 or self.top_k < 1 or self.tflite_eval_examples < 1:
            raise ValueError("batch_size, top_k and tflite_eval_examples must be positive.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}.")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}.")
        if not self.weights:
            raise ValueError("weights must be 'imagenet', 'none' or the path or URI of a weights file.")

    @property
    def augments(self) -> bool:
        return bool(self.augment_flip or self.augment_rotation or self.augment_zoom or self.augment_contrast)

    def to_json_dict(self) -> Dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json_dict(cls, values: Dict) -> "TrainingConfig":
        """Missing keys take their defaults; an unknown key is an error, because `training_config` is a pipeline
        parameter edited by hand per run, and a misspelled key dropped in silence would train with the default."""
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"Unknown training setting(s) {unknown}; the known ones are {sorted(known)}.")
        return cls(**values)
