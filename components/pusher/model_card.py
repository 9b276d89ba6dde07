"""The model card pushed with every version: data, training settings, metrics per class, why it was blessed."""
import json
from typing import Dict, Optional


def _value(value) -> str:
    return "n/a" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))


def render_model_card(version: int, model_info: Dict, report: Optional[Dict], tflite: Optional[Dict],
                      tflite_shipped: Dict[str, bool]) -> str:
    report = report or {}
    lines = [f"# Model card: version {version}", "",
             "MobileNetV2 image classifier, exported with its Transform graph: send encoded image bytes, get class "
             "names.", "", "## Classes and data", ""]
    counts = report.get("examples_per_class_and_split") or {}
    lines += ["| class | examples per split |", "|---|---|"]
    for name in model_info.get("class_names", []):
        lines.append(f"| {name} | {json.dumps(counts.get(name, 'n/a'), ensure_ascii=False)} |")
    lines += ["", "## Training settings", "", "```json",
              json.dumps(model_info.get("training", {}), indent=2, sort_keys=True), "```", "",
              "## Evaluation (eval split, through the serving_tf_example signature)", ""]
    for name, value in sorted(report.get("overall", {}).items()):
        lines.append(f"- {name}: {_value(value)}")
    lines.append(f"- expected calibration error (top-1 score): {_value(report.get('expected_calibration_error'))}")
    lines += ["", "| class | examples | precision | recall |", "|---|---|---|---|"]
    for name, values in report.get("per_class", {}).items():
        lines.append(f"| {name} | {values['examples']} | {_value(values['precision'])} | {_value(values['recall'])} |")
    lines += ["", "## Blessing", ""]
    if report:
        lines.append("Blessed: all thresholds met" + (" (compared with the latest blessed model)."
                                                        if report.get("compared_with_baseline") else
                                                        " (no baseline yet: absolute thresholds only)."))
    else:
        lines.append("No blessing report was found for this model.")
    lines += ["", "## TFLite", ""]
    if tflite:
        lines.append(f"SavedModel accuracy on the same {tflite['eval_examples']} eval images: "
                     f"{_value(tflite['savedmodel_accuracy'])}")
        for quantization, values in tflite["tflite"].items():
            shipped = "pushed" if tflite_shipped.get(quantization) else "NOT pushed (outside tolerance)"
            lines.append(f"- {quantization}: accuracy {_value(values['accuracy'])}, agreement "
                         f"{_value(values['agreement_with_savedmodel'])}, {values['bytes']} bytes: {shipped}")
    else:
        lines.append("No TFLite export.")
    limits = model_info.get("input_limits", {})
    lines += ["", "## Serving", "", f"Signatures: {', '.join(model_info.get('signatures', []))}. Requests with an "
              f"empty, unreadable, over {limits.get('max_bytes')} bytes or over {limits.get('max_pixels')} pixels "
              "image fail with INVALID_ARGUMENT.", ""]
    return "\n".join(lines)
