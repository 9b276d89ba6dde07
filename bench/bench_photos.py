"""Camera-size photos: ImageExampleGen against the seed's one pass of flow_from_directory over the same tree,
stored bytes against input bytes, and peak resident memory at 1x and 4x the tree.

The tree is built from real photographs that scikit-image ships in its wheel (astronaut, chelsea the cat,
coffee, rocket, ...): random crops scaled up (bicubic, with mild sensor-like noise) to camera sizes, a third
each 4032x3024 (12 Mpx), 1920x1080 and 800x600, written in turn as JPEG, progressive JPEG, JPEG stored
sideways with EXIF orientation 6, and PNG; one class per source photograph. The 4x tree holds the 1x tree's
photos and three times as many new ones.

Every reader runs in its own process, so its peak resident memory (ru_maxrss from wait4) is its own; the
seconds are measured inside that process after its imports (Beam's pipeline start-up counts for ours, as it
is part of every run). Ours runs with its reading threads (default: one per core), with one thread, and with
Beam's multi_processing mode (2 workers, one thread each), interleaved with the seed in one turn.

    python bench/bench_photos.py [--photos 12] [--image-size 160] [--max-stored-side 1024]   (part of make bench)
"""
import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench import common  # noqa: E402

CAMERA_SIZES = ((4032, 3024), (1920, 1080), (800, 600))
VARIANTS = ("jpeg", "progressive", "exif6", "png")
# Bundled in scikit-image's wheel (no download): colour photographs of different content.
SOURCE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "stereo_motorcycle")
SCALES = (1, 4)
# Beam's multi_processing mode, on top of the local runner's arguments (later flags win).
MULTI_PROCESSING_ARGS = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")
_EXIF_ORIENTATION_TAG = 0x0112


def source_photos():
    import skimage.data

    photos = {}
    for name in SOURCE_PHOTOS:
        pixels = getattr(skimage.data, name)()
        photos[name] = pixels[0] if isinstance(pixels, tuple) else pixels  # stereo_motorcycle: (left, right, ...)
    return photos


def camera_photo(source: np.ndarray, size, rng: np.random.Generator) -> Image.Image:
    """A random crop (at least half of each side) of `source`, scaled up to `size` with mild noise."""
    height, width = source.shape[:2]
    crop_w, crop_h = rng.integers(width // 2, width + 1), rng.integers(height // 2, height + 1)
    left, top = rng.integers(0, width - crop_w + 1), rng.integers(0, height - crop_h + 1)
    return scaled_to_camera_size(Image.fromarray(source[top:top + crop_h, left:left + crop_w]), size, rng)


def scaled_to_camera_size(crop: Image.Image, size, rng: np.random.Generator) -> Image.Image:
    """An RGB crop scaled up (bicubic) to `size`, with mild sensor-like noise."""
    resized = crop.resize(size, Image.Resampling.BICUBIC)
    noisy = np.asarray(resized, np.int16) + rng.normal(0, 3, (size[1], size[0], 1)).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def photo_layout(index: int):
    """Photo `index`'s camera size and encoding: thirds of the sizes, the variants in turn."""
    return CAMERA_SIZES[index % len(CAMERA_SIZES)], VARIANTS[(index // len(CAMERA_SIZES)) % len(VARIANTS)]


def photo_file_name(index: int, size, variant: str) -> str:
    return f"photo {index:04d} {size[0]}x{size[1]}.{'png' if variant == 'png' else 'jpg'}"


def encode(photo: Image.Image, variant: str) -> bytes:
    buffer = io.BytesIO()
    if variant == "png":
        photo.save(buffer, format="PNG")
    elif variant == "exif6":  # Stored sideways, as a phone held upright writes it: orientation 6 turns it back.
        exif = Image.Exif()
        exif[_EXIF_ORIENTATION_TAG] = 6
        photo.transpose(Image.Transpose.ROTATE_90).save(buffer, format="JPEG", quality=92, exif=exif.tobytes())
    else:
        photo.save(buffer, format="JPEG", quality=92, progressive=variant == "progressive")
    return buffer.getvalue()


def photo_tree(count: int, scale: int) -> Path:
    """`count * scale` camera photos; photo i is the same in every scale (seeded by i)."""
    root = common.DATA_DIR / f"photos-{count}-x{scale}"
    if (root / ".complete").exists():
        return root
    sources = source_photos()
    names = sorted(sources)
    for index in range(count * scale):
        rng = np.random.default_rng(index)
        name = names[index % len(names)]
        size, variant = photo_layout(index)
        path = root / name / photo_file_name(index, size, variant)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(camera_photo(sources[name], size, rng), variant))
    (root / ".complete").write_text("")
    return root


def tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file() and not path.name.startswith("."))


def image_count(root: Path) -> int:
    return sum(1 for path in root.rglob("*") if path.suffix.lower() in (".png", ".jpg"))


# The measured side: one reader in this process, after its imports; prints one JSON line.

def measure_ours(root: Path, threads: int, beam_args, max_stored_side: int) -> dict:
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    from components.ingestion import executor
    from components.ingestion.component import ImageExampleGen

    component = ImageExampleGen(input_base=str(root), max_stored_side=max_stored_side, read_threads=threads)
    exec_properties = {key: proto_utils.proto_to_json(value) if hasattr(value, "DESCRIPTOR") else value
                       for key, value in component.exec_properties.items()}
    output_dir = Path(tempfile.mkdtemp(prefix="bench-photos-"))
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    started, cpu_started = time.perf_counter(), time.process_time()
    executor.Executor(executor.Executor.Context(beam_pipeline_args=list(beam_args))).Do(
        {}, {"examples": [examples]}, exec_properties)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    report = json.loads((output_dir / executor.REPORT_FILE_NAME).read_text())
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "stored_bytes": tree_bytes(output_dir),
            "examples": report["examples_written"], "files_read": report["files_read"]}


