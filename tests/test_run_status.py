"""How a run ended, as ML Metadata tells it (pipeline/report/store.py), and the run summary built from the same
reader (pipeline/local_runner.py): real LocalDagRunner runs of a two-component pipeline, one of them SIGKILLed
between its two components."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import local_runner
from pipeline.report import run_data, store

REPO = Path(__file__).resolve().parent.parent

PIPELINE_MODULE = '''
import logging, os, signal, sys
from tfx import v1 as tfx

from pipeline import local_runner


@tfx.dsl.components.component
def First() -> tfx.dsl.components.OutputDict(word=str):
    return {"word": "hello"}


@tfx.dsl.components.component
def Second(word: str) -> tfx.dsl.components.OutputDict(length=int):
    return {"length": len(word)}


def two_components(root):
    first = First()
    second = Second(word=first.outputs["word"])
    return tfx.dsl.Pipeline(pipeline_name="two", pipeline_root=os.path.join(root, "pipeline_root"),
                            components=[first, second], enable_cache=False,
                            metadata_connection_config=local_runner.metadata_config(
                                local_runner.WorkdirLayout(root)))


class KillWhenSecondStarts(logging.Handler):
    """SIGKILL as an OOM killer would send it, after First was recorded COMPLETE and before Second's execution
    exists: at LocalDagRunner's "Component Second is running." line."""

    def emit(self, record):
        if record.getMessage() == "Component Second is running.":
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    logging.getLogger().addHandler(KillWhenSecondStarts())
    pipeline = two_components(sys.argv[1])
    local_runner.run_pipeline(pipeline, pipeline.metadata_connection_config)
'''


def kill_between_components(tmp_path) -> Path:
    script = tmp_path / "two_components.py"
    script.write_text(PIPELINE_MODULE)
    workdir = tmp_path / "work"
    result = subprocess.run([sys.executable, str(script), str(workdir)], cwd=REPO, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == -9, result.stderr[-3000:]  # Killed, as planned.
    return workdir


@pytest.mark.slow  # Two real LocalDagRunner runs, one in its own process (about a minute).
def test_a_run_killed_between_two_components_is_not_reported_complete(tmp_path):
    workdir = kill_between_components(tmp_path)
    reader = store.MetadataReader(store.sqlite_config(str(workdir / "metadata.sqlite")))
    killed = reader.run()
    assert {c.name: c.state for c in killed.components} == {"First": "COMPLETE"}
    assert killed.planned == ("First", "Second")
    assert killed.components_not_started == ["Second"]
    assert killed.status == store.RUNNING  # Unfinished, as `imagepipe runs`, the report and the metrics say.

    # The next run completes, and its summary (from the same reader) says what it recovered from.
    sys.path.insert(0, str(tmp_path))
    try:
        import two_components
    finally:
        sys.path.remove(str(tmp_path))
    layout = local_runner.WorkdirLayout(str(workdir))
    run_id = local_runner.run_pipeline(two_components.two_components(str(workdir)), local_runner.metadata_config(layout))
    summary = local_runner.summarize_run(layout, run_id)
    assert summary["status"] == store.COMPLETE and summary["run_id"] == run_id
    assert summary["previous_run"] == {"run_id": killed.run_id, "status": store.RUNNING, "failed": [],
                                       "unfinished": [], "not_started": ["Second"]}
    printed = local_runner.format_summary(summary)
    assert printed.splitlines()[0] == f"Run {run_id}: COMPLETE"
    assert f"previous run {killed.run_id} did not complete: Second never started: its process died" in printed
    json.dumps(summary)  # run_summary.json holds it as is.


def test_the_summary_of_a_push_names_what_the_version_holds_not_what_was_asked(tmp_path):
    version_dir = tmp_path / "serving" / "3"
    (version_dir / "tflite").mkdir(parents=True)
    (version_dir / "saved_model.pb").write_bytes(b"")
    (version_dir / "model_card.md").write_text("card")
    push = {"pushed": True, "already_pushed": False, "version": 3, "destination": str(version_dir)}
    data = {"run": {"run_id": "r", "status": store.COMPLETE}, "components": [],
            "push": {**push, "shipped_files": run_data._shipped_files(str(version_dir))}}
    printed = local_runner.format_summary(local_runner.summary_of(data))
    # Trained with --no-export-tflite (or the TFLite model missed its tolerance): no TFLite beside the model.
    assert printed.splitlines()[-1] == f"Blessed and pushed: {version_dir} (version 3, with model_card.md)"

    (version_dir / "tflite" / "model_float16.tflite").write_bytes(b"tflite")
    data["push"]["shipped_files"] = run_data._shipped_files(str(version_dir))
    assert local_runner.format_summary(local_runner.summary_of(data)).splitlines()[-1].endswith(
        "with model_card.md, tflite/model_float16.tflite)")
