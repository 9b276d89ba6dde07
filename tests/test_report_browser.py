"""The run report opened in a real headless Chromium (Debian's package; `make browser` installs it) from a local
file: every section and picture is present and visible, nothing is fetched from a network, and a screenshot is
saved under tests/artifacts/ (listed at the end of the pytest run). The report of a real run is checked the same
way in tests/test_pipeline_e2e.py."""
import os

import pytest

from pipeline.report import html_page, writer
from tests import report_fixtures
from tests.headless_chromium import CHROMIUM, HeadlessChromium

ARTIFACTS_DIR = os.path.join(os.path.dirname(__file__), "artifacts")

# Runs in the page: what a person would see of each section and picture, and any resource loaded.
_PROBE = """(() => {
  const shown = (el) => { const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.display !== 'none' && s.visibility !== 'hidden' && s.opacity !== '0'; };
  return {
    title: document.title,
    sections: Object.fromEntries([...document.querySelectorAll('section')].map(s => [s.id, shown(s)])),
    headings: [...document.querySelectorAll('section > h2')].map(h => h.textContent),
    images: [...document.images].filter(img => !img.closest('.thumb')).map(img => ({alt: img.alt,
      complete: img.complete, naturalWidth: img.naturalWidth, width: img.getBoundingClientRect().width,
      height: img.getBoundingClientRect().height, shown: shown(img)})),
    thumbnails: [...document.querySelectorAll('.thumb img')].map(img => ({alt: img.alt, complete: img.complete,
      naturalWidth: img.naturalWidth, width: img.getBoundingClientRect().width, shown: shown(img)})),
    resources: performance.getEntriesByType('resource').map(r => r.name),
    pageWidth: document.documentElement.scrollWidth, viewportWidth: window.innerWidth,
  };
})()"""


def require_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium (make test does it first).")


def open_in_browser(page_path: str, screenshot_name: str):
    """Loads the page from its file, returns what the probe saw; saves a full-page screenshot."""
    require_chromium()
    with HeadlessChromium() as browser:
        browser.load("file://" + os.path.abspath(page_path))
        seen = browser.evaluate(_PROBE)
        png = browser.screenshot()
    os.makedirs(ARTIFACTS_DIR, exist_ok=True)
    screenshot = os.path.join(ARTIFACTS_DIR, screenshot_name)
    with open(screenshot, "wb") as handle:
        handle.write(png)
    return seen, screenshot


def assert_looks_complete(seen, expected_images: int) -> None:
    """Every section laid out and visible, every picture decoded and shown at a readable size (the data-quality
    section's image thumbnails at their own, smaller size), no network."""
    assert seen["sections"] == {section_id: True for section_id, _ in html_page.SECTIONS}
    assert seen["headings"] == [title for _, title in html_page.SECTIONS]
    assert len(seen["images"]) == expected_images
    for image in seen["images"]:
        assert image["complete"] and image["naturalWidth"] > 0, f"picture not decoded: {image['alt']}"
        assert image["shown"] and image["width"] >= 200 and image["height"] >= 100, f"picture not visible: {image}"
    for thumbnail in seen["thumbnails"]:
        assert thumbnail["complete"] and thumbnail["naturalWidth"] > 0, f"thumbnail not decoded: {thumbnail['alt']}"
        assert thumbnail["shown"] and thumbnail["width"] >= 64, f"thumbnail not visible: {thumbnail}"
    assert seen["resources"] == [], "the page loaded resources"
    assert seen["pageWidth"] <= seen["viewportWidth"], "the page scrolls sideways"


def test_report_of_hand_made_run_in_headless_chromium(tmp_path):
    page = writer.write_html(report_fixtures.run_data(), str(tmp_path / "report.html"))
    seen, screenshot = open_in_browser(page, "report-unit.png")
    assert_looks_complete(seen, expected_images=5)
    assert seen["title"] == "Run report 2026-01-02T03:04:05.000001"
    assert os.path.getsize(screenshot) > 50_000
