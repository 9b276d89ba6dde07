"""Typed hyperparameters of the model and its two training phases (the Trainer's custom_config)."""
import dataclasses
from typing import Dict, Optional

# MobileNetV2 has 16 inverted-residual blocks, named block_1 ... block_16 in Keras (block 0 is unnamed).
FIRST_BLOCK, LAST_BLOCK = 1, 16
WEIGHT_CHOICES = ("imagenet", "none")
# Input sizes and widths Keras publishes ImageNet weights for.
IMAGENET_SIZES = (96, 128, 160, 192, 224)
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Model and two-phase fine-tuning settings; passed to the Trainer as its custom_config."""

    image_size: int = 224
    alpha: float = 1.0
    # "imagenet" (the Keras download), "none" (random init) or a path/URI of an .h5 weights or model file.
    weights: str = "imagenet"
    batch_size: int = 32
    dropout: float = 0.2
    # Phase 1: base frozen, only the new head trains.
    phase1_epochs: int = 5
    phase1_learning_rate: float = 1e-3
    # Phase 2: blocks from `unfreeze_from_block` to the top of the base train too, at a low learning rate.
    phase2_epochs: int = 3
    phase2_learning_rate: float = 1e-5
    unfreeze_from_block: int = 13
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
        for name in ("phase1_epochs", "phase2_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.phase1_epochs + self.phase2_epochs == 0:
            raise ValueError("At least one of phase1_epochs and phase2_epochs must be positive.")
        if self.batch_size < 1 or self.top_k < 1:
            raise ValueError("batch_size and top_k must be positive.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if not self.weights:
            raise ValueError("weights must be 'imagenet', 'none' or the path or URI of a weights file.")

    def to_json_dict(self) -> Dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json_dict(cls, values: Dict) -> "TrainingConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})
