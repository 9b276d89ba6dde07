"""Two spans through the real pipeline (LocalDagRunner) up to the span window: drift of span 2 is computed
against span 1's statistics from the span history (no Resolver), and the window holds both spans' examples.

Only the nodes up to SpanWindow run (ingestion, statistics, schema, ExampleValidator, PreviousSpanStatistics,
the gate, SpanWindow): what Transform and the Trainer do with an Examples artifact is tested elsewhere.
"""
import json
import os

import ml_metadata as mlmd
import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from components.spans import history
from components.spans.executor import SPANS_PROPERTY
from components.validation import gate
from components.validation.executor import RESULT_FILE_NAME
from pipeline.config import PipelineConfig
from pipeline.local_runner import LOCAL_BEAM_ARGS, WorkdirLayout, metadata_config
from pipeline.pipeline import SPAN_WINDOW_ID, create_components
from tests.conftest import COLORS, encode, noisy_color

UP_TO_THE_WINDOW = {"ImageExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator",
                    "PreviousSpanStatistics", "DataValidationGate", SPAN_WINDOW_ID}


def write_span(root, counts, seed):
    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for index in range(count):
            (root / name / f"{index}.png").write_bytes(encode(noisy_color(COLORS[name], rng), "PNG"))


def run_up_to_the_window(config: PipelineConfig, layout: WorkdirLayout) -> None:
    components = [c for c in create_components(config) if c.id in UP_TO_THE_WINDOW]
    assert {c.id for c in components} == UP_TO_THE_WINDOW
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root, components=components,
        enable_cache=True, metadata_connection_config=metadata_config(layout),
        beam_pipeline_args=list(config.beam_pipeline_args)))


def newest_output(layout: WorkdirLayout, type_name: str):
    store = mlmd.MetadataStore(metadata_config(layout))
    return max(store.get_artifacts_by_type(type_name), key=lambda artifact: artifact.id)


def newest_states(layout: WorkdirLayout, node_ids) -> dict:
    """The state of each node's newest execution."""
    store = mlmd.MetadataStore(metadata_config(layout))
    states = {}
    for context in store.get_contexts_by_type("node"):
        node_id = context.name.split(".")[-1]
        if node_id in node_ids:
            newest = max(store.get_executions_by_context(context.id), key=lambda execution: execution.id)
            states[node_id] = mlmd.proto.Execution.State.Name(newest.last_known_state)
    return states


def gate_result(layout: WorkdirLayout) -> dict:
    with open(os.path.join(newest_output(layout, "imagepipe.DataValidationResult").uri, RESULT_FILE_NAME)) as handle:
        return json.load(handle)


def tfrecord_count(pattern: str) -> int:
    return sum(1 for path in tf.io.gfile.glob(pattern)
               for _ in tf.data.TFRecordDataset(path, compression_type="GZIP"))


@pytest.mark.slow
def test_second_span_is_checked_for_drift_against_the_first_and_the_window_holds_both(tmp_path):
    layout = WorkdirLayout(str(tmp_path / "work"))
    names = list(COLORS)
    config = PipelineConfig(
        pipeline_name="span-window-test", pipeline_root=layout.pipeline_root, data_root=str(tmp_path / "images"),
        serving_dir=layout.serving_dir, beam_pipeline_args=LOCAL_BEAM_ARGS, span_folder="span-{SPAN}",
        # Drift only warns here, so span 2 passes the gate and joins the window.
        validation=gate.GateSettings(min_examples_per_class=3, warn_only=frozenset({gate.DRIFT})))
    write_span(tmp_path / "images" / "span-1", dict.fromkeys(names, 12), seed=1)
    run_up_to_the_window(config, layout)
    first_window = newest_output(layout, "Examples")
    assert json.loads(first_window.custom_properties[SPANS_PROPERTY].string_value) == [1]
    result_1 = gate_result(layout)
    assert result_1["drift_baseline"] is None and result_1["passed"]  # The first span: nothing to compare with.

    write_span(tmp_path / "images" / "span-2", {names[0]: 36, names[1]: 6, names[2]: 6}, seed=2)
    run_up_to_the_window(config, layout)
    records = history.read_records(history.history_dir(config.pipeline_root, config.pipeline_name))
    assert sorted(records) == [1, 2]
    result_2 = gate_result(layout)
    # The drift baseline is the copy of span 1's statistics made by PreviousSpanStatistics.
    baseline = newest_output(layout, "ExampleStatistics")
    assert result_2["drift_baseline"] == baseline.uri
    assert baseline.custom_properties["source_uri"].string_value == records[1].statistics_uri
    assert any(w.startswith("drift: feature 'label', split 'train'") and "Linfty" in w for w in result_2["warnings"])

    window = newest_output(layout, "Examples")
    assert json.loads(window.custom_properties[SPANS_PROPERTY].string_value) == [2, 1]
    for split in ("train", "eval"):  # Every example of both spans, each file under its span's name.
        in_spans = sum(tfrecord_count(os.path.join(records[span].examples_uri, f"Split-{split}", "*"))
                       for span in (1, 2))
        assert tfrecord_count(os.path.join(window.uri, f"Split-{split}", "*")) == in_spans > 0
        assert {os.path.basename(p).split("-")[1] for p in tf.io.gfile.glob(
            os.path.join(window.uri, f"Split-{split}", "*"))} == {"1", "2"}
    counts = json.loads(window.custom_properties["examples_per_class_and_split"].string_value)
    assert sum(sum(by_split.values()) for by_split in counts.values()) == 36 + 12 + 6 + 6 + 12 + 12

    # The same data again: span 2's own record (written by the last run) does not change the span components'
    # cache key, so they and everything after them stay cached.
    run_up_to_the_window(config, layout)
    assert newest_states(layout, {"PreviousSpanStatistics", "DataValidationGate", SPAN_WINDOW_ID}) == {
        "PreviousSpanStatistics": "CACHED", "DataValidationGate": "CACHED", SPAN_WINDOW_ID: "CACHED"}