def measure_seed(root: Path, image_size: int) -> dict:
    """The seed recipe's reader: one pass of flow_from_directory over the tree (bench/common.py)."""
    return common.seed_reading_pass(root, image_size)


def run_child(arguments) -> dict:
    """Runs this script on one reader in a fresh process; its result plus its peak resident memory."""
    process = subprocess.Popen([sys.executable, __file__, *arguments], stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{arguments} failed with exit code {process.returncode}")
    result = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports kilobytes.
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=12, help="photos in the 1x tree (4x holds four times as many)")
    parser.add_argument("--image-size", type=int, default=160, help="the seed's target size")
    parser.add_argument("--max-stored-side", type=int, default=1024)
    parser.add_argument("--child", choices=("ours", "seed"), help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--multi-processing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "ours":
        import components.ingestion.executor  # noqa: F401 (imported before the clock)
        # The pipeline's own Beam arguments: without its --setup_file, TFX would repackage itself as an sdist
        # before every run (about 3 s, see pipeline/local_runner.py), which no pipeline run pays.
        from pipeline.local_runner import LOCAL_BEAM_ARGS

        beam_args = [*LOCAL_BEAM_ARGS, *(MULTI_PROCESSING_ARGS if args.multi_processing else ())]
        print(json.dumps(measure_ours(Path(args.tree), args.threads, beam_args, args.max_stored_side)))
        return
    if args.child == "seed":
        import tf_keras.preprocessing.image  # noqa: F401 (imported before the clock)
        print(json.dumps(measure_seed(Path(args.tree), args.image_size)))
        return

    trees = {scale: photo_tree(args.photos, scale) for scale in SCALES}
    common_args = ["--max-stored-side", str(args.max_stored_side), "--image-size", str(args.image_size)]

    def ours(scale, *extra):
        return run_child(["--child", "ours", "--tree", str(trees[scale]), *common_args, *extra])

    def seed(scale):
        return run_child(["--child", "seed", "--tree", str(trees[scale]), *common_args])

    # One turn, interleaved: a load change on a shared machine hits every reader.
    load_before = os.getloadavg()[0]
    results = {"ours": ours(1), "seed": seed(1), "ours_1_thread": ours(1, "--threads", "1"),
               "ours_multi_processing": ours(1, "--threads", "1", "--multi-processing"),
               "ours_4x": ours(4), "seed_4x": seed(4)}
    load_after = os.getloadavg()[0]
    for name, result in results.items():
        scale = 4 if name.endswith("4x") else 1
        if "files_read" in result and result["files_read"] != image_count(trees[scale]):
            raise RuntimeError(f"{name}: read {result['files_read']} files of {image_count(trees[scale])}")
    images = {scale: image_count(tree) for scale, tree in trees.items()}
    input_bytes = {scale: tree_bytes(tree) for scale, tree in trees.items()}
    o, s = results["ours"], results["seed"]
    o4, s4 = results["ours_4x"], results["seed_4x"]
    lines = [
        f"machine: {common.machine_description()}",
        f"data: {images[1]} camera-size photos at 1x ({input_bytes[1] / 1e6:.0f} MB), {images[4]} at 4x "
        f"({input_bytes[4] / 1e6:.0f} MB), thirds at {', '.join(f'{w}x{h}' for w, h in CAMERA_SIZES)}; "
        f"{', '.join(VARIANTS)} in turn; from scikit-image's photos; revision {common.git_revision()}",
        f"settings: --max-stored-side {args.max_stored_side}, seed target size {args.image_size}, "
        f"ours with {os.cpu_count()} reading threads unless named",
        f"ImageExampleGen at 1x: {images[1] / o['seconds']:.2f} images/s ({o['seconds']:.1f} s); "
        f"1 thread {results['ours_1_thread']['seconds']:.1f} s; "
        f"multi_processing (2 workers) {results['ours_multi_processing']['seconds']:.1f} s",
        f"seed flow_from_directory at 1x: {images[1] / s['seconds']:.2f} images/s ({s['seconds']:.1f} s)",
        f"ingestion vs seed throughput at 1x: {s['seconds'] / o['seconds']:.2f}x",
        f"ingestion vs seed throughput at 4x: {s4['seconds'] / o4['seconds']:.2f}x "
        f"(ours {o4['seconds']:.1f} s, seed {s4['seconds']:.1f} s)",
        # The photos added from 1x to 4x, without the fixed cost of a run (Beam's start-up, Keras' listing).
        f"marginal throughput (4x minus 1x): ours {(images[4] - images[1]) / (o4['seconds'] - o['seconds']):.2f} "
        f"images/s, seed {(images[4] - images[1]) / (s4['seconds'] - s['seconds']):.2f} images/s; marginal ratio "
        f"{(s4['seconds'] - s['seconds']) / (o4['seconds'] - o['seconds']):.2f}x; ours' fixed cost about "
        f"{o['seconds'] - images[1] * (o4['seconds'] - o['seconds']) / (images[4] - images[1]):.1f} s per run",
        # CPU seconds of each reader's process (all its threads): less sensitive to other load than wall time.
        f"CPU seconds: ours {o['cpu_seconds']:.1f} at 1x, {o4['cpu_seconds']:.1f} at 4x; seed {s['cpu_seconds']:.1f} "
        f"at 1x, {s4['cpu_seconds']:.1f} at 4x; CPU per added photo (4x minus 1x): ours "
        f"{1000 * (o4['cpu_seconds'] - o['cpu_seconds']) / (images[4] - images[1]):.0f} ms, seed "
        f"{1000 * (s4['cpu_seconds'] - s['cpu_seconds']) / (images[4] - images[1]):.0f} ms",
        f"threads vs 1 thread: {results['ours_1_thread']['seconds'] / o['seconds']:.2f}x; "
        f"multi_processing vs 1 thread: "
        f"{results['ours_1_thread']['seconds'] / results['ours_multi_processing']['seconds']:.2f}x",
        # CPU seconds over wall seconds: how many cores a reader kept busy. Above 1 only if the threads run
        # outside the GIL and the machine has a second core to give; the load average says whether it had.
        f"cores used (CPU s / wall s) at 1x: ours {o['cpu_seconds'] / o['seconds']:.2f}, 1 thread "
        f"{results['ours_1_thread']['cpu_seconds'] / results['ours_1_thread']['seconds']:.2f}, seed "
        f"{s['cpu_seconds'] / s['seconds']:.2f}; at 4x: ours {o4['cpu_seconds'] / o4['seconds']:.2f}, seed "
        f"{s4['cpu_seconds'] / s4['seconds']:.2f}; load average (1 min) {load_before:.1f} before the turn, "
        f"{load_after:.1f} after, on {os.cpu_count()} cores",
        f"stored vs input bytes: {o['stored_bytes'] / input_bytes[1]:.3f}x at 1x "
        f"({o['stored_bytes'] / 1e6:.1f} MB), {o4['stored_bytes'] / input_bytes[4]:.3f}x at 4x",
        f"peak RSS ours: {o['peak_rss_mb']:.0f} MB at 1x, {o4['peak_rss_mb']:.0f} MB at 4x "
        f"(4x vs 1x {o4['peak_rss_mb'] / o['peak_rss_mb']:.2f}x); seed: {s['peak_rss_mb']:.0f} MB at 1x, "
        f"{s4['peak_rss_mb']:.0f} MB at 4x; multi_processing run "
        f"{results['ours_multi_processing']['peak_rss_mb']:.0f} MB (largest process it waited for)",
        "timing: each reader in its own process, seconds after its imports (Beam start-up counts for ours); "
        "one interleaved turn",
    ]
    common.RESULTS_DIR.mkdir(exist_ok=True)
    (common.RESULTS_DIR / "photos.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
