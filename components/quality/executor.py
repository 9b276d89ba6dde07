"""Executor of DataQuality: reads the examples, featurizes them with the Trainer's code, assesses them
(assessment.py), writes the findings and the filtered examples, and stops the run on a broken limit."""
import json
import logging
import posixpath
import time
from typing import Any, Dict, List, Set

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.quality import assessment, examples_io, feature_cache, findings
from components.quality.settings import DataQualityError, QualitySettings
from components.trainer.hparams import TrainingConfig
from components.trainer.serving import read_class_names

EXAMPLES_KEY = "examples"
TRANSFORM_GRAPH_KEY = "transform_graph"
FILTERED_EXAMPLES_KEY = "filtered_examples"
QUALITY_KEY = "quality"
SETTINGS_KEY = "settings"
TRAINING_CONFIG_KEY = "training_config"
CODE_VERSION_KEY = "code_version"

# How many of each finding get a thumbnail (the report shows these; the JSONL files list them all).
SHOWN_SUSPECTS, SHOWN_GROUPS, SHOWN_OUTLIERS = 24, 12, 12
# ExampleGen's format properties, copied so that TFX's readers of the filtered examples see the same format.
_FORMAT_PROPERTIES = ("payload_format", "file_format")


class Executor(base_executor.BaseExecutor):
    """Raises DataQualityError, after writing every finding, when a limit is broken."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        settings = QualitySettings.from_json_dict(json.loads(exec_properties[SETTINGS_KEY]))
        config = TrainingConfig.from_json_dict(json.loads(exec_properties[TRAINING_CONFIG_KEY]))
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        tft_output = tft.TFTransformOutput(artifact_utils.get_single_uri(input_dict[TRANSFORM_GRAPH_KEY]))
        splits = artifact_utils.decode_split_names(examples.split_names)

        clock = _Stopwatch()
        read = examples_io.read_examples(examples.uri, splits)
        clock.lap("read_and_signatures")
        logging.info("Data quality: featurizing %d examples with the Trainer's base (%dx%d, weights %s)",
                     len(read.table.uris), config.image_size, config.image_size, config.weights)
        class_names = read_class_names(tft_output)
        classifier = examples_io.featurizing_model(config, len(class_names))
        clock.lap("model_build")  # The base with its weights loaded.
        features = examples_io.featurize_examples(classifier, read.files, splits, tft_output)
        clock.lap("featurize")  # Decoding through the Transform graph, tracing, the forward pass over every example.
        result = assessment.assess(features, read.signatures, read.table, settings, read.statistics)
        clock.lap("assess")

        quality = artifact_utils.get_single_instance(output_dict[QUALITY_KEY])
        filtered = artifact_utils.get_single_instance(output_dict[FILTERED_EXAMPLES_KEY])
        thumbnail_dir = posixpath.join(quality.uri, findings.THUMBNAIL_DIR)
        shown = _shown_indices(result)
        counts = examples_io.write_filtered(read, splits, filtered.uri, result.dropped, shown, thumbnail_dir)
        _attach_thumbnails(result, shown)
        result.summary["examples_kept_per_split"] = {split: kept for split, (kept, _) in counts.items()}
        result.summary["examples_dropped_per_split"] = {split: removed for split, (_, removed) in counts.items()}
        _describe_filtered(filtered, examples, splits, counts)
        # The Trainer's phase 1 reads these instead of running the base over every image again.
        feature_cache.write(filtered.uri, _kept_features(features, read.table, splits, result.dropped, class_names),
                            json.loads(exec_properties[TRAINING_CONFIG_KEY]))
        clock.lap("write")
        result.summary["seconds"] = clock.laps
        violations = assessment.limit_violations(result.summary, settings)
        result.summary["stopped_run"] = violations
        _write_findings(quality, result)
        _log(result.summary, quality.uri)
        if violations:
                raise DataQualityError("Data quality stops the run before training: " + "; ".join(violations)
                                   + f" (findings in {quality.uri})")


class _Stopwatch:
    """Wall seconds of each step, for the summary: what the stage costs, and where."""

    def __init__(self):
        self.laps: Dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 2)
        self._last = now


def _kept_features(features, table: assessment.ExampleTable, splits: List[str], dropped: Set[int],
                   class_names: List[str]) -> Dict[str, Any]:
    """{split: (features, label ids)} of the records write_filtered kept, in their order."""
    class_ids = {name: index for index, name in enumerate(class_names)}
    by_split = {}
    for split in splits:
        rows = [i for i, row_split in enumerate(table.splits) if row_split == split and i not in dropped]
        by_split[split] = (features[rows], np.array([class_ids[table.labels[i]] for i in rows], dtype=np.int64))
    return by_split


def _shown_indices(result: assessment.Assessment) -> Set[int]:
    shown = {record["index"] for record in result.suspects[:SHOWN_SUSPECTS]}
    shown |= {record["index"] for record in result.outliers[:SHOWN_OUTLIERS]}
    for group in _groups_to_show(result.near_duplicate_groups):
        shown |= {member["index"] for member in group["members"]}
    return shown


def _groups_to_show(groups: List[Dict]) -> List[Dict]:
    """Leaks first (the dangerous case), then conflicting, then redundant groups."""
    def rank(group):
        return ("leak" not in group["kinds"], "conflicting" not in group["kinds"], group["group"])
    return sorted(groups, key=rank)[:SHOWN_GROUPS]


def _attach_thumbnails(result: assessment.Assessment, shown: Set[int]) -> None:
    """Names each shown record's thumbnail, relative to the quality artifact."""
    members = [member for group in result.near_duplicate_groups for member in group["members"]]
    for record in [*result.suspects, *result.outliers, *members]:
        if record["index"] in shown:
            record["thumbnail"] = examples_io.thumbnail_path(findings.THUMBNAIL_DIR, record["index"])


