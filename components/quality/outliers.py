"""Outliers: images unlike the rest of the data set (wrong content, blank frames, screenshots).

An image is listed when any of three checks finds it:
- **blank**: a near-uniform picture, its luma's standard deviation (at 64 px) under BLANK_LUMA_STD of 255. Base
  features cannot tell a blank frame from a genuine plain one: on crops of scikit-image's photos a grey frame's
  nearest neighbours were crops of the rocket photo's sky at cosine 0.97-0.985, closer than most crops are to
  their own nearest neighbour; those sky crops kept a luma deviation of 3.7 or more (JPEG and sensor noise).
- **far in features**: the mean cosine distance to its K_NEIGHBOURS nearest neighbours in the base's feature
  space, on a log scale, as a robust z-score (median, MAD) over every image, above `z_threshold`. Nearest
  neighbours, not class centroids: classes of varied pictures are wide, and their centroid distance left a
  planted blank frame and screenshot among the genuine crops (z 0.2 and 1.0 against up to 4.3).
- **atypical pixels**: the same score in a space of low-level image statistics (luma and gradient histograms,
  colour saturation; `image_statistics`), where a screenshot's flat white areas and hard edges stand apart from
  photographs that the base maps close to it (the planted screenshot: z 3.5-3.8 there, genuine crops 2.2 at
  most; in feature space it sat at a typical distance, cosine 0.73 to its nearest crop).
A mislabeled image sits among the images of another class and is not an outlier.
"""
import dataclasses
import io
from typing import List, Optional

import numpy as np
import tensorflow as tf
from PIL import Image

from components.quality.near_duplicates import ROW_BLOCK, unit_rows

# Reasons an image is listed.
BLANK, FAR_IN_FEATURES, ATYPICAL_PIXELS = "blank", "far_in_features", "atypical_pixels"
# Luma standard deviation (of 255) under which a picture is blank: a uniform frame saved as JPEG keeps under 1.
BLANK_LUMA_STD = 2.0
K_NEIGHBOURS = 5
# The side the statistics are taken at (JPEG draft decoding makes a camera photo cost milliseconds).
_STATISTICS_SIDE = 64
_LUMA_BINS = 8
# Edges of the histogram of absolute neighbour differences of luma (in [0, 1]): flat, noise, texture, edges.
_GRADIENT_EDGES = np.array([0.0, 0.002, 0.01, 0.03, 0.1, 0.3, 1.01], dtype=np.float32)
# The MAD of a normal distribution is 0.6745 sigma: this makes the robust z-score comparable to a z-score.
_MAD_TO_SIGMA = 1.4826
# Floors that keep scores finite when every image sits at one point (or every neighbour distance is equal).
_MIN_SPREAD = 1e-6
_MIN_DISTANCE = 1e-9
# Index of the luma standard deviation in image_statistics' vector.
LUMA_STD_INDEX = _LUMA_BINS + len(_GRADIENT_EDGES) - 1


@dataclasses.dataclass(frozen=True)
class Outliers:
    indices: np.ndarray  # Outlying examples, highest score first (blank frames first of all).
    scores: np.ndarray  # Their highest robust z-score of the two nearest-neighbour checks.
    nearest_class: np.ndarray  # The class most common among their nearest neighbours in feature space.
    reasons: List[List[str]]  # Which checks listed each.


def image_statistics(image_bytes: bytes) -> np.ndarray:
    """Low-level statistics of a picture at 64 px: luma histogram, histogram of absolute luma differences
    between neighbouring pixels, then luma deviation (of 255), mean and deviation of colour saturation."""
    with Image.open(io.BytesIO(image_bytes)) as image:
        image.draft("RGB", (_STATISTICS_SIDE, _STATISTICS_SIDE))
        rgb = image.convert("RGB").resize((_STATISTICS_SIDE, _STATISTICS_SIDE), Image.BILINEAR)
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0
    luma = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L".
    gradients = np.concatenate([np.abs(np.diff(luma, axis=1)).ravel(), np.abs(np.diff(luma, axis=0)).ravel()])
    # Channel by channel: a max or min along an axis of 3 runs numpy's slow short inner loop (py-spy: a third
    # of this function's time); the values are the same.
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    saturation = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    # Histograms by bin index and bincount: np.histogram sorts its input, 5 times slower here.
    luma_bins = np.minimum((luma * _LUMA_BINS).astype(np.int64), _LUMA_BINS - 1).ravel()
    gradient_bins = np.searchsorted(_GRADIENT_EDGES, gradients, side="right") - 1
    return np.concatenate([np.bincount(luma_bins, minlength=_LUMA_BINS) / luma.size,
                           np.bincount(gradient_bins, minlength=len(_GRADIENT_EDGES) - 1) / gradients.size,
                           [255.0 * luma.std(), saturation.mean(), saturation.std()]]).astype(np.float32)


