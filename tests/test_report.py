"""Run report, runs list and Prometheus metrics on hand-made inputs (fast). The same code on a real pipeline run:
tests/test_pipeline_e2e.py; the page in a real browser: tests/test_report_browser.py."""
import base64
import http.server
import os
import re
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.cli import main
from pipeline.report import html_page, plots, prometheus, runs
from pipeline.report.store import MetadataReader, grpc_config, sqlite_config
from tests import report_fixtures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def render(data) -> str:
    return html_page.render(data, plots.all_plots(data))


def embedded_images(page: str):
    return [base64.b64decode(data) for data in re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)]


def samples(text: str):
    """{(metric name, frozenset of labels): value} of a Prometheus text exposition."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_every_plot_is_a_png_and_the_page_embeds_them_all():
    data = report_fixtures.run_data()
    pictures = plots.all_plots(data)
    assert set(pictures) == {"timeline", "class_counts", "training_curves", "confusion_matrix", "calibration"}
    assert all(png.startswith(PNG_MAGIC) for png in pictures.values())
    page = html_page.render(data, pictures)
    assert sorted(embedded_images(page)) == sorted(pictures.values())


def test_page_is_self_contained():
    page = render(report_fixtures.run_data())
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the page must not load anything from a network"
    assert "<script" not in page and "@import" not in page and "url(" not in page
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', page))


def test_page_has_every_section_in_order():
    page = render(report_fixtures.run_data())
    positions = [page.index(f'<section id="{section_id}">') for section_id, _ in html_page.SECTIONS]
    assert positions == sorted(positions)


def test_values_from_the_run_are_escaped():
    page = render(report_fixtures.run_data())
    assert "<b>blue</b>" not in page
    assert "&lt;b&gt;blue&lt;/b&gt; sky" in page


def test_page_names_quarantined_files_reasons_anomalies_and_drift():
    page = render(report_fixtures.run_data())
    for text in ("undecodable", "/data/red apple/truncated.jpg", "duplicate", "/data/grün/copy of 1.png",
                 "ENUM_TYPE_UNEXPECTED_STRING_VALUES", "L-infinity distance 0.31", "/runs/statistics/0"):
        assert html_page._e(text) in page, text


def test_page_gives_the_blessing_decision_with_reasons_and_per_class_metrics():
    page = render(report_fixtures.run_data())
    assert "not blessed" in page
    assert "below the floor 0.7000 by 0.2000" in page
    assert re.search(r"<td[^>]*>grün</td><td[^>]*>6</td><td[^>]*>1</td><td[^>]*>0.5</td><td[^>]*>0.9</td>"
                     r"<td[^>]*>1.25</td>", page)  # calibration of class id 1 shown under its name
    assert "calibration@class_id" not in page
    assert "0.0812" in page  # expected calibration error
    assert "reused from run <code>2026-01-01T00:00:00.000001</code>" in page  # cached examples in the lineage


def test_page_of_a_failed_run_without_later_sections_still_renders():
    data = report_fixtures.run_data()
    data["run"]["status"] = "FAILED"
    data.update(training=None, evaluation=None, push=None)
    page = render(data)
    assert "The Trainer did not produce a model in this run." in page
    assert "The Evaluator did not run." in page
    assert len(embedded_images(page)) == 2  # timeline and class counts


def test_metrics_parse_with_prometheus_clients_parser_and_carry_the_runs_figures():
    data = report_fixtures.run_data()
    parsed = samples(prometheus.generate_text(prometheus.registry_for_run(data)))
    pipeline = ("pipeline", "unit-test")
    assert parsed[("imagepipe_eval_accuracy", frozenset({pipeline}))] == 0.8333
    assert parsed[("imagepipe_model_blessed", frozenset({pipeline}))] == 0
    assert parsed[("imagepipe_model_pushed", frozenset({pipeline}))] == 0
    assert parsed[("imagepipe_files_quarantined_by_reason", frozenset({pipeline, ("reason", "undecodable")}))] == 2
    assert parsed[("imagepipe_examples_ingested", frozenset({pipeline, ("split", "eval")}))] == 18
    assert parsed[("imagepipe_data_anomalies", frozenset({pipeline, ("source", "tfdv"), ("split", "eval")}))] == 1
    assert parsed[("imagepipe_data_drift_findings", frozenset({pipeline}))] == 1
    assert parsed[("imagepipe_component_duration_seconds",
                   frozenset({pipeline, ("component", "Trainer"), ("state", "COMPLETE")}))] == 250.0
    assert not any(name == "imagepipe_pushed_model_version" for name, _ in parsed)


def test_metrics_file_is_written_in_text_format(tmp_path):
    data = report_fixtures.run_data()
    path = prometheus.write_metrics_file(prometheus.registry_for_run(data), str(tmp_path / "sub" / "metrics.prom"))
    parsed = samples(open(path).read())
    assert parsed[("imagepipe_run_duration_seconds", frozenset({("pipeline", "unit-test")}))] == 300.0


class _RecordingGateway(http.server.BaseHTTPRequestHandler):
    """A stand-in Pushgateway on loopback: records each request's method, path and body; like the real one,
    it answers 404 outside /metrics/job/."""

    received = []

    def do_PUT(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(("PUT", self.path, self.headers["Content-Type"], body.decode()))
        self.send_response(200 if self.path.startswith("/metrics/job/") else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def pushgateway():
    _RecordingGateway.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _RecordingGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _RecordingGateway.received
    server.shutdown()
    server.server_close()


def test_metrics_are_pushed_to_the_pushgateway_group_of_the_pipeline(pushgateway):
    url, received = pushgateway
    data = report_fixtures.run_data()
    prometheus.push_metrics(prometheus.registry_for_run(data), url, "unit-test")
    [(method, path, content_type, body)] = received
    assert (method, path) == ("PUT", "/metrics/job/imagepipe/pipeline/unit-test")
    assert content_type.startswith("text/plain")
    assert samples(body)[("imagepipe_eval_accuracy", frozenset({("pipeline", "unit-test")}))] == 0.8333


def test_pushgateway_errors_are_raised(pushgateway):
    url, _ = pushgateway
    with pytest.raises(OSError):
        prometheus.push_metrics(prometheus.registry_for_run(report_fixtures.run_data()), url + "/no/such/prefix/",
                                "unit-test", timeout_s=5)


@pytest.mark.parametrize("kubeflow", [False, True], ids=["local-tfx", "kubeflow-v2"])
def test_store_reads_runs_newest_first_with_status_and_figures(tmp_path, kubeflow):
    path = str(tmp_path / "metadata.sqlite")
    first, second = report_fixtures.write_two_runs(path, kubeflow=kubeflow)
    rows = runs.list_runs(MetadataReader(sqlite_config(path)))
    assert [(row["run_id"], row["status"], row["accuracy"], row["blessed"], row["pushed_version"]) for row in rows] == [
        (second, "FAILED", None, None, None), (first, "COMPLETE", 0.9167, True, "1")]
    newest = MetadataReader(sqlite_config(path)).run()
    assert [(c.name, c.state) for c in newest.components] == [("ImageExampleGen", "CACHED"), ("Trainer", "FAILED")]
    assert newest.first_output_of_type("Examples").properties["examples_written"] == 60


def test_lineage_names_the_run_that_produced_a_cached_artifact(tmp_path):
    from pipeline.report import run_data

    path = str(tmp_path / "metadata.sqlite")
    first, second = report_fixtures.write_two_runs(path)
    reader = MetadataReader(sqlite_config(path))
    examples = reader.run(second).first_output_of_type("Examples")
    assert reader.producing_run(examples.id) == first
    lineage = run_data.lineage_section(reader.run(first), reader)
    assert lineage["model"]["uri"] == "/runs/model/3" and lineage["examples"]["uri"] == "/runs/examples/1"


def test_runs_command_lists_newest_first(tmp_path, capsys):
    first, second = report_fixtures.write_two_runs(str(tmp_path / "metadata.sqlite"))
    assert main(["runs", "--workdir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == [second, "unit-test"] and "FAILED" in lines[1]
    assert lines[2].split()[0] == first and lines[2].split()[-3:] == ["0.9167", "yes", "1"]


def test_report_command_refuses_an_unknown_run_and_a_missing_store(tmp_path, capsys):
    report_fixtures.write_two_runs(str(tmp_path / "metadata.sqlite"))
    assert main(["report", "--workdir", str(tmp_path), "--run-id", "no-such-run"]) == 2
    assert "No run 'no-such-run'" in capsys.readouterr().err
    assert main(["runs", "--workdir", str(tmp_path / "empty")]) == 2
    assert "No metadata store" in capsys.readouterr().err


def test_metadata_grpc_address_is_checked():
    assert grpc_config("localhost:8080").port == 8080
    with pytest.raises(ValueError, match="HOST:PORT"):
        grpc_config("localhost")


def test_drift_distances_against_the_schemas_comparators():
    """Real TFDV on statistics of two label distributions, with the committed schema's drift comparators."""
    from pathlib import Path

    import pandas as pd
    import tensorflow_data_validation as tfdv
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from pipeline.report import run_data

    schema = text_format.Parse((Path(__file__).parent.parent / "schemas" / "schema.pbtxt").read_text(),
                               schema_pb2.Schema())
    previous = tfdv.generate_statistics_from_dataframe(pd.DataFrame({"label": ["cat"] * 50 + ["dog"] * 50}))
    similar = tfdv.generate_statistics_from_dataframe(pd.DataFrame({"label": ["cat"] * 48 + ["dog"] * 52}))
    shifted = tfdv.generate_statistics_from_dataframe(pd.DataFrame({"label": ["cat"] * 90 + ["dog"] * 10}))

    [within] = run_data.drift_measurements(similar, previous, schema)
    [beyond] = run_data.drift_measurements(shifted, previous, schema)
    assert (within["feature"], within["measure"], within["threshold"]) == ("label", "L_INFTY", 0.2)
    assert within["value"] == pytest.approx(0.02) and not within["exceeds"]
    assert beyond["value"] == pytest.approx(0.4) and beyond["exceeds"]


