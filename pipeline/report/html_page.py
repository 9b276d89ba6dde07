"""Renders the run report as one self-contained HTML page: inline CSS, pictures as base64 PNG data URIs,
no script and no external resource, so it opens offline, from a file, an artifact store or an e-mail.

Every value from the run (class names, file names, reasons) is HTML-escaped.
"""
import base64
import html
from typing import Iterable, Mapping, Optional, Sequence

SECTIONS = (("overview", "Overview"), ("data", "Data"), ("validation", "Data validation"),
            ("quality", "Data quality"), ("training", "Training"), ("evaluation", "Evaluation"), ("push", "Push"),
            ("lineage", "Lineage"), ("components", "Components"))

_CSS = """
:root { --ok: #1a7f37; --bad: #b42318; --muted: #5f6b7a; --line: #e3e8ef; --bg: #f7f9fc; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1f2933;
       background: var(--bg); }
header { background: #1f2d3d; color: #fff; padding: 18px 32px 12px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header .sub { color: #c9d3df; font-size: 13px; }
nav { position: sticky; top: 0; z-index: 1; background: #fff; border-bottom: 1px solid var(--line);
      padding: 8px 32px; }
nav a { color: #1f5f9e; text-decoration: none; margin-right: 18px; font-size: 13px; }
main { max-width: 1180px; margin: 0 auto; padding: 8px 32px 48px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 22px 18px;
          margin-top: 18px; }
h2 { font-size: 18px; margin: 0 0 10px; }
h3 { font-size: 14px; margin: 16px 0 6px; color: #334155; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 12px 4px 0; text-align: left; vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; padding-left: 12px; font-variant-numeric: tabular-nums; }
code, .path { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 12px; word-break: break-all; }
.badge { display: inline-block; border-radius: 12px; padding: 1px 10px; font-size: 12px; font-weight: 600;
         color: #fff; }
.ok { background: var(--ok); } .bad { background: var(--bad); } .neutral { background: #64748b; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 4px 0 8px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 150px; }
.card .label { color: var(--muted); font-size: 12px; } .card .value { font-size: 20px; font-weight: 600; }
.figures { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
figure { margin: 6px 0; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
pre.failure { background: #fef3f2; border: 1px solid #fecdca; border-radius: 6px; padding: 8px 12px;
              white-space: pre-wrap; font-size: 12px; }
.muted { color: var(--muted); } ul.reasons { margin: 4px 0 8px 0; padding-left: 20px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; margin: 4px 0 10px; }
.thumb { width: 132px; font-size: 11px; border: 1px solid var(--line); border-radius: 6px; padding: 6px; }
.thumb img { width: 96px; height: 96px; object-fit: contain; image-rendering: pixelated; display: block; }
.thumb.dropped { border-color: var(--bad); } .group { border-left: 3px solid var(--line); padding-left: 10px; }
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _number(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return _e(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence], numeric: Sequence[int] = ()) -> str:
    head = "".join(f'<th class="{"num" if i in numeric else ""}">{_e(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{"num" if i in numeric else ""}">{cell}</td>'
                                    for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(png: Optional[bytes], alt: str, caption: str) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _badge(ok: Optional[bool], yes: str, no: str, unknown: str = "not run") -> str:
    if ok is None:
        return f'<span class="badge neutral">{_e(unknown)}</span>'
    return f'<span class="badge {"ok" if ok else "bad"}">{_e(yes if ok else no)}</span>'


def _card(label: str, value: str) -> str:
    return f'<div class="card"><div class="label">{_e(label)}</div><div class="value">{value}</div></div>'


def _section(section_id: str, body: str) -> str:
    title = dict(SECTIONS)[section_id]
    return f'<section id="{section_id}"><h2>{_e(title)}</h2>{body}</section>'


def _list(items: Iterable[str]) -> str:
    return "<ul class='reasons'>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>"


def _missing(what: str) -> str:
    return f'<p class="muted">{_e(what)}</p>'


def overview(data: Mapping) -> str:
    run, evaluation, push = data["run"], data.get("evaluation") or {}, data.get("push") or {}
    accuracy = (evaluation.get("overall") or {}).get(evaluation.get("accuracy_metric") or "")
    cards = [
        _card("status", _badge(run["status"] == "COMPLETE", run["status"], run["status"])),
        _card("eval accuracy", _number(accuracy)),
        _card("blessed", _badge(evaluation.get("blessed") if evaluation else None, "blessed", "not blessed")),
        _card("pushed version", _e(push.get("version")) if push.get("pushed") else "–"),
        _card("wall time", f"{run['wall_seconds']:.0f} s"),
    ]
    facts = _table(("", ""), [("run id", f"<code>{_e(run['run_id'])}</code>"), ("pipeline", _e(run["pipeline"])),
                              ("started", _e(run["started"])), ("finished", _e(run["finished"]))])
    return _section("overview", f'<div class="cards">{"".join(cards)}</div>{_failure(data)}{facts}')


def _failure(data: Mapping) -> str:
    """Which component failed and, in a report written right after the run, the error it raised."""
    failed = [c["component"] for c in data["components"] if c["state"] in ("FAILED", "CANCELED")]
    if not failed:
        return ""
    text = f"<p><b>Failed:</b> {_e(', '.join(failed))} (the components after it did not run).</p>"
    if data["run"].get("failure"):
        text += f"<pre class='failure'>{_e(data['run']['failure'])}</pre>"
    return text


def dataset(data: Mapping, plots: Mapping[str, bytes]) -> str:
    section = data.get("dataset")
    if not section:
        return _section("data", _missing("No examples were ingested in this run."))
    counts = section["per_class_and_split"]
    splits = sorted({split for c in counts.values() for split in c}, key=lambda s: (s != "train", s))
    rows = [[_e(name)] + [_number(counts[name].get(split, 0)) for split in splits]
            + [_number(sum(counts[name].values()))] for name in sorted(counts)]
    totals = _table(("files read", "examples", "quarantined", "ignored", "leaks prevented", "span"),
                    [[_number(section[key]) for key in ("files_read", "examples_written", "quarantined", "ignored",
                                                        "leaks_prevented", "span")]], numeric=range(6))
    body = totals + '<div class="figures">' + _table(["class", *splits, "total"], rows,
                                                      numeric=range(1, len(splits) + 2))
    body += _figure(plots.get("class_counts"), "examples per class and split", "Examples per class and split")
    body += "</div>"
    body += "<h3>Quarantined files by reason</h3>"
    if not section["quarantined_by_reason"]:
        body += _missing("No file was quarantined.")
    for reason, entry in section["quarantined_by_reason"].items():
        files = [(f"<span class='path'>{_e(f['uri'])}</span>", _e(f["class"]), _e(f["detail"])) for f in entry["files"]]
        more = entry["count"] - len(entry["files"])
        body += (f"<p><b>{_e(reason)}</b>: {entry['count']} file(s)</p>" + _table(("file", "class", "detail"), files)
                 + (_missing(f"… and {more} more in the manifest") if more > 0 else ""))
    body += f"<p class='muted'>Manifest: <span class='path'>{_e(section['quarantine_manifest'])}</span></p>"
    return _section("data", body)


def validation(data: Mapping) -> str:
    section = data.get("validation")
    if not section:
        return _section("validation", _missing("Data validation did not run."))
    gate = section.get("gate") or {}
    passed = gate.get("passed") if gate else (False if section.get("gate_state") == "FAILED" else None)
    body = f"<p>Validation gate: {_badge(passed, 'passed', 'failed')}</p>"
    if not gate and section.get("gate_state") == "FAILED":
        body += _missing("The gate stopped the run (then it keeps no result): its anomalies are in the error "
                         "above, or in the run's log.")
    for title, key in (("Errors (stop the run)", "errors"), ("Warnings (warn-only kinds)", "warnings")):
        if gate.get(key):
            body += f"<h3>{_e(title)}</h3>" + _list(gate[key])
    body += "<h3>TFDV anomalies (ExampleValidator, against the schema)</h3>"
    anomalies = section.get("tfdv_anomalies") or {}
    rows = [(_e(split), _e(a["feature"]), _e(a["type"]), _e(a["description"]))
            for split, entries in anomalies.items() for a in entries]
    body += _table(("split", "feature", "type", "description"), rows) if rows else _missing(
        "None: " + ", ".join(f"{split} split clean" for split in anomalies) if anomalies
        else "No anomalies artifact, or its files are not readable.")
    body += "<h3>Drift against the previous span</h3>"
    if section.get("drift_baseline"):
        body += f"<p>Train split compared with <span class='path'>{_e(section['drift_baseline'])}</span>.</p>"
        measured = section.get("drift_measurements") or []
        rows = [(_e(m["feature"]), _e(m["measure"]), _number(m["value"]), _number(m["threshold"]),
                 _badge(not m["exceeds"], "within", "drift")) for m in measured]
        body += _table(("feature", "distance", "value", "threshold", ""), rows, numeric=(2, 3)) if rows else ""
        if section["drift_findings"]:
            body += _list(section["drift_findings"])
        elif measured or section.get("gate"):
            if not any(m["exceeds"] for m in measured):
                body += _missing("No drift beyond the schema's thresholds.")
        else:
            body += _missing("Drift distances unavailable: the statistics could not be read.")
    else:
        body += _missing("Not checked: no statistics of an earlier span (the first span, or one span re-run).")
    return _section("validation", body)


def _thumbnail(record: Mapping, caption: str, dropped: bool = False) -> str:
    """One image of a finding: its inline PNG thumbnail (if the stage kept one), a caption and its source URI."""
    picture = (f'<img src="data:image/png;base64,{record["thumbnail_png"]}" alt="{_e(record["source_uri"])}">'
               if record.get("thumbnail_png") else '<div class="muted">(no thumbnail)</div>')
    return (f'<div class="thumb{" dropped" if dropped else ""}">{picture}<div>{caption}</div>'
            f'<div class="path">{_e(record["source_uri"])}</div></div>')


def _quality_actions(summary: Mapping) -> str:
    actions = summary.get("actions", {})
    done = [f"near-duplicate leaks: {actions.get('near_duplicate_leaks')} "
            f"({actions.get('leak_eval_copies_dropped', 0)} eval copies dropped)",
            f"suspects excluded from train: {actions.get('suspects_excluded_from_train', 0)}"
            + ("" if actions.get("exclude_suspect_labels") else " (--exclude-suspect-labels off)"),
            "--max-label-noise: "
            + ("off" if actions.get("max_label_noise") is None else str(actions["max_label_noise"]))]
    done += [f"stopped the run: {reason}" for reason in summary.get("stopped_run") or []]
    return _list(done)


def data_quality(data: Mapping) -> str:
    section = data.get("quality")
    if not section:
        return _section("quality", _missing("The data-quality stage did not run."))
    summary = section.get("summary")
    if not summary:
        return _section("quality", _missing(f"The data-quality stage wrote no findings ({section['uri']})."))
    noise = summary.get("estimated_label_noise") or 0.0
    cards = [_card("suspect labels", _number(summary["suspect_labels"])),
             _card("estimated label noise", f"{100 * noise:.1f}%"),
             _card("near-duplicate groups", _number(summary["near_duplicate_groups"])),
             _card("train/eval leaks", _number(summary["near_duplicate_leaks"])),
             _card("outliers", _number(summary["outliers"]))]
    body = f'<div class="cards">{"".join(cards)}</div>' + _quality_actions(summary)
    body += (f"<p class='muted'>Out-of-fold heads: {_number(summary.get('folds'))} folds, accuracy "
             f"{_number(summary.get('out_of_fold_accuracy'))}; label check "
             f"{_e(summary.get('label_check', 'done'))}.</p>")
    per_class = summary.get("estimated_label_noise_per_class", {})
    if per_class:
        body += "<h3>Estimated label noise per class</h3>" + _table(
            ("class", "noise rate", "threshold"),
            [(_e(name), _number(rate), _number(summary.get("class_thresholds", {}).get(name)))
             for name, rate in per_class.items()], numeric=(1, 2))
    if section.get("suspects"):
        body += "<h3>Top suspect labels (given → suggested, score)</h3><div class='thumbs'>" + "".join(
            _thumbnail(s, f"{_e(s['given_class'])} → <b>{_e(s['suggested_class'])}</b> "
                          f"({_number(s['score'], 3)}, {_e(s['split'])})") for s in section["suspects"]) + "</div>"
    for group in section.get("groups", []):
        dropped = set(group.get("dropped") or [])
        body += (f"<h3>Near-duplicate group {_e(group['group'])}: {_e(', '.join(group['kinds']))} "
                 f"({_e(group['size'])} images)</h3><div class='thumbs group'>" + "".join(
                     _thumbnail(m, f"{_e(m['split'])} · {_e(m['label'])}"
                                   + (" · <b>dropped from eval</b>" if m["source_uri"] in dropped else ""),
                                m["source_uri"] in dropped) for m in group["members"]) + "</div>")
    if section.get("outliers"):
        body += ("<h3>Outliers (unlike the rest of the data: blank, far in features, atypical pixels)</h3>"
                 "<div class='thumbs'>") + "".join(
            _thumbnail(o, f"{_e(o['given_class'])}, nearest {_e(o['nearest_class'])} (z {_number(o['score'], 1)})"
                          + (f" · {_e(', '.join(o['reasons']))}" if o.get("reasons") else ""))
            for o in section["outliers"]) + "</div>"
    files = section.get("files", {})
    body += "<p class='muted'>Files: " + ", ".join(f"<span class='path'>{_e(path)}</span>"
                                                   for path in files.values()) + "</p>"
    return _section("quality", body)


def training(data: Mapping, plots: Mapping[str, bytes]) -> str:
    section = data.get("training")
    if not section:
        return _section("training", _missing("The Trainer did not produce a model in this run."))
    phases = {name: phase for name, phase in sorted(section["phases"].items()) if isinstance(phase, Mapping)}
    rows = []
    for name, phase in phases.items():
        rows.append((_e(name), _number(len(phase.get("loss", []))), _number(phase.get("seconds"), 1),
                     _number((phase.get("loss") or [None])[-1]), _number((phase.get("val_loss") or [None])[-1]),
                     _number((phase.get("val_accuracy") or [None])[-1])))
    body = _figure(plots.get("training_curves"), "training curves of both phases",
                   "Loss and accuracy per epoch; phase 1 trains the head on a frozen base, phase 2 fine-tunes "
                   "(dashed line: the phase boundary).")
    body += _table(("phase", "epochs", "seconds", "last loss", "last eval loss", "last eval accuracy"), rows,
                   numeric=range(1, 6))
    body += (f"<p>TensorBoard logs (one run per phase): <span class='path'>{_e(section['tensorboard_logdir'])}</span>"
             f"<br><code>tensorboard --logdir {_e(section['tensorboard_logdir'])}</code></p>")
    return _section("training", body)


def _per_class_rows(section: Mapping) -> list:
    """Per class name: counts, precision and recall (confusion matrix), cross-entropy (its slice) and TFMA's
    one-vs-rest calibration, which TFMA keys by class id (the confusion matrix's order)."""
    slices = section.get("per_class_slices") or {}
    class_ids = {name: index for index, name in
                 enumerate((section.get("confusion_matrix") or {}).get("class_names") or [])}
    rows = []
    for name, values in (section.get("per_class") or {}).items():
        calibration = (section.get("overall") or {}).get(f"calibration@class_id={class_ids.get(name)}")
        rows.append((_e(name), _number(values.get("examples")), _number(values.get("precision")),
                     _number(values.get("recall")),
                     _number(slices.get(f"label={name}", {}).get("sparse_categorical_crossentropy")),
                     _number(calibration)))
    return rows


def evaluation(data: Mapping, plots: Mapping[str, bytes]) -> str:
    section = data.get("evaluation")
    if not section:
        return _section("evaluation", _missing("The Evaluator did not run."))
    body = f"<p>Decision: {_badge(section['blessed'], 'blessed', 'not blessed')}"
    body += (" (compared with the baseline model)" if section.get("compared_with_baseline")
             else " (no baseline yet: absolute thresholds only)") + "</p>"
    if section["reasons"]:
        body += _list(section["reasons"])
    else:
        body += _missing("Every threshold was met.")
    overall = {name: value for name, value in (section.get("overall") or {}).items() if "@class_id=" not in name}
    body += "<h3>Overall (eval split)</h3>" + _table(
        ("metric", "value"), [(_e(name), _number(value)) for name, value in sorted(overall.items())], numeric=(1,))
    body += "<h3>Per class</h3>" + _table(
        ("class", "eval examples", "precision", "recall", "cross-entropy", "calibration"), _per_class_rows(section),
        numeric=range(1, 6))
    body += _missing("Calibration: mean predicted probability of the class / its observed share (1 is calibrated).")
    matrix = section.get("confusion_matrix") or {}
    body += '<div class="figures">' + _figure(plots.get("confusion_matrix"), "confusion matrix",
                                             "Confusion matrix (eval split, argmax)")
    body += _figure(plots.get("calibration"), "calibration (reliability diagram)",
                    "Calibration per class, one-vs-rest") + "</div>"
    if not matrix.get("actual_by_predicted"):
        body += _missing("No confusion matrix (no class names known to the Evaluator).")
    ece = section.get("expected_calibration_error")
    body += (f"<p>Expected calibration error (class-wise mean): <b>{_number(ece)}</b></p>" if ece is not None
             else _missing("Calibration not computed: the Evaluator was given no class names."))
    body += (f"<p class='muted'>Blessing report: <span class='path'>{_e(section['blessing_uri'])}</span>; "
             f"TFMA output: <span class='path'>{_e(section['evaluation_uri'])}</span></p>")
    return _section("evaluation", body)


def push(data: Mapping) -> str:
    section = data.get("push")
    if not section:
        return _section("push", _missing("The Pusher did not run."))
    if not section["pushed"]:
        return _section("push", "<p>" + _badge(False, "", "not pushed") + " The model was not blessed; the serving "
                                "directory is unchanged.</p>")
    version = _badge(True, f"version {section['version']}", "")
    if section.get("already_pushed"):
        return _section("push", f"<p>{version} already served at <span class='path'>{_e(section['destination'])}"
                                "</span>: an earlier run pushed this same model; nothing new was pushed.</p>")
    return _section("push", f"<p>{version} pushed to <span class='path'>{_e(section['destination'])}</span> "
                            f"({_e(section['method'])})</p>")


def lineage(data: Mapping) -> str:
    rows = []
    for role, artifact in (data.get("lineage") or {}).items():
        if artifact is None:
            absent = "none (no earlier blessed model)" if role == "baseline_model" else "not produced"
            rows.append((_e(role.replace("_", " ")), "–", absent, ""))
            continue
        origin = (f"reused from run <code>{_e(artifact['produced_by_run'])}</code>" if artifact["reused"]
                  else "this run")
        rows.append((_e(role.replace("_", " ")), _e(artifact["id"]), f"<span class='path'>{_e(artifact['uri'])}</span>",
                     origin))
    return _section("lineage", _table(("artifact", "MLMD id", "URI", "produced by"), rows))


def components(data: Mapping, plots: Mapping[str, bytes]) -> str:
    rows = [(_e(c["component"]), _e(c["state"]), _number(c["start_offset_seconds"], 1), _number(c["seconds"], 1))
            for c in data["components"]]
    body = _figure(plots.get("timeline"), "component timeline", "Wall time per component (grey: cached)")
    body += _table(("component", "state", "started at (s)", "wall time (s)"), rows, numeric=(2, 3))
    return _section("components", body)


def render(data: Mapping, plots: Mapping[str, bytes]) -> str:
    run = data["run"]
    nav = "".join(f'<a href="#{section_id}">{_e(title)}</a>' for section_id, title in SECTIONS)
    sections = [overview(data), dataset(data, plots), validation(data), data_quality(data), training(data, plots),
                evaluation(data, plots), push(data), lineage(data), components(data, plots)]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Run report {_e(run['run_id'])}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>Run report: {_e(run['pipeline'])}</h1>"
            f"<div class='sub'>run {_e(run['run_id'])} · {_e(run['status'])} · {_e(run['started'])}</div></header>"
            f"<nav>{nav}</nav><main>{''.join(sections)}</main></body></html>")
