"""Rollback, pin, unpin and promote: what TF Serving serves, written as the model config file it polls.

The shipped deployment (k8s/serving/deployment.yaml) starts TF Serving with
`--model_config_file=<serving dir>/models.config --model_config_file_poll_wait_seconds=N`: it re-reads the file
every N seconds and applies a changed one without a restart (tensorflow_serving/model_servers/server.cc
PollFilesystemAndReloadConfig -> ServerCore::ReloadConfig). Every write here replaces the whole file in one
step (rename locally, one object upload on GCS), so a poll never reads half a config.

Version labels (`stable`, `canary`) map a name to a version; clients address them with
/v1/models/<name>/labels/<label> or ModelSpec.version_label. TF Serving refuses a whole config whose label
points to a version that is not loaded (ServerCore::UpdateModelVersionLabelMap, "not currently available for
inference"), except a label that is new, with --allow_version_labels_for_unavailable_models. So a label is only
ever moved to a version the previous config already served (the canary), and a rollback to a version that was
not served drops the labels (label it again with `promote` once it is loaded).
"""
from typing import Dict, List, Optional, Tuple

from google.protobuf import text_format

from serving.serving_dir import ServingDir

DEFAULT_MODEL_NAME = "imagepipe"
# Unpinned, the two newest versions are loaded: unversioned requests get the newest, and clients may still
# address the previous one (/versions/N) during a rollout.
DEFAULT_LATEST_VERSIONS = 2
STABLE, CANARY = "stable", "canary"
LABELS = (STABLE, CANARY)


def _proto():
    from tensorflow_serving.config import model_server_config_pb2

    return model_server_config_pb2


def parse_config(text: str):
    return text_format.Parse(text, _proto().ModelServerConfig())


def read_config(serving: ServingDir, config_path: str):
    """The config file as TF Serving's proto, or None when there is none yet."""
    if not serving.storage.is_file(config_path):
        return None
    return parse_config(serving.storage.read_bytes(config_path).decode("utf-8"))


def _model_entry(config, model_name: str):
    for model in config.model_config_list.config:
        if model.name == model_name:
            return model
    model = config.model_config_list.config.add()
    model.name, model.model_platform = model_name, "tensorflow"
    return model


def _served_versions(serving: ServingDir, model) -> List[int]:
    """The versions a config entry serves: its specific list, or the newest complete ones for `latest`."""
    policy = model.model_version_policy
    if policy.HasField("specific"):
        return sorted(policy.specific.versions)
    if policy.HasField("all"):
        return serving.complete_versions()
    count = policy.latest.num_versions if policy.HasField("latest") else 1  # TF Serving's default: latest 1.
    return serving.complete_versions()[-count:]


def _load(serving: ServingDir, config_path: str, model_name: str, base_path: str) -> Tuple[object, object]:
    config = read_config(serving, config_path) or _proto().ModelServerConfig()
    model = _model_entry(config, model_name)
    if base_path or not model.base_path:
        model.base_path = base_path or serving.path
    return config, model


def _set_policy(model, versions: Optional[List[int]], labels: Dict[str, int]) -> None:
    model.ClearField("model_version_policy")
    if versions is None:
        model.model_version_policy.latest.num_versions = DEFAULT_LATEST_VERSIONS
    else:
        model.model_version_policy.specific.versions.extend(sorted(set(versions)))
    model.version_labels.clear()
    model.version_labels.update(labels)


def _write(serving: ServingDir, config_path: str, config) -> str:
    serving.storage.write_bytes(config_path, text_format.MessageToString(config).encode("utf-8"))
    return config_path


def default_config_text(model_name: str, base_path: str) -> str:
    config = _proto().ModelServerConfig()
    _set_policy(_model_entry(config, model_name), None, {})
    config.model_config_list.config[0].base_path = base_path
    return text_format.MessageToString(config)


def ensure_config(serving: ServingDir, model_name: str = DEFAULT_MODEL_NAME, base_path: str = "") -> bool:
    """Writes the default config (newest versions, no labels) unless one exists; never replaces an operator's.
    The Pusher calls it, so TF Serving finds a config file from the first push on."""
    return serving.storage.create_exclusive(
        serving.config_path, default_config_text(model_name, base_path or serving.path).encode("utf-8"))


def pin_version(serving_dir: str, version: int, model_name: str = DEFAULT_MODEL_NAME, config_path: str = "",
                base_path: str = "") -> Tuple[str, Dict[str, int]]:
    """Serves only `version` (a `specific` policy): a rollback, or the end of a canary that failed.

    Returns (config path, labels kept). `stable` names the version when the previous config served it already
    (then TF Serving accepts the label at once); otherwise the labels are dropped."""
    serving = ServingDir(serving_dir)
    serving.require_complete(version)
    config_path = config_path or serving.config_path
    config, model = _load(serving, config_path, model_name, base_path)
    previously_served = _served_versions(serving, model)
    labels = {STABLE: version} if version in previously_served or STABLE not in model.version_labels else {}
    _set_policy(model, [version], labels)
    return _write(serving, config_path, config), labels


def unpin(serving_dir: str, model_name: str = DEFAULT_MODEL_NAME, config_path: str = "",
          base_path: str = "") -> str:
    """Back to the default: the newest DEFAULT_LATEST_VERSIONS versions, no labels."""
    serving = ServingDir(serving_dir)
    config_path = config_path or serving.config_path
    config, model = _load(serving, config_path, model_name, base_path)
    _set_policy(model, None, {})
    return _write(serving, config_path, config)


def promote(serving_dir: str, label: str, version: int, model_name: str = DEFAULT_MODEL_NAME,
            config_path: str = "", base_path: str = "") -> Tuple[str, List[int], Dict[str, int]]:
    """Points `label` at `version`, serving it.

    canary: served beside the stable version (which must be labelled first); `stable`: the version becomes the
    only one served (a promoted canary), the canary label goes. Returns (config path, versions, labels)."""
    if label not in LABELS:
        raise ValueError(f"Unknown label {label!r}: one of {', '.join(LABELS)}.")
    serving = ServingDir(serving_dir)
    serving.require_complete(version)
    config_path = config_path or serving.config_path
    config, model = _load(serving, config_path, model_name, base_path)
    labels = dict(model.version_labels)
    previously_served = _served_versions(serving, model)
    if label == CANARY:
        if STABLE not in labels:
            raise ValueError("No stable version is labelled yet: run `imagepipe promote --label stable --version S` "
                             "first, then the canary.")
        if version == labels[STABLE]:
            raise ValueError(f"Version {version} is the stable version already.")
        if labels.get(CANARY, version) != version and version not in previously_served:
            raise ValueError(f"The canary label points to version {labels[CANARY]}: roll it back first "
                             f"(`imagepipe rollback --version {labels[STABLE]}`); TF Serving refuses to move a label "
                             "to a version it has not loaded.")
        labels[CANARY] = version
        versions = [labels[STABLE], version]
    else:
        if STABLE in labels and labels[STABLE] != version and version not in previously_served:
            raise ValueError(f"Version {version} is not served now, and TF Serving refuses to move the stable label "
                             f"to a version it has not loaded: serve it as the canary first "
                             f"(`imagepipe promote --label canary --version {version}`), or roll back to it.")
        labels = {STABLE: version}
        versions = [version]
    _set_policy(model, versions, labels)
    return _write(serving, config_path, config), sorted(versions), labels
