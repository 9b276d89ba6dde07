"""ImageExampleGen: a FileBasedExampleGen whose executor reads a class-per-folder image tree."""
from typing import Optional

from google.protobuf import struct_pb2
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components.ingestion import executor, fingerprint, image_tree


def input_pattern(span_folder: Optional[str]) -> str:
    if not span_folder:
        return image_tree.IMAGE_FILES_PATTERN
    if "{SPAN}" not in span_folder or "/" in span_folder.strip("/") or "*" in span_folder:
        raise ValueError(f"span_folder must be one folder name containing {{SPAN}}, such as 'span-{{SPAN}}' or "
                         f"'{{SPAN}}', got {span_folder!r}.")
    return f"{span_folder.strip('/')}/{image_tree.IMAGE_FILES_PATTERN}"


class ImageExampleGen(FileBasedExampleGen):
    """Ingests `<input_base>/<class name>/**/<image>` into GZIP tf.Example splits 'train' and 'eval'.

    Its driver is FileBasedExampleGen's with a fingerprint of every file in the tree (fingerprint.py), so the
    input fingerprint (and, with a `{SPAN}` pattern, the span) decides whether a cached result is reused.
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = fingerprint.ImageTreeDriver

    def __init__(self, input_base: str, eval_percent: int = 20,
                 max_pixels: int = image_tree.DEFAULT_MAX_PIXELS,
                 max_bytes: int = image_tree.DEFAULT_MAX_BYTES,
                 span_folder: Optional[str] = None,
                 max_stored_side: int = image_tree.DEFAULT_MAX_STORED_SIDE,
                 read_threads: int = 0):
        """`span_folder`, e.g. "span-{SPAN}" or "{SPAN}": the tree is `<input_base>/<span folder>/<class>/...`
        and the driver picks the newest span (TFX's ExampleGen ingests one span per run).
        `max_stored_side`: larger images are stored downscaled to this long side (0 keeps originals).
        `read_threads`: threads reading and decoding files per Beam worker (0: one per core)."""
        if not 1 <= eval_percent <= 99:
            raise ValueError(f"eval_percent must be between 1 and 99, got {eval_percent}.")
        if max_pixels < 1 or max_bytes < 1:
            raise ValueError("max_pixels and max_bytes must be positive.")
        if max_stored_side < 0 or read_threads < 0:
            raise ValueError(f"max_stored_side and read_threads must be 0 or positive, got {max_stored_side} "
                             f"and {read_threads}.")
        input_config = example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name="images", pattern=input_pattern(span_folder))])
        # Split membership comes from a hash of each file's content; these buckets give the ratio.
        output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name=image_tree.TRAIN_SPLIT, hash_buckets=100 - eval_percent),
            example_gen_pb2.SplitConfig.Split(name=image_tree.EVAL_SPLIT, hash_buckets=eval_percent),
        ]))
        custom_config = example_gen_pb2.CustomConfig()
        settings = struct_pb2.Struct()
        settings.update({"max_pixels": max_pixels, "max_bytes": max_bytes, "max_stored_side": max_stored_side,
                         executor.READ_THREADS_KEY: read_threads})
        custom_config.custom_config.Pack(settings)
        super().__init__(input_base=input_base, input_config=input_config, output_config=output_config,
                         custom_config=custom_config)

