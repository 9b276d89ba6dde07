"""The real pipeline (LocalDagRunner) stops at the validation gate, before Transform, naming each anomaly."""
import ml_metadata as mlmd
import numpy as np
import pytest
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx.utils import io_utils

from components.validation import gate, schema_file
from pipeline.config import PipelineConfig
from pipeline.local_runner import LOCAL_BEAM_ARGS, WorkdirLayout, metadata_config
from pipeline.pipeline import create_pipeline
from tests.conftest import COLORS, encode, noisy_color, write_color_tree
from tests.test_span_window_pipeline import run_up_to_the_window, write_span
from tests.test_validation_gate import SCHEMA_DIR


def _schema_with_classes_and_a_camera_feature(schema_dir) -> str:
    """The committed schema, pinned to the test tree's classes and requiring a feature ingestion never writes."""
    schema = gate.with_label_domain(schema_file.read_schema(SCHEMA_DIR), list(COLORS))
    camera = schema.feature.add(name="camera_id", type=schema_pb2.INT)
    camera.presence.min_fraction = 1.0
    io_utils.write_pbtxt_file(str(schema_dir / schema_file.SCHEMA_FILE_NAME), schema)
    return str(schema_dir)


def _executions_by_node(layout: WorkdirLayout):
    store = mlmd.MetadataStore(metadata_config(layout))
    states = {}
    for context in store.get_contexts_by_type("node"):
        for execution in store.get_executions_by_context(context.id):
            states[context.name.split(".")[-1]] = mlmd.proto.Execution.State.Name(execution.last_known_state)
    return states


@pytest.mark.slow
def test_unknown_label_and_missing_feature_stop_the_run_before_transform(tmp_path):
    tree = write_color_tree(tmp_path / "images", per_class=12)
    rng = np.random.default_rng(5)
    (tree / "purple").mkdir()
    for index in range(12):  # A class folder the schema does not know.
        (tree / "purple" / f"p{index}.png").write_bytes(encode(noisy_color((150, 0, 150), rng), "PNG"))
    (tmp_path / "schema").mkdir()
    layout = WorkdirLayout(str(tmp_path / "work"))
    config = PipelineConfig(
        pipeline_name="gate-test", pipeline_root=layout.pipeline_root, data_root=str(tree),
        serving_dir=layout.serving_dir, schema_dir=_schema_with_classes_and_a_camera_feature(tmp_path / "schema"),
        beam_pipeline_args=LOCAL_BEAM_ARGS, validation=gate.GateSettings(min_examples_per_class=5))

    with pytest.raises(Exception) as failure:
        tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata_config(layout)))
    message = str(failure.value)
    assert "unknown_label" in message and "purple" in message
    assert "missing_feature" in message and "camera_id" in message
    states = _executions_by_node(layout)
    assert states["ImageExampleGen"] == "COMPLETE" and states["ExampleValidator"] == "COMPLETE"
    assert states["PreviousSpanStatistics"] == "COMPLETE"  # Nothing earlier: no drift check, no error.
    assert states["DataValidationGate"] == "FAILED"
    # A span that failed validation is not recorded in the span history, nor analyzed or trained on.
    assert "SpanWindow" not in states and "Transform" not in states and "Trainer" not in states


@pytest.mark.slow
def test_label_drift_between_spans_is_named_by_the_gate(tmp_path):
    # The first span passes the gate and is recorded in the span history (only the nodes up to the span
    # window run: no model is trained); the second stops at the gate on drift against it.
    layout = WorkdirLayout(str(tmp_path / "work"))
    config = PipelineConfig(
        pipeline_name="drift-test", pipeline_root=layout.pipeline_root, data_root=str(tmp_path / "images"),
        serving_dir=layout.serving_dir, beam_pipeline_args=LOCAL_BEAM_ARGS,
        span_folder="span-{SPAN}", validation=gate.GateSettings(min_examples_per_class=3))
    names = list(COLORS)
    write_span(tmp_path / "images" / "span-1", dict.fromkeys(names, 12), seed=1)
    run_up_to_the_window(config, layout)

    write_span(tmp_path / "images" / "span-2", {names[0]: 36, names[1]: 6, names[2]: 6}, seed=2)
    with pytest.raises(Exception) as second:
        run_up_to_the_window(config, layout)
    message = str(second.value)
    assert "drift: feature 'label', split 'train'" in message and "Linfty" in message

    # The run report of the failed run: the gate kept no result, yet its drift baseline and distances show.
    from pipeline.report import run_data, writer
    from pipeline.report.store import MetadataReader, sqlite_config

    reader = MetadataReader(sqlite_config(layout.metadata_path))
    published = writer.publish_run(reader, report_dir=layout.reports_dir, failure=message)
    validation = run_data.gather(reader)["validation"]
    assert validation["gate_state"] == "FAILED" and validation["gate"] is None and validation["drift_baseline"]
    [label] = [m for m in validation["drift_measurements"] if m["feature"] == "label"]
    assert label["exceeds"] and label["value"] > label["threshold"] == 0.2
    with open(published.report_path, encoding="utf-8") as handle:
        page = handle.read()
    assert "<b>Failed:</b> DataValidationGate" in page and "Data validation failed before Transform" in page
