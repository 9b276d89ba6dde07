"""Measures ImageExampleGen's throughput (images/s) on a tree, with given Beam args.

    .venv/bin/python tools/ingestion_throughput.py --data DIR [--synthetic N] [--demo] \
        [--beam-args "--runner=FnApiRunner --direct_num_workers=1"] ...

Each --beam-args value is one configuration; every configuration runs the real executor once on the tree.
"""
import argparse
import io
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.ingestion import executor as ingestion_executor  # noqa: E402
from components.ingestion.component import ImageExampleGen  # noqa: E402


def write_synthetic_tree(root: Path, count: int, classes: int = 10, size: int = 160) -> Path:
    """count photos-like images (noise over gradients), JPEG and PNG alternating, in `classes` folders."""
    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, size, dtype=np.float32)[None, :, None]
    for index in range(count):
        folder = root / f"class_{index % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(gradient + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        fmt, extension = (("JPEG", "jpg"), ("PNG", "png"))[index % 2]
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt)
        (folder / f"img_{index:05d}.{extension}").write_bytes(buffer.getvalue())
    return root


def measure(data: Path, beam_args, output_root: Path) -> dict:
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    component = ImageExampleGen(input_base=str(data))
    exec_properties = {key: proto_utils.proto_to_json(value) if hasattr(value, "DESCRIPTOR") else value
                       for key, value in component.exec_properties.items()}
    examples = standard_artifacts.Examples()
    examples.uri = tempfile.mkdtemp(dir=output_root)
    executor = ingestion_executor.Executor(base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=beam_args))
    start = time.perf_counter()
    executor.Do({}, {"examples": [examples]}, exec_properties)
    seconds = time.perf_counter() - start
    report = json.loads((Path(examples.uri) / ingestion_executor.REPORT_FILE_NAME).read_text())
    return {"beam_args": " ".join(beam_args), "files": report["files_read"], "seconds": round(seconds, 1),
            "images_per_second": round(report["files_read"] / seconds, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="tree to ingest (written first with --synthetic/--demo)")
    parser.add_argument("--synthetic", type=int, default=0, help="write this many synthetic 160x160 images")
    parser.add_argument("--demo", action="store_true", help="write the demo digits tree (1,797 images)")
    parser.add_argument("--beam-args", action="append", default=[])
    args = parser.parse_args()
    data = Path(args.data)
    if args.synthetic and not data.exists():
        write_synthetic_tree(data, args.synthetic)
    if args.demo and not data.exists():
        from pipeline.demo_data import build_digits_tree

        build_digits_tree(str(data))
    output_root = Path(tempfile.mkdtemp(prefix="ingestion_throughput_"))
    for beam_args in args.beam_args or ["--runner=FnApiRunner --direct_num_workers=1"]:
        print(json.dumps(measure(data, shlex.split(beam_args), output_root)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
