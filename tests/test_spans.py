"""The span history and the two span components' executors (components/spans), on hand-built records and
artifacts in temporary folders, and on gs:// against the GCS emulator: real executors, real files."""
import json
import logging

import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from components.spans import executor, history
from components.validation.component import DataValidationResult

SPLITS = ("train", "eval")


def _record(span, root="/data", **values):
    return history.SpanRecord(span=span, examples_uri=f"{root}/examples/{span}",
                              statistics_uri=f"{root}/statistics/{span}", **values)


def test_a_record_round_trips_and_a_rerun_of_the_span_replaces_it(tmp_path):
    directory = str(tmp_path / "history")
    history.write_record(directory, _record(1, input_fingerprint="first"))
    history.write_record(directory, _record(1, input_fingerprint="again",
                                            examples_per_class_and_split={"red": {"train": 3}}))
    history.write_record(directory, _record(2))
    records = history.read_records(directory)
    assert sorted(records) == [1, 2]
    assert records[1].input_fingerprint == "again" and records[1].examples_per_class_and_split == {"red": {"train": 3}}
    assert records[1].split_names == SPLITS
    assert sorted(p.name for p in (tmp_path / "history").iterdir()) == ["span-1.json", "span-2.json"]  # No temp left.


def test_an_unreadable_or_misnamed_record_is_skipped_with_a_warning(tmp_path, caplog):
    directory = tmp_path / "history"
    history.write_record(str(directory), _record(1))
    (directory / "span-2.json").write_text("{not json")
    (directory / "span-3.json").write_text(_record(4).to_json())
    (directory / "notes.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING):
        assert sorted(history.read_records(str(directory))) == [1]
    assert "span-2.json" in caplog.text and "records span 4" in caplog.text


def test_no_history_folder_is_an_empty_history(tmp_path):
    assert history.read_records(str(tmp_path / "absent")) == {}


def test_the_drift_baseline_is_the_newest_earlier_span_never_the_same_one():
    records = {span: _record(span) for span in (1, 2, 5)}
    assert history.previous_record(records, 5).span == 2  # A re-run of span 5 is not compared with itself.
    assert history.previous_record(records, 6).span == 5
    assert history.previous_record(records, 2).span == 1
    assert history.previous_record(records, 1) is None  # The first span has nothing to compare with.


@pytest.mark.parametrize("window, expected", [(None, [7, 5, 2, 1]), (1, [7]), (2, [7, 5]), (3, [7, 5, 2]),
                                              (10, [7, 5, 2, 1])])
def test_the_window_is_the_current_span_and_the_newest_earlier_ones(window, expected):
    records = {span: _record(span) for span in (1, 2, 5, 9)}  # 9: a later span (recorded by another run).
    current = _record(7)
    assert [r.span for r in history.window_records(records, current, window)] == expected


def test_the_cache_fingerprint_ignores_the_current_spans_own_record(tmp_path):
    directory = str(tmp_path / "history")
    history.write_record(directory, _record(1))
    before = history.fingerprint_before(directory, 2)
    history.write_record(directory, _record(2))  # The run of span 2 records itself: a re-run stays cached.
    assert history.fingerprint_before(directory, 2) == before
    history.write_record(directory, _record(1, input_fingerprint="re-ingested"))
    assert history.fingerprint_before(directory, 2) != before  # An earlier span changed: the window changes.


def test_the_history_lives_under_the_pipeline_root_keeping_a_uri_scheme():
    assert history.history_dir("gs://bucket/root/", "imagepipe") == "gs://bucket/root/span_history/imagepipe"


# The executors, on artifacts laid out as ImageExampleGen and StatisticsGen lay them out.

def _examples(root, span, counts=None):
    examples = standard_artifacts.Examples()
    examples.uri = f"{root}/ImageExampleGen/examples/{span}"
    examples.span = span
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    examples.set_string_custom_property("file_format", "tfrecords_gzip")
    examples.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")
    examples.set_string_custom_property("examples_per_class_and_split", json.dumps(counts or {}))
    for split in SPLITS:
        tf.io.gfile.makedirs(f"{examples.uri}/Split-{split}")
        with tf.io.gfile.GFile(f"{examples.uri}/Split-{split}/data_tfrecord-00000-of-00001.gz", "w") as handle:
            handle.write(f"span {span} {split}")
    return examples


def _statistics(root, span):
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = f"{root}/StatisticsGen/statistics/{span}"
    statistics.span = span
    statistics.split_names = artifact_utils.encode_split_names(list(SPLITS))
    for split in SPLITS:
        tf.io.gfile.makedirs(f"{statistics.uri}/Split-{split}")
        with tf.io.gfile.GFile(f"{statistics.uri}/Split-{split}/FeatureStats.pb", "w") as handle:
            handle.write(f"statistics of span {span} {split}")
    return statistics


def _passed_gate(root, span):
    result = DataValidationResult()
    result.uri = f"{root}/DataValidationGate/result/{span}"
    result.set_int_custom_property("passed", 1)
    return result


def _run_window(root, span, window, counts=None):
    examples, statistics = _examples(root, span, counts), _statistics(root, span)
    output = standard_artifacts.Examples()
    output.uri = f"{root}/SpanWindow/window_examples/{span}"
    executor.SpanWindowExecutor().Do(
        {executor.EXAMPLES_KEY: [examples], executor.STATISTICS_KEY: [statistics],
         executor.VALIDATION_RESULT_KEY: [_passed_gate(root, span)]},
        {executor.WINDOW_EXAMPLES_KEY: [output]},
        {executor.HISTORY_DIR_KEY: f"{root}/span_history/p", executor.SPAN_WINDOW_KEY: window or 0})
    return output


def _run_previous(root, span):
    output = standard_artifacts.ExampleStatistics()
    output.uri = f"{root}/PreviousSpanStatistics/previous_statistics/{span}"
    executor.PreviousStatisticsExecutor().Do(
        {executor.STATISTICS_KEY: [_statistics(root, span)]}, {executor.PREVIOUS_STATISTICS_KEY: [output]},
        {executor.HISTORY_DIR_KEY: f"{root}/span_history/p"})
    return output


def _window_files(output):
    return {split: sorted(tf.io.gfile.listdir(f"{output.uri}/Split-{split}")) for split in SPLITS}


def _read(path):
    with tf.io.gfile.GFile(path, "r") as handle:
        return handle.read()


def _check_three_spans(root):
    """Shared by the local and the gs:// runs: spans 1, 2, 3 validated in turn, window 2 then all."""
    assert _run_previous(root, 1).get_int_custom_property(executor.FOUND_PROPERTY) == 0  # First span.
    first = _run_window(root, 1, None, {"red": {"train": 4, "eval": 1}})
    assert json.loads(first.get_string_custom_property(executor.SPANS_PROPERTY)) == [1]

    previous = _run_previous(root, 2)
    assert previous.get_int_custom_property(executor.FOUND_PROPERTY) == 1 and previous.span == 1
    assert _read(f"{previous.uri}/Split-train/FeatureStats.pb") == "statistics of span 1 train"
    _run_window(root, 2, None, {"red": {"train": 2}, "blue": {"eval": 3}})

    window = _run_window(root, 3, 2, {"red": {"train": 1}})
    assert json.loads(window.get_string_custom_property(executor.SPANS_PROPERTY)) == [3, 2]
    assert window.span == 3 and artifact_utils.decode_split_names(window.split_names) == list(SPLITS)
    assert window.get_string_custom_property("file_format") == "tfrecords_gzip"
    assert _window_files(window) == {split: [f"span-{s}-data_tfrecord-00000-of-00001.gz" for s in (2, 3)]
                                     for split in SPLITS}
    assert _read(f"{window.uri}/Split-eval/span-2-data_tfrecord-00000-of-00001.gz") == "span 2 eval"
    assert json.loads(window.get_string_custom_property("examples_per_class_and_split")) == {
        "red": {"train": 3}, "blue": {"eval": 3}}
    everything = _run_window(root, 3, None, {"red": {"train": 1}})
    assert json.loads(everything.get_string_custom_property(executor.SPANS_PROPERTY)) == [3, 2, 1]
    assert _run_previous(root, 3).span == 2


def test_window_and_drift_baseline_over_three_validated_spans(tmp_path):
    _check_three_spans(str(tmp_path))


@pytest.mark.slow  # About 30 s: each gfile call on gs:// is a request through the emulator's route.
def test_window_and_drift_baseline_on_a_bucket(gcs_emulator):
    _check_three_spans(f"gs://{gcs_emulator.new_bucket()}/root")


def test_an_earlier_span_whose_examples_were_deleted_is_skipped_with_a_warning(tmp_path, caplog):
    root = str(tmp_path)
    for span in (1, 2):
        _run_window(root, span, None)
    tf.io.gfile.rmtree(f"{root}/ImageExampleGen/examples/1")
    tf.io.gfile.rmtree(f"{root}/StatisticsGen/statistics/2")
    with caplog.at_level(logging.WARNING):
        window = _run_window(root, 3, None)
        previous = _run_previous(root, 3)
    assert json.loads(window.get_string_custom_property(executor.SPANS_PROPERTY)) == [3, 2]
    assert "span 1's artifact" in caplog.text
    # Span 2's statistics are gone: the drift baseline is the newest earlier span that still has them.
    assert previous.span == 1 and "span 2's artifact" in caplog.text


def test_a_failed_gate_result_is_never_recorded(tmp_path):
    root = str(tmp_path)
    failed = _passed_gate(root, 1)
    failed.set_int_custom_property("passed", 0)
    output = standard_artifacts.Examples()
    output.uri = f"{root}/window"
    with pytest.raises(ValueError, match="did not pass"):
        executor.SpanWindowExecutor().Do(
            {executor.EXAMPLES_KEY: [_examples(root, 1)], executor.STATISTICS_KEY: [_statistics(root, 1)],
             executor.VALIDATION_RESULT_KEY: [failed]},
            {executor.WINDOW_EXAMPLES_KEY: [output]}, {executor.HISTORY_DIR_KEY: f"{root}/history"})
    assert history.read_records(f"{root}/history") == {}


def test_a_local_window_links_the_files_instead_of_copying_them(tmp_path):
    root = str(tmp_path)
    window = _run_window(root, 1, None)
    source = tmp_path / "ImageExampleGen/examples/1/Split-train/data_tfrecord-00000-of-00001.gz"
    linked = tmp_path / "SpanWindow/window_examples/1/Split-train/span-1-data_tfrecord-00000-of-00001.gz"
    assert window.uri and linked.stat().st_ino == source.stat().st_ino


# The setting, from the command line to the component.

def test_span_window_reaches_the_window_component_and_zero_is_refused(tmp_path):
    from pipeline.cli import build_parser
    from pipeline.config import PipelineConfig
    from pipeline.pipeline import PREVIOUS_SPAN_STATISTICS_ID, SPAN_WINDOW_ID, create_components

    args = build_parser().parse_args(["run", "--data", str(tmp_path), "--span-window", "2"])
    config = PipelineConfig(pipeline_name="p", pipeline_root=str(tmp_path / "root"), data_root=str(tmp_path),
                            serving_dir=str(tmp_path / "serving"), span_window=args.span_window)
    by_id = {component.id: component for component in create_components(config)}
    assert by_id[SPAN_WINDOW_ID].exec_properties[executor.SPAN_WINDOW_KEY] == 2
    assert by_id["Transform"].inputs["examples"] is by_id[SPAN_WINDOW_ID].outputs[executor.WINDOW_EXAMPLES_KEY]
    assert by_id["DataValidationGate"].inputs["previous_statistics"] is \
        by_id[PREVIOUS_SPAN_STATISTICS_ID].outputs[executor.PREVIOUS_STATISTICS_KEY]
    assert build_parser().parse_args(["run", "--data", "x"]).span_window is None  # Default: every span.
    with pytest.raises(ValueError, match="span_window must be at least 1"):
        PipelineConfig(pipeline_name="p", pipeline_root="r", data_root="d", serving_dir="s", span_window=0)
