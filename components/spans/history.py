"""The span history: one small JSON record per span that passed data validation, under the pipeline root.

Drift needs the statistics of an earlier span and the span window needs earlier spans' examples. Locally
ML Metadata could answer through a Resolver, but the open-source KFP v2 backend executes no resolver task
(backend/src/v2/compiler/argocompiler/dag.go refuses "resolver executors"), so both read this history
instead, on every orchestrator alike, as LatestPushedModel reads the serving directory for the baseline:

    <pipeline_root>/span_history/<pipeline_name>/span-<S>.json

A record is written by SpanWindow (components/spans/component.py), which runs only after the validation
gate passed, so a span that failed validation is never a drift baseline nor in a window. A span ingested
again (same number) replaces its record: the newest ingestion wins. Records are written to a temporary
name and renamed, so a reader never sees half a record (on gs:// a rename is a server-side copy, then a
delete: the final name appears whole). Nothing here knows TFX types; it is tested on hand-built records.
"""
import dataclasses
import hashlib
import json
import logging
import posixpath
import re
import uuid
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

HISTORY_FOLDER = "span_history"
_RECORD_NAME = re.compile(r"^span-(\d+)\.json$")


@dataclasses.dataclass(frozen=True)
class SpanRecord:
    """What a later run needs of a validated span: where its examples and statistics are."""

    span: int
    examples_uri: str
    statistics_uri: str
    split_names: Sequence[str] = ("train", "eval")
    version: Optional[int] = None
    # The ExampleGen input fingerprint (file names, sizes, mtimes): tells two ingestions of a span apart.
    input_fingerprint: str = ""
    # Ingestion's per-class counts ({class: {split: n}}), summed over the spans of a window.
    examples_per_class_and_split: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)
    pipeline_run_id: str = ""

    def to_json(self) -> str:
        values = dataclasses.asdict(self)
        values["split_names"] = list(self.split_names)
        return json.dumps(values, indent=1, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "SpanRecord":
        values = json.loads(text)
        known = {field.name for field in dataclasses.fields(cls)}
        record = cls(**{key: value for key, value in values.items() if key in known})
        return dataclasses.replace(record, span=int(record.span), split_names=tuple(record.split_names))


def history_dir(pipeline_root: str, pipeline_name: str) -> str:
    """Under the pipeline root, so a history lives and dies with the artifacts it points at."""
    return posixpath.join(pipeline_root.rstrip("/"), HISTORY_FOLDER, pipeline_name)


def record_path(directory: str, span: int) -> str:
    return posixpath.join(directory, f"span-{int(span)}.json")


def write_record(directory: str, record: SpanRecord) -> str:
    """Writes (or replaces) the span's record atomically; returns its path."""
    tf.io.gfile.makedirs(directory)
    final = record_path(directory, record.span)
    temporary = posixpath.join(directory, f".span-{record.span}.{uuid.uuid4().hex}.tmp")
    with tf.io.gfile.GFile(temporary, "w") as handle:
        handle.write(record.to_json())
    tf.io.gfile.rename(temporary, final, overwrite=True)
    return final


def read_records(directory: str) -> Dict[int, SpanRecord]:
    """Every record by span; an unreadable record is skipped with a warning (the others still count)."""
    if not tf.io.gfile.isdir(directory):
        return {}
    records = {}
    for name in sorted(tf.io.gfile.listdir(directory)):
        match = _RECORD_NAME.match(name.rstrip("/"))
        if not match:
            continue
        path = posixpath.join(directory, name)
        try:
            with tf.io.gfile.GFile(path, "r") as handle:
                record = SpanRecord.from_json(handle.read())
        except (ValueError, TypeError, KeyError, tf.errors.OpError) as error:
            logging.warning("Span history: skipping unreadable record %s (%s)", path, error)
            continue
        if record.span != int(match.group(1)):
            logging.warning("Span history: skipping %s, which records span %d", path, record.span)
            continue
        records[record.span] = record
    return records


def earlier_records(records: Dict[int, SpanRecord], span: int) -> List[SpanRecord]:
    """Records of spans before `span`, newest first (a re-run of the same span is not an earlier span)."""
    return [records[s] for s in sorted(records, reverse=True) if s < span]


def previous_record(records: Dict[int, SpanRecord], span: int) -> Optional[SpanRecord]:
    """The drift baseline of `span`: the newest validated span before it, or None for the first span."""
    return next(iter(earlier_records(records, span)), None)


def window_records(records: Dict[int, SpanRecord], current: SpanRecord, window: Optional[int]) -> List[SpanRecord]:
    """The current span and the newest `window - 1` earlier ones (every earlier one when window is None),
    newest first."""
    earlier = earlier_records(records, current.span)
    if window is not None:
        earlier = earlier[:max(window - 1, 0)]
    return [current, *earlier]


def fingerprint_before(directory: str, span: Optional[int]) -> str:
    """A hash of the records of spans before `span` (every record when span is None): what PreviousSpanStatistics
    and SpanWindow read besides their inputs, for their cache key. The current span's own record is left out,
    so a re-run of the same data stays cached after the first run recorded it."""
    digest = hashlib.sha256()
    records = read_records(directory)
    for record_span in sorted(records):
        if span is None or record_span < span:
            digest.update(records[record_span].to_json().encode())
    return digest.hexdigest()[:16]
