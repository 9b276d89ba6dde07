"""ImportSchemaGen whose cache key holds the schema file's content, not only its path.

TFX's ImportSchemaGen has one execution property, the schema file's path
(tfx/types/standard_component_specs.py, ImportSchemaGenSpec), and TFX's cache key is made of the execution
properties and input artifacts: an edited schema.pbtxt, or one rewritten by `imagepipe schema` into the same
folder, would silently reuse the old copy. This component adds the content's SHA-256 as a second property;
TFX's executor reads only `schema_file`, so the copy it makes is unchanged.

On Kubeflow the schema is read when the task runs (from the image or a bucket), after compilation, so the
compiled hash cannot know it: kubeflow_runner.py turns the task's cache off instead.
"""
import hashlib

import tensorflow as tf
from tfx import types
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import base_component
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

SCHEMA_SHA256_KEY = "schema_sha256"


def schema_content_sha256(schema_file: str) -> str:
    """The file's SHA-256, or "" when it cannot be read where the pipeline is built (a path inside the image:
    see the module docstring)."""
    if not tf.io.gfile.exists(schema_file):
        return ""
    with tf.io.gfile.GFile(schema_file, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


class ContentKeyedImportSchemaGenSpec(standard_component_specs.ImportSchemaGenSpec):
    PARAMETERS = {**standard_component_specs.ImportSchemaGenSpec.PARAMETERS,
                  SCHEMA_SHA256_KEY: ExecutionParameter(type=str)}


class ContentKeyedImportSchemaGen(ImportSchemaGen):
    """ImportSchemaGen (same executor, same output) re-run whenever the schema's content changes."""

    SPEC_CLASS = ContentKeyedImportSchemaGenSpec

    def __init__(self, schema_file: str):
        # ImportSchemaGen.__init__ builds its own spec class, so the base component is initialized directly.
        base_component.BaseComponent.__init__(self, spec=ContentKeyedImportSchemaGenSpec(
            schema_file=schema_file, schema_sha256=schema_content_sha256(schema_file),
            schema=types.Channel(type=standard_artifacts.Schema)))
