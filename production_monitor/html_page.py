"""One self-contained HTML page of a monitor run (no script, nothing fetched)."""
import html
from typing import Mapping


def _table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(result: Mapping) -> str:
    findings = result["findings"]
    verdict = (f"<p class='bad'>Shift detected: {len(findings)} finding(s).</p>" if findings
               else "<p class='good'>No shift: every measurement is within its threshold.</p>")
    production, reference = result["production"], result["eval"]
    classes = sorted(reference["class_shares"])
    sections = [
        f"<h1>Production images against model version {result['version']}</h1>",
        f"<p>Images: {html.escape(result['data'])} ({production['count']} predicted of "
        f"{result['files_sampled']} sampled, {result['files_listed']} listed). Served version: "
        f"{html.escape(result['version_dir'])}, trained in run {html.escape(result['run_id'])}.</p>",
        verdict,
        "<h2>Findings</h2>",
        _table(("kind", "subject", "measured", "threshold", "detail"),
               [(f["kind"], f["subject"], f"{f['measured']:.4f}", f["threshold"], f["detail"]) for f in findings])
        if findings else "<p>None.</p>",
        "<h2>Image format and size against the training statistics (TFDV skew)</h2>",
        _table(("feature", "distance"), [(name, f"{value:.4f}") for name, value in
                                         sorted(result["skew_distances"].items())]),
        "<h2>Predicted classes against the eval split</h2>",
        f"<p>L-infinity distance {result['class_mix_linf']:.4f} (threshold {result['class_mix_threshold']}).</p>",
        _table(("class", "production share", "eval share"),
               [(name, f"{production['class_shares'][name]:.3f}", f"{reference['class_shares'][name]:.3f}")
                for name in classes]),
        "<h2>Mean top-1 confidence</h2>",
        _table(("production", "eval", "largest drop allowed"),
               [(f"{production['mean_confidence']:.4f}", f"{reference['mean_confidence']:.4f}",
                 result["confidence_drop_threshold"])]),
        "<h2>Files not predicted</h2>",
        _table(("reason", "files"), sorted(result["rejected"].items()) +
               [("refused_by_model", production["refused"])]),
    ]
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}.bad{color:#b00}.good{color:#070}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>imagepipe monitor, version "
            f"{result['version']}</title><style>{style}</style></head><body>{''.join(sections)}</body></html>\n")
