"""Executors of PreviousSpanStatistics and SpanWindow: unpack artifacts, ask the span history (history.py)."""
import json
import logging
import os
import posixpath
from typing import Any, Dict, List, Optional

import tensorflow as tf
from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.spans import history

STATISTICS_KEY = "statistics"
PREVIOUS_STATISTICS_KEY = "previous_statistics"
EXAMPLES_KEY = "examples"
VALIDATION_RESULT_KEY = "validation_result"
WINDOW_EXAMPLES_KEY = "window_examples"
HISTORY_DIR_KEY = "history_dir"
SPAN_WINDOW_KEY = "span_window"  # 0: every validated span.
HISTORY_FINGERPRINT_KEY = "history_fingerprint"  # Only for the cache key (see history.fingerprint_before).
# Custom properties.
FOUND_PROPERTY = "previous_span_found"
SOURCE_PROPERTY = "source_uri"
SPANS_PROPERTY = "spans"
# Ingestion's properties that stay true of the window (same payload, same files' format) or are summed.
_FORMAT_PROPERTIES = ("payload_format", "file_format")
_COUNTS_PROPERTY = "examples_per_class_and_split"
_PASSED_PROPERTY = "passed"  # On the gate's DataValidationResult (components/validation/executor.py).


class PreviousStatisticsExecutor(base_executor.BaseExecutor):
    """Copies the statistics of the newest validated span before the current one into its output.

    With none (the first span, or every earlier record's statistics gone) the output holds no file and its
    span is the current one: the gate takes only an earlier span as drift baseline, so it checks no drift.
    """

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        current = artifact_utils.get_single_instance(input_dict[STATISTICS_KEY])
        output = artifact_utils.get_single_instance(output_dict[PREVIOUS_STATISTICS_KEY])
        directory = exec_properties[HISTORY_DIR_KEY]
        span = int(current.span or 0)
        readable = [record for record in history.earlier_records(history.read_records(directory), span)
                    if _readable(record, record.statistics_uri)]
        if not readable:
            output.span = span
            output.split_names = current.split_names
            output.set_int_custom_property(FOUND_PROPERTY, 0)
            logging.info("Drift: no validated span before span %d in %s; nothing to compare with.", span, directory)
            return
        previous = readable[0]
        copy_tree(previous.statistics_uri, output.uri)
        output.span = previous.span
        output.split_names = artifact_utils.encode_split_names(list(previous.split_names))
        output.set_int_custom_property(FOUND_PROPERTY, 1)
        output.set_string_custom_property(SOURCE_PROPERTY, previous.statistics_uri)
        logging.info("Drift: span %d is compared with span %d (%s).", span, previous.span, previous.statistics_uri)


