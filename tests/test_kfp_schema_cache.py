"""A changed schema file is never served from the cache: locally (TFX's cache, on a real rerun) and on KFP
(where the compiled task's cache is off, because KFP's key cannot see a file read at run time)."""
import json
from pathlib import Path

from tfx import v1 as tfx
from tfx.orchestration import metadata

from components.schema_import.component import ContentKeyedImportSchemaGen
from pipeline.pipeline import SCHEMA_IMPORT_ID

SCHEMA_V1 = 'feature { name: "label" type: BYTES }\n'
SCHEMA_V2 = 'feature { name: "label" type: BYTES }\nfeature { name: "image_bytes" type: BYTES }\n'


def run_schema_import(tmp_path: Path, schema_file: Path) -> str:
    """One real local run of the import, cache on; returns the imported schema's text."""
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="schema-cache", pipeline_root=str(tmp_path / "root"), enable_cache=True,
        components=[ContentKeyedImportSchemaGen(schema_file=str(schema_file)).with_id(SCHEMA_IMPORT_ID)],
        metadata_connection_config=metadata.sqlite_metadata_connection_config(str(tmp_path / "mlmd.sqlite")))
    tfx.orchestration.LocalDagRunner().run(pipeline)
    outputs = sorted((tmp_path / "root" / SCHEMA_IMPORT_ID / "schema").glob("*/schema.pbtxt"))
    return outputs[-1].read_text(), len(outputs)


def test_an_edited_schema_file_is_imported_again_not_taken_from_the_cache(tmp_path):
    schema_file = tmp_path / "schemas" / "schema.pbtxt"
    schema_file.parent.mkdir()
    schema_file.write_text(SCHEMA_V1)
    assert run_schema_import(tmp_path, schema_file) == (SCHEMA_V1, 1)
    assert run_schema_import(tmp_path, schema_file) == (SCHEMA_V1, 1)  # Unchanged: the cached copy is reused.
    schema_file.write_text(SCHEMA_V2)  # As `imagepipe schema --output` into the same folder does.
    assert run_schema_import(tmp_path, schema_file) == (SCHEMA_V2, 2)
