"""Beam executor of ImageExampleGen: class-per-folder images in, split tf.Example TFRecords (GZIP) out.

Besides the Split-* folders that every ExampleGen writes, the output artifact's folder receives
`ingestion_report.json` (files read, examples per class and split, every file ignored, quarantined or
normalized with its reason, duplicate groups) and `quarantine.jsonl` (the quarantine manifest: one line per
quarantined file with its URI and reason). The counts are also custom properties of the Examples artifact.
"""
import concurrent.futures
import json
import logging
import os
import posixpath
import queue
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import apache_beam as beam
import tensorflow as tf
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue
from google.protobuf import struct_pb2
from tfx import types
from tfx.components.example_gen import base_example_gen_executor, utils, write_split
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.ingestion import example_files, example_spill, image_tree
from components.ingestion.image_tree import tree_root
from components.spans import resolution

REPORT_FILE_NAME = "ingestion_report.json"
QUARANTINE_FILE_NAME = "quarantine.jsonl"
LIMIT_KEYS = ("max_pixels", "max_bytes", "max_stored_side")
READ_THREADS_KEY = "read_threads"  # 0: one per core of the worker.
_QUARANTINED, _IGNORED, _DUPLICATE_GROUPS, _NORMALIZED = "quarantined", "ignored", "duplicate_groups", "normalized"
# Files are read and checked by this many threads per Beam worker: Pillow releases the GIL while it decodes,
# resizes and encodes (ImagingSectionEnter in its C decoders), and so do hashlib and file reads, so threads
# use the cores without a process per worker (each of which would import TensorFlow). bench/bench_photos.py
# measures this against Beam's multi_processing mode.
DEFAULT_READ_THREADS = os.cpu_count() or 1
# Files in flight on the thread pool per reading thread: enough that a thread never waits for the next file
# while another finishes a slow one (a 12 Mpx PNG takes 100x a small JPEG), few enough to bound the memory
# of decoded images in flight. Results are taken as they complete, so no batch waits for its slowest file.
_FILES_IN_FLIGHT_PER_THREAD = 2
# Files per Beam element: the listed files travel in batches, so Beam's per-element cost (the Reshuffle's
# steps, encoding, the DoFn call) is paid once per batch, which counts for small images (the digits demo:
# about 0.25 ms of work per file). Within a batch each file is still
# its own task on the thread pool, output as soon as it is done; 64 twelve-megapixel photos are a few seconds
# of work, small enough to spread over the workers of a distributed runner.
FILES_PER_ELEMENT = 64
# Progress lines at most this often: visible on a long run, without flooding the log.
PROGRESS_LOG_SECONDS = 15.0
# Inside the output artifact's folder while the pipeline runs: the example files not yet moved to their splits.
_UNFINISHED_FOLDER_NAME = ".unfinished_examples"



# Tags of the report records: every file ignored, quarantined or written, every duplicate group and every
# normalized file becomes one small (tag, entry) record, and one combine turns them all into the report.
_WRITTEN = "written"
_REPORT = "report"
_EXAMPLES = "examples"  # (split, serialized tf.Example) of every example kept.
# A candidate travels through the content grouping as a plain tuple, which Beam's fast primitive coder
# encodes without pickling: (uri, class, forced split or None, normalization steps, where its serialized
# tf.Example was set aside: example_spill.Reference), so the grouping never holds the images.
_URI, _CLASS, _FORCED_SPLIT, _NORMALIZATIONS, _EXAMPLE = range(5)


def batches(files: List, size: int) -> List[List]:
    """`files` in consecutive batches of at most `size`."""
    return [files[start:start + size] for start in range(0, len(files), size)]


def list_files(folders: List[image_tree.ClassFolder]) -> List[Tuple[str, str, bool, Optional[str]]]:
    """(class, path, is_candidate, forced split) of every file of the class folders.

    Listed here, before the Beam pipeline, rather than in it: the count is the total of the progress line and
    the `files_read` the report is checked against, and a listing stage with a side input for that count cost
    more than the listing itself (bench/bench_photos.py: Beam's fixed cost per run)."""
    return [(folder.class_name, path, is_candidate, folder.split)
            for folder in folders for path, is_candidate in image_tree.walk_folder(folder.path)]