class SpanWindowExecutor(base_executor.BaseExecutor):
    """Records the validated current span in the history, then outputs one Examples artifact holding the newest
    N validated spans' files (the current span's and N-1 earlier ones)."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        result = artifact_utils.get_single_instance(input_dict[VALIDATION_RESULT_KEY])
        if result.has_custom_property(_PASSED_PROPERTY) and not result.get_int_custom_property(_PASSED_PROPERTY):
            raise ValueError(f"The validation gate did not pass ({result.uri}): the span is not recorded.")
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        statistics = artifact_utils.get_single_instance(input_dict[STATISTICS_KEY])
        directory = exec_properties[HISTORY_DIR_KEY]
        current = record_of(examples, statistics, self._context.pipeline_run_id if self._context else None)
        logging.info("Span history: span %d passed validation, recorded in %s", current.span,
                     history.write_record(directory, current))
        window = int(exec_properties.get(SPAN_WINDOW_KEY) or 0) or None
        records = history.read_records(directory)
        earlier = [record for record in history.earlier_records(records, current.span)
                   if _readable(record, record.examples_uri)]
        chosen = history.window_records({record.span: record for record in earlier} | {current.span: current},
                                        current, window)
        output = artifact_utils.get_single_instance(output_dict[WINDOW_EXAMPLES_KEY])
        write_window(chosen, output.uri)
        describe_window(output, examples, chosen)
        logging.info("Span window (%s): spans %s -> %s", f"newest {window}" if window else "every validated span",
                     [record.span for record in chosen], output.uri)


def record_of(examples: types.Artifact, statistics: types.Artifact, run_id: Optional[str]) -> history.SpanRecord:
    fingerprint_key = example_gen_utils.FINGERPRINT_PROPERTY_NAME
    return history.SpanRecord(
        span=int(examples.span or 0),
        version=examples.version,
        examples_uri=examples.uri,
        statistics_uri=statistics.uri,
        split_names=tuple(artifact_utils.decode_split_names(examples.split_names)),
        input_fingerprint=(examples.get_string_custom_property(fingerprint_key)
                           if examples.has_custom_property(fingerprint_key) else ""),
        examples_per_class_and_split=(json.loads(examples.get_string_custom_property(_COUNTS_PROPERTY) or "{}")
                                      if examples.has_custom_property(_COUNTS_PROPERTY) else {}),
        pipeline_run_id=run_id or "")


def _readable(record: history.SpanRecord, uri: str) -> bool:
    """An earlier span whose artifact was deleted is skipped with a warning, as if it had never been validated;
    the run goes on with the spans that are still there."""
    present = all(tf.io.gfile.isdir(_split_dir(uri, split)) for split in record.split_names)
    if not present:
        logging.warning("Span history: span %d's artifact %s is gone or incomplete; span %d is skipped.",
                        record.span, uri, record.span)
    return present


def _split_dir(uri: str, split: str) -> str:
    return posixpath.join(uri, f"Split-{split}")


def write_window(records: List[history.SpanRecord], output_uri: str) -> None:
    """Each span's split files, under the span's name (files of two spans never collide): the output's
    Split-<name>/span-<S>-<file>. A span lacking a split (never the case for ImageExampleGen's train/eval)
    adds nothing to it."""
    splits = records[0].split_names
    for record in records:
        for split in splits:
            source_dir = _split_dir(record.examples_uri, split)
            if not tf.io.gfile.isdir(source_dir):
                continue
            target_dir = _split_dir(output_uri, split)
            tf.io.gfile.makedirs(target_dir)
            for name in tf.io.gfile.listdir(source_dir):
                if not name.endswith("/"):
                    copy_file(posixpath.join(source_dir, name), posixpath.join(target_dir, f"span-{record.span}-{name}"))


def describe_window(output: types.Artifact, examples: types.Artifact, records: List[history.SpanRecord]) -> None:
    output.split_names = artifact_utils.encode_split_names(list(records[0].split_names))
    output.span = examples.span
    if examples.version is not None:
        output.version = examples.version
    for key in _FORMAT_PROPERTIES:
        if examples.has_custom_property(key):
            output.set_string_custom_property(key, examples.get_string_custom_property(key))
    output.set_string_custom_property(SPANS_PROPERTY, json.dumps([record.span for record in records]))
    output.set_string_custom_property(_COUNTS_PROPERTY, json.dumps(summed_counts(records), ensure_ascii=False))


def summed_counts(records: List[history.SpanRecord]) -> Dict[str, Dict[str, int]]:
    """{class: {split: examples}} over the window's spans."""
    total: Dict[str, Dict[str, int]] = {}
    for record in records:
        for class_name, by_split in record.examples_per_class_and_split.items():
            for split, count in by_split.items():
                total.setdefault(class_name, {}).setdefault(split, 0)
                total[class_name][split] += int(count)
    return total


def copy_file(source: str, target: str) -> None:
    """A hard link on one local filesystem (instant, no space), else tf.io.gfile.copy (on gs:// TF's GCS
    filesystem copies server-side with the rewrite API: tsl/platform/cloud/gcs_file_system.cc, CopyFile)."""
    if "://" not in source and "://" not in target:
        try:
            if os.path.exists(target):
                os.remove(target)
            os.link(source, target)
            return
        except OSError:
            pass
    tf.io.gfile.copy(source, target, overwrite=True)


def copy_tree(source: str, target: str) -> None:
    for directory, _, names in tf.io.gfile.walk(source):
        relative = directory.rstrip("/")[len(source.rstrip("/")):].strip("/")  # No normpath: it breaks gs://.
        target_dir = posixpath.join(target, relative) if relative else target
        tf.io.gfile.makedirs(target_dir)
        for name in names:
            copy_file(posixpath.join(directory, name), posixpath.join(target_dir, name))
