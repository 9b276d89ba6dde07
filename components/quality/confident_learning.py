"""Suspect labels by confident learning, on out-of-fold probabilities of small heads over base features.

The out-of-fold probabilities (held_out_predictions) come from the linear head, of a few candidates, under
which the given labels are most likely, calibrated by a temperature fitted to the given labels; the rule
itself does not depend on how they are obtained.

The rule is the one published in Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in
Dataset Labels", JAIR 70 (2021), section 3.1, written here on numpy and scikit-learn (cleanlab implements it
too but is AGPL-3.0, which must not enter the default install):
- per-class threshold t_j = the mean predicted probability of class j over the examples labeled j
  (the class's average self-confidence);
- an example with given label i counts towards the confident joint C[i][j] for the class j that has the
  highest probability among the classes whose probability reaches their threshold;
- it is a suspect (an off-diagonal entry of the confident joint) when that class is not i and its probability
  beats the given label's;
- suspects are ranked by normalized margin, p[given] - max over other classes of p (the paper's
  "normalized margin" ranking, section 3.2): the most negative first. We report its negation as the score.
The noise rate per class comes from the confident joint calibrated to the given-label counts (eq. 2).
"""
import dataclasses
from typing import Dict

import numpy as np
from scipy import linalg
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

# Inverse L2 strength of the logistic-regression head on standardized features.
HEAD_REGULARIZATION = 0.05
_HEAD_MAX_ITERATIONS = 500
# The temperature is searched in this range (log-uniform): 1 leaves the heads' probabilities as they are.
_TEMPERATURE_RANGE = (0.05, 50.0)


# Shrunk LDA is a candidate only when every class has at least this many examples. Measured with 5% known flips
# on subsets of the digits and of the photo crops (3 seeds each): with 12 or 30 images per class the candidates
# with LDA flagged up to 2.5 times too many images (precision 0.35-0.79), with 60 or more they were the best.
LDA_MIN_EXAMPLES_PER_CLASS = 50


def _heads(smallest_class: int):
    """The candidate heads, linear models of the pooled features with different biases: a multinomial logistic
    regression (the Trainer's phase-1 head family) and, given enough examples per class, linear discriminant
    analysis with Ledoit-Wolf shrinkage of the shared covariance (ShrunkLDA).

    One instance of each serves every fold: the logistic regression starts from the previous fold's solution
    (warm_start; the folds share most of their training data, and the problem is convex, so the optimum is the
    same and lbfgs reaches it in fewer iterations)."""
    heads = {"logistic_regression": LogisticRegression(C=HEAD_REGULARIZATION, max_iter=_HEAD_MAX_ITERATIONS,
                                                       warm_start=True)}
    if smallest_class >= LDA_MIN_EXAMPLES_PER_CLASS:
        heads["shrunk_lda"] = ShrunkLDA()
    return heads


class ShrunkLDA:
    """Linear discriminant analysis with a Ledoit-Wolf-shrunk within-class covariance: the model of
    sklearn's LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto") (sklearn/discriminant_analysis.py
    `_cov`, `_class_cov`, `_solve_lstsq`), whose predictions it reproduces (tests/test_confident_learning.py).

    sklearn solves covariance @ coef = means with scipy's lstsq (an SVD, seconds for 1,280 features); the
    shrunk covariance is positive definite, so a Cholesky solve gives the same coefficients in a fraction of
    that time."""

    def fit(self, features: np.ndarray, labels: np.ndarray) -> "ShrunkLDA":
        features = np.asarray(features, dtype=np.float64)
        self.classes_, labels = np.unique(labels, return_inverse=True)
        priors = np.bincount(labels) / len(labels)
        means = np.stack([features[labels == k].mean(axis=0) for k in range(len(self.classes_))])
        covariance = sum(prior * _shrunk_covariance(features[labels == k]) for k, prior in enumerate(priors))
        self.coef_ = linalg.cho_solve(linalg.cho_factor(covariance), means.T).T
        self.intercept_ = -0.5 * np.einsum("kd,kd->k", means, self.coef_) + np.log(priors)
        return self

    def predict_log_proba(self, features: np.ndarray) -> np.ndarray:
        return log_softmax(np.asarray(features, dtype=np.float64) @ self.coef_.T + self.intercept_, axis=1)


def _shrunk_covariance(features: np.ndarray) -> np.ndarray:
    """One class's covariance as sklearn's LDA estimates it with shrinkage="auto": Ledoit-Wolf on the
    standardized features, scaled back (a constant feature keeps scale 1, as StandardScaler does)."""
    scale = features.std(axis=0)
    scale[scale < 10 * np.finfo(scale.dtype).eps] = 1.0  # As sklearn's _handle_zeros_in_scale.
    standardized = (features - features.mean(axis=0)) / scale
    return scale[:, None] * ledoit_wolf_covariance(standardized) * scale[None, :]