def test_page_tables_drift_distances_with_thresholds():
    page = render(report_fixtures.run_data())
    assert re.search(r"<td[^>]*>label</td><td[^>]*>L_INFTY</td><td[^>]*>0.31</td><td[^>]*>0.2</td>"
                     r"<td[^>]*><span class=\"badge bad\">drift</span>", page)


def test_lineage_baseline_is_found_when_it_is_the_candidate_itself(tmp_path):
    """A cached Trainer's model is its own baseline: ML Metadata records one input event for both, and the
    baseline is known from the id TFX's Evaluator puts on the blessing."""
    from pipeline.report import run_data

    builder = report_fixtures.StoreBuilder(str(tmp_path / "metadata.sqlite"))
    model = builder.artifact("Model", "/runs/model/3")
    builder.execution("run-1", "Trainer", outputs={"model": [model], "model_run": [builder.artifact("ModelRun", "/r")]})
    blessing = builder.artifact("ModelBlessing", "/runs/blessing/4", blessed=1, baseline_model_id=model.id)
    builder.execution("run-1", "Evaluator", inputs={"model": [model]}, outputs={"blessing": [blessing]})
    reader = MetadataReader(sqlite_config(str(tmp_path / "metadata.sqlite")))
    assert run_data.lineage_section(reader.run(), reader)["baseline_model"]["uri"] == "/runs/model/3"


