"""The validation gate and the drift check on hand-built statistics (no pipeline run)."""
from pathlib import Path

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components import features
from components.validation import gate, schema_file
from pipeline.cli import main

SCHEMA_DIR = str(Path(__file__).parent.parent / "schemas")
SETTINGS = gate.GateSettings(min_examples_per_class=3, max_class_imbalance=4.0)


@pytest.fixture(scope="module")
def schema() -> schema_pb2.Schema:
    return schema_file.read_schema(SCHEMA_DIR)


def statistics_of(labels, formats=None, heights=None, drop=()) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of a hand-made table of examples (one row per image)."""
    count = len(labels)
    table = pd.DataFrame({
        features.IMAGE_KEY: [b"bytes"] * count, features.LABEL_KEY: labels,
        features.SOURCE_URI_KEY: [f"/images/{i}.png" for i in range(count)],
        features.FORMAT_KEY: formats or ["PNG"] * count, features.HEIGHT_KEY: heights or [64] * count,
        features.WIDTH_KEY: [64] * count, features.CHANNELS_KEY: [3] * count,
        features.BYTE_SIZE_KEY: [2000] * count, features.SHA256_KEY: [f"{i:064x}" for i in range(count)],
    }).drop(columns=list(drop))
    return tfdv.generate_statistics_from_dataframe(table)


def label_histogram(counts) -> statistics_pb2.DatasetFeatureStatisticsList:
    """Only what the class checks read: the label's rank histogram, written by hand."""
    buckets = "".join(f'buckets {{ label: "{name}" sample_count: {count} }} ' for name, count in counts.items())
    return text_format.Parse(
        f'datasets {{ features {{ path {{ step: "label" }} string_stats {{ rank_histogram {{ {buckets} }} }} }} }}',
        statistics_pb2.DatasetFeatureStatisticsList())


def kinds(anomalies):
    return sorted({anomaly.kind for anomaly in anomalies})


BALANCED = ["cat"] * 10 + ["dog"] * 10


def test_clean_statistics_have_no_anomaly(schema):
    assert gate.find_anomalies({"train": statistics_of(BALANCED), "eval": statistics_of(BALANCED)}, schema,
                               SETTINGS) == []


def test_committed_schema_accepts_any_class_names(schema):
    assert gate.label_domain(schema) is None
    assert gate.find_anomalies({"train": statistics_of(["Äpfel"] * 5 + ["zebra crossing"] * 5)}, schema,
                               SETTINGS) == []


def test_unknown_label_is_named_when_the_schema_states_a_domain(schema):
    pinned = gate.with_label_domain(schema, ["cat", "dog"])
    anomalies = gate.find_anomalies({"train": statistics_of(BALANCED + ["horse"] * 5)}, pinned, SETTINGS)
    assert kinds(anomalies) == [gate.UNKNOWN_LABEL]
    assert "horse" in anomalies[0].description and anomalies[0].split == "train"


def test_a_class_of_the_domain_without_examples_is_too_few(schema):
    pinned = gate.with_label_domain(schema, ["cat", "dog", "bird"])
    anomalies = gate.find_anomalies({"train": statistics_of(BALANCED)}, pinned, SETTINGS)
    assert [(a.kind, "'bird' has 0" in a.description) for a in anomalies] == [(gate.TOO_FEW_EXAMPLES, True)]


def test_missing_feature(schema):
    anomalies = gate.find_anomalies({"train": statistics_of(BALANCED, drop=[features.WIDTH_KEY])}, schema, SETTINGS)
    assert kinds(anomalies) == [gate.MISSING_FEATURE]
    assert anomalies[0].feature == features.WIDTH_KEY


def test_unsupported_format_only_beyond_the_tolerated_fraction(schema):
    labels = ["cat"] * 100 + ["dog"] * 100
    few = gate.find_anomalies({"train": statistics_of(labels, formats=["PNG"] * 199 + ["TIFF"])}, schema, SETTINGS)
    many = gate.find_anomalies({"train": statistics_of(labels, formats=["PNG"] * 180 + ["TIFF"] * 20)}, schema,
                               SETTINGS)
    assert few == []
    assert kinds(many) == [gate.UNSUPPORTED_FORMAT] and "TIFF" in many[0].description


def test_size_out_of_range(schema):
    anomalies = gate.find_anomalies({"train": statistics_of(BALANCED, heights=[64] * 19 + [8])}, schema, SETTINGS)
    assert kinds(anomalies) == [gate.SIZE_OUT_OF_RANGE] and anomalies[0].feature == features.HEIGHT_KEY


def test_class_counts_sum_splits_and_include_empty_class_folders():
    counts = gate.class_counts([label_histogram({"cat": 8, "dog": 2}), label_histogram({"cat": 2, "dog": 1})],
                               expected_classes=["cat", "dog", "empty folder"])
    assert counts == {"cat": 10, "dog": 3, "empty folder": 0}


