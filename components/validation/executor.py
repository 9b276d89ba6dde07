"""Executor of DataValidationGate: reads the statistics, schema and ingestion counts, calls gate.py."""
import json
import logging
import os
from typing import Any, Dict, List, Mapping, Optional

from tfx import types
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components.validation import gate

STATISTICS_KEY = "statistics"
PREVIOUS_STATISTICS_KEY = "previous_statistics"
SCHEMA_KEY = "schema"
EXAMPLES_KEY = "examples"
RESULT_KEY = "result"
MIN_EXAMPLES_KEY = "min_examples_per_class"
MAX_IMBALANCE_KEY = "max_class_imbalance"
WARN_ONLY_KEY = "warn_only"
RESULT_FILE_NAME = "validation_result.json"


class Executor(base_executor.BaseExecutor):
    """Raises DataValidationError (the run fails, Transform never starts) on anomalies that are not warn-only."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        settings = gate.GateSettings(
            min_examples_per_class=int(exec_properties[MIN_EXAMPLES_KEY]),
            max_class_imbalance=float(exec_properties[MAX_IMBALANCE_KEY]),
            warn_only=gate.parse_warn_only(exec_properties.get(WARN_ONLY_KEY) or ""))
        statistics = artifact_utils.get_single_instance(input_dict[STATISTICS_KEY])
        schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(
            artifact_utils.get_single_uri(input_dict[SCHEMA_KEY])))
        candidates = input_dict.get(PREVIOUS_STATISTICS_KEY) or []
        previous = _previous_span_statistics(statistics, candidates)
        logging.info("Data validation of span %d; drift baseline: %s (of %d earlier statistics)", _span(statistics),
                     f"span {_span(previous)}, {previous.uri}" if previous else "none", len(candidates))
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])

        anomalies = gate.find_anomalies(
            _statistics_by_split(statistics), schema, settings,
            previous_by_split=_statistics_by_split(previous) if previous else None,
            class_folders=_class_folders(examples))
        errors, warnings = gate.decide(anomalies, settings)
        result = artifact_utils.get_single_instance(output_dict[RESULT_KEY])
        _write_result(result, errors, warnings, previous)
        for anomaly in warnings:
            logging.warning("Data validation (warn only): %s", anomaly)
        if errors:
            raise gate.DataValidationError(errors)
        logging.info("Data validation passed: %d warning(s); drift checked against %s.", len(warnings),
                     previous.uri if previous else "nothing (no earlier span)")


def _statistics_by_split(artifact: types.Artifact) -> Dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
    return {split: stats_artifact_utils.load_statistics(artifact, split).proto()
            for split in artifact_utils.decode_split_names(artifact.split_names)}


def _previous_span_statistics(current: types.Artifact, candidates: List[types.Artifact]) -> Optional[types.Artifact]:
    """The newest statistics of an earlier span: a re-run of the same span is not drift. The candidate comes
    from PreviousSpanStatistics (components/spans), whose output has the current span when there is none."""
    earlier = [artifact for artifact in candidates
               if artifact.id != current.id and _span(artifact) < _span(current)]
    return max(earlier, key=lambda artifact: (_span(artifact), artifact.id), default=None)


def _span(artifact: types.Artifact) -> int:
    return int(artifact.span or 0)


def _class_folders(examples: types.Artifact) -> List[str]:
    """Class folders ingestion found, including empty ones (they are in the counts with zero examples)."""
    if "examples_per_class_and_split" not in examples.mlmd_artifact.custom_properties:
        return []
    return list(json.loads(examples.get_string_custom_property("examples_per_class_and_split")))


def _write_result(result: types.Artifact, errors: List[gate.Anomaly], warnings: List[gate.Anomaly],
                  previous: Optional[types.Artifact]) -> None:
    payload: Mapping[str, Any] = {
        "passed": not errors,
        "errors": [str(anomaly) for anomaly in errors],
        "warnings": [str(anomaly) for anomaly in warnings],
        "drift_baseline": previous.uri if previous else None,
    }
    io_utils.write_string_file(os.path.join(result.uri, RESULT_FILE_NAME), json.dumps(payload, indent=2))
    result.set_int_custom_property("passed", int(not errors))
    result.set_string_custom_property("warnings", json.dumps(payload["warnings"], ensure_ascii=False))
    result.set_string_custom_property("errors", json.dumps(payload["errors"], ensure_ascii=False))
