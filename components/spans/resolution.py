"""Span and input fingerprint of ImageExampleGen when no TFX driver ran (Kubeflow Pipelines' open-source backend).

TFX resolves `{SPAN}` and fingerprints the input files in FileBasedExampleGen's driver
(tfx/components/example_gen/driver.py, `Driver.resolve_exec_properties`). Locally (and on Vertex AI, which
runs the `lifecycle.preCacheCheck` TFX compiles for it) the driver has done that before the executor
starts. The open-source KFP v2 backend never runs lifecycle hooks (see tests/kfp_v2_launcher.py), so
there the executor receives the raw pattern `span-{SPAN}/*/*` and no fingerprint; this module does what
the driver does, with the same input processor (ImageExampleGen's, components/ingestion/fingerprint.py), so
both cases reach the executor alike.
"""
import logging
from typing import Any, Dict, Optional

from tfx.components.example_gen import input_processor, utils
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import artifact
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from components.ingestion import fingerprint



def driver_ran(exec_properties: Dict[str, Any]) -> bool:
    """The driver always records a fingerprint (utils.FINGERPRINT_PROPERTY_NAME); nothing else does."""
    return bool(exec_properties.get(utils.FINGERPRINT_PROPERTY_NAME))


def resolve_like_the_driver(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    """exec_properties with the newest span's pattern, span, version and fingerprint, as the driver sets them;
    unchanged when the driver already ran."""
    if driver_ran(exec_properties):
        return exec_properties
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[specs.INPUT_CONFIG_KEY], input_config)
    range_config = None
    if exec_properties.get(specs.RANGE_CONFIG_KEY):
        range_config = proto_utils.json_to_proto(exec_properties[specs.RANGE_CONFIG_KEY],
                                                 range_config_pb2.RangeConfig())
    processor = fingerprint.ImageTreeInputProcessor(
        input_base_uri=exec_properties[specs.INPUT_BASE_KEY], splits=input_config.splits, range_config=range_config)
    span, version = processor.resolve_span_and_version()
    for split in input_config.splits:
        split.pattern = processor.get_pattern_for_span_version(split.pattern, span, version)
    resolved = dict(exec_properties)
    resolved[specs.INPUT_CONFIG_KEY] = proto_utils.proto_to_json(input_config)
    resolved[utils.SPAN_PROPERTY_NAME] = span
    resolved[utils.VERSION_PROPERTY_NAME] = version
    resolved[utils.FINGERPRINT_PROPERTY_NAME] = processor.get_input_fingerprint(span, version)
    logging.info("No ExampleGen driver ran (KFP OSS runs none): resolved span %s, input %s", span,
                 [split.pattern for split in input_config.splits])
    return resolved


def record_on_examples(examples: artifact.Artifact, exec_properties: Dict[str, Any]) -> None:
    """The custom properties the driver puts on the Examples (driver.py `_update_output_artifact`), which on KFP
    reach ML Metadata and downstream tasks through the executor's output metadata."""
    examples.set_string_custom_property(utils.FINGERPRINT_PROPERTY_NAME,
                                        exec_properties[utils.FINGERPRINT_PROPERTY_NAME])
    examples.set_int_custom_property(utils.SPAN_PROPERTY_NAME, int(exec_properties[utils.SPAN_PROPERTY_NAME]))
    if exec_properties.get(utils.VERSION_PROPERTY_NAME) is not None:
        examples.set_int_custom_property(utils.VERSION_PROPERTY_NAME,
                                         int(exec_properties[utils.VERSION_PROPERTY_NAME]))


def newest_span(input_base: str, pattern: str) -> Optional[int]:
    """The span the driver (or resolve_like_the_driver) will pick for this input pattern, read when the pipeline
    is built; None when it cannot be resolved there (no span yet, or a bucket this machine cannot reach)."""
    splits = [example_gen_pb2.Input.Split(name="images", pattern=pattern)]
    try:
        span, _ = input_processor.FileBasedInputProcessor(
            input_base_uri=input_base, splits=splits, range_config=None).resolve_span_and_version()
    except Exception as error:  # noqa: BLE001 -- any listing failure means "unknown here", the run decides.
        logging.info("Span of %s not resolved when building the pipeline (%s)", input_base, error)
        return None
    return int(span)
