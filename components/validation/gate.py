"""Plain logic of the validation gate: which anomalies a span's statistics have, and which stop the run.

Nothing here knows about TFX artifacts, so it is tested on hand-built statistics; executor.py reads the
artifacts and calls `find_anomalies` and `decide`.

Anomalies come from two places:
- TFDV's validation of the statistics against the curated schema (missing feature, unknown label when the
  schema states a label domain, unsupported format fraction, size out of range) and, for the train split,
  against the previous span's statistics (drift: the thresholds are the schema's drift_comparator fields);
- checks TFDV has no setting for: a class with too few examples, and class imbalance.
"""
import dataclasses
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components import features

UNKNOWN_LABEL = "unknown_label"
MISSING_FEATURE = "missing_feature"
UNSUPPORTED_FORMAT = "unsupported_format"
SIZE_OUT_OF_RANGE = "size_out_of_range"
TOO_FEW_EXAMPLES = "too_few_examples"
CLASS_IMBALANCE = "class_imbalance"
DRIFT = "drift"
SCHEMA_MISMATCH = "schema_mismatch"  # Any other TFDV anomaly (wrong type, value count, ...).
ANOMALY_KINDS = (UNKNOWN_LABEL, MISSING_FEATURE, UNSUPPORTED_FORMAT, SIZE_OUT_OF_RANGE, TOO_FEW_EXAMPLES,
                 CLASS_IMBALANCE, DRIFT, SCHEMA_MISMATCH)

DRIFT_SPLIT = "train"  # The largest split: drift of a small eval split is mostly sampling noise.
_MISSING_TYPES = frozenset({"SCHEMA_MISSING_COLUMN", "FEATURE_TYPE_LOW_FRACTION_PRESENT",
                            "FEATURE_TYPE_LOW_NUMBER_PRESENT", "FEATURE_TYPE_NOT_PRESENT"})
_DRIFT_TYPES = frozenset({"COMPARATOR_L_INFTY_HIGH", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH",
                          "COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH"})
_KIND_BY_FEATURE = {features.LABEL_KEY: UNKNOWN_LABEL, features.FORMAT_KEY: UNSUPPORTED_FORMAT,
                    features.HEIGHT_KEY: SIZE_OUT_OF_RANGE, features.WIDTH_KEY: SIZE_OUT_OF_RANGE,
                    features.BYTE_SIZE_KEY: SIZE_OUT_OF_RANGE}


@dataclasses.dataclass(frozen=True)
class GateSettings:
    """What the gate tolerates besides the schema. `warn_only`: anomaly kinds that are logged, not fatal."""

    min_examples_per_class: int = 10
    # Largest class count divided by the smallest; above it the run stops (class_imbalance).
    max_class_imbalance: float = 10.0
    warn_only: FrozenSet[str] = frozenset()

    def __post_init__(self):
        if self.min_examples_per_class < 0:
            raise ValueError(f"min_examples_per_class must be >= 0, got {self.min_examples_per_class}.")
        if self.max_class_imbalance < 1:
            raise ValueError(f"max_class_imbalance must be >= 1 (largest / smallest class), "
                             f"got {self.max_class_imbalance}.")
        unknown = set(self.warn_only) - set(ANOMALY_KINDS)
        if unknown:
            raise ValueError(f"Unknown anomaly kind(s) {sorted(unknown)} in warn_only; kinds are {ANOMALY_KINDS}.")
        object.__setattr__(self, "warn_only", frozenset(self.warn_only))


@dataclasses.dataclass(frozen=True)
class Anomaly:
    kind: str
    feature: str
    split: str
    description: str

    def __str__(self) -> str:
        return f"{self.kind}: feature {self.feature!r}, split {self.split!r}: {self.description}"


def parse_warn_only(text: str) -> FrozenSet[str]:
    """'drift, class_imbalance' -> frozenset({'drift', 'class_imbalance'}); checked by GateSettings."""
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def label_domain(schema: schema_pb2.Schema) -> Optional[List[str]]:
    """The class names the schema states for the label, or None when it states none (any class is fine)."""
    for feature in schema.feature:
        if feature.name != features.LABEL_KEY:
            continue
        if feature.HasField("string_domain"):
            return list(feature.string_domain.value)
        if feature.HasField("domain"):
            return next((list(domain.value) for domain in schema.string_domain if domain.name == feature.domain),
                        None)
    return None


def with_label_domain(schema: schema_pb2.Schema, class_names: Sequence[str]) -> schema_pb2.Schema:
    """A copy of the schema whose label accepts exactly these class names."""
    pinned = schema_pb2.Schema()
    pinned.CopyFrom(schema)
    for feature in pinned.feature:
        if feature.name == features.LABEL_KEY:
            feature.ClearField("domain")
            feature.string_domain.name = features.LABEL_KEY
            del feature.string_domain.value[:]
            feature.string_domain.value.extend(sorted(class_names))
            return pinned
    raise ValueError(f"The schema has no {features.LABEL_KEY!r} feature.")


