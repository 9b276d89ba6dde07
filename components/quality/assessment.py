"""The data-quality assessment as plain data: what is suspect, duplicated or outlying, and what to drop.

Knows nothing of TFX: the executor reads examples and features, calls `assess`, and writes what it returns.
"""
import dataclasses
from typing import Dict, List, Optional, Sequence, Set

import numpy as np

from components.ingestion.image_tree import EVAL_SPLIT, TRAIN_SPLIT
from components.quality import confident_learning, near_duplicates, outliers
from components.quality.settings import LEAKS_DROP, LEAKS_FAIL, QualitySettings


def duplicate_rule(settings: QualitySettings) -> near_duplicates.DuplicateRule:
    return near_duplicates.DuplicateRule(settings.feature_similarity, settings.perceptual_similarity,
                                         settings.perceptual_crosscheck)


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


def assess(features: np.ndarray, signatures: np.ndarray, table: ExampleTable, settings: QualitySettings,
           statistics: Optional[np.ndarray] = None) -> Assessment:
    """statistics: outliers.image_statistics of each example (None: outliers are looked for in features only)."""
    class_names = sorted(set(table.labels))
    class_ids = np.array([class_names.index(label) for label in table.labels])
    num_classes = len(class_names)
    try:
        folds = confident_learning.usable_folds(class_ids, settings.folds)
    except ValueError as error:  # A class too small for K-fold: the other checks still run, and say so.
        folds, label_check = 0, f"skipped: {error}"
    if folds:
        held_out = confident_learning.held_out_predictions(features, class_ids, num_classes, folds, settings.seed)
        probabilities, head = held_out.probabilities, {"head": held_out.head,
                                                       "temperature": round(held_out.temperature, 3)}
        issues = confident_learning.find_label_issues(probabilities, class_ids)
        label_check = "done"
    else:
        probabilities, head = np.full((len(class_ids), num_classes), 1.0 / max(num_classes, 1)), None
        issues = confident_learning.find_label_issues(np.eye(num_classes)[class_ids], class_ids)
    suspects = [_example(table, int(index), given_class=table.labels[index],
                         suggested_class=class_names[int(suggested)], score=round(float(score), 4))
                for index, suggested, score in zip(issues.suspects, issues.suggested, issues.scores)]

    pairs, feature_neighbours = feature_pairs_and_neighbours(features, signatures, duplicate_rule(settings))
    groups = near_duplicates.connected_groups(pairs, len(features))
    group_records = [_group_record(number, group, table, features, signatures) for number, group in enumerate(groups)]
    leak_groups = [record for record in group_records if near_duplicates.LEAK in record["kinds"]]

    far = outliers.find_outliers(features, class_ids, num_classes, settings.outlier_z, statistics, feature_neighbours)
    outlier_records = [_example(table, int(index), given_class=table.labels[index],
                                nearest_class=class_names[int(nearest)], score=round(float(score), 2),
                                reasons=reasons)
                       for index, score, nearest, reasons in zip(far.indices, far.scores, far.nearest_class,
                                                                 far.reasons)]

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
        "out_of_fold_head": head,  # Which head gave the probabilities, and its calibrating temperature.
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


def feature_pairs_and_neighbours(features: np.ndarray, signatures: np.ndarray, rule: near_duplicates.DuplicateRule):
    """(near-duplicate pairs, each example's outliers.K_NEIGHBOURS nearest neighbours in feature space or None
    when there are too few examples) from one pass over the feature cosine blocks: the near-duplicate and the
    outlier search used to compute the same N x N product each (at 7,188 digits, 2.4 and 4.2 s of 23.8 s of
    assessment, under load)."""
    signatures = np.asarray(signatures, dtype=np.float32)
    k = outliers.K_NEIGHBOURS if len(features) > outliers.K_NEIGHBOURS else 0
    pairs, nearest = [], []
    for start, cosine in near_duplicates.cosine_blocks(features):
        pairs.append(near_duplicates.pairs_in_block(cosine, start, signatures, rule))
        if k:
            nearest.append(outliers.nearest_in_block(np.subtract(1.0, cosine, out=cosine), start, k))
    pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=int)
    return pairs, (outliers.join_blocks(nearest) if nearest else None)


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
