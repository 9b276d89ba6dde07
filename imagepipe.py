"""Import paths of the pipeline's custom artifact types, as TFX's Kubeflow v2 entrypoint resolves them.

TFX compiles a custom artifact type into KFP's generic schema with its TYPE_NAME as the title, which must read
`<module>.<Class>` (one lower-case module name: tfx/orchestration/kubeflow/v2/compiler_utils.py,
`_SCHEMA_TITLE_RE`); in the task's container the entrypoint imports that title as a class path
(kubeflow_v2_entrypoint_utils.py, `_retrieve_class_path` and `import_utils.import_class_by_path`). Our types are
named `imagepipe.<Class>`, so this module is where they are found. Imports are lazy: nothing here loads TFX
until a type is asked for.
"""
import importlib

# TYPE_NAME "imagepipe.<name>" -> the module that defines the class.
_DEFINED_IN = {
    "DataValidationResult": "components.validation.component",
    "DataQualityReport": "components.quality.component",
}


def __getattr__(name: str):
    if name not in _DEFINED_IN:
        raise AttributeError(f"module 'imagepipe' has no artifact type {name!r}")
    return getattr(importlib.import_module(_DEFINED_IN[name]), name)
