"""The out-of-fold heads of confident_learning.py against the library models they stand for."""
import numpy as np
from sklearn.covariance import ledoit_wolf
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from components.quality import confident_learning


def test_shrunk_lda_predicts_as_sklearns_lsqr_lda_with_ledoit_wolf_shrinkage():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    # More features than most classes have examples, and a constant one: shrinkage is what makes it solvable.
    features = rng.normal(size=(300, 120)) + labels[:, None] * rng.normal(size=120) * 0.3
    features[:, 7] = 2.0
    held_out = rng.normal(size=(50, 120))
    reference = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(features, labels)
    ours = confident_learning.ShrunkLDA().fit(features, labels)
    np.testing.assert_array_equal(ours.classes_, reference.classes_)
    np.testing.assert_allclose(ours.predict_log_proba(held_out), reference.predict_log_proba(held_out),
                               rtol=1e-6, atol=1e-6)


def test_shrunk_lda_two_classes():
    rng = np.random.default_rng(1)
    labels = np.repeat([3, 5], 40)
    features = rng.normal(size=(80, 30)) + (labels[:, None] == 5) * 0.8
    reference = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(features, labels)
    ours = confident_learning.ShrunkLDA().fit(features, labels)
    np.testing.assert_allclose(ours.predict_log_proba(features), reference.predict_log_proba(features),
                               rtol=1e-6, atol=1e-6)


def test_ledoit_wolf_from_one_gram_matrix_is_sklearns():
    rng = np.random.default_rng(2)
    for samples, dims in ((40, 100), (300, 20)):  # Fewer samples than features, and more.
        data = rng.normal(size=(samples, dims)) * rng.uniform(0.5, 2, dims)
        centered = data - data.mean(axis=0)
        np.testing.assert_allclose(confident_learning.ledoit_wolf_covariance(centered),
                                   ledoit_wolf(centered, assume_centered=True)[0], rtol=1e-9, atol=1e-12)