@pytest.mark.parametrize("counts, expected", [
    ({"cat": 10, "dog": 10}, []),
    ({"cat": 10, "dog": 2}, [gate.TOO_FEW_EXAMPLES, gate.CLASS_IMBALANCE]),  # 5x > 4x allowed.
    ({"cat": 12, "dog": 3}, []),  # Exactly the limits.
    ({"cat": 13, "dog": 3}, [gate.CLASS_IMBALANCE]),
    ({"cat": 10, "dog": 10, "empty": 0}, [gate.TOO_FEW_EXAMPLES]),  # An empty class is not an imbalance ratio.
])
def test_too_few_examples_and_imbalance(counts, expected):
    assert sorted(a.kind for a in gate.class_balance_anomalies(counts, SETTINGS)) == sorted(expected)


def test_label_drift_against_the_previous_span(schema):
    previous = {"train": statistics_of(BALANCED)}
    similar = gate.find_anomalies({"train": statistics_of(["cat"] * 11 + ["dog"] * 9)}, schema, SETTINGS,
                                  previous_by_split=previous)
    shifted = gate.find_anomalies({"train": statistics_of(["cat"] * 16 + ["dog"] * 4)}, schema, SETTINGS,
                                  previous_by_split=previous)
    assert similar == []
    assert kinds(shifted) == [gate.DRIFT]
    assert shifted[0].feature == features.LABEL_KEY and "Linfty" in shifted[0].description


def test_image_size_drift_against_the_previous_span(schema):
    previous = {"train": statistics_of(BALANCED, heights=[64] * 20)}
    current = {"train": statistics_of(BALANCED, heights=[400] * 20)}
    anomalies = gate.find_anomalies(current, schema, SETTINGS, previous_by_split=previous)
    assert [(a.kind, a.feature) for a in anomalies] == [(gate.DRIFT, features.HEIGHT_KEY)]
    assert "Jensen-Shannon" in anomalies[0].description


def test_drift_is_checked_on_the_train_split_only(schema):
    previous = {"eval": statistics_of(BALANCED)}
    assert gate.find_anomalies({"eval": statistics_of(["cat"] * 19 + ["dog"] * 3)}, schema,
                               gate.GateSettings(min_examples_per_class=1, max_class_imbalance=10),
                               previous_by_split=previous) == []


def test_warn_only_kinds_do_not_stop_the_run_and_the_error_names_each_anomaly(schema):
    pinned = gate.with_label_domain(schema, ["cat", "dog"])
    anomalies = gate.find_anomalies({"train": statistics_of(BALANCED + ["horse"], drop=[features.FORMAT_KEY])},
                                    pinned, SETTINGS)
    assert kinds(anomalies) == [gate.CLASS_IMBALANCE, gate.MISSING_FEATURE, gate.TOO_FEW_EXAMPLES, gate.UNKNOWN_LABEL]
    errors, warnings = gate.decide(anomalies, gate.GateSettings(
        warn_only={gate.TOO_FEW_EXAMPLES, gate.CLASS_IMBALANCE}))
    assert kinds(warnings) == [gate.CLASS_IMBALANCE, gate.TOO_FEW_EXAMPLES]
    assert kinds(errors) == [gate.MISSING_FEATURE, gate.UNKNOWN_LABEL]
    message = str(gate.DataValidationError(errors))
    assert "2 anomalies (missing_feature, unknown_label)" in message
    assert "horse" in message and features.FORMAT_KEY in message and "--warn-on" in message


def test_settings_refuse_unknown_kinds_and_bad_limits():
    with pytest.raises(ValueError, match="Unknown anomaly kind.*'drfit'"):
        gate.GateSettings(warn_only={"drfit"})
    with pytest.raises(ValueError, match="max_class_imbalance"):
        gate.GateSettings(max_class_imbalance=0.5)
    assert gate.parse_warn_only(" drift, class_imbalance ,") == {"drift", "class_imbalance"}


def test_schema_command_pins_the_class_folders_as_label_domain(tmp_path, capsys):
    for name in ("grün", "red apple"):
        (tmp_path / "images" / name).mkdir(parents=True)
    assert main(["schema", "--data", str(tmp_path / "images"), "--output", str(tmp_path / "pinned")]) == 0
    pinned = schema_file.read_schema(str(tmp_path / "pinned"))
    assert gate.label_domain(pinned) == ["grün", "red apple"]
    # Everything else is the committed schema's.
    assert [f.name for f in pinned.feature] == [f.name for f in schema_file.read_schema(SCHEMA_DIR).feature]
    assert main(["schema", "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "x")]) == 2
