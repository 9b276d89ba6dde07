"""Data-quality logic (components/quality) on hand-built probabilities, features and images."""
import io

import numpy as np
import pytest
from PIL import Image

from components.quality import assessment, confident_learning, near_duplicates, outliers
from components.quality.settings import QualitySettings
from tests.conftest import encode

# Given labels 0,0,0,0 1,1,1,1 2,2,2,2. Row 3 is labeled 0 but looks like 1; row 10 is ambiguous (class 0
# beats its label 2 but clears no threshold). Thresholds: t0 = 2.65/4, t1 = 3.0/4, t2 = 2.9/4.
HAND_PROBABILITIES = np.array([
    [.9, .05, .05], [.8, .1, .1], [.85, .1, .05], [.1, .85, .05],
    [.1, .8, .1], [.05, .9, .05], [.1, .7, .2], [.2, .6, .2],
    [.05, .05, .9], [.1, .1, .8], [.5, .1, .4], [.05, .15, .8],
])
HAND_LABELS = np.repeat([0, 1, 2], 4)


def blobs(per_class: int = 30, classes: int = 3, dims: int = 16, seed: int = 0):
    """Separated Gaussian clusters whose members lie at varied distances from their center, as images
    are more or less typical of their class."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (classes, dims))
    labels = np.repeat(np.arange(classes), per_class)
    spread = rng.uniform(0.2, 1.5, (len(labels), 1))
    return centers[labels] + spread * rng.normal(0, 1, (len(labels), dims)), labels


def flip_typical_images(features, labels, rows, wrong_labels):
    """Typical images of their class (at its center) filed under another class."""
    features, noisy = features.copy(), labels.copy()
    for row, wrong in zip(rows, wrong_labels):
        features[row] = features[labels == labels[row]].mean(axis=0)
        noisy[row] = wrong
    return features, noisy


def test_thresholds_are_the_mean_self_confidence_per_class():
    thresholds = confident_learning.per_class_thresholds(HAND_PROBABILITIES, HAND_LABELS)
    np.testing.assert_allclose(thresholds, [2.65 / 4, 3.0 / 4, 2.9 / 4])


def test_confident_learning_flags_only_the_confidently_other_example():
    issues = confident_learning.find_label_issues(HAND_PROBABILITIES, HAND_LABELS)
    assert issues.suspects.tolist() == [3]
    assert issues.suggested.tolist() == [1]
    np.testing.assert_allclose(issues.scores, [0.75])  # -(p[given] - max other) = -(0.1 - 0.85)
    # Row 10: class 0 beats the given label but is below t0, and nothing clears a threshold: not suspect.
    assert 10 not in issues.suspects


def test_confident_joint_and_calibrated_noise_rates():
    issues = confident_learning.find_label_issues(HAND_PROBABILITIES, HAND_LABELS)
    # Rows 6, 7 and 10 clear no threshold and are not counted.
    np.testing.assert_array_equal(issues.confident_joint, [[3, 1, 0], [0, 2, 0], [0, 0, 3]])
    # Calibrated to 4 per class: class 0 has 1 of 4 off the diagonal, the others none; 1 of 12 overall.
    np.testing.assert_allclose(issues.noise_rate_per_class, [0.25, 0, 0])
    assert issues.noise_rate == pytest.approx(1 / 12)


def test_suspects_are_ranked_by_normalized_margin():
    probabilities = np.array([[.9, .1], [.8, .2], [.45, .55], [.05, .95],
                              [.1, .9], [.2, .8], [.15, .85], [.99, .01]])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    issues = confident_learning.find_label_issues(probabilities, labels)
    # Row 7 (margin -0.98) before row 3 (-0.9); row 2 (p1 .55 under t1) is not confident enough.
    assert issues.suspects.tolist() == [7, 3]
    assert issues.suggested.tolist() == [0, 1]


@pytest.mark.parametrize("per_class", [30, 60])  # Logistic regression only; and with shrunk LDA as a candidate.
def test_out_of_fold_heads_find_planted_flips_on_separable_features(per_class):
    second = per_class + 10  # An example of class 1.
    features, noisy = flip_typical_images(*blobs(per_class=per_class), rows=[5, second], wrong_labels=[1, 2])
    probabilities = confident_learning.out_of_fold_probabilities(features, noisy, 3, folds=5, seed=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    issues = confident_learning.find_label_issues(probabilities, noisy)
    assert sorted(issues.suspects.tolist()) == [5, second]
    assert dict(zip(issues.suspects.tolist(), issues.suggested.tolist())) == {5: 0, second: 1}


def test_a_probability_a_rounding_error_under_the_threshold_reaches_it():
    # Saturated heads give many examples one probability; their mean can come out a rounding error above it.
    common = 0.9777778311215164
    probabilities = np.array([[common, 1 - common]] * 3 + [[common + 1e-12, 1 - common - 1e-12]]
                             + [[0.1, 0.9]] * 3 + [[common, 1 - common]])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert confident_learning.per_class_thresholds(probabilities, labels)[0] > common
    issues = confident_learning.find_label_issues(probabilities, labels)
    assert issues.suspects.tolist() == [7] and issues.suggested.tolist() == [0]


def test_the_head_under_which_the_given_labels_are_most_likely_is_chosen():
    features, labels = blobs(per_class=60, seed=3)
    chosen = confident_learning.held_out_predictions(features, labels, 3)
    per_head = confident_learning.out_of_fold_log_probabilities(features, labels, 3)
    assert set(per_head) == {"logistic_regression", "shrunk_lda"}
    rows = np.arange(len(labels))
    for log_probabilities in per_head.values():
        calibrated = confident_learning.tempered(
            log_probabilities, confident_learning.calibrate_temperature(log_probabilities, labels))
        assert chosen.negative_log_likelihood <= -np.log(calibrated[rows, labels]).mean() + 1e-9
    small_features, small_labels = blobs(per_class=12)
    assert confident_learning.held_out_predictions(small_features, small_labels, 3).head == "logistic_regression"


def test_temperature_undoes_overconfidence_on_the_given_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 3))
    # Labels drawn from softmax(logits): those are the calibrated probabilities; a head 4x as sure is not.
    cumulative = np.cumsum(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), axis=1)
    labels = (rng.random((4000, 1)) > cumulative).sum(axis=1)
    overconfident = 4 * logits - np.log(np.exp(4 * logits).sum(axis=1, keepdims=True))
    temperature = confident_learning.calibrate_temperature(overconfident, labels)
    assert temperature == pytest.approx(4, rel=0.1)
    np.testing.assert_allclose(confident_learning.tempered(overconfident, temperature).sum(axis=1), 1.0)


def test_folds_need_two_examples_of_every_class():
    assert confident_learning.usable_folds(np.array([0, 0, 0, 1, 1, 1]), 5) == 3
    with pytest.raises(ValueError, match="at least 2 examples of every class"):
        confident_learning.usable_folds(np.array([0, 0, 0, 1]), 5)


def photo(seed: int, size: int = 64) -> np.ndarray:
    """A smooth random picture (blurred noise, upscaled), like a photo rather than static."""
    coarse = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC))


def resized_jpeg(array: np.ndarray, scale: float, quality: int) -> bytes:
    image = Image.fromarray(array)
    side = int(image.size[0] * scale)
    buffer = io.BytesIO()
    image.resize((side, side), Image.BICUBIC).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def test_perceptual_signature_matches_resized_recompressed_copies_only():
    originals = [encode(photo(seed), "PNG") for seed in range(20)]
    signatures = np.array([near_duplicates.perceptual_signature(data) for data in originals])
    copy = near_duplicates.perceptual_signature(resized_jpeg(photo(3), 0.6, 70))
    assert copy @ signatures[3] >= near_duplicates.DuplicateRule().perceptual_similarity
    others = np.delete(signatures, 3, axis=0) @ copy
    assert others.max() < near_duplicates.DuplicateRule().perceptual_crosscheck


def test_flat_image_has_a_zero_signature_and_pairs_with_nothing():
    flat = near_duplicates.perceptual_signature(encode(np.full((32, 32, 3), 128, np.uint8), "PNG"))
    assert not flat.any()


def test_groups_are_connected_components_of_similar_pairs():
    groups = near_duplicates.connected_groups(np.array([[0, 4], [4, 7], [2, 3]]), 9)
    assert groups == [[0, 4, 7], [2, 3]]


def test_features_alone_need_the_perceptual_cross_check():
    features = np.array([[1.0, 0.0], [1.0, 0.001], [0.0, 1.0]])
    # Thumbnails correlating at 0.96: above the cross-check (0.95), below perceptual similarity alone (0.995).
    same_picture = np.array([[1.0, 0.0], [0.96, 0.28], [0.0, 1.0]])
    different_pictures = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    rule = near_duplicates.DuplicateRule()
    assert near_duplicates.similar_pairs(features, same_picture, rule).tolist() == [[0, 1]]
    assert near_duplicates.similar_pairs(features, different_pictures, rule).tolist() == []


def test_group_kinds():
    labels, splits = ["a", "a", "b"], ["train", "eval", "train"]
    assert near_duplicates.group_kinds([0, 1], labels, splits) == [near_duplicates.LEAK, near_duplicates.REDUNDANT]
    assert near_duplicates.group_kinds([0, 2], labels, splits) == [near_duplicates.CONFLICTING]
    assert near_duplicates.group_kinds([1, 2], labels, splits) == [near_duplicates.LEAK, near_duplicates.CONFLICTING]


def test_outlier_is_far_from_every_class_and_a_mislabeled_example_is_not():
    # Non-negative features, as a ReLU base's pooled ones: each class strong on a few channels of its own.
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 30)
    features = np.abs(rng.normal(0, 0.3, (len(labels), 16)))
    features[np.arange(len(labels)), labels] += rng.uniform(3, 6, len(labels))
    outlier = np.abs(rng.normal(0, 0.3, 16))
    outlier[10] += 5.0  # Strong where no class is.
    features, labels = np.vstack([features, outlier]), np.append(labels, 0)
    labels[3] = 2  # Mislabeled: among class 0's images, so among images all the same.
    found = outliers.find_outliers(features, labels, 3, z_threshold=QualitySettings.outlier_z)
    assert found.indices.tolist() == [len(labels) - 1]
    assert found.reasons == [[outliers.FAR_IN_FEATURES]]  # No pixel statistics given: the feature check only.


def assessment_table(labels, splits):
    return assessment.ExampleTable(uris=[f"/data/{i}.png" for i in range(len(labels))], labels=labels,
                                   splits=splits, sha256=[f"{i:064x}" for i in range(len(labels))])


def planted_data(settings=QualitySettings()):
    """Three classes of 30; example 6 (train) flipped (class a labeled b); example 7 (train) copied as 95 (eval)."""
    features, ids = flip_typical_images(*blobs(), rows=[6], wrong_labels=[1])
    labels = list(np.array(["a", "b", "c"])[ids])
    splits = ["eval" if i % 5 == 0 else "train" for i in range(len(labels))]
    splits[7] = "train"
    rng = np.random.default_rng(2)
    signatures = near_duplicates.unit_rows(rng.normal(size=(len(labels), 32)).astype(np.float32))
    features = np.vstack([features, features[7] + 0.001])
    signatures = np.vstack([signatures, signatures[7]])
    labels.append(labels[7])
    splits.append("eval")
    return assessment.assess(features, signatures, assessment_table(labels, splits), settings)


def test_assessment_reports_suspects_leaks_and_drops_the_eval_copy():
    result = planted_data()
    assert [(s["source_uri"], s["given_class"], s["suggested_class"]) for s in result.suspects] == [
        ("/data/6.png", "b", "a")]
    assert [[m["index"] for m in g["members"]] for g in result.near_duplicate_groups] == [[7, 90]]
    group = result.near_duplicate_groups[0]
    assert group["kinds"] == ["leak", "redundant"] and group["dropped"] == ["/data/90.png"]
    assert result.dropped == {90}
    summary = result.summary
    assert summary["suspect_labels"] == 1 and summary["near_duplicate_leaks"] == 1
    assert summary["actions"]["leak_eval_copies_dropped"] == 1
    assert summary["estimated_label_noise_per_class"]["b"] > 0
    assert assessment.limit_violations(summary, QualitySettings()) == []


def test_warn_keeps_the_leak_and_fail_stops_the_run():
    warned = planted_data(QualitySettings(near_duplicate_leaks="warn"))
    assert warned.dropped == set() and warned.near_duplicate_groups[0]["dropped"] == []
    failing = QualitySettings(near_duplicate_leaks="fail")
    assert "straddle train and eval" in assessment.limit_violations(planted_data(failing).summary, failing)[0]


def test_exclude_suspect_labels_drops_train_suspects_and_max_label_noise_stops():
    settings = QualitySettings(exclude_suspect_labels=True, max_label_noise=0.001)
    result = planted_data(settings)
    assert result.dropped == {6, 90} and result.suspects[0]["excluded"]
    assert "exceeds --max-label-noise 0.001" in assessment.limit_violations(result.summary, settings)[0]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="near_duplicate_leaks must be one of"):
        QualitySettings(near_duplicate_leaks="delete")
    with pytest.raises(ValueError, match="max_label_noise"):
        QualitySettings(max_label_noise=1.5)


def test_a_class_too_small_for_k_fold_skips_the_label_check_only():
    features, ids = blobs(per_class=4)
    labels = list(np.array(["a", "b", "c"])[ids])[:9]  # Class "c" keeps one example.
    splits = ["train"] * 9
    signatures = np.vstack([np.eye(9, 32)])
    result = assessment.assess(features[:9], signatures, assessment_table(labels, splits), QualitySettings())
    assert result.suspects == [] and result.summary["folds"] == 0
    assert result.summary["label_check"].startswith("skipped: Out-of-fold probabilities need at least 2 examples")


def test_one_pass_over_cosine_blocks_finds_the_pairs_and_neighbours_of_the_two_separate_searches():
    # More rows than near_duplicates.ROW_BLOCK, so that the pass crosses a block boundary; planted copies give
    # pairs in both blocks and across them.
    rng = np.random.default_rng(0)
    features = rng.normal(size=(near_duplicates.ROW_BLOCK + 77, 12)).astype(np.float32)
    signatures = near_duplicates.unit_rows(rng.normal(size=(len(features), 16)).astype(np.float32))
    for original, copy in ((3, 900), (1030, 5), (1050, 1090)):
        features[copy], signatures[copy] = features[original] * 1.01, signatures[original]
    rule = assessment.duplicate_rule(QualitySettings())
    pairs, (distances, indices) = assessment.feature_pairs_and_neighbours(features, signatures, rule)
    expected_distances, expected_indices = outliers.nearest_neighbours(features, outliers.K_NEIGHBOURS, cosine=True)
    np.testing.assert_array_equal(pairs, near_duplicates.similar_pairs(features, signatures, rule))
    assert {tuple(pair) for pair in pairs} == {(3, 900), (5, 1030), (1050, 1090)}
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(distances, expected_distances)


def test_too_few_examples_for_neighbours_still_get_their_pairs():
    features = np.eye(4, dtype=np.float32)
    features[3] = features[0]
    signatures = np.eye(4, 16, dtype=np.float32)
    signatures[3] = signatures[0]
    pairs, neighbours = assessment.feature_pairs_and_neighbours(features, signatures,
                                                                 assessment.duplicate_rule(QualitySettings()))
    assert pairs.tolist() == [[0, 3]] and neighbours is None
