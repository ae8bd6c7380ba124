"""Training, replayed, on the page (page/timeline.js): its data (assets/explorer/timeline_2d.js) against
models/timeline_2d.npz and within its budget, and in Chromium at 1280 and 390 px that nothing loads before
the reader nears it, that the epoch slider and the play button move the points and the loss curve's marker,
and that nothing writes to the console; without JavaScript, the still figure is offered instead.

The page is built from the committed results (conftest.py's `committed_root`); if page/tutorial.md does not
show the timeline yet, the build here adds FRAGMENT to the 2-D chapter, before its list of things to look for.
"""

import base64
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from test_page import CHROMIUM, CHROMIUM_ARGS, OpenPage, browser  # noqa: F401  (a fixture)

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_BUDGET = 1_000_000  # bytes of assets/explorer/timeline_2d.js
FRAGMENT = r"""The plane also keeps a record of training. After each of its {{ two_d.epochs }} epochs the 2-D script recorded the posterior means $\mu$ of the same {{ two_d.timeline.images | num(",") }} test images, {{ (two_d.timeline.images // 10) | num(",") }} of each digit, and the epoch's losses; the figure below replays them. Press play, or drag the slider: {{ (100 * two_d.timeline.class_agreement[0]) | num(".0f") }}% of the codes have the class of most of their {{ two_d.timeline.neighbours }} nearest codes after epoch {{ two_d.timeline.epochs[0] }}, {{ (100 * two_d.timeline.class_agreement[4]) | num(".0f") }}% after epoch {{ two_d.timeline.epochs[4] }} and {{ (100 * two_d.timeline.class_agreement[-1]) | num(".0f") }}% after epoch {{ two_d.timeline.epochs[-1] }}, while the test loss falls from {{ two_d.history.val_loss[0] | num(".1f") }} to {{ two_d.history.val_loss[4] | num(".1f") }} and then to {{ two_d.history.val_loss[-1] | num(".1f") }} nats per image: most of the grouping, like most of the fall of the loss, comes in the first {{ two_d.timeline.epochs[4] }} epochs.

{{ timeline("2d", "Left: the posterior means of " ~ two_d.timeline.images | num(",") ~ " test images after the chosen epoch, colored by their true digit, with the prior's $1\\sigma$ and $2\\sigma$ circles dashed. Right: the training and test loss of every epoch, the chosen epoch marked. Without JavaScript, a still version shows a few epochs.") }}

"""
ANCHOR = "Some things to look for:"
OPEN_FOLD = "document.querySelector('#timeline-2d').closest('details')?.setAttribute('open', '')"


