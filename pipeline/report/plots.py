"""The report's pictures, drawn with matplotlib and returned as PNG bytes.

Figures are made with matplotlib.figure.Figure, not pyplot: no global figure state and no GUI backend
(Figure.savefig renders with Agg), so a report can be written from any thread or server process.
"""
import io
from typing import Dict, List, Mapping, Optional, Sequence

from matplotlib.figure import Figure
from matplotlib.patches import Patch

# One palette for the whole page (colour-blind safe, Okabe-Ito).
TRAIN_COLOR, EVAL_COLOR = "#0072B2", "#E69F00"
STATE_COLORS = {"COMPLETE": "#009E73", "CACHED": "#999999", "FAILED": "#D55E00", "RUNNING": "#56B4E9"}
PHASE_SHADES = ("#f3f6fa", "#fdf6ec")
_DPI = 110


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


def class_counts(per_class_and_split: Mapping[str, Mapping[str, int]]) -> bytes:
    """Horizontal bars per class, one segment per split (train, eval, then any other)."""
    classes = sorted(per_class_and_split)
    splits = sorted({split for counts in per_class_and_split.values() for split in counts},
                    key=lambda split: (split not in ("train", "eval"), split != "train", split))
    figure = Figure(figsize=(6.4, 0.45 * len(classes) + 1.2))
    axes = figure.add_subplot()
    left = [0] * len(classes)
    colors = {"train": TRAIN_COLOR, "eval": EVAL_COLOR}
    for split in splits:
        values = [per_class_and_split[name].get(split, 0) for name in classes]
        bars = axes.barh(classes, values, left=left, label=split, color=colors.get(split))
        axes.bar_label(bars, labels=[str(v) if v else "" for v in values], label_type="center", color="white",
                       fontsize=8)
        left = [a + b for a, b in zip(left, values)]
    axes.invert_yaxis()
    axes.set_xlabel("examples")
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(splits), frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def _phase_series(phases: Mapping[str, Mapping[str, Sequence[float]]], key: str) -> List[float]:
    return [value for phase in sorted(phases) for value in phases[phase].get(key, [])]


def training_curves(phases: Mapping[str, Mapping[str, Sequence[float]]]) -> bytes:
    """Loss and accuracy per epoch across both phases (training and eval), phases shaded and separated."""
    ordered = sorted(phases)
    lengths = [len(phases[phase].get("loss", [])) for phase in ordered]
    figure = Figure(figsize=(10, 3.6))
    for index, (metric, title) in enumerate((("loss", "loss"), ("accuracy", "accuracy"))):
        axes = figure.add_subplot(1, 2, index + 1)
        start = 0
        for number, (phase, length) in enumerate(zip(ordered, lengths)):
            axes.axvspan(start + 0.5, start + length + 0.5, color=PHASE_SHADES[number % 2], zorder=0)
            axes.text(start + 0.5 + length / 2, 1.02, phase.replace("phase", "phase "), ha="center", va="bottom",
                      transform=axes.get_xaxis_transform(), fontsize=9, color="#444444")
            if number:
                axes.axvline(start + 0.5, color="#444444", linestyle="--", linewidth=1)
            start += length
        epochs = list(range(1, sum(lengths) + 1))
        for key, label, color in ((metric, "training", TRAIN_COLOR), (f"val_{metric}", "eval", EVAL_COLOR)):
            series = _phase_series(phases, key)
            if len(series) == len(epochs) and series:
                axes.plot(epochs, series, marker="o", markersize=4, label=label, color=color)
        axes.set_xlabel("epoch (both phases)")
        axes.set_title(title, pad=18)
        axes.set_xlim(0.5, max(1, len(epochs)) + 0.5)
        axes.set_xticks(epochs)
        if metric == "accuracy":
            axes.set_ylim(0, 1.02)
        axes.legend(frameon=False, fontsize=8)
        axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return _png(figure)


def confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> bytes:
    """Counts actual (rows) by predicted (columns); colour is the share of the row, so small classes show."""
    size = len(class_names)
    figure = Figure(figsize=(2.2 + 0.45 * size, 1.6 + 0.45 * size))
    axes = figure.add_subplot()
    shares = [[count / max(1, sum(row)) for count in row] for row in matrix]
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for actual, row in enumerate(matrix):
        for predicted, count in enumerate(row):
            axes.text(predicted, actual, str(count), ha="center", va="center", fontsize=9,
                      color="white" if shares[actual][predicted] > 0.6 else "black")
    axes.set_xticks(range(size), class_names, rotation=45, ha="right")
    axes.set_yticks(range(size), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the actual class")
    return _png(figure)


def calibration(curves: Mapping[str, Sequence[Mapping[str, float]]]) -> bytes:
    """Reliability diagram, one line per class (one-vs-rest): observed share against mean predicted
    probability per bin; the diagonal is perfect calibration."""
    figure = Figure(figsize=(4.8, 4.2))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="#888888", linewidth=1, label="calibrated")
    for name, bins in curves.items():
        axes.plot([b["mean_prediction"] for b in bins], [b["observed"] for b in bins], marker="o", markersize=4,
                  label=name)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("mean predicted probability")
    axes.set_ylabel("observed share of the class")
    axes.legend(frameon=False, fontsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def component_timeline(components: Sequence[Mapping], run_seconds: Optional[float] = None) -> bytes:
    """When each component ran and for how long (a Gantt chart), coloured by its state."""
    names = [component["component"] for component in components]
    figure = Figure(figsize=(10, 0.32 * len(names) + 1.1))
    axes = figure.add_subplot()
    for row, component in enumerate(components):
        width = max(component["seconds"], (run_seconds or 1) * 0.003)  # Instant steps stay visible as a tick.
        axes.barh(row, width, left=component["start_offset_seconds"], height=0.6,
                  color=STATE_COLORS.get(component["state"], "#CC79A7"))
        axes.text(component["start_offset_seconds"] + width, row, f" {component['seconds']:.1f} s",
                  va="center", fontsize=8)
    axes.set_yticks(range(len(names)), names)
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the run started")
    axes.spines[["top", "right"]].set_visible(False)
    handles = [Patch(color=color, label=state) for state, color in STATE_COLORS.items()
               if any(c["state"] == state for c in components)]
    axes.legend(handles=handles, frameon=False, fontsize=8, loc="upper right")
    return _png(figure)


def all_plots(data: Mapping) -> Dict[str, bytes]:
    """The pictures the data allows, by name; a section without data has no picture."""
    plots: Dict[str, bytes] = {}
    if data.get("components"):
        plots["timeline"] = component_timeline(data["components"], data["run"]["wall_seconds"])
    dataset = data.get("dataset") or {}
    if dataset.get("per_class_and_split"):
        plots["class_counts"] = class_counts(dataset["per_class_and_split"])
    phases = (data.get("training") or {}).get("phases") or {}
    if any(phase.get("loss") for phase in phases.values()):
        plots["training_curves"] = training_curves(
            {name: phase for name, phase in phases.items() if isinstance(phase, Mapping)})
    evaluation = data.get("evaluation") or {}
    matrix = evaluation.get("confusion_matrix") or {}
    if matrix.get("actual_by_predicted"):
        plots["confusion_matrix"] = confusion_matrix(matrix["actual_by_predicted"], matrix["class_names"])
    if evaluation.get("calibration_curves"):
        plots["calibration"] = calibration(evaluation["calibration_curves"])
    return plots