def nearest_neighbours(vectors: np.ndarray, k: int, cosine: bool):
    """([N, k] distances, [N, k] indices) of each row's k nearest other rows, nearest first (cosine distance or
    Euclidean), computed in blocks of rows."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if cosine:
        vectors = unit_rows(vectors)
    k = min(k, len(vectors) - 1)
    squared = (vectors ** 2).sum(axis=1)
    found = []
    for start in range(0, len(vectors), ROW_BLOCK):
        block = vectors[start:start + ROW_BLOCK]
        products = block @ vectors.T
        distance = 1.0 - products if cosine else np.sqrt(np.maximum(
            squared[start:start + ROW_BLOCK, None] + squared[None, :] - 2.0 * products, 0.0))
        found.append(nearest_in_block(distance, start, k))
    return join_blocks(found)


def nearest_in_block(distance: np.ndarray, start: int, k: int):
    """The k nearest other rows of rows start.. of a [rows, N] distance block (changed in place: each row's
    distance to itself becomes infinite), nearest first."""
    distance[np.arange(len(distance)), np.arange(start, start + len(distance))] = np.inf  # Not its own neighbour.
    # TensorFlow's top_k (equal values in index order: its docstring, tensorflow/python/ops/nn_ops.py
    # top_k) instead of numpy's argpartition: per block of 1,024 rows at 7,071 images,
    # 56 ms against 330 (one loaded run), in both searches (features, pixel statistics). Same neighbours and
    # distances (tests/test_outliers.py).
    negated, nearest = tf.math.top_k(-distance, k=k, sorted=True)
    return -negated.numpy(), nearest.numpy().astype(np.int64)


def join_blocks(blocks):
    """(distances, indices) of every row from nearest_in_block's results, block after block."""
    return np.concatenate([d for d, _ in blocks]), np.concatenate([i for _, i in blocks])


def robust_z(values: np.ndarray) -> np.ndarray:
    median = np.median(values)
    spread = max(_MAD_TO_SIGMA * np.median(np.abs(values - median)), _MIN_SPREAD)
    return (values - median) / spread


def isolation_scores(distances: np.ndarray) -> np.ndarray:
    """Robust z-score of the log mean distance to the nearest neighbours (distances are skewed; their log is
    close to symmetric)."""
    return robust_z(np.log(np.maximum(distances.mean(axis=1), _MIN_DISTANCE)))


def standardized(statistics: np.ndarray) -> np.ndarray:
    """Each statistic scaled to unit deviation over the data set, so that none dominates the distance."""
    statistics = np.asarray(statistics, dtype=np.float64)
    return (statistics - statistics.mean(axis=0)) / np.maximum(statistics.std(axis=0), _MIN_SPREAD)


def find_outliers(features: np.ndarray, labels: np.ndarray, num_classes: int, z_threshold: float,
                  statistics: Optional[np.ndarray] = None, feature_neighbours=None) -> Outliers:
    """features [N, D] and given class ids [N]; statistics [N, S] from image_statistics (None: only the feature
    check runs); feature_neighbours: nearest_neighbours(features, K_NEIGHBOURS, cosine=True) when the caller
    has them (None: computed here)."""
    labels = np.asarray(labels, dtype=int)
    count = len(labels)
    if count <= K_NEIGHBOURS:  # Too few images to say what is typical.
        return Outliers(np.zeros(0, dtype=int), np.zeros(0), np.zeros(0, dtype=int), [])
    if feature_neighbours is None:
        feature_neighbours = nearest_neighbours(features, K_NEIGHBOURS, cosine=True)
    distances, neighbours = feature_neighbours
    checks = {FAR_IN_FEATURES: isolation_scores(distances)}
    blank = np.zeros(count, dtype=bool)
    if statistics is not None:
        checks[ATYPICAL_PIXELS] = isolation_scores(nearest_neighbours(standardized(statistics), K_NEIGHBOURS,
                                                                      cosine=False)[0])
        blank = np.asarray(statistics)[:, LUMA_STD_INDEX] < BLANK_LUMA_STD
    scores = np.max(np.stack(list(checks.values())), axis=0)
    reasons = [[BLANK] * bool(blank[i]) + [name for name, z in checks.items() if z[i] > z_threshold]
               for i in range(count)]
    indices = np.array([i for i in range(count) if reasons[i]], dtype=int)
    indices = indices[np.lexsort((-scores[indices], ~blank[indices]))] if len(indices) else indices
    nearest_class = np.array([np.bincount(labels[neighbours[i]], minlength=num_classes).argmax() for i in indices],
                             dtype=int)
    return Outliers(indices=indices, scores=scores[indices], nearest_class=nearest_class,
                    reasons=[reasons[i] for i in indices])