def tfdv_anomalies(statistics: statistics_pb2.DatasetFeatureStatisticsList, schema: schema_pb2.Schema, split: str,
                   previous: Optional[statistics_pb2.DatasetFeatureStatisticsList] = None) -> List[Anomaly]:
    """TFDV's anomalies of one split against the schema (and the previous span's statistics), by kind."""
    result = tfdv.validate_statistics(statistics, schema, previous_statistics=previous)
    anomalies = []
    for feature_name, info in sorted(result.anomaly_info.items()):
        for reason in info.reason:
            type_name = anomalies_pb2.AnomalyInfo.Type.Name(reason.type)
            anomalies.append(Anomaly(_kind_of(feature_name, type_name), feature_name, split,
                                     f"{reason.description} [{type_name}]"))
    for reason in result.dataset_anomaly_info.reason:
        anomalies.append(Anomaly(SCHEMA_MISMATCH, "", split, reason.description))
    return anomalies


def _kind_of(feature_name: str, type_name: str) -> str:
    if type_name in _DRIFT_TYPES:
        return DRIFT
    if type_name in _MISSING_TYPES:
        return MISSING_FEATURE
    return _KIND_BY_FEATURE.get(feature_name, SCHEMA_MISMATCH)


def class_counts(statistics: Iterable[statistics_pb2.DatasetFeatureStatisticsList],
                 expected_classes: Iterable[str] = ()) -> Dict[str, int]:
    """Examples per class, summed over splits, from the label's rank histogram (all values, not only the
    top ones). Expected classes (class folders, the schema's domain) with no example count 0."""
    counts = dict.fromkeys(expected_classes, 0)
    for statistics_list in statistics:
        for dataset in statistics_list.datasets:
            for label, count in _label_histogram(dataset):
                counts[label] = counts.get(label, 0) + count
    return counts


def _label_histogram(dataset: statistics_pb2.DatasetFeatureStatistics) -> List[Tuple[str, int]]:
    for feature in dataset.features:
        if list(feature.path.step) == [features.LABEL_KEY] or feature.name == features.LABEL_KEY:
            string_stats = feature.string_stats
            if string_stats.rank_histogram.buckets:
                return [(bucket.label, int(bucket.sample_count)) for bucket in string_stats.rank_histogram.buckets]
            return [(value.value, int(value.frequency)) for value in string_stats.top_values]
    return []


def class_balance_anomalies(counts: Mapping[str, int], settings: GateSettings) -> List[Anomaly]:
    anomalies = [
        Anomaly(TOO_FEW_EXAMPLES, features.LABEL_KEY, "all",
                f"class {name!r} has {count} example(s), fewer than min_examples_per_class="
                f"{settings.min_examples_per_class}")
        for name, count in sorted(counts.items()) if count < settings.min_examples_per_class
    ]
    populated = {name: count for name, count in counts.items() if count > 0}
    if len(populated) >= 2:
        largest = max(populated, key=lambda name: (populated[name], name))
        smallest = min(populated, key=lambda name: (populated[name], name))
        ratio = populated[largest] / populated[smallest]
        if ratio > settings.max_class_imbalance:
            anomalies.append(Anomaly(
                CLASS_IMBALANCE, features.LABEL_KEY, "all",
                f"largest class {largest!r} ({populated[largest]}) has {ratio:.1f}x the examples of smallest "
                f"class {smallest!r} ({populated[smallest]}), above max_class_imbalance={settings.max_class_imbalance}"))
    return anomalies


def find_anomalies(statistics_by_split: Mapping[str, statistics_pb2.DatasetFeatureStatisticsList],
                   schema: schema_pb2.Schema, settings: GateSettings,
                   previous_by_split: Optional[Mapping[str, statistics_pb2.DatasetFeatureStatisticsList]] = None,
                   class_folders: Iterable[str] = ()) -> List[Anomaly]:
    """Every anomaly of a span: per split against the schema, drift of the train split against the
    previous span (when given), and the class checks over all splits."""
    anomalies: List[Anomaly] = []
    for split, statistics in sorted(statistics_by_split.items()):
        previous = (previous_by_split or {}).get(split) if split == DRIFT_SPLIT else None
        anomalies += tfdv_anomalies(statistics, schema, split, previous)
    expected = set(class_folders) | set(label_domain(schema) or ())
    anomalies += class_balance_anomalies(class_counts(statistics_by_split.values(), expected), settings)
    return anomalies


def decide(anomalies: Sequence[Anomaly], settings: GateSettings) -> Tuple[List[Anomaly], List[Anomaly]]:
    """(errors, warnings): anomalies whose kind is in warn_only only warn."""
    errors = [anomaly for anomaly in anomalies if anomaly.kind not in settings.warn_only]
    warnings = [anomaly for anomaly in anomalies if anomaly.kind in settings.warn_only]
    return errors, warnings


class DataValidationError(RuntimeError):
    """The run stops: the data has anomalies that are not warn-only."""

    def __init__(self, errors: Sequence[Anomaly]):
        kinds = sorted({anomaly.kind for anomaly in errors})
        lines = [f"Data validation failed before Transform: {len(errors)} anomal{'y' if len(errors) == 1 else 'ies'} "
                 f"({', '.join(kinds)})"]
        lines += [f"  - {anomaly}" for anomaly in errors]
        lines.append("Fix the data or the schema (schemas/schema.pbtxt, `imagepipe schema`), or let a kind only "
                     f"warn with --warn-on {kinds[0] if kinds else 'KIND'} (kinds: {', '.join(ANOMALY_KINDS)}).")
        super().__init__("\n".join(lines))
        self.errors = list(errors)
