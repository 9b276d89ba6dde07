"""The data-quality findings in the run report, `imagepipe suspects` and the metrics, read from a quality artifact
written with the stage's own file functions (components/quality/findings.py)."""
import json
import re

import pytest

from components.quality import findings
from pipeline.report import html_page, quality
from pipeline.report.store import ArtifactRecord, ComponentRecord, RunRecord
from tests.conftest import encode
from tests.test_quality import photo

SUSPECT = {"index": 3, "source_uri": "/data/<b>cat</b>/7.png", "split": "train", "given_class": "<b>cat</b>",
           "suggested_class": "dog", "score": 0.91, "excluded": False, "thumbnail": "thumbnails/3.png"}
GROUP = {"group": 0, "kinds": ["leak", "redundant"], "dropped": ["/data/dog/copy.jpg"], "members": [
    {"index": 5, "source_uri": "/data/dog/1.png", "split": "train", "label": "dog", "sha256": "a" * 64,
     "feature_similarity": 1.0, "perceptual_similarity": 1.0, "thumbnail": "thumbnails/5.png"},
    {"index": 9, "source_uri": "/data/dog/copy.jpg", "split": "eval", "label": "dog", "sha256": "b" * 64,
     "feature_similarity": 0.995, "perceptual_similarity": 0.999, "thumbnail": "thumbnails/9.png"}]}
OUTLIER = {"index": 11, "source_uri": "/data/dog/screenshot.png", "split": "eval", "given_class": "dog",
           "nearest_class": "dog", "score": 9.5, "reasons": ["atypical_pixels"]}  # Past the shown few: no thumbnail.
SUMMARY = {"examples": 40, "suspect_labels": 1, "estimated_label_noise": 0.05, "near_duplicate_groups": 1,
           "near_duplicate_leaks": 1, "outliers": 1, "folds": 5, "out_of_fold_accuracy": 0.9, "label_check": "done",
           "estimated_label_noise_per_class": {"<b>cat</b>": 0.1, "dog": 0.0},
           "class_thresholds": {"<b>cat</b>": 0.8, "dog": 0.9},
           "actions": {"near_duplicate_leaks": "drop", "leak_eval_copies_dropped": 1, "exclude_suspect_labels": False,
                       "suspects_excluded_from_train": 0, "max_label_noise": None}, "stopped_run": []}


@pytest.fixture
def quality_run(tmp_path) -> RunRecord:
    uri = str(tmp_path / "quality")
    paths = findings.paths(uri)
    (tmp_path / "quality" / findings.THUMBNAIL_DIR).mkdir(parents=True)
    findings.write_jsonl(paths["suspect_labels"], [SUSPECT])
    findings.write_jsonl(paths["near_duplicates"], [GROUP])
    findings.write_jsonl(paths["outliers"], [OUTLIER])
    (tmp_path / "quality" / findings.SUMMARY_FILE_NAME).write_text(json.dumps(SUMMARY))
    for index in (3, 5, 9):
        (tmp_path / "quality" / findings.THUMBNAIL_DIR / f"{index}.png").write_bytes(encode(photo(index, 24), "PNG"))
    artifact = ArtifactRecord(id=7, type=findings.QUALITY_ARTIFACT_TYPE, uri=uri, properties={"suspect_labels": 1},
                              create_time_ms=0)
    component = ComponentRecord(name="DataQuality", execution_id=3, state="COMPLETE", start_ms=0, end_ms=1000,
                                inputs={}, outputs={"quality": [artifact]})
    return RunRecord(run_id="run-1", pipeline="unit-test", start_ms=0, components=[component])


def test_report_section_shows_suspects_leaks_and_outliers_with_inline_thumbnails(quality_run):
    page = html_page.data_quality({"quality": quality.quality_section(quality_run)})
    assert page.count('src="data:image/png;base64,') == 3  # The suspect and both copies; the outlier has none.
    assert "&lt;b&gt;cat&lt;/b&gt; → <b>dog</b>" in page and "<b>cat</b>" not in page.replace("<b>dog</b>", "")
    assert re.search(r'class="thumb dropped">.*?dropped from eval', page)
    assert "leak, redundant" in page and "screenshot.png" in page and "(no thumbnail)" in page
    assert "(z 9.5) · atypical_pixels" in page  # Why the outlier is listed.
    assert "eval copies dropped" in page and "5.0%" in page


def test_report_section_says_when_the_stage_did_not_run():
    assert "did not run" in html_page.data_quality({"quality": None})


def test_suspects_table_and_json(quality_run):
    found = quality.all_findings(quality_run)
    assert found["suspect_labels"] == [SUSPECT] and found["near_duplicates"] == [GROUP]
    table = quality.format_findings(found, limit=10)
    assert "1 suspect labels of 40 examples (estimated label noise 5.0%)" in table
    assert re.search(r"0\.910  <b>cat</b>\s+dog\s+train  /data/<b>cat</b>/7.png", table)
    assert "Leak group 0 (leak, redundant)" in table and "[dropped from eval: /data/dog/copy.jpg]" in table
    assert "Outlier (z 9.5, nearest class dog) [atypical_pixels]: eval dog /data/dog/screenshot.png" in table


def test_metrics_carry_the_quality_counts(quality_run):
    from pipeline.report import prometheus

    data = {"run": {"run_id": "run-1", "pipeline": "unit-test", "status": "COMPLETE", "wall_seconds": 1.0},
            "components": [], "quality": quality.quality_section(quality_run, with_thumbnails=False)}
    text = prometheus.generate_text(prometheus.registry_for_run(data))
    for line in ('imagepipe_suspect_labels{pipeline="unit-test"} 1.0',
                 'imagepipe_near_duplicate_leaks{pipeline="unit-test"} 1.0',
                 'imagepipe_near_duplicate_eval_copies_dropped{pipeline="unit-test"} 1.0',
                 'imagepipe_outliers{pipeline="unit-test"} 1.0',
                 'imagepipe_estimated_label_noise{pipeline="unit-test"} 0.05'):
        assert line in text


def test_run_summary_names_the_findings_and_what_was_done(quality_run):
    entry = quality.run_summary_entry(quality.quality_section(quality_run, with_thumbnails=False))
    assert entry["suspect_labels"] == 1 and entry["near_duplicate_leaks"] == 1
    assert entry["files"]["suspect_labels"].endswith(findings.SUSPECTS_FILE_NAME)
    (line,) = quality.summary_lines(entry)
    assert "1 suspect labels (estimated label noise 5.0%)" in line and "1 leaking eval copies dropped" in line


def test_quality_section_in_headless_chromium(quality_run, tmp_path):
    from pipeline.report import writer
    from tests import report_fixtures
    from tests.test_report_browser import assert_looks_complete, open_in_browser

    data = {**report_fixtures.run_data(), "quality": quality.quality_section(quality_run)}
    seen, _ = open_in_browser(writer.write_html(data, str(tmp_path / "report.html")), "report-quality.png")
    assert_looks_complete(seen, expected_images=5)  # The hand-made run's plots, as without the section.
    assert len(seen["thumbnails"]) == 3 and "Data quality" in seen["headings"]
