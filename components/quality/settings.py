"""Settings of the data-quality stage (components/quality): plain values, cheap to import (the CLI and the
pipeline config use them without loading numpy or scikit-learn)."""
import dataclasses
from typing import Dict, Optional

# What --near-duplicate-leaks does with the eval copies of an image that is also in train.
LEAKS_DROP, LEAKS_WARN, LEAKS_FAIL = "drop", "warn", "fail"
LEAK_ACTIONS = (LEAKS_DROP, LEAKS_WARN, LEAKS_FAIL)


class DataQualityError(RuntimeError):
    """The data fails a data-quality limit: the run stops before training."""


@dataclasses.dataclass(frozen=True)
class QualitySettings:
    """Settings of the data-quality stage (components/quality); the defaults were measured on the digits demo."""

    folds: int = 5  # K of the out-of-fold heads.
    # Near-duplicates (see near_duplicates.py for the rule and the measurements behind these values).
    feature_similarity: float = 0.99
    perceptual_similarity: float = 0.995
    perceptual_crosscheck: float = 0.95
    # An image is an outlier when its distance to its nearest neighbours (in base features or in pixel
    # statistics, outliers.py) is more than this many robust deviations above the data set's median. Measured:
    # a planted screenshot among photo crops 3.8 (genuine crops 2.2 at most); on the digits demo 2 of 1,797
    # genuine images score above it (4.0 and 5.2), 7 above 3.0.
    outlier_z: float = 3.5
    # Stop before training when confident learning's estimated noise rate exceeds this (None: only report).
    max_label_noise: Optional[float] = None
    near_duplicate_leaks: str = LEAKS_DROP
    exclude_suspect_labels: bool = False  # Train without the suspects (they stay in eval).
    seed: int = 0

    def __post_init__(self):
        if self.folds < 2:
            raise ValueError(f"quality folds must be at least 2, got {self.folds}.")
        for name in ("feature_similarity", "perceptual_similarity", "perceptual_crosscheck"):
            if not -1 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a cosine similarity in [-1, 1], got {getattr(self, name)}.")
        if self.max_label_noise is not None and not 0 <= self.max_label_noise <= 1:
            raise ValueError(f"max_label_noise must be in [0, 1], got {self.max_label_noise}.")
        if self.near_duplicate_leaks not in LEAK_ACTIONS:
            raise ValueError(f"near_duplicate_leaks must be one of {LEAK_ACTIONS}, got {self.near_duplicate_leaks!r}.")

    def to_json_dict(self) -> Dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json_dict(cls, values: Dict) -> "QualitySettings":
        return cls(**values)
