"""The data-quality stage's findings for the run report, `imagepipe suspects` and the metrics.

Reads the DataQualityReport artifact of a run (components/quality/findings.py names its files) into plain data:
the summary, the top suspects, the near-duplicate groups (leaks first) and the outliers, each image with its
thumbnail as base64 PNG so that the page stays self-contained.
"""
import base64
from typing import Dict, List, Optional

from pipeline.report.store import ArtifactRecord, RunRecord

# How many of each the report shows (the JSONL files in the artifact list them all).
SHOWN_SUSPECTS, SHOWN_GROUPS, SHOWN_OUTLIERS = 12, 6, 8
_GROUP_MEMBERS_SHOWN = 6


def quality_artifact(run: RunRecord) -> Optional[ArtifactRecord]:
    from components.quality.findings import QUALITY_ARTIFACT_TYPE

    return run.first_output_of_type(QUALITY_ARTIFACT_TYPE)


def _with_thumbnail(uri: str, record: Dict) -> Dict:
    from components.quality.findings import read_thumbnail

    png = read_thumbnail(uri, record)
    return {**record, "thumbnail_png": base64.b64encode(png).decode("ascii") if png else None}


def _leaks_first(groups: List[Dict]) -> List[Dict]:
    return sorted(groups, key=lambda g: ("leak" not in g["kinds"], "conflicting" not in g["kinds"], g["group"]))


def quality_section(run: RunRecord, with_thumbnails: bool = True) -> Optional[Dict]:
    """None when the run has no data-quality stage; else its summary and the findings worth showing."""
    from components.quality import findings

    artifact = quality_artifact(run)
    if artifact is None:
        return None
    summary = findings.read_summary(artifact.uri)
    if summary is None:
        return {"uri": artifact.uri, "summary": None}
    paths = findings.paths(artifact.uri)
    show = (lambda record: _with_thumbnail(artifact.uri, record)) if with_thumbnails else (lambda record: record)
    groups = _leaks_first(findings.read_jsonl(paths["near_duplicates"]))[:SHOWN_GROUPS]
    return {
        "uri": artifact.uri,
        "files": paths,
        "summary": summary,
        "suspects": [show(record) for record in findings.read_jsonl(paths["suspect_labels"], SHOWN_SUSPECTS)],
        "groups": [{**group, "members": [show(member) for member in group["members"][:_GROUP_MEMBERS_SHOWN]],
                    "size": len(group["members"])} for group in groups],
        "outliers": [show(record) for record in findings.read_jsonl(paths["outliers"], SHOWN_OUTLIERS)],
    }


def all_findings(run: RunRecord) -> Optional[Dict]:
    """Every finding of the run, as `imagepipe suspects --json` prints them."""
    from components.quality import findings

    artifact = quality_artifact(run)
    if artifact is None:
        return None
    paths = findings.paths(artifact.uri)
    return {"run_id": run.run_id, "uri": artifact.uri, "summary": findings.read_summary(artifact.uri),
            "suspect_labels": findings.read_jsonl(paths["suspect_labels"]),
            "near_duplicates": findings.read_jsonl(paths["near_duplicates"]),
            "outliers": findings.read_jsonl(paths["outliers"])}


def format_findings(found: Dict, limit: int) -> str:
    """The suspects as a table, then the near-duplicate leaks and the outliers (the first `limit` of each)."""
    summary = found["summary"] or {}
    actions = summary.get("actions", {})
    lines = [f"Run {found['run_id']}: {summary.get('suspect_labels', 0)} suspect labels of "
             f"{summary.get('examples', '?')} examples (estimated label noise "
             f"{100 * summary.get('estimated_label_noise', 0):.1f}%), {summary.get('near_duplicate_leaks', 0)} "
             f"near-duplicate leaks ({actions.get('leak_eval_copies_dropped', 0)} eval copies dropped), "
             f"{summary.get('outliers', 0)} outliers. Files: {found['uri']}"]
    suspects = found["suspect_labels"][:limit]
    if suspects:
        given = max(len("given"), *(len(s["given_class"]) for s in suspects))
        suggested = max(len("suggested"), *(len(s["suggested_class"]) for s in suspects))
        lines.append(f"{'score':>6}  {'given':<{given}}  {'suggested':<{suggested}}  {'split':<5}  source")
        lines += [f"{s['score']:>6.3f}  {s['given_class']:<{given}}  {s['suggested_class']:<{suggested}}  "
                  f"{s['split']:<5}  {s['source_uri']}" for s in suspects]
    leaks = [group for group in found["near_duplicates"] if "leak" in group["kinds"]][:limit]
    for group in leaks:
        lines.append(f"Leak group {group['group']} ({', '.join(group['kinds'])}): " + "; ".join(
            f"{m['split']} {m['label']} {m['source_uri']}" for m in group["members"])
            + (f" [dropped from eval: {', '.join(group['dropped'])}]" if group.get("dropped") else ""))
    for outlier in found["outliers"][:limit]:
        reasons = f" [{', '.join(outlier['reasons'])}]" if outlier.get("reasons") else ""
        lines.append(f"Outlier (z {outlier['score']}, nearest class {outlier['nearest_class']}){reasons}: "
                     f"{outlier['split']} {outlier['given_class']} {outlier['source_uri']}")
    return "\n".join(lines)


def run_summary_entry(section: Optional[Dict]) -> Optional[Dict]:
    """What run_summary.json says of the stage: the counts, what was done, and where the findings are."""
    if not section or not section.get("summary"):
        return None
    summary = section["summary"]
    counts = ("suspect_labels", "estimated_label_noise", "near_duplicate_groups", "near_duplicate_leaks", "outliers")
    return {**{key: summary[key] for key in counts}, "actions": summary["actions"],
            "stopped_run": summary.get("stopped_run", []), "files": section["files"]}


def summary_lines(entry: Optional[Dict]) -> List[str]:
    """The printed summary's lines for the stage (run_summary_entry's result)."""
    if not entry:
        return []
    actions = entry["actions"]
    done = [f"{actions['leak_eval_copies_dropped']} leaking eval copies dropped" if actions["leak_eval_copies_dropped"]
            else f"leaks: {actions['near_duplicate_leaks']}"]
    if actions["exclude_suspect_labels"]:
        done.append(f"{actions['suspects_excluded_from_train']} suspects left out of training")
    return [f"Data quality: {entry['suspect_labels']} suspect labels (estimated label noise "
            f"{100 * entry['estimated_label_noise']:.1f}%), {entry['near_duplicate_groups']} near-duplicate groups "
            f"({entry['near_duplicate_leaks']} straddle train and eval), {entry['outliers']} outliers; "
            f"{'; '.join(done)} (`imagepipe suspects`; {entry['files']['summary']})"]