def ledoit_wolf_covariance(centered: np.ndarray) -> np.ndarray:
    """sklearn.covariance.ledoit_wolf(centered, assume_centered=True)[0] from one Gram matrix.

    sklearn (covariance/_shrunk_covariance.py, ledoit_wolf_shrinkage) sums the entries of X2.T @ X2 (X2 the
    squared data), a second p x p product; that sum is the sum over rows of their squared norm, squared."""
    samples, dims = centered.shape
    gram = centered.T @ centered
    trace = np.trace(gram) / samples  # Of the empirical covariance.
    mu = trace / dims
    beta_ = float(np.sum(np.einsum("ij,ij->i", centered, centered) ** 2))
    delta_ = float(np.sum(gram ** 2)) / samples ** 2
    beta = (beta_ / samples - delta_) / (dims * samples)
    delta = (delta_ - 2.0 * mu * trace + dims * mu ** 2) / dims
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    covariance = (1.0 - shrinkage) * gram / samples
    covariance.flat[::dims + 1] += shrinkage * mu
    return covariance


@dataclasses.dataclass(frozen=True)
class HeldOutPredictions:
    probabilities: np.ndarray  # [N, K] out-of-fold, calibrated.
    head: str  # Which candidate was chosen (its held-out likelihood of the given labels was the best).
    temperature: float
    negative_log_likelihood: float  # Mean, of the given labels, under the calibrated probabilities.


@dataclasses.dataclass(frozen=True)
class LabelIssues:
    """Confident learning's findings over N examples and K classes (class ids index `thresholds`)."""

    suspects: np.ndarray  # Example indices, most suspicious first.
    suggested: np.ndarray  # For each suspect, the class confident learning would give it.
    scores: np.ndarray  # For each suspect, -(normalized margin): in (0, 1], higher is more suspicious.
    thresholds: np.ndarray  # [K] per-class thresholds (average self-confidence).
    confident_joint: np.ndarray  # [K, K] counts: rows given label, columns confidently predicted class.
    noise_rate_per_class: np.ndarray  # [K] estimated fraction of each given class that is mislabeled.
    noise_rate: float  # Estimated fraction of all examples that are mislabeled.


def usable_folds(labels: np.ndarray, folds: int) -> int:
    """K-fold needs every class in every fold: at most as many folds as the smallest class has examples."""
    smallest = int(np.bincount(labels).min()) if len(labels) else 0
    usable = min(folds, smallest)
    if usable < 2:
        raise ValueError(f"Out-of-fold probabilities need at least 2 examples of every class; the smallest class "
                         f"has {smallest}.")
    return usable


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int = 5,
                              seed: int = 0) -> np.ndarray:
    return held_out_predictions(features, labels, num_classes, folds, seed).probabilities


def held_out_predictions(features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int = 5,
                         seed: int = 0) -> HeldOutPredictions:
    """[N, K] probabilities, each predicted by heads that never saw that example (stratified K-fold).

    Candidates: each head of _heads() and their ensemble (mean log-probabilities), each calibrated by one
    temperature (calibrate_temperature); the one under which the given labels are most likely wins. Only the
    given labels decide (cross-validation, nothing tuned to a data set): measured with known flips (5%, 3 seeds,
    bench/bench_quality.py), shrunk LDA or the ensemble won on the digits demo and on crops of scikit-image's
    photos (60-180 images per class), where the logistic regression alone stayed under 0.8 recall; with
    fewer images per class LDA is no candidate (LDA_MIN_EXAMPLES_PER_CLASS).
    Calibration matters because confident learning's thresholds are mean probabilities (the paper, section 4,
    assumes reasonably calibrated out-of-sample probabilities; LDA's raw ones are far too confident).
    """
    per_head = out_of_fold_log_probabilities(features, labels, num_classes, folds, seed)
    candidates = dict(per_head)
    if len(per_head) > 1:
        candidates["ensemble"] = log_softmax(sum(per_head.values()) / len(per_head), axis=1)
    best = None
    for name, log_probabilities in candidates.items():
        temperature = calibrate_temperature(log_probabilities, labels)
        calibrated = log_softmax(log_probabilities / temperature, axis=1)
        loss = float(-calibrated[np.arange(len(labels)), labels].mean())
        if best is None or loss < best.negative_log_likelihood:
            best = HeldOutPredictions(np.exp(calibrated), name, temperature, loss)
    return best


