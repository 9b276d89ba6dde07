"""Suspect labels by confident learning, on out-of-fold probabilities of small heads over base features.

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
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

# Inverse L2 strength of the logistic-regression heads on standardized features. Chosen on the digits demo
# (1,797 images, 5% flipped): 0.05 gave out-of-fold accuracy 0.94 and the best precision/recall balance.
HEAD_REGULARIZATION = 0.05
_HEAD_MAX_ITERATIONS = 500


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
    """[N, K] probabilities, each predicted by a head that never saw that example (stratified K-fold).

    The head is a multinomial logistic regression on standardized features: the same model family as the
    Trainer's phase-1 head (softmax over pooled features), fit in a second or two per fold.
    """
    probabilities = np.zeros((len(labels), num_classes))
    splitter = StratifiedKFold(n_splits=usable_folds(labels, folds), shuffle=True, random_state=seed)
    for train_rows, held_out_rows in splitter.split(features, labels):
        scaler = StandardScaler().fit(features[train_rows])
        head = LogisticRegression(C=HEAD_REGULARIZATION, max_iter=_HEAD_MAX_ITERATIONS)
        head.fit(scaler.transform(features[train_rows]), labels[train_rows])
        # A fold's training part can lack a class only if K-fold was impossible (see usable_folds).
        held_out = scaler.transform(features[held_out_rows])
        probabilities[np.ix_(held_out_rows, head.classes_)] = head.predict_proba(held_out)
    return probabilities


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
    confident = probabilities >= thresholds[None, :]
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
