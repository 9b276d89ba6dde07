"""Beam executor of ImageExampleGen: class-per-folder images in, split tf.Example TFRecords (GZIP) out.

Besides the Split-* folders that every ExampleGen writes, the output artifact's folder receives
`ingestion_report.json`: files read per class and split, and every file that was ignored or quarantined
with its reason. The same counts are set as custom properties of the Examples artifact in ML Metadata.
"""
import json
import logging
import posixpath
from typing import Any, Dict, Iterator, List, Optional, Tuple

import apache_beam as beam
import tensorflow as tf
from google.protobuf import struct_pb2
from tfx import types
from tfx.components.example_gen import base_example_gen_executor, utils, write_split
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.ingestion import image_tree

REPORT_FILE_NAME = "ingestion_report.json"
LIMIT_KEYS = ("max_pixels", "max_bytes")
_EXAMPLE, _QUARANTINED, _IGNORED = "example", "quarantined", "ignored"
# The input pattern names the files of the class folders, so the driver's fingerprint (which decides
# whether a cached run is reused) changes when files are added, removed or rewritten in them.
IMAGE_FILES_PATTERN = "*/*"


def tree_root(input_base: str, pattern: str) -> str:
    """The folder holding the class folders: the input pattern names the class folders' files ("*/*").

    After the FileBasedDriver has resolved a span, a pattern such as "span-3/*/*" roots the tree at span-3.
    """
    prefix = pattern[: -len(IMAGE_FILES_PATTERN)] if pattern.endswith(IMAGE_FILES_PATTERN) else pattern
    return posixpath.join(input_base, prefix).rstrip("/")



class _ReadAndCheck(beam.DoFn):
    """Reads one file and emits (kind, payload): a tf.Example with its split, a quarantine or an ignore."""

    def __init__(self, root: str, limits: image_tree.Limits, eval_buckets: int, total_buckets: int):
        self._root = root
        self._limits = limits
        self._eval_buckets = eval_buckets
        self._total_buckets = total_buckets

    def process(self, item: Tuple[str, str, bool]) -> Iterator[Tuple[str, Any]]:
        class_name, path, is_candidate = item
        if not is_candidate:
            beam.metrics.Metrics.counter("ImageExampleGen", "ignored").inc()
            yield _IGNORED, {"uri": path, "class": class_name, "reason": "not_an_image_name_or_hidden"}
            return
        try:
            checked = image_tree.check_image(image_tree.read_file(path, self._limits), self._limits)
        except image_tree.RejectedImage as rejected:
            beam.metrics.Metrics.counter("ImageExampleGen", f"quarantined_{rejected.reason}").inc()
            yield _QUARANTINED, {"uri": path, "class": class_name, "reason": rejected.reason,
                                 "detail": rejected.detail}
            return
        relative_path = posixpath.relpath(path, self._root)
        split = image_tree.assign_split(relative_path, self._eval_buckets, self._total_buckets)
        example = image_tree.make_example(checked, class_name, path)
        beam.metrics.Metrics.counter("ImageExampleGen", f"examples_{split}").inc()
        yield _EXAMPLE, (split, class_name, example.SerializeToString())


def _list_class_folder(class_name: str, root: str) -> Iterator[Tuple[str, str, bool]]:
    for path, is_candidate in image_tree.walk_class_folder(root, class_name):
        yield class_name, path, is_candidate


def _build_report(root: str, class_names: List[str], counts_per_split_and_class: List[Tuple[Tuple[str, str], int]],
                  quarantined: List[Dict], ignored: List[Dict]) -> Dict:
    counts: Dict[str, Dict[str, int]] = {name: {image_tree.TRAIN_SPLIT: 0, image_tree.EVAL_SPLIT: 0}
                                         for name in class_names}
    for (split, class_name), count in counts_per_split_and_class:
        counts[class_name][split] = count
    examples_written = sum(count for _, count in counts_per_split_and_class)
    quarantine_reasons: Dict[str, int] = {}
    for entry in quarantined:
        quarantine_reasons[entry["reason"]] = quarantine_reasons.get(entry["reason"], 0) + 1
    return {
        "root": root,
        "files_read": examples_written + len(quarantined) + len(ignored),
        "examples_written": examples_written,
        "examples_per_class_and_split": counts,
        "quarantined_count": len(quarantined),
        "quarantined_by_reason": quarantine_reasons,
        "quarantined": sorted(quarantined, key=lambda entry: entry["uri"]),
        "ignored_count": len(ignored),
        "ignored": sorted(ignored, key=lambda entry: entry["uri"]),
    }