def load_build(page_dir):
    """page/build.py as a module of its own, reading its templates and tutorial.md from `page_dir`."""
    spec = importlib.util.spec_from_file_location("page_build_timeline", REPO_ROOT / "page" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.PAGE_DIR = Path(page_dir)
    return module


@pytest.fixture(scope="module")
def site(committed_root, tmp_path_factory):
    """A folder holding the page built with the timeline, its data and the committed figures:
    (folder, {relative path: bytes} of the build)."""
    folder = tmp_path_factory.mktemp("timeline_site")
    page_dir = folder / "page-sources"
    shutil.copytree(REPO_ROOT / "page", page_dir)
    tutorial = (page_dir / "tutorial.md").read_text()
    if 'timeline("2d"' not in tutorial:
        assert ANCHOR in tutorial
        (page_dir / "tutorial.md").write_text(tutorial.replace(ANCHOR, FRAGMENT + ANCHOR, 1))
    outputs = load_build(page_dir).build(committed_root)
    (folder / "assets" / "explorer").mkdir(parents=True)
    for path in (committed_root / "assets").glob("*.png"):
        (folder / "assets" / path.name).symlink_to(path)
    for relative, content in outputs.items():
        (folder / relative).write_bytes(content)
    return folder, outputs


@pytest.fixture(scope="module")
def timeline(committed_root):
    with np.load(committed_root / "models" / "timeline_2d.npz") as npz:
        return {key: npz[key] for key in npz.files}


def shipped(outputs):
    text = outputs["assets/explorer/timeline_2d.js"].decode()
    return json.loads(text[text.index("= {") + 2:text.rindex(";")])


def test_the_data_fit_the_budget_and_are_the_recorded_codes(site, timeline):
    _, outputs = site
    assert len(outputs["assets/explorer/timeline_2d.js"]) <= DATA_BUDGET
    data = shipped(outputs)
    z = np.frombuffer(base64.b64decode(data["z"]), "<i2").reshape(timeline["z_mean"].shape) * data["scale"]
    np.testing.assert_allclose(z, timeline["z_mean"], atol=data["scale"] / 2 + 1e-7)
    assert data["epochs"] == timeline["epochs"].tolist() and data["count"] == len(timeline["labels"]) >= 1000
    assert data["labels"] == "".join(map(str, timeline["labels"]))
    for key, values in data["losses"].items():
        np.testing.assert_allclose(values, timeline[key], atol=1e-4)
    assert {"loss", "val_loss", "val_reconstruction", "val_kl"} <= set(data["losses"])
    # The view holds nearly every code of every epoch.
    assert (np.abs(timeline["z_mean"]) <= data["extent"]).mean() > 0.99


def canvas(page, which):
    return page.evaluate(f"document.querySelector('#timeline-2d .timeline-{which}').toDataURL()")


def state(page):
    return page.evaluate("window.vaeTimeline.state('2d')")


@pytest.mark.parametrize("width", [1280, 390])
def test_it_loads_when_reached_and_the_slider_and_play_move_the_points_and_the_marker(
        browser, site, timeline, width):  # noqa: F811
    folder, _ = site
    options = {"viewport": {"width": 1280, "height": 900}} if width == 1280 else {
        "viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
    opened = OpenPage(browser, folder, **options)
    page = opened.page
    try:
        # The timeline sits in a fold ("Watch the 2-D model learn"): opened, not scrolled to, it loads nothing.
        page.evaluate(OPEN_FOLD)
        # Loaded, before the reader has scrolled anywhere: not the timeline's data.
        page.wait_for_timeout(300)
        assert not any(url.endswith("/timeline_2d.js") for url in opened.loaded)
        assert page.evaluate("window.vaeTimeline.models()") == []
        assert page.locator("#timeline-2d .timeline-live").is_hidden()
        assert page.locator("#timeline-2d .timeline-wait").is_visible()  # says when it loads

        page.locator("#timeline-2d").scroll_into_view_if_needed()
        page.wait_for_function("window.vaeTimeline.models().includes('2d')", timeout=20_000)
        assert sum(url.endswith("/timeline_2d.js") for url in opened.loaded) == 1
        assert page.locator("#timeline-2d .timeline-wait").is_hidden()
        last = len(timeline["epochs"]) - 1
        shown = state(page)
        assert shown["epoch"] == timeline["epochs"][-1] and not shown["playing"]
        np.testing.assert_allclose(shown["points"], timeline["z_mean"][last][:5], atol=1e-3)

        # The slider, by keyboard: Home shows the first epoch, End the last; the points and the marker move.
        slider = page.locator("#timeline-2d .timeline-epoch")
        plane, curve = canvas(page, "plane"), canvas(page, "curve")
        slider.focus()
        page.keyboard.press("Home")
        first = state(page)
        assert first["epoch"] == timeline["epochs"][0] and first["position"] == 0
        np.testing.assert_allclose(first["points"], timeline["z_mean"][0][:5], atol=1e-3)
        assert canvas(page, "plane") != plane and canvas(page, "curve") != curve
        assert first["marker"][0] < shown["marker"][0]  # the marker went left, to epoch 1
        assert page.locator("#timeline-2d .timeline-epoch-value").inner_text() == str(timeline["epochs"][0])
        assert f"Epoch {timeline['epochs'][0]} of" in page.locator("#timeline-2d .timeline-readout").inner_text()
        page.keyboard.press("ArrowRight")
        assert state(page)["epoch"] == timeline["epochs"][1]
        np.testing.assert_allclose(state(page)["points"], timeline["z_mean"][1][:5], atol=1e-3)

        # Play, by click or tap: from epoch 2 the points and the marker move on, to the last epoch, and stop.
        button = page.locator("#timeline-2d .timeline-play")
        button.tap() if width < 1000 else button.click()
        page.wait_for_function("window.vaeTimeline.state('2d').position > 1.2", timeout=10_000)
        moving = state(page)
        assert moving["playing"] and button.get_attribute("aria-pressed") == "true"
        assert moving["marker"][0] > first["marker"][0]
        page.wait_for_function("!window.vaeTimeline.state('2d').playing", timeout=60_000)
        end = state(page)
        assert end["position"] == last and end["epoch"] == timeline["epochs"][-1]
        np.testing.assert_allclose(end["points"], timeline["z_mean"][last][:5], atol=1e-3)
        assert button.get_attribute("aria-pressed") == "false" and button.inner_text() == "Play"

        # Pause stops it where it is.
        button.tap() if width < 1000 else button.click()  # from the end: plays again from epoch 1
        page.wait_for_function("window.vaeTimeline.state('2d').playing", timeout=10_000)
        button.tap() if width < 1000 else button.click()
        paused = state(page)
        page.wait_for_timeout(500)
        assert not paused["playing"] and state(page)["position"] == paused["position"] < last

        # It fits the width, and nothing was reached over the network or written to the console.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        box = page.locator("#timeline-2d").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
        assert opened.blocked == [] and opened.errors == []
    finally:
        opened.close()


def test_without_javascript_the_still_figure_is_offered(browser, site):  # noqa: F811
    folder, _ = site
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto((folder / "index.html").as_uri(), wait_until="load")
        page.locator("details:has(#timeline-2d) > summary").click()
        figure = page.locator("#timeline-2d")
        assert figure.locator(".timeline-live").is_hidden() and figure.locator(".timeline-wait").is_hidden()
        link = figure.locator("noscript a")
        assert "still version" in figure.inner_text() and link.get_attribute("href") == "assets/timeline_2d.png"
        assert (folder / "assets" / "timeline_2d.png").exists()
    finally:
        context.close()
