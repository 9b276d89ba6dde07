"""Near-duplicate groups: the same photo saved twice (resized, recompressed, cropped a little).

Two signatures of each image are compared, all pairs, in blocks:
- the base's pooled features (cosine similarity): robust to crops and shifts, but on small, plain images
  (the 8x8 digits upscaled) distinct images of one class are as close as copies (measured: a distinct
  nearest neighbour at cosine 0.93 median, 0.988 at most; resized and recompressed copies 0.83-0.97);
- a perceptual signature: the image as a 16x16 grayscale thumbnail, mean removed, unit length (correlation
  of thumbnails). Resized and recompressed copies of the digits correlate at 0.9998 or more, distinct digits
  at 0.9963 at most (2 of 1,797 digits have a distinct neighbour at 0.995 or more); a low-contrast picture
  resized to 3/4 and saved as JPEG at quality 75 kept 0.9966-0.9975. A 64-bit DCT perceptual hash was less
  precise there (distinct digits at Hamming distance 2), so the thumbnail is kept whole. Grayscale, because
  JPEG's chroma subsampling moved colourful copies' RGB thumbnails down to 0.98; in luma they stayed above
  0.998 (so two pictures that differ only in colour count as one).
Two images are near-duplicates when their thumbnails correlate at `perceptual_similarity` or more, or when
their features reach `feature_similarity` and their thumbnails still correlate at `perceptual_crosscheck`
(the cross-check keeps two different photos of one scene apart). Groups are the connected components.
"""
import dataclasses
import io
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
from PIL import Image

from components.quality.settings import QualitySettings

THUMBNAIL_SIDE = 16
# Decoding at reduced size (JPEG draft mode) before the thumbnail: a camera photo costs milliseconds, not 100.
_DRAFT_SIDE = 4 * THUMBNAIL_SIDE
# Pairs are compared in row blocks of this many images (a block of similarities is ROW_BLOCK x N floats);
# outliers.py's neighbour search uses the same blocks.
ROW_BLOCK = 1024

REDUNDANT, CONFLICTING, LEAK = "redundant", "conflicting", "leak"


def perceptual_signature(image_bytes: bytes) -> np.ndarray:
    """The image as a 16x16 grayscale thumbnail, mean removed, unit length (zeros for a flat image)."""
    with Image.open(io.BytesIO(image_bytes)) as image:
        image.draft("L", (_DRAFT_SIDE, _DRAFT_SIDE))
        thumbnail = image.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.BILINEAR)
    values = np.asarray(thumbnail, dtype=np.float32).ravel()
    return unit_rows((values - values.mean())[None, :])[0]


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix, dtype=np.float32), where=norms > 0)


@dataclasses.dataclass(frozen=True)
class DuplicateRule:
    feature_similarity: float = QualitySettings.feature_similarity
    perceptual_similarity: float = QualitySettings.perceptual_similarity
    perceptual_crosscheck: float = QualitySettings.perceptual_crosscheck


def cosine_blocks(features: np.ndarray) -> Iterator[Tuple[int, np.ndarray]]:
    """(start, [rows, N] cosine similarities of rows start.. to every row), ROW_BLOCK rows at a time. The
    assessment hands each block to both pairwise searches (pairs_in_block here, outliers.nearest_in_block):
    this product is the stage's only cost that grows with N squared."""
    unit_features = unit_rows(np.asarray(features, dtype=np.float32))
    for start in range(0, len(unit_features), ROW_BLOCK):
        yield start, unit_features[start:start + ROW_BLOCK] @ unit_features.T


def pairs_in_block(cosine: np.ndarray, start: int, signatures: np.ndarray, rule: DuplicateRule) -> np.ndarray:
    """[P, 2] near-duplicate pairs (i < j) among rows start.. of a cosine block (cosine_blocks); signatures
    float32."""
    correlation = signatures[start:start + len(cosine)] @ signatures.T
    duplicate = (correlation >= rule.perceptual_similarity) | (
        (cosine >= rule.feature_similarity) & (correlation >= rule.perceptual_crosscheck))
    rows, columns = np.nonzero(duplicate)
    rows = rows + start
    upper = columns > rows
    return np.stack([rows[upper], columns[upper]], axis=1)


def similar_pairs(features: np.ndarray, signatures: np.ndarray, rule: DuplicateRule) -> np.ndarray:
    """[P, 2] index pairs (i < j) that the rule calls near-duplicates."""
    signatures = np.asarray(signatures, dtype=np.float32)
    found = [pairs_in_block(cosine, start, signatures, rule) for start, cosine in cosine_blocks(features)]
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=int)


def connected_groups(pairs: np.ndarray, count: int) -> List[List[int]]:
    """Connected components of the pair graph with more than one member, each sorted, largest first."""
    parent = list(range(count))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for first, second in pairs:
        parent[root(int(first))] = root(int(second))
    members: Dict[int, List[int]] = {}
    for node in range(count):
        members.setdefault(root(node), []).append(node)
    groups = [sorted(group) for group in members.values() if len(group) > 1]
    return sorted(groups, key=lambda group: (-len(group), group[0]))


def group_kinds(group: Sequence[int], labels: Sequence[str], splits: Sequence[str]) -> List[str]:
    """What a group is: a leak (in train and eval), conflicting (several classes), redundant (one class)."""
    kinds = []
    if len({splits[i] for i in group}) > 1:
        kinds.append(LEAK)
    kinds.append(CONFLICTING if len({labels[i] for i in group}) > 1 else REDUNDANT)
    return kinds


def find_groups(features: np.ndarray, signatures: np.ndarray, rule: DuplicateRule = DuplicateRule()
                ) -> List[List[int]]:
    return connected_groups(similar_pairs(features, signatures, rule), len(features))
