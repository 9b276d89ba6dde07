"""Reading and writing schema.pbtxt files, and pinning a tree's class names as the label domain."""
import os
from typing import List, Tuple

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

from components.ingestion.image_tree import class_names_of_tree
from components.validation.gate import with_label_domain

SCHEMA_FILE_NAME = "schema.pbtxt"


def read_schema(schema_dir: str) -> schema_pb2.Schema:
    path = os.path.join(schema_dir, SCHEMA_FILE_NAME)
    if not os.path.exists(path) and "://" not in path:
        raise ValueError(f"No {SCHEMA_FILE_NAME} in {schema_dir!r}.")
    return io_utils.parse_pbtxt_file(path, schema_pb2.Schema())


def write_schema_for_tree(data_root: str, base_schema_dir: str, output_dir: str) -> Tuple[str, List[str]]:
    """Writes <output_dir>/schema.pbtxt: the base schema with the label domain set to the tree's classes."""
    class_names = class_names_of_tree(data_root)
    schema = with_label_domain(read_schema(base_schema_dir), class_names)
    io_utils.write_pbtxt_file(os.path.join(output_dir, SCHEMA_FILE_NAME), schema)
    return os.path.join(output_dir, SCHEMA_FILE_NAME), class_names
