#!/usr/bin/env python3
"""Renders the Kubernetes manifests of the dashboard and the alert rules from their sources in monitoring/,
so each exists once: k8s/monitoring/grafana-dashboard.yaml (a ConfigMap the Grafana sidecar loads) from
monitoring/grafana/imagepipe-dashboard.json, and k8s/monitoring/prometheusrule.yaml (prometheus-operator)
from monitoring/prometheus/imagepipe-alerts.rules.yml.

    python tools/render_monitoring_manifests.py          # rewrite both
    python tools/render_monitoring_manifests.py --check  # exit 1 if either is stale (tests/test_alerts.py)
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Dict

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_SOURCE = ROOT / "monitoring" / "grafana" / "imagepipe-dashboard.json"
RULES_SOURCE = ROOT / "monitoring" / "prometheus" / "imagepipe-alerts.rules.yml"
DASHBOARD_MANIFEST = ROOT / "k8s" / "monitoring" / "grafana-dashboard.yaml"
RULES_MANIFEST = ROOT / "k8s" / "monitoring" / "prometheusrule.yaml"
# kube-prometheus-stack's Grafana sidecar loads ConfigMaps carrying this label (its default `label`).
GRAFANA_SIDECAR_LABEL = "grafana_dashboard"
PART_OF = {"app.kubernetes.io/part-of": "imagepipe"}


class _LiteralBlocks(yaml.SafeDumper):
    """Multi-line strings (the dashboard JSON, PromQL expressions) as `|` blocks, readable in a diff."""


def _represent_text(dumper: yaml.SafeDumper, text: str):
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_LiteralBlocks.add_representer(str, _represent_text)


def dashboard_configmap() -> Dict:
    dashboard = json.loads(DASHBOARD_SOURCE.read_text())
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "imagepipe-grafana-dashboard", "labels": {GRAFANA_SIDECAR_LABEL: "1", **PART_OF},
                     # The sidecar files it in this Grafana folder (its folderAnnotation setting).
                     "annotations": {"grafana_folder": "imagepipe"}},
        "data": {DASHBOARD_SOURCE.name: json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"},
    }


def prometheus_rule() -> Dict:
    rules = yaml.safe_load(RULES_SOURCE.read_text())
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        # kube-prometheus-stack selects rules by its release label by default (ruleSelector): add yours here.
        "metadata": {"name": "imagepipe-alerts", "labels": {"app.kubernetes.io/name": "imagepipe-alerts", **PART_OF}},
        "spec": {"groups": rules["groups"]},
    }


def render(document: Dict, source: Path) -> str:
    header = (f"# Rendered from {source.relative_to(ROOT)} by tools/render_monitoring_manifests.py:\n"
              "# edit the source and re-run it.\n")
    return header + yaml.dump(document, Dumper=_LiteralBlocks, sort_keys=False, allow_unicode=True, width=120)


def rendered_manifests() -> Dict[Path, str]:
    return {DASHBOARD_MANIFEST: render(dashboard_configmap(), DASHBOARD_SOURCE),
            RULES_MANIFEST: render(prometheus_rule(), RULES_SOURCE)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if a rendered manifest differs from its source")
    args = parser.parse_args()
    stale = []
    for path, text in rendered_manifests().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"stale, run python tools/render_monitoring_manifests.py: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