class Progress:
    """Files done of the total, rate and time left, logged at most every `interval` seconds (thread-safe).

    Each Beam worker counts the files it checked; on the local runner that is all of them."""

    def __init__(self, total: int, interval: float = PROGRESS_LOG_SECONDS, clock=time.monotonic):
        self._total, self._interval, self._clock = total, interval, clock
        self._done = self._done_when_logged = 0
        self._started = self._last_logged = clock()
        self._lock = threading.Lock()

    def add(self, count: int = 1) -> Optional[str]:
        """Counts `count` files; returns the line it logged, if it was time for one (each interval with
        progress, and when the last file is done)."""
        with self._lock:
            self._done += count
            now = self._clock()
            due = now - self._last_logged >= self._interval or self._done >= self._total
            if not due or self._done == self._done_when_logged:
                return None
            self._last_logged, self._done_when_logged = now, self._done
            line = self.line(now)
        logging.info(line)
        return line

    def line(self, now: float) -> str:
        rate = self._done / max(now - self._started, 1e-9)
        left = max(self._total - self._done, 0) / rate if rate else float("inf")
        share = 100.0 * self._done / self._total if self._total else 100.0
        return (f"ImageExampleGen: {self._done} of {self._total} files checked ({share:.0f}%), "
                f"{rate:.1f} files/s, about {_duration(left)} left")


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "? s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


