"""Typed settings of the pipeline: every value the graph depends on, checked once where it is built."""
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from components.quality.settings import QualitySettings
from components.ingestion.image_tree import DEFAULT_MAX_STORED_SIDE
from components.trainer.hparams import TrainingConfig
from components.validation.gate import GateSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCHEMA_DIR = REPO_ROOT / "schemas"
# Where the Evaluator's no-regression baseline comes from. The Resolver queries ML Metadata for the latest
# blessed model: local runs and Vertex AI execute it, the open-source KFP v2 backend does not. The
# serving directory's newest pushed version works on every orchestrator.
BASELINE_RESOLVER = "resolver"
BASELINE_LATEST_PUSHED = "latest-pushed"
BASELINE_SOURCES = (BASELINE_RESOLVER, BASELINE_LATEST_PUSHED)


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Blessing thresholds (None switches one off; at least one must stay, see eval_config.validate):
    absolute floors on accuracy and on every class's recall, and a no-regression tolerance against the
    last blessed model."""

    min_accuracy: Optional[float] = 0.6
    # A candidate is refused when its accuracy is below the baseline's by more than this (absolute).
    max_accuracy_drop: Optional[float] = 0.01
    # Every class's recall must reach this, so one collapsed class blocks promotion.
    min_class_recall: Optional[float] = 0.5
    # Class folder names: each gets its own slice, and a class missing from the eval split blocks
    # blessing. Empty: a slice per label value that occurs (a missing class then goes unnoticed).
    class_names: Tuple[str, ...] = ()
    top_k: int = 3  # For top-k accuracy.
    # A TFLite export ships with a version only if its eval accuracy is at most this below the SavedModel's.
    max_tflite_accuracy_drop: float = 0.02

    def __post_init__(self):
        for name in ("min_accuracy", "max_accuracy_drop", "min_class_recall", "max_tflite_accuracy_drop"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1] (or None to switch it off), got {value}.")
        if self.top_k < 1:
            raise ValueError(f"top_k must be positive, got {self.top_k}.")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything create_pipeline needs; runners fill the environment-specific roots."""

    pipeline_name: str
    pipeline_root: str
    data_root: str
    serving_dir: str
    schema_dir: str = str(DEFAULT_SCHEMA_DIR)
    eval_percent: int = 20
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    beam_pipeline_args: Tuple[str, ...] = ()
    enable_cache: bool = True
    baseline: str = BASELINE_RESOLVER
    # Data validation gate (components/validation): class-count settings and warn-only anomaly kinds.
    validation: GateSettings = dataclasses.field(default_factory=GateSettings)
    # Drift of the train split against the newest earlier span that passed validation (read from the span
    # history under the pipeline root, components/spans: no Resolver, so locally and on KFP alike).
    drift_check: bool = True
    # A folder name with {SPAN} (e.g. "span-{SPAN}"): data_root holds one tree per span, the newest is ingested.
    span_folder: Optional[str] = None
    # Transform, DataQuality, Trainer and Evaluator read the newest N validated spans (the current one and
    # N-1 earlier ones); None: every validated span; 1: the newest span only.
    span_window: Optional[int] = None
    # Ingestion stores images downscaled to at most this long side (0 keeps originals); see image_tree.
    max_stored_side: int = DEFAULT_MAX_STORED_SIDE
    # Data quality (components/quality): suspect labels, near-duplicate leaks, outliers. None: no such stage.
    quality: Optional[QualitySettings] = dataclasses.field(default_factory=QualitySettings)

    def __post_init__(self):
        if self.baseline not in BASELINE_SOURCES:
            raise ValueError(f"baseline must be one of {BASELINE_SOURCES}, got {self.baseline!r}.")
        if not 1 <= self.eval_percent <= 99:
            raise ValueError(f"eval_percent must be between 1 and 99, got {self.eval_percent}.")
        if self.max_stored_side < 0:
            raise ValueError(f"max_stored_side must be 0 (keep originals) or positive, got {self.max_stored_side}.")
        if self.span_window is not None and self.span_window < 1:
            raise ValueError(f"span_window must be at least 1 (or None for every span), got {self.span_window}.")
        if not self.pipeline_name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"pipeline_name may hold letters, digits, '-' and '_' only, got {self.pipeline_name!r}.")


def code_fingerprint(package_dirs: List[Path]) -> str:
    """A hash of the source of our own packages.

    Transform and Trainer run code named by dotted path (it is installed in the image, so nothing is
    uploaded at compile time), but TFX's cache key then holds only the path string. Passing this hash in
    their custom_config makes a code change invalidate the cached outputs, as a module file's wheel would.
    """
    digest = hashlib.sha256()
    for package_dir in package_dirs:
        for path in sorted(package_dir.rglob("*.py")):
            digest.update(str(path.relative_to(package_dir.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def components_fingerprint() -> str:
    return code_fingerprint([REPO_ROOT / "components"])


def dumps(values: Dict) -> str:
    return json.dumps(values, sort_keys=True)


def ensure_local_dirs(*paths: str) -> None:
    for path in paths:
        if "://" not in path:
            os.makedirs(path, exist_ok=True)