def out_of_fold_log_probabilities(features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int = 5,
                                  seed: int = 0) -> Dict[str, np.ndarray]:
    """{head: [N, K] out-of-fold log-probabilities} for each head of _heads(), on standardized features."""
    smallest_class = int(np.bincount(labels).min())
    heads = _heads(smallest_class)
    log_probabilities = {name: np.full((len(labels), num_classes), _MIN_LOG_PROBABILITY) for name in heads}
    splitter = StratifiedKFold(n_splits=usable_folds(labels, folds), shuffle=True, random_state=seed)
    for train_rows, held_out_rows in splitter.split(features, labels):
        scaler = StandardScaler().fit(features[train_rows])
        train, held_out = scaler.transform(features[train_rows]), scaler.transform(features[held_out_rows])
        for name, head in heads.items():
            head.fit(train, labels[train_rows])
            # A fold's training part can lack a class only if K-fold was impossible (see usable_folds).
            log_probabilities[name][np.ix_(held_out_rows, head.classes_)] = np.maximum(
                head.predict_log_proba(held_out), _MIN_LOG_PROBABILITY)
    return log_probabilities


# Probabilities this close under a threshold reach it: saturated heads give many examples the same probability,
# and their mean (the threshold) can come out a rounding error above that common value. The reference
# implementation does the same (cleanlab/count.py compute_confident_joint, `pred_probs >= thresholds - 1e-6`).
THRESHOLD_TOLERANCE = 1e-6
# Floor of a head's log-probability: only keeps log(0) finite. A higher floor would clip saturated predictions
# to one value, and after the temperature every confident example would tie with its class's threshold.
_MIN_LOG_PROBABILITY = -30.0


def calibrate_temperature(log_probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimizing the negative log-likelihood of the given labels under softmax(log p / T):
    temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017), fitted on the
    out-of-fold predictions and the given labels only (noisy as they are: a few flips barely move one scalar)."""
    rows = np.arange(len(labels))

    def negative_log_likelihood(log_temperature: float) -> float:
        return -log_softmax(log_probabilities / np.exp(log_temperature), axis=1)[rows, labels].mean()

    low, high = np.log(_TEMPERATURE_RANGE)
    return float(np.exp(minimize_scalar(negative_log_likelihood, bounds=(low, high), method="bounded").x))


def tempered(log_probabilities: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(log_probabilities / temperature, axis=1)


def per_class_thresholds(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """t_j: mean probability of class j over the examples labeled j (0 for a class with no examples)."""
    num_classes = probabilities.shape[1]
    return np.array([probabilities[labels == j, j].mean() if np.any(labels == j) else 0.0
                     for j in range(num_classes)])


def find_label_issues(probabilities: np.ndarray, labels: np.ndarray) -> LabelIssues:
    """Applies confident learning's rule to out-of-sample probabilities [N, K] and given labels [N]."""
    labels = np.asarray(labels, dtype=int)
    rows = np.arange(len(labels))
    num_classes = probabilities.shape[1]
    thresholds = per_class_thresholds(probabilities, labels)
    confident = probabilities >= thresholds[None, :] - THRESHOLD_TOLERANCE
    has_confident_class = confident.any(axis=1)
    confident_class = np.where(confident, probabilities, -np.inf).argmax(axis=1)

    joint = np.zeros((num_classes, num_classes))
    np.add.at(joint, (labels[has_confident_class], confident_class[has_confident_class]), 1)

    is_suspect = (has_confident_class & (confident_class != labels)
                  & (probabilities[rows, confident_class] > probabilities[rows, labels]))
    others = probabilities.copy()
    others[rows, labels] = -np.inf
    normalized_margin = probabilities[rows, labels] - others.max(axis=1)
    suspects = rows[is_suspect]
    order = np.argsort(normalized_margin[suspects], kind="stable")
    suspects = suspects[order]
    noise_per_class, noise = calibrated_noise_rates(joint, np.bincount(labels, minlength=num_classes))
    return LabelIssues(suspects=suspects, suggested=confident_class[suspects], scores=-normalized_margin[suspects],
                       thresholds=thresholds, confident_joint=joint, noise_rate_per_class=noise_per_class,
                       noise_rate=noise)


def calibrated_noise_rates(joint: np.ndarray, given_counts: np.ndarray):
    """Per-class and overall noise rates from the confident joint calibrated to the given-label counts.

    Calibration (the paper's eq. 2) scales row i so that it sums to the number of examples labeled i, then
    divides by N: the estimate of the joint distribution of given and true labels. Its off-diagonal mass is
    the overall noise rate; row i's off-diagonal share is class i's.
    """
    row_sums = joint.sum(axis=1)
    scale = np.divide(given_counts, row_sums, out=np.zeros_like(row_sums, dtype=float), where=row_sums > 0)
    calibrated = joint * scale[:, None]
    total = given_counts.sum()
    off_diagonal = calibrated.sum(axis=1) - np.diag(calibrated)
    per_class = np.divide(off_diagonal, given_counts, out=np.zeros_like(off_diagonal), where=given_counts > 0)
    overall = float(off_diagonal.sum() / total) if total else 0.0
    return per_class, overall