class _ReadAndCheck(beam.DoFn):
    """Reads and checks batches of files on a thread pool, a few files in flight per thread, each output as
    soon as it is done.
    Main output: (sha256, candidate) for the duplicate check; report records for the files that are
    quarantined or ignored, with their reason."""

    def __init__(self, limits: image_tree.Limits, files_listed: int, spill_folder: str,
                 threads: int = DEFAULT_READ_THREADS):
        self._limits = limits
        self._spill_folder = spill_folder
        self._spill: Optional[example_spill.SpillWriter] = None  # Made per bundle, like the queue.
        self._files_listed = files_listed
        self._threads = threads
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._progress: Optional[Progress] = None
        # Futures of the files submitted, put here by the pool as each completes: one cheap queue operation per
        # file, where concurrent.futures.wait over the set in flight takes every future's lock at each call.
        self._completed: Optional[queue.SimpleQueue] = None  # Made per bundle: a queue does not pickle.
        self._in_flight = 0

    def setup(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(self._threads, thread_name_prefix="ImageExampleGen")
        self._progress = Progress(self._files_listed)

    def teardown(self):
        if self._pool:
            self._pool.shutdown()

    def start_bundle(self):
        self._completed, self._in_flight = queue.SimpleQueue(), 0
        self._spill = example_spill.SpillWriter(self._spill_folder)

    def process(self, batch: List[Tuple[str, str, bool, Optional[str]]]):
        for item in batch:
            self._pool.submit(self._check_one, item).add_done_callback(self._completed.put)
            self._in_flight += 1
            if self._in_flight >= _FILES_IN_FLIGHT_PER_THREAD * self._threads:
                yield from self._outputs(wait_for=1)

    def finish_bundle(self):
        # Outputs of finish_bundle carry their window (Beam's DoFn contract); the pipeline is globally windowed.
        # The bundle's spill file is complete (closed) before its last outputs leave.
        outputs = list(self._outputs(wait_for=self._in_flight))
        self._spill.close()
        for output in outputs:
            if isinstance(output, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(output.tag, _in_global_window(output.value))
            else:
                yield _in_global_window(output)

    def _outputs(self, wait_for: int):
        """Outputs of the files done: waits until `wait_for` are, and takes any others done by then."""
        done = [self._completed.get() for _ in range(wait_for)]
        while not self._completed.empty():
            done.append(self._completed.get())
        self._in_flight -= len(done)
        for future in done:
            counter, output = future.result()  # Re-raises an unexpected error here, failing the run.
            if counter:  # Beam's metrics container is per thread: counted here, not in the pool's threads.
                beam.metrics.Metrics.counter("ImageExampleGen", counter).inc()
            yield output if isinstance(output, beam.pvalue.TaggedOutput) else self._set_aside(output)
        self._progress.add(len(done))

    def _set_aside(self, candidate: Tuple[str, Tuple]) -> Tuple[str, Tuple]:
        """The candidate with its serialized example replaced by where the bundle's spill file holds it."""
        sha256, fields = candidate
        return sha256, (*fields[:_EXAMPLE], self._spill.append(fields[_EXAMPLE]))

    def _check_one(self, item: Tuple[str, str, bool, Optional[str]]) -> Tuple[Optional[str], Any]:
        """(counter name or None, output) of one file."""
        class_name, path, is_candidate, forced_split = item
        if not is_candidate:
            return "ignored", beam.pvalue.TaggedOutput(_REPORT, (_IGNORED, {
                "uri": path, "class": class_name, "reason": "hidden_or_not_an_image_name"}))
        try:
            checked = image_tree.check_image(image_tree.read_file(path, self._limits), self._limits)
        except image_tree.RejectedImage as rejected:
            return f"quarantined_{rejected.reason}", beam.pvalue.TaggedOutput(_REPORT, (_QUARANTINED, {
                "uri": path, "class": class_name, "reason": rejected.reason, "detail": rejected.detail}))
        example = image_tree.make_example(checked, class_name, path)
        return None, (checked.sha256, (path, class_name, forced_split, checked.normalizations,
                                       example.SerializeToString()))


class _ResolveDuplicates(beam.DoFn):
    """One group of files with the same content: decides the split and which copies are written.

    Same content under one class: the first copy is kept (a train/ copy before an eval/ one, so the eval
    split never holds an image the model trained on), the others are quarantined as duplicates.
    Same content under different classes: the label is contradictory, so every copy is quarantined.
    Outputs: (split, serialized example) under the _EXAMPLES tag, and report records.
    """

    def __init__(self, eval_buckets: int, total_buckets: int):
        self._eval_buckets = eval_buckets
        self._total_buckets = total_buckets
        self._spill: Optional[example_spill.SpillReader] = None

    def start_bundle(self):
        self._spill = example_spill.SpillReader()

    def finish_bundle(self):
        self._spill.close()

    def process(self, sha_and_candidates):
        sha256, candidates = sha_and_candidates
        hashed_split = image_tree.assign_split(sha256, self._eval_buckets, self._total_buckets)
        candidates = sorted(candidates, key=_keep_order)
        kept, *copies = candidates
        if copies:
            splits = {candidate[_FORCED_SPLIT] or hashed_split for candidate in candidates}
            labels = sorted({candidate[_CLASS] for candidate in candidates})
            yield beam.pvalue.TaggedOutput(_REPORT, (_DUPLICATE_GROUPS, {
                "sha256": sha256, "uris": [candidate[_URI] for candidate in candidates], "labels": labels,
                "across_train_and_eval": len(splits) > 1,
                "kept": None if len(labels) > 1 else kept[_URI]}))
            if len(labels) > 1:
                for candidate in candidates:
                    yield beam.pvalue.TaggedOutput(_REPORT, (_QUARANTINED, _quarantine_entry(
                        candidate, "conflicting_labels", f"same content under classes {labels}")))
                return
            for copy in copies:
                yield beam.pvalue.TaggedOutput(_REPORT, (_QUARANTINED, _quarantine_entry(
                    copy, "duplicate", f"same content as {kept[_URI]}")))
        split = kept[_FORCED_SPLIT] or hashed_split
        beam.metrics.Metrics.counter("ImageExampleGen", f"examples_{split}").inc()
        if kept[_NORMALIZATIONS]:
            yield beam.pvalue.TaggedOutput(_REPORT, (_NORMALIZED, {
                "uri": kept[_URI], "steps": list(kept[_NORMALIZATIONS])}))
        yield beam.pvalue.TaggedOutput(_REPORT, (_WRITTEN, (split, kept[_CLASS])))
        yield beam.pvalue.TaggedOutput(_EXAMPLES, (split, self._spill.read(kept[_EXAMPLE])))


def _in_global_window(value: Any) -> WindowedValue:
    return WindowedValue(value, MIN_TIMESTAMP, (GlobalWindow(),))


def _keep_order(candidate: Tuple) -> Tuple[int, str]:
    return (0 if candidate[_FORCED_SPLIT] in (None, image_tree.TRAIN_SPLIT) else 1, candidate[_URI])


def _quarantine_entry(candidate: Tuple, reason: str, detail: str) -> Dict:
    return {"uri": candidate[_URI], "class": candidate[_CLASS], "reason": reason, "detail": detail}


class _GatherReport(beam.CombineFn):
    """Gathers the report records: counts for examples written, lists for the rest.

    Counting in the accumulator keeps the combined value small: one number per (split, class), not one
    record per example."""

    def create_accumulator(self) -> Dict:
        return {_WRITTEN: {}, _QUARANTINED: [], _IGNORED: [], _DUPLICATE_GROUPS: [], _NORMALIZED: []}

    def add_input(self, accumulator: Dict, record: Tuple[str, Any]) -> Dict:
        kind, entry = record
        if kind == _WRITTEN:
            accumulator[_WRITTEN][entry] = accumulator[_WRITTEN].get(entry, 0) + 1
        else:
            accumulator[kind].append(entry)
        return accumulator

    def merge_accumulators(self, accumulators) -> Dict:
        merged = self.create_accumulator()
        for accumulator in accumulators:
            for key, count in accumulator[_WRITTEN].items():
                merged[_WRITTEN][key] = merged[_WRITTEN].get(key, 0) + count
            for kind in (_QUARANTINED, _IGNORED, _DUPLICATE_GROUPS, _NORMALIZED):
                merged[kind].extend(accumulator[kind])
        return merged

    def extract_output(self, accumulator: Dict) -> Dict:
        return accumulator


def _count_by(entries: List[Dict], key: str) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for entry in entries:
        for value in entry[key] if isinstance(entry[key], list) else [entry[key]]:
            counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def build_report(root: str, layout: str, class_names: List[str], files_listed: int,
                 counts_per_split_and_class: List[Tuple[Tuple[str, str], int]], quarantined: List[Dict],
                 ignored: List[Dict], duplicate_groups: List[Dict], normalized: List[Dict]) -> Dict:
    """The ingestion report; raises when the files listed and the files accounted for differ."""
    counts: Dict[str, Dict[str, int]] = {name: dict.fromkeys(image_tree.SPLITS, 0) for name in class_names}
    for (split, class_name), count in counts_per_split_and_class:
        counts[class_name][split] = count
    examples_written = sum(count for _, count in counts_per_split_and_class)
    accounted = examples_written + len(quarantined) + len(ignored)
    if accounted != files_listed:
        raise RuntimeError(f"Ingestion lost track of files under {root}: {files_listed} listed, but "
                           f"{examples_written} written + {len(quarantined)} quarantined + {len(ignored)} ignored "
                           f"= {accounted}.")
    return {
        "root": root,
        "layout": layout,
        "files_read": files_listed,
        "examples_written": examples_written,
        "examples_per_class_and_split": counts,
        "quarantined_count": len(quarantined),
        "quarantined_by_reason": _count_by(quarantined, "reason"),
        "quarantined": sorted(quarantined, key=lambda entry: entry["uri"]),
        "ignored_count": len(ignored),
        "ignored": sorted(ignored, key=lambda entry: entry["uri"]),
        "duplicate_groups": sorted(duplicate_groups, key=lambda group: group["uris"][0]),
        "leaks_prevented": sum(1 for group in duplicate_groups if group["across_train_and_eval"]),
        "normalized_by_step": _count_by(normalized, "steps"),
        "normalized": sorted(normalized, key=lambda entry: entry["uri"]),
    }


def _write_json(report: Dict, path: str) -> None:
    with tf.io.gfile.GFile(path, "w") as handle:
        json.dump(report, handle, indent=2, ensure_ascii=False, sort_keys=True)


def write_quarantine_manifest(quarantined: List[Dict], path: str) -> None:
    """One JSON object per line: uri, class, reason, detail. The files themselves stay where they are."""
    with tf.io.gfile.GFile(path, "w") as handle:
        for entry in quarantined:
            handle.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """Reads the image tree in parallel: the files are listed first, then one Beam element per batch of
    files, each file read and checked on the reading threads."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        raise NotImplementedError("ImageExampleGen's Executor builds its whole Beam graph in Do.")

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        exec_properties = resolution.resolve_like_the_driver(exec_properties)  # KFP OSS runs no driver.
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        split_names = utils.generate_output_split_names(input_config, output_config)
        eval_buckets, total_buckets = _eval_and_total_buckets(output_config)
        limits, read_threads = _settings_from(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY))

        root = tree_root(exec_properties[standard_component_specs.INPUT_BASE_KEY], input_config.splits[0].pattern)
        folders = image_tree.class_folders(root)
        class_names = sorted({folder.class_name for folder in folders})
        layout = "explicit_splits" if any(folder.split for folder in folders) else "class_folders"
        logging.info("ImageExampleGen: reading %d classes under %s (%s)", len(class_names), root, layout)

        examples_artifact = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        examples_artifact.split_names = artifact_utils.encode_split_names(split_names)
        # The driver records the span only as a custom property; as the artifact's `span` property it is
        # copied by StatisticsGen onto the statistics, where the validation gate finds the previous span.
        examples_artifact.span = int(exec_properties.get(utils.SPAN_PROPERTY_NAME) or 0)
        resolution.record_on_examples(examples_artifact, exec_properties)
        report_path = posixpath.join(examples_artifact.uri, REPORT_FILE_NAME)
        spill_folder = posixpath.join(examples_artifact.uri, example_spill.SPILL_FOLDER_NAME)
        unfinished_folder = posixpath.join(examples_artifact.uri, _UNFINISHED_FOLDER_NAME)

        file_batches = batches(list_files(folders), FILES_PER_ELEMENT)
        files_listed = sum(len(batch) for batch in file_batches)
        logging.info("ImageExampleGen: %d files listed", files_listed)

        try:
            with self._make_beam_pipeline() as pipeline:
                read = (
                    pipeline
                    # Batch indexes, then the batches: beam.Create over the files themselves would infer a type hint
                    # from every one of them (apache_beam/transforms/core.py, Create.infer_output_type).
                    | "FileBatches" >> beam.Create(range(len(file_batches)), reshuffle=False)
                    | "Files" >> beam.Map(lambda index, listed=file_batches: listed[index])
                    | "Redistribute" >> beam.Reshuffle()  # Spreads the batches over the workers.
                    | "ReadAndCheck" >> beam.ParDo(_ReadAndCheck(limits, files_listed, spill_folder, read_threads)
                                                   ).with_outputs(_REPORT, main="candidates")
                )
                resolved = (
                    read.candidates
                    | "GroupByContent" >> beam.GroupByKey()
                    | "ResolveDuplicates" >> beam.ParDo(_ResolveDuplicates(eval_buckets, total_buckets)).with_outputs(
                        _REPORT, _EXAMPLES)
                )
                _ = resolved[_EXAMPLES] | "WriteSplits" >> example_files.WriteExamples(
                    {split: artifact_utils.get_split_uri([examples_artifact], split) for split in split_names},
                    unfinished_folder)
                _ = (
                    (read[_REPORT], resolved[_REPORT])
                    | "ReportRecords" >> beam.Flatten()
                    | "GatherReport" >> beam.CombineGlobally(_GatherReport())
                    | "WriteReport" >> beam.Map(
                        lambda gathered: _write_json(build_report(
                            root, layout, class_names, files_listed, sorted(gathered[_WRITTEN].items()),
                            gathered[_QUARANTINED], gathered[_IGNORED], gathered[_DUPLICATE_GROUPS],
                            gathered[_NORMALIZED]), report_path))
                )
        finally:  # Also when the pipeline failed.
            example_spill.remove(spill_folder)
            example_spill.remove(unfinished_folder)
        with tf.io.gfile.GFile(report_path) as handle:
            report = json.load(handle)
        quarantine_path = posixpath.join(examples_artifact.uri, QUARANTINE_FILE_NAME)
        write_quarantine_manifest(report["quarantined"], quarantine_path)
        _record_counts(examples_artifact, report, quarantine_path)
        examples_utils.set_payload_format(examples_artifact, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples_artifact, write_split.to_file_format_str(
            example_gen_pb2.FORMAT_TFRECORDS_GZIP))
        _log_report(report, report_path)


def _settings_from(custom_config_json: Optional[str]) -> Tuple[image_tree.Limits, int]:
    """(limits, read threads) from the component's custom config."""
    if not custom_config_json:
        return image_tree.Limits(), DEFAULT_READ_THREADS
    custom_config = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(custom_config_json, custom_config)
    values = struct_pb2.Struct()
    custom_config.custom_config.Unpack(values)
    threads = int(values[READ_THREADS_KEY]) if READ_THREADS_KEY in values else 0
    return (image_tree.Limits(**{key: int(values[key]) for key in LIMIT_KEYS if key in values}),
            threads or DEFAULT_READ_THREADS)


def _eval_and_total_buckets(output_config: example_gen_pb2.Output) -> Tuple[int, int]:
    buckets = {split.name: split.hash_buckets for split in output_config.split_config.splits}
    if set(buckets) != {image_tree.TRAIN_SPLIT, image_tree.EVAL_SPLIT}:
        raise ValueError(
            f"ImageExampleGen writes the splits 'train' and 'eval'; output_config names {sorted(buckets)}.")
    return buckets[image_tree.EVAL_SPLIT], sum(buckets.values())


def _record_counts(examples_artifact: types.Artifact, report: Dict, quarantine_path: str) -> None:
    """Puts the counts in ML Metadata, where dashboards, the validation gate and the run summary read them."""
    examples_artifact.set_int_custom_property("files_read", report["files_read"])
    examples_artifact.set_int_custom_property("examples_written", report["examples_written"])
    examples_artifact.set_int_custom_property("quarantined", report["quarantined_count"])
    examples_artifact.set_int_custom_property("ignored", report["ignored_count"])
    examples_artifact.set_int_custom_property("duplicate_groups", len(report["duplicate_groups"]))
    examples_artifact.set_int_custom_property("leaks_prevented", report["leaks_prevented"])
    examples_artifact.set_string_custom_property(
        "examples_per_class_and_split", json.dumps(report["examples_per_class_and_split"], ensure_ascii=False))
    examples_artifact.set_string_custom_property(
        "quarantined_by_reason", json.dumps(report["quarantined_by_reason"]))
    examples_artifact.set_string_custom_property("quarantine_manifest", quarantine_path)


def _log_report(report: Dict, report_path: str) -> None:
    logging.info("ImageExampleGen: %d files read, %d examples written, %d quarantined %s, %d ignored; "
                 "%d duplicate groups (%d across train and eval); report: %s",
                 report["files_read"], report["examples_written"], report["quarantined_count"],
                 report["quarantined_by_reason"], report["ignored_count"], len(report["duplicate_groups"]),
                 report["leaks_prevented"], report_path)
    for class_name, per_split in report["examples_per_class_and_split"].items():
        logging.info("  class %r: %s", class_name, per_split)
    for entry in report["quarantined"]:
        logging.warning("  quarantined %s (%s): %s", entry["uri"], entry["reason"], entry["detail"])
    for entry in report["ignored"]:
        logging.info("  ignored %s (%s)", entry["uri"], entry["reason"])