def _write_json(report: Dict, path: str) -> None:
    with tf.io.gfile.GFile(path, "w") as handle:
        json.dump(report, handle, indent=2, ensure_ascii=False, sort_keys=True)


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """Reads the image tree in parallel (one Beam element per class folder, then per file)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        raise NotImplementedError("ImageExampleGen's Executor builds its whole Beam graph in Do.")

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        split_names = utils.generate_output_split_names(input_config, output_config)
        eval_buckets, total_buckets = _eval_and_total_buckets(output_config)
        limits = _limits_from(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY))

        root = tree_root(exec_properties[standard_component_specs.INPUT_BASE_KEY], input_config.splits[0].pattern)
        class_names = image_tree.list_class_names(root)
        logging.info("ImageExampleGen: reading %d classes under %s", len(class_names), root)

        examples_artifact = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        examples_artifact.split_names = artifact_utils.encode_split_names(split_names)
        report_path = posixpath.join(examples_artifact.uri, REPORT_FILE_NAME)

        with self._make_beam_pipeline() as pipeline:
            results = (
                pipeline
                | "ClassFolders" >> beam.Create(class_names)
                | "ListFiles" >> beam.FlatMap(_list_class_folder, root)
                # Spreads the files over workers: a listing is one element per class folder.
                | "Redistribute" >> beam.Reshuffle()
                | "ReadAndCheck" >> beam.ParDo(_ReadAndCheck(root, limits, eval_buckets, total_buckets))
            )
            examples = results | "Examples" >> beam.Filter(lambda kind_value: kind_value[0] == _EXAMPLE) \
                | "ExamplePayload" >> beam.Map(lambda kind_value: kind_value[1])
            for split in split_names:
                _ = (
                    examples
                    | f"Select[{split}]" >> beam.Filter(lambda item, wanted=split: item[0] == wanted)
                    | f"Serialized[{split}]" >> beam.Map(lambda item: item[2])
                    | f"WriteSplit[{split}]" >> write_split.WriteSplit(
                        artifact_utils.get_split_uri([examples_artifact], split),
                        example_gen_pb2.FORMAT_TFRECORDS_GZIP, exec_properties)
                )
            counts = (
                examples
                | "SplitAndClass" >> beam.Map(lambda item: ((item[0], item[1]), 1))
                | "CountPerSplitAndClass" >> beam.CombinePerKey(sum)
                | "AllCounts" >> beam.combiners.ToList()
            )
            _ = (
                counts
                | "BuildReport" >> beam.Map(
                    lambda count_list, quarantined, ignored: _build_report(
                        root, class_names, count_list, quarantined, ignored),
                    quarantined=beam.pvalue.AsSingleton(_entries_of(results, _QUARANTINED)),
                    ignored=beam.pvalue.AsSingleton(_entries_of(results, _IGNORED)),
                )
                | "WriteReport" >> beam.Map(_write_json, report_path)
            )

        with tf.io.gfile.GFile(report_path) as handle:
            report = json.load(handle)
        _record_counts(examples_artifact, report)
        examples_utils.set_payload_format(examples_artifact, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples_artifact, write_split.to_file_format_str(
            example_gen_pb2.FORMAT_TFRECORDS_GZIP))
        _log_report(report, report_path)


def _entries_of(results: beam.PCollection, kind: str) -> beam.PCollection:
    return (results
            | f"Select[{kind}]" >> beam.Filter(lambda kind_value, wanted=kind: kind_value[0] == wanted)
            | f"Entry[{kind}]" >> beam.Map(lambda kind_value: kind_value[1])
            | f"All[{kind}]" >> beam.combiners.ToList())


def _limits_from(custom_config_json: Optional[str]) -> image_tree.Limits:
    if not custom_config_json:
        return image_tree.Limits()
    custom_config = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(custom_config_json, custom_config)
    values = struct_pb2.Struct()
    custom_config.custom_config.Unpack(values)
    return image_tree.Limits(**{key: int(values[key]) for key in LIMIT_KEYS if key in values})


def _eval_and_total_buckets(output_config: example_gen_pb2.Output) -> Tuple[int, int]:
    buckets = {split.name: split.hash_buckets for split in output_config.split_config.splits}
    if set(buckets) != {image_tree.TRAIN_SPLIT, image_tree.EVAL_SPLIT}:
        raise ValueError(f"ImageExampleGen writes the splits 'train' and 'eval'; output_config names {sorted(buckets)}.")
    return buckets[image_tree.EVAL_SPLIT], sum(buckets.values())


def _record_counts(examples_artifact: types.Artifact, report: Dict) -> None:
    """Puts the counts in ML Metadata, where dashboards and the run summary read them."""
    examples_artifact.set_int_custom_property("files_read", report["files_read"])
    examples_artifact.set_int_custom_property("examples_written", report["examples_written"])
    examples_artifact.set_int_custom_property("quarantined", report["quarantined_count"])
    examples_artifact.set_int_custom_property("ignored", report["ignored_count"])
    examples_artifact.set_string_custom_property(
        "examples_per_class_and_split", json.dumps(report["examples_per_class_and_split"], ensure_ascii=False))
    examples_artifact.set_string_custom_property(
        "quarantined_by_reason", json.dumps(report["quarantined_by_reason"]))


def _log_report(report: Dict, report_path: str) -> None:
    logging.info("ImageExampleGen: %d files read, %d examples written, %d quarantined, %d ignored; report: %s",
                 report["files_read"], report["examples_written"], report["quarantined_count"],
                 report["ignored_count"], report_path)
    for class_name, per_split in report["examples_per_class_and_split"].items():
        logging.info("  class %r: %s", class_name, per_split)
    for entry in report["quarantined"]:
        logging.warning("  quarantined %s (%s): %s", entry["uri"], entry["reason"], entry["detail"])
    for entry in report["ignored"]:
        logging.info("  ignored %s (%s)", entry["uri"], entry["reason"])