def test_a_model_already_served_is_not_counted_as_a_new_push(tmp_path):
    data = report_fixtures.run_data()
    data["push"] = {"pushed": True, "already_pushed": True, "version": 3, "destination": "/serving/3",
                    "method": "already-pushed"}
    assert "an earlier run pushed this same model; nothing new was pushed" in render(data)
    parsed = samples(prometheus.generate_text(prometheus.registry_for_run(data)))
    assert parsed[("imagepipe_model_pushed", frozenset({("pipeline", "unit-test")}))] == 0
    assert parsed[("imagepipe_pushed_model_version", frozenset({("pipeline", "unit-test")}))] == 3


def test_report_after_a_run_waits_for_no_one_when_the_next_run_holds_the_workdir(tmp_path, capsys):
    from pipeline.commands import _publish_after_run
    from pipeline.local_runner import WorkdirLayout
    from pipeline.workdir_lock import workdir_lock

    layout = WorkdirLayout(str(tmp_path))
    report_fixtures.write_two_runs(layout.metadata_path)
    with workdir_lock(layout.lock_path):  # The next run, queued with --wait, has started.
        _publish_after_run(layout, None)
    assert "the next run has started" in capsys.readouterr().err
    assert not os.path.exists(layout.reports_dir) and not os.path.exists(layout.metrics_path)
    _publish_after_run(layout, None)
    assert "Run report: " in capsys.readouterr().out and os.path.exists(layout.metrics_path)


def test_a_failed_run_names_the_failed_component_and_its_error():
    data = report_fixtures.run_data()
    data["components"][1]["state"] = "FAILED"
    data["run"].update(status="FAILED", failure="DataValidationError: drift: feature 'label' <train>")
    page = render(data)
    assert "<b>Failed:</b> DataValidationGate" in page
    assert "<pre class='failure'>DataValidationError: drift: feature &#x27;label&#x27; &lt;train&gt;</pre>" in page


def test_a_gate_that_failed_the_run_still_names_its_drift_baseline(tmp_path):
    """TFX removes a failed execution's outputs, so the baseline is chosen as the gate's executor does: the
    newest statistics of an earlier span among its previous_statistics input (which holds the current one too)."""
    from pipeline.report import run_data

    builder = report_fixtures.StoreBuilder(str(tmp_path / "metadata.sqlite"))
    span1 = builder.artifact("ExampleStatistics", "/runs/statistics/span1", span=1)
    span1_rerun = builder.artifact("ExampleStatistics", "/runs/statistics/span1-again", span=1)
    span2 = builder.artifact("ExampleStatistics", "/runs/statistics/span2", span=2)
    schema = builder.artifact("Schema", "/runs/schema")
    builder.execution("run-3", "DataValidationGate", state="FAILED", inputs={
        "statistics": [span2], "schema": [schema], "previous_statistics": [span1, span1_rerun, span2]})
    section = run_data.validation_section(MetadataReader(sqlite_config(str(tmp_path / "metadata.sqlite"))).run())
    assert section["gate_state"] == "FAILED" and section["gate"] is None
    assert section["drift_baseline"] == "/runs/statistics/span1-again"
