"""The data-quality assessment as plain data: what is suspect, duplicated or outlying, and what to drop.

Knows nothing of TFX: the executor reads examples and features, calls `assess`, and writes what it returns.
"""
import dataclasses
from typing import Dict, List, Optional, Sequence, Set

import numpy as np

from components.quality import confident_learning, near_duplicates, outliers

TRAIN_SPLIT, EVAL_SPLIT = "train", "eval"
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
    feature_similarity: float = near_duplicates.DuplicateRule.feature_similarity
    perceptual_similarity: float = near_duplicates.DuplicateRule.perceptual_similarity
    perceptual_crosscheck: float = near_duplicates.DuplicateRule.perceptual_crosscheck
    # An image is an outlier when its nearest class is more than this many robust deviations away
    # (on the digits demo the farthest genuine image scored 5.0).
    outlier_z: float = 6.0
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

    @property
    def duplicate_rule(self) -> near_duplicates.DuplicateRule:
        return near_duplicates.DuplicateRule(self.feature_similarity, self.perceptual_similarity,
                                             self.perceptual_crosscheck)

    def to_json_dict(self) -> Dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json_dict(cls, values: Dict) -> "QualitySettings":
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class ExampleTable:
    """One row per example, in the order the features were computed."""

    uris: Sequence[str]
    labels: Sequence[str]  # Given class names.
    splits: Sequence[str]
    sha256: Sequence[str]


@dataclasses.dataclass
class Assessment:
    suspects: List[Dict]
    near_duplicate_groups: List[Dict]
    outliers: List[Dict]
    summary: Dict
    dropped: Set[int]  # Example indices that the output examples leave out (leak copies, excluded suspects).


def assess(features: np.ndarray, signatures: np.ndarray, table: ExampleTable, settings: QualitySettings
           ) -> Assessment:
    class_names = sorted(set(table.labels))
    class_ids = np.array([class_names.index(label) for label in table.labels])
    num_classes = len(class_names)
    try:
        folds = confident_learning.usable_folds(class_ids, settings.folds)
    except ValueError as error:  # A class too small for K-fold: the other checks still run, and say so.
        folds, label_check = 0, f"skipped: {error}"
    if folds:
        probabilities = confident_learning.out_of_fold_probabilities(features, class_ids, num_classes, folds,
                                                                     settings.seed)
        issues = confident_learning.find_label_issues(probabilities, class_ids)
        label_check = "done"
    else:
        probabilities = np.full((len(class_ids), num_classes), 1.0 / max(num_classes, 1))
        issues = confident_learning.find_label_issues(np.eye(num_classes)[class_ids], class_ids)
    suspects = [_example(table, int(index), given_class=table.labels[index],
                         suggested_class=class_names[int(suggested)], score=round(float(score), 4))
                for index, suggested, score in zip(issues.suspects, issues.suggested, issues.scores)]

    groups = near_duplicates.find_groups(features, signatures, settings.duplicate_rule)
    group_records = [_group_record(number, group, table, features, signatures) for number, group in enumerate(groups)]
    leak_groups = [record for record in group_records if near_duplicates.LEAK in record["kinds"]]

    far = outliers.find_outliers(features, class_ids, num_classes, settings.outlier_z)
    outlier_records = [_example(table, int(index), given_class=table.labels[index],
                                nearest_class=class_names[int(nearest)], score=round(float(score), 2))
                       for index, score, nearest in zip(far.indices, far.scores, far.nearest_class)]

    dropped_leaks = _leak_eval_copies(groups, table) if settings.near_duplicate_leaks == LEAKS_DROP else set()
    excluded = ({int(index) for index in issues.suspects if table.splits[index] == TRAIN_SPLIT}
                if settings.exclude_suspect_labels else set())
    for record in group_records:
        record["dropped"] = [member["source_uri"] for member in record["members"] if member["index"] in dropped_leaks]
    for record in suspects:
        record["excluded"] = record["index"] in excluded

    summary = {
        "examples": len(table.uris),
        "classes": class_names,
        "label_check": label_check,
        "folds": folds,
        "out_of_fold_accuracy": round(float((probabilities.argmax(axis=1) == class_ids).mean()), 4) if folds else None,
        "suspect_labels": len(suspects),
        "estimated_label_noise": round(issues.noise_rate, 4),
        "estimated_label_noise_per_class": {name: round(float(rate), 4)
                                            for name, rate in zip(class_names, issues.noise_rate_per_class)},
        "class_thresholds": {name: round(float(t), 4) for name, t in zip(class_names, issues.thresholds)},
        "near_duplicate_groups": len(group_records),
        "near_duplicate_images": sum(len(record["members"]) for record in group_records),
        "near_duplicate_groups_by_kind": {kind: sum(kind in record["kinds"] for record in group_records)
                                          for kind in (near_duplicates.LEAK, near_duplicates.CONFLICTING,
                                                       near_duplicates.REDUNDANT)},
        "near_duplicate_leaks": len(leak_groups),
        "outliers": len(outlier_records),
        "actions": {
            "near_duplicate_leaks": settings.near_duplicate_leaks,
            "leak_eval_copies_dropped": len(dropped_leaks),
            "exclude_suspect_labels": settings.exclude_suspect_labels,
            "suspects_excluded_from_train": len(excluded),
            "max_label_noise": settings.max_label_noise,
        },
        "settings": settings.to_json_dict(),
    }
    return Assessment(suspects, group_records, outlier_records, summary, dropped_leaks | excluded)


def limit_violations(summary: Dict, settings: QualitySettings) -> List[str]:
    """Why the run must stop before training (empty: it may go on)."""
    reasons = []
    if settings.max_label_noise is not None and summary["estimated_label_noise"] > settings.max_label_noise:
        reasons.append(f"estimated label noise {summary['estimated_label_noise']:.3f} exceeds --max-label-noise "
                       f"{settings.max_label_noise} ({summary['suspect_labels']} suspect labels)")
    if settings.near_duplicate_leaks == LEAKS_FAIL and summary["near_duplicate_leaks"]:
        reasons.append(f"{summary['near_duplicate_leaks']} near-duplicate group(s) straddle train and eval "
                       "(--near-duplicate-leaks fail)")
    return reasons


def _example(table: ExampleTable, index: int, **fields) -> Dict:
    return {"index": index, "source_uri": table.uris[index], "split": table.splits[index], **fields}


def _group_record(number: int, group: List[int], table: ExampleTable, features: np.ndarray,
                  signatures: np.ndarray) -> Dict:
    """A group with each member's similarity to the group's first member (feature cosine and perceptual)."""
    unit = near_duplicates.unit_rows(np.asarray(features[group], dtype=np.float32))
    cosine = unit @ unit[0]
    perceptual = np.asarray(signatures[group], dtype=np.float32) @ np.asarray(signatures[group[0]], dtype=np.float32)
    members = [_example(table, index, label=table.labels[index], sha256=table.sha256[index],
                        feature_similarity=round(float(c), 4), perceptual_similarity=round(float(p), 4))
               for index, c, p in zip(group, cosine, perceptual)]
    return {"group": number, "kinds": near_duplicates.group_kinds(group, table.labels, table.splits),
            "members": members}


def _leak_eval_copies(groups: List[List[int]], table: ExampleTable) -> Set[int]:
    """The eval members of every group that also has a train member: the train copy keeps training."""
    dropped = set()
    for group in groups:
        if any(table.splits[index] == TRAIN_SPLIT for index in group):
            dropped.update(index for index in group if table.splits[index] == EVAL_SPLIT)
    return dropped
