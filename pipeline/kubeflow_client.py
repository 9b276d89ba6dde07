"""Creates runs and recurring runs of a compiled pipeline on Kubeflow Pipelines with kfp.Client.

Authentication is kfp.Client's own: in a cluster, the pod's service account token (KF_PIPELINES_SA_TOKEN_PATH);
behind IAP, KF_PIPELINES_IAP_OAUTH2_CLIENT_ID and Google application default credentials; otherwise
a port-forwarded endpoint. Nothing secret is read from or written to a file here.
"""
import json
import os
import tempfile
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import yaml

ENDPOINT_ENV = "KF_PIPELINES_ENDPOINT"
DEFAULT_NAMESPACE = "kubeflow"
DEFAULT_EXPERIMENT = "imagepipe"


class KubeflowUnreachableError(RuntimeError):
    """The Kubeflow Pipelines API did not answer, or refused the credentials."""


def resolve_endpoint(endpoint: Optional[str]) -> str:
    endpoint = endpoint or os.environ.get(ENDPOINT_ENV)
    if not endpoint:
        raise ValueError(f"No Kubeflow Pipelines endpoint: pass --endpoint or set {ENDPOINT_ENV} "
                         "(e.g. http://localhost:8080 after "
                         "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`).")
    return endpoint


def to_kfp_cron(expression: str) -> str:
    """KFP's scheduler reads cron with a leading seconds field; a standard 5-field expression gets '0'."""
    fields = expression.split()
    if len(fields) == 5:
        return " ".join(["0"] + fields)
    if len(fields) == 6:
        return " ".join(fields)
    raise ValueError(f"Expected a cron expression of 5 fields (or 6 with seconds), got {expression!r}.")


def parse_parameters(assignments: List[str]) -> Dict[str, str]:
    """['data_root=gs://b/images'] -> {'data_root': 'gs://b/images'}."""
    parameters = {}
    for assignment in assignments:
        name, separator, value = assignment.partition("=")
        if not separator or not name:
            raise ValueError(f"Expected NAME=VALUE for a pipeline parameter, got {assignment!r}.")
        parameters[name] = value
    return parameters


def read_pipeline_job(job_file: str) -> Dict:
    with open(job_file) as handle:
        job = json.load(handle)
    if "pipelineSpec" not in job:
        raise ValueError(f"{job_file} is not a compiled PipelineJob JSON (no pipelineSpec); "
                         "write one with `imagepipe compile`.")
    return job


def run_arguments(job: Dict, overrides: Dict[str, str]) -> Dict[str, str]:
    """The compiled parameter values, with overrides; an unknown name is refused, not silently dropped."""
    declared = job["pipelineSpec"]["root"].get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ValueError(f"Unknown pipeline parameter(s) {unknown}; the pipeline declares {sorted(declared)}.")
    values = dict(job.get("runtimeConfig", {}).get("parameterValues", {}))
    values.update(overrides)
    return values


@contextmanager
def pipeline_spec_file(job: Dict) -> Iterator[str]:
    """kfp.Client reads a bare PipelineSpec YAML, while KubeflowV2DagRunner writes a PipelineJob JSON
    (what Vertex AI takes): the spec is written out on its own for the call."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "pipeline.yaml")
        with open(path, "w") as handle:
            yaml.safe_dump(job["pipelineSpec"], handle, sort_keys=True)
        yield path


@contextmanager
def _reporting_connection_errors(endpoint: str) -> Iterator[None]:
    import kfp_server_api
    import urllib3

    try:
        yield
    except kfp_server_api.ApiException as error:
        if error.status in (401, 403):
            raise KubeflowUnreachableError(
                f"Kubeflow Pipelines at {endpoint} refused the credentials (HTTP {error.status}). "
                "Use a service account token (KF_PIPELINES_SA_TOKEN_PATH) or IAP "
                "(KF_PIPELINES_IAP_OAUTH2_CLIENT_ID).") from error
        if not error.status:  # Raised for network errors too, without an HTTP status.
            raise KubeflowUnreachableError(f"Cannot reach Kubeflow Pipelines at {endpoint}: {error.reason}") from error
        raise
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as error:
        raise KubeflowUnreachableError(
            f"Cannot reach Kubeflow Pipelines at {endpoint} ({type(error).__name__}). Check --endpoint and "
            "that the API is reachable from here, e.g. "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`.") from error


def _client(endpoint: str, namespace: str):
    import kfp

    return kfp.Client(host=endpoint, namespace=namespace)


def submit(job_file: str, endpoint: Optional[str], namespace: str = DEFAULT_NAMESPACE,
           experiment: str = DEFAULT_EXPERIMENT, parameters: Optional[Dict[str, str]] = None,
           service_account: Optional[str] = None) -> str:
    """Creates one run; returns its id."""
    endpoint = resolve_endpoint(endpoint)
    job = read_pipeline_job(job_file)
    arguments = run_arguments(job, parameters or {})
    with pipeline_spec_file(job) as spec_file, _reporting_connection_errors(endpoint):
        client = _client(endpoint, namespace)
        result = client.create_run_from_pipeline_package(
            spec_file, arguments=arguments, run_name=job.get("displayName"), experiment_name=experiment,
            namespace=namespace, pipeline_root=job.get("runtimeConfig", {}).get("gcsOutputDirectory"),
            service_account=service_account)
    return result.run_id


def schedule(job_file: str, endpoint: Optional[str], cron: str, name: str, namespace: str = DEFAULT_NAMESPACE,
             experiment: str = DEFAULT_EXPERIMENT, parameters: Optional[Dict[str, str]] = None,
             service_account: Optional[str] = None) -> str:
    """Creates a recurring run (one run at a time, no catch-up of missed runs); returns its id."""
    endpoint = resolve_endpoint(endpoint)
    cron = to_kfp_cron(cron)
    job = read_pipeline_job(job_file)
    arguments = run_arguments(job, parameters or {})
    with pipeline_spec_file(job) as spec_file, _reporting_connection_errors(endpoint):
        client = _client(endpoint, namespace)
        experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id
        recurring = client.create_recurring_run(
            experiment_id=experiment_id, job_name=name, cron_expression=cron, max_concurrency=1, no_catchup=True,
            params=arguments, pipeline_package_path=spec_file,
            pipeline_root=job.get("runtimeConfig", {}).get("gcsOutputDirectory"), service_account=service_account)
    return recurring.recurring_run_id
