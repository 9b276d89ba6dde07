"""The data-quality stage's files in its output artifact: their names, how they are written and read back.

Shared by the executor (writes), the run report, `imagepipe suspects` and the metrics (read), so each file
name has one home. Paths may be URIs (gs://...): tf.io.gfile and posixpath only.
"""
import json
import posixpath
from typing import Dict, Iterable, List, Optional

import tensorflow as tf

QUALITY_ARTIFACT_TYPE = "imagepipe.DataQualityReport"  # KFP v2 wants a namespaced custom type name.
SUMMARY_FILE_NAME = "quality_summary.json"
SUSPECTS_FILE_NAME = "suspect_labels.jsonl"
NEAR_DUPLICATES_FILE_NAME = "near_duplicates.jsonl"
OUTLIERS_FILE_NAME = "outliers.jsonl"
THUMBNAIL_DIR = "thumbnails"
FILE_NAMES = {"suspect_labels": SUSPECTS_FILE_NAME, "near_duplicates": NEAR_DUPLICATES_FILE_NAME,
              "outliers": OUTLIERS_FILE_NAME, "summary": SUMMARY_FILE_NAME}


def paths(quality_uri: str) -> Dict[str, str]:
    return {name: posixpath.join(quality_uri, file_name) for name, file_name in FILE_NAMES.items()}


def write_jsonl(path: str, records: Iterable[Dict]) -> None:
    # One write, even of nothing: GFile creates the file only when written to.
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def read_jsonl(path: str, limit: Optional[int] = None) -> List[Dict]:
    records = []
    with tf.io.gfile.GFile(path) as handle:
        for line in handle:
            if limit is not None and len(records) >= limit:
                break
            if line.strip():
                records.append(json.loads(line))
    return records


def read_summary(quality_uri: str) -> Optional[Dict]:
    path = paths(quality_uri)["summary"]
    if not tf.io.gfile.exists(path):
        return None  # A stage that failed before writing anything.
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def read_thumbnail(quality_uri: str, record: Dict) -> Optional[bytes]:
    """The PNG thumbnail of a listed image, if the stage wrote one (it does for the first few of each kind)."""
    if not record.get("thumbnail"):
        return None
    path = posixpath.join(quality_uri, record["thumbnail"])
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as handle:
        return handle.read()
