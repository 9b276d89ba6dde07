"""Drift and the span window in the compiled pipeline, executed as the open-source KFP v2 backend executes it
(tests/kfp_v2_launcher.py: each task the container command of the compiled spec, no TFX driver, no Resolver),
on a local pipeline root, after a new span landed. The three full runs on gs:// are in tests/test_kfp_e2e.py;
the span executors on gs:// are in tests/test_spans.py."""
import json
from pathlib import Path

import pytest

from components.spans import history
from components.spans.executor import FOUND_PROPERTY, PREVIOUS_STATISTICS_KEY, SPANS_PROPERTY, WINDOW_EXAMPLES_KEY
from components.validation import gate
from pipeline.config import PipelineConfig
from pipeline.local_runner import LOCAL_BEAM_ARGS, WorkdirLayout
from pipeline.pipeline import PREVIOUS_SPAN_STATISTICS_ID, SPAN_WINDOW_ID
from tests import kfp_v2_launcher
from tests.conftest import write_color_tree
from tests.test_kfp_launcher import PIPELINE_NAME, compile_for
from tests.test_span_window_pipeline import run_up_to_the_window


def _tfrecord_files(uri: str, split: str):
    return sorted(path.name for path in (Path(uri) / f"Split-{split}").iterdir())


@pytest.mark.slow
def test_a_new_span_is_compared_with_the_previous_one_and_trained_on_with_it(tmp_path):
    """Span 1 is validated by a local run (LocalDagRunner, in process: the history's format is the same for both
    orchestrators, and it spares six task processes); span 2 lands and the compiled pipeline runs under the
    stand-in up to Transform. Two KFP runs in a row are in tests/test_kfp_e2e.py."""
    data, root = tmp_path / "images", tmp_path / "root"
    write_color_tree(data / "span-1", per_class=4, seed=1)
    job = compile_for(tmp_path, str(data), str(root), str(tmp_path / "serving"), "--span-folder", "span-{SPAN}",
                      "--warn-on", "drift")
    assert not [label for label, executor in job["pipelineSpec"]["deploymentSpec"]["executors"].items()
                if "resolver" in executor], "no resolver: KFP OSS refuses them"
    layout = WorkdirLayout(str(tmp_path / "local"))
    run_up_to_the_window(PipelineConfig(
        pipeline_name=PIPELINE_NAME, pipeline_root=str(root), data_root=str(data), serving_dir=layout.serving_dir,
        beam_pipeline_args=LOCAL_BEAM_ARGS, span_folder="span-{SPAN}",
        validation=gate.GateSettings(min_examples_per_class=3)), layout)
    directory = history.history_dir(str(root), PIPELINE_NAME)
    span_1 = history.read_records(directory)[1]

    write_color_tree(data / "span-2", per_class=4, seed=2)
    result = kfp_v2_launcher.run_pipeline_job(job, tmp_path / "scratch", stop_before="Transform")
    previous = result.tasks[PREVIOUS_SPAN_STATISTICS_ID].outputs[PREVIOUS_STATISTICS_KEY]
    assert previous["metadata"][FOUND_PROPERTY] == 1 and previous["metadata"]["source_uri"] == span_1.statistics_uri
    assert (Path(previous["uri"]) / "Split-train" / "FeatureStats.pb").read_bytes() == \
        (Path(span_1.statistics_uri) / "Split-train" / "FeatureStats.pb").read_bytes()
    gate_result = json.loads((Path(result.output_uri("DataValidationGate", "result")) /
                              "validation_result.json").read_text())
    assert gate_result["passed"] and gate_result["drift_baseline"] == previous["uri"]
    # The KFP task recorded span 2, with its outputs in KFP's layout.
    span_2 = history.read_records(directory)[2]
    assert span_2.examples_uri == result.output_uri("ImageExampleGen", "examples")
    assert span_2.statistics_uri == result.output_uri("StatisticsGen", "statistics")

    window = result.tasks[SPAN_WINDOW_ID].outputs[WINDOW_EXAMPLES_KEY]
    assert json.loads(window["metadata"][SPANS_PROPERTY]) == [2, 1] and window["metadata"]["span"] == 2
    for split in ("train", "eval"):
        expected = [f"span-{record.span}-{name}" for record in (span_1, span_2)
                    for name in _tfrecord_files(record.examples_uri, split)]
        assert _tfrecord_files(window["uri"], split) == sorted(expected)
