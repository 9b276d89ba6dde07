"""`imagepipe runs`: past runs from ML Metadata, newest first, from artifact properties only (fast: no file
is read, so it works the same on a cluster's metadata service)."""
import datetime
from typing import Dict, List, Optional

from pipeline.report.store import MetadataReader, RunRecord

# Set by the GatedEvaluator (components/evaluation/component.py) on the ModelBlessing artifact.
ACCURACY_PROPERTY = "accuracy"


def run_row(run: RunRecord) -> Dict:
    blessing = run.first_output_of_type("ModelBlessing")
    pushed = run.first_output_of_type("PushedModel")
    pushed_version = None
    if pushed is not None and pushed.properties.get("pushed"):
        pushed_version = pushed.properties.get("pushed_version")
        if pushed.properties.get("already_pushed"):  # Served already: this run pushed nothing new.
            pushed_version = f"{pushed_version} (same)"
    return {
        "run_id": run.run_id,
        "pipeline": run.pipeline,
        "started": datetime.datetime.fromtimestamp(run.start_ms / 1000).strftime("%Y-%m-%d %H:%M:%S"),
        "status": run.status,
        "accuracy": blessing.properties.get(ACCURACY_PROPERTY) if blessing else None,
        "blessed": bool(blessing.properties.get("blessed")) if blessing else None,
        "pushed_version": pushed_version,
    }


def list_runs(reader: MetadataReader, limit: Optional[int] = None) -> List[Dict]:
    contexts = reader.run_contexts()[:limit] if limit else reader.run_contexts()
    return [run_row(reader.read_run(context)) for context in contexts]


def format_runs(rows: List[Dict]) -> str:
    def cell(value, fmt="{}"):
        return "-" if value is None else fmt.format(value)

    lines = [f"{'run id':<28} {'pipeline':<16} {'started':<19} {'status':<9} {'accuracy':>8} {'blessed':>7} "
             f"{'pushed':>8}"]
    for row in rows:
        blessed = None if row["blessed"] is None else ("yes" if row["blessed"] else "no")
        lines.append(f"{row['run_id']:<28} {row['pipeline']:<16} {row['started']:<19} {row['status']:<9} "
                     f"{cell(row['accuracy'], '{:.4f}'):>8} {cell(blessed):>7} {cell(row['pushed_version']):>8}")
    return "\n".join(lines)
