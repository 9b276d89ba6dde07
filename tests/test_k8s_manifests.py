"""Every manifest under k8s/ against Kubernetes' OpenAPI schemas, and the policies serving must meet."""
import json
from pathlib import Path
from typing import Dict, Iterator, List

import kubernetes_validate
import pytest
import yaml

from tests.prometheus_servers import promtool

K8S_DIR = Path(__file__).resolve().parent.parent / "k8s"
KUBERNETES_VERSION = "1.33.0"
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
# Custom resources Kubernetes' own schemas do not know; each is checked by its own test below.
CUSTOM_KINDS = {"PrometheusRule"}


def kustomization_resources() -> List[Path]:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    return [K8S_DIR / resource for resource in kustomization["resources"]]


def documents() -> List[Dict]:
    return [document for path in kustomization_resources()
            for document in yaml.safe_load_all(path.read_text()) if document]


def pod_specs(kinds=POD_TEMPLATE_KINDS | {"CronJob"}) -> Iterator[Dict]:
    for document in documents():
        if document["kind"] in kinds:
            spec = document["spec"]["jobTemplate"]["spec"] if document["kind"] == "CronJob" else document["spec"]
            yield spec["template"]["spec"]


def test_every_yaml_file_is_listed_in_the_kustomization():
    listed = set(kustomization_resources())
    on_disk = {path for path in K8S_DIR.rglob("*.yaml") if path.name != "kustomization.yaml"}
    assert on_disk == listed, on_disk ^ listed


@pytest.mark.parametrize("document", [d for d in documents() if d["kind"] not in CUSTOM_KINDS],
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_matches_the_kubernetes_schema(document):
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_pods_meet_the_restricted_pod_security_profile():
    specs = list(pod_specs())
    assert specs
    for spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"]
            assert context["readOnlyRootFilesystem"] is True
            assert context.get("privileged") is not True


def test_containers_have_resources_and_probes():
    for spec in pod_specs():
        for container in spec["containers"]:
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), container["name"]
    for spec in pod_specs({"Deployment", "StatefulSet", "DaemonSet"}):  # Servers; a job's pod has nothing to probe.
        for container in spec["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["path"] == "/v1/models/imagepipe", probe


def test_no_secrets_or_credentials_in_any_manifest():
    text = "\n".join(path.read_text() for path in kustomization_resources()).lower()
    assert all(document["kind"] != "Secret" for document in documents())
    for marker in ("secretkeyref", "private_key", "begin ", "password", "google_application_credentials"):
        assert marker not in text, marker


def test_serving_exposes_prometheus_metrics_where_the_scrape_annotations_point():
    (deployment,) = [d for d in documents() if d["kind"] == "Deployment"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    (config,) = [d for d in documents() if d["metadata"]["name"] == "imagepipe-serving-config"]
    assert f'path: "{annotations["prometheus.io/path"]}"' in config["data"]["monitoring.config"]


def serving_container_and_volumes():
    (deployment,) = [d for d in documents()
                     if d["kind"] == "Deployment" and d["metadata"]["name"] == "imagepipe-serving"]
    spec = deployment["spec"]["template"]["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == "tensorflow-serving"]
    return container, {volume["name"]: volume for volume in spec["volumes"]}


def serving_flags(container) -> Dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in container["args"])


def test_tf_serving_polls_the_model_config_file_that_rollback_writes_in_the_serving_directory():
    """The model config is the file `imagepipe rollback|pin|unpin|promote` and the Pusher write
    (<serving dir>/models.config, serving/serving_dir.py), on the volume that holds the pushed versions; the
    ConfigMap keeps only what never changes."""
    from serving.rollback import DEFAULT_MODEL_NAME
    from serving.serving_dir import MODEL_CONFIG_FILE

    container, volumes = serving_container_and_volumes()
    flags = serving_flags(container)
    (models_mount,) = [mount for mount in container["volumeMounts"]
                       if "persistentVolumeClaim" in volumes[mount["name"]]]
    assert flags["model_config_file"] == f"{models_mount['mountPath']}/{MODEL_CONFIG_FILE}"
    assert int(flags["model_config_file_poll_wait_seconds"]) > 0  # Re-read without a restart.
    assert flags["allow_version_labels_for_unavailable_models"] == "true"  # A canary label while it loads.
    (config,) = [d for d in documents() if d["metadata"]["name"] == "imagepipe-serving-config"]
    assert MODEL_CONFIG_FILE not in config["data"]
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{DEFAULT_MODEL_NAME}"


def test_namespace_is_default_deny():
    policies = [d for d in documents() if d["kind"] == "NetworkPolicy"]
    (deny,) = [p for p in policies if p["metadata"]["name"] == "default-deny-all"]
    assert deny["spec"]["podSelector"] == {} and set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]


def test_grafana_sidecar_loads_the_dashboard_configmap():
    (configmap,) = [d for d in documents() if d["metadata"]["name"] == "imagepipe-grafana-dashboard"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    ((name, text),) = configmap["data"].items()
    dashboard = json.loads(text)
    assert name.endswith(".json") and dashboard["uid"] == "imagepipe" and dashboard["panels"]


def test_prometheus_rule_holds_groups_promtool_accepts(tmp_path):
    """The operator's PrometheusRule carries the plain rules file's groups; promtool checks them as such."""
    (rule,) = [d for d in documents() if d["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and set(rule["spec"]) == {"groups"}
    rules_file = tmp_path / "from-prometheusrule.yml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    result = promtool("check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_monitor_cronjob_runs_a_command_line_the_cli_accepts():
    from pipeline.cli import build_parser

    (cronjob,) = [d for d in documents() if d["kind"] == "CronJob"]
    spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"] == ["imagepipe"] and cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    args = build_parser().parse_args(container["args"])
    assert args.serving_dir == next(mount["mountPath"] for mount in container["volumeMounts"] if mount["readOnly"])
    assert args.metadata_grpc and args.pushgateway and args.output_dir.startswith("gs://")
