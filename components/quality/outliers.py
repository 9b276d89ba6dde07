"""Outliers: images far from every class in feature space (wrong content, blank frames, screenshots).

Each class is summarized by the centroid of its unit-length features and by how far its own members lie
from it (median and median absolute deviation of the cosine distance). An image's distance to a class is
expressed in that class's robust z-score; it is an outlier when even its nearest class, so measured, is more
than `z_threshold` deviations away. A mislabeled image sits near another class and is not an outlier; a
blank frame or a screenshot sits near none.
"""
import dataclasses

import numpy as np

from components.quality.near_duplicates import unit_rows

# The MAD of a normal distribution is 0.6745 sigma: this makes the robust z-score comparable to a z-score.
_MAD_TO_SIGMA = 1.4826
# A class whose members all sit at one point has MAD 0; this floor keeps its z-scores finite.
_MIN_SPREAD = 1e-3


@dataclasses.dataclass(frozen=True)
class Outliers:
    indices: np.ndarray  # Outlying examples, farthest first.
    scores: np.ndarray  # Their robust z-score to the nearest class.
    nearest_class: np.ndarray  # The class id they are least far from.


def class_distance_scores(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """[N, K] robust z-score of each example's cosine distance to each class centroid (inf for an empty class)."""
    unit = unit_rows(np.asarray(features, dtype=np.float32))
    scores = np.full((len(unit), num_classes), np.inf)
    for class_id in range(num_classes):
        members = unit[labels == class_id]
        if not len(members):
            continue
        centroid = unit_rows(members.mean(axis=0, keepdims=True))[0]
        distances = 1.0 - unit @ centroid
        own = distances[labels == class_id]
        median = np.median(own)
        spread = max(_MAD_TO_SIGMA * np.median(np.abs(own - median)), _MIN_SPREAD)
        scores[:, class_id] = (distances - median) / spread
    return scores


def find_outliers(features: np.ndarray, labels: np.ndarray, num_classes: int, z_threshold: float) -> Outliers:
    scores = class_distance_scores(features, np.asarray(labels, dtype=int), num_classes)
    nearest = scores.argmin(axis=1)
    nearest_score = scores[np.arange(len(scores)), nearest]
    indices = np.nonzero(nearest_score > z_threshold)[0]
    indices = indices[np.argsort(-nearest_score[indices], kind="stable")]
    return Outliers(indices=indices, scores=nearest_score[indices], nearest_class=nearest[indices])