def _describe_filtered(filtered: types.Artifact, examples: types.Artifact, splits: List[str], counts) -> None:
    filtered.split_names = artifact_utils.encode_split_names(list(splits))
    filtered.span = examples.span
    filtered.version = examples.version
    for key in _FORMAT_PROPERTIES:
        if examples.has_custom_property(key):
            filtered.set_string_custom_property(key, examples.get_string_custom_property(key))
    filtered.set_int_custom_property("dropped_by_data_quality", sum(removed for _, removed in counts.values()))


def _write_findings(quality: types.Artifact, result: assessment.Assessment) -> None:
    paths = findings.paths(quality.uri)
    findings.write_jsonl(paths["suspect_labels"], result.suspects)
    findings.write_jsonl(paths["near_duplicates"], result.near_duplicate_groups)
    findings.write_jsonl(paths["outliers"], result.outliers)
    result.summary["files"] = paths
    with tf.io.gfile.GFile(paths["summary"], "w") as handle:
        json.dump(result.summary, handle, indent=2, ensure_ascii=False)
    summary, actions = result.summary, result.summary["actions"]
    for key in ("suspect_labels", "near_duplicate_groups", "near_duplicate_images", "near_duplicate_leaks",
                "outliers"):
        quality.set_int_custom_property(key, int(summary[key]))
    quality.set_float_custom_property("estimated_label_noise", float(summary["estimated_label_noise"]))
    quality.set_int_custom_property("leak_eval_copies_dropped", actions["leak_eval_copies_dropped"])
    quality.set_int_custom_property("suspects_excluded_from_train", actions["suspects_excluded_from_train"])
    quality.set_string_custom_property("stopped_run", json.dumps(summary["stopped_run"], ensure_ascii=False))
    quality.set_string_custom_property("summary", paths["summary"])


def _log(summary: Dict, uri: str) -> None:
    actions = summary["actions"]
    logging.info(
        "Data quality: %d suspect labels (estimated noise %.1f%%), %d near-duplicate groups (%d straddle train and "
        "eval; %d eval copies dropped), %d outliers, %d suspects excluded from train; findings in %s",
        summary["suspect_labels"], 100 * summary["estimated_label_noise"], summary["near_duplicate_groups"],
        summary["near_duplicate_leaks"], actions["leak_eval_copies_dropped"], summary["outliers"],
        actions["suspects_excluded_from_train"], uri)
