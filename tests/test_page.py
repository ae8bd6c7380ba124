"""The tutorial page (index.html): up to date with its sources, its numbers read from the metrics,
and working in a real browser (headless Chromium, opened from file:// with the network cut off).

Needs the three trained models (models/*_{2d,3d,correlated}.*), Chromium at /usr/bin/chromium
(Debian's `chromium` package; $VAE_PAGE_CHROMIUM to use another) and Playwright's Python package
(requirements-page.txt). $VAE_PAGE_ROOT points the tests at another folder holding index.html,
assets/ and models/ (for developing the page against stand-in models).
"""

import html
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

import build_page

REPO_ROOT = Path(__file__).resolve().parents[1]
ROOT = Path(os.environ.get("VAE_PAGE_ROOT") or REPO_ROOT).resolve()
MODELS = ("2d", "3d", "correlated")
SECTIONS = ["introduction", "what-is-a-vae", "model-architecture", "2d-latent-space-experiments",
            "3d-latent-space-extension", "correlated-prior", "implementation-guide", "results", "references"]
FIGURES = {  # every figure the training scripts draw
    "Clusters2D.png", "latent2D.png", "reconstructions_2d.png", "history_2d.png",
    "Clusters3D.png", "2D3DClusters.png", "3DLatent1.png", "3DLatent2.png", "3DLatent3.png",
    "latent_variance_3d.png", "reconstructions_3d.png", "history_3d.png",
    "ClustersCorrelated.png", "KLAdapted.png", "covariance_matrix.png", "reconstructions_correlated.png",
    "history_correlated.png",
}
CHROMIUM = os.environ.get("VAE_PAGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
PIXEL_TOLERANCE = 1e-4  # JavaScript decoder vs Keras, per pixel probability
CANVAS_TOLERANCE = 1 / 255 + 1e-4  # the drawn 8-bit gray levels vs Keras


# ---------------------------------------------------------------------------------------------
# Fixtures: one build, one set of Keras decoders, one browser, for the whole module


@pytest.fixture(scope="module")
def outputs():
    """A fresh build of the page, in memory: {relative path: bytes}."""
    try:
        built, _ = build_page.build(ROOT)
    except build_page.BuildError as error:
        pytest.fail(f"the page cannot be built: {error}")
    return built


@pytest.fixture(scope="module")
def metrics():
    return {name: json.loads((ROOT / "models" / f"metrics_{name}.json").read_text()) for name in MODELS}


@pytest.fixture(scope="module")
def page_html():
    return (ROOT / "index.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def decoders():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import vae.model  # noqa: F401  (registers the custom layers)

    return {name: keras.models.load_model(ROOT / "models" / f"decoder_{name}.h5", compile=False) for name in MODELS}


def keras_decode(decoders, name, z):
    """The Keras decoder's pixel probabilities for latent points z: (N, 784) float64."""
    images = decoders[name].predict(np.asarray(z, dtype="float32").reshape(-1, decoders[name].input_shape[-1]),
                                    verbose=0)
    return np.asarray(images, dtype=np.float64).reshape(len(images), 784)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: pip install -r requirements-page.txt")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set VAE_PAGE_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class OpenPage:
    """index.html opened from file:// in a new browser context whose every non-file request is
    aborted and counted, with the console errors collected."""

    def __init__(self, browser, **context_options):
        self.blocked = []
        self.errors = []
        self.context = browser.new_context(**context_options)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", self._request)
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto((ROOT / "index.html").as_uri(), wait_until="load")

    def _route(self, route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def _request(self, request):
        if not request.url.startswith("file://") and request.url not in self.blocked:
            self.blocked.append(request.url)

    def close(self):
        self.context.close()


@pytest.fixture(scope="module")
def laptop(browser):
    """The page at laptop size, its explorers ready."""
    opened = OpenPage(browser, viewport={"width": 1280, "height": 900})
    opened.page.wait_for_function("window.vaeExplorer && window.vaeExplorer.models().length === 3", timeout=10_000)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def phone(browser):
    """The page at phone size, with a touch screen and a device pixel ratio of 2."""
    opened = OpenPage(browser, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                      is_mobile=True, has_touch=True)
    opened.page.wait_for_function("window.vaeExplorer && window.vaeExplorer.models().length === 3", timeout=10_000)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def no_javascript(browser):
    opened = OpenPage(browser, viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    yield opened
    opened.close()


def state(opened, name):
    return opened.page.evaluate("name => window.vaeExplorer.state(name)", name)


def assert_matches_keras(decoders, name, explorer_state):
    """The explorer's last decoded digit equals Keras' decoder output at its z, and so does its drawing."""
    expected = keras_decode(decoders, name, [explorer_state["z"]])[0]
    pixels = np.asarray(explorer_state["pixels"])
    drawn = 1 - np.asarray(explorer_state["drawn"]) / 255
    decoded_error = float(np.max(np.abs(pixels - expected)))
    drawn_error = float(np.max(np.abs(drawn - expected)))
    assert decoded_error <= PIXEL_TOLERANCE, f"{name}: decoded digit differs from Keras by {decoded_error:.2e}"
    assert drawn_error <= CANVAS_TOLERANCE, f"{name}: drawn digit differs from Keras by {drawn_error:.2e}"


# ---------------------------------------------------------------------------------------------
# The build


def test_page_and_explorer_files_are_up_to_date(outputs):
    stale = build_page.stale_files(outputs, ROOT)
    assert not stale, ("out of date (run `python code/build_page.py`): "
                       + "; ".join(f"{path} ({why})" for path, why in stale))


def test_build_writes_one_explorer_file_per_model(outputs):
    assert sorted(outputs) == ["assets/explorer/2d.js", "assets/explorer/3d.js", "assets/explorer/correlated.js",
                               "index.html"]


def test_check_flag_names_a_stale_file(outputs, tmp_path, capsys):
    for relative, content in outputs.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(content)
    (tmp_path / "assets/explorer/3d.js").write_bytes(b"// edited by hand\n")
    assert build_page.stale_files(outputs, tmp_path) == [("assets/explorer/3d.js", "differs from a fresh build")]
    (tmp_path / "assets/explorer/old.js").write_text("")
    assert ("assets/explorer/old.js", "not written by the build (left over)") in build_page.stale_files(outputs, tmp_path)


def test_missing_model_is_named(tmp_path):
    (tmp_path / "models").mkdir()
    with pytest.raises(build_page.BuildError, match=r"models/metrics_3d\.json"):
        build_page.build(tmp_path)


# ---------------------------------------------------------------------------------------------
# Numbers come from the metrics


def number(text):
    return text.replace("−", "-").replace(",", "")


def test_results_tables_show_the_metrics(page_html, metrics):
    cells = dict(re.findall(r'data-metric="([\w.]+)">([^<]*)<', page_html))
    formats = {"test_loss": ".2f", "test_reconstruction": ".2f", "test_kl": ".2f", "latent_dim": "d",
               "epochs": "d", "batch_size": "d", "learning_rate": "g", "beta": "g", "seconds_training": ".0f"}
    for name in MODELS:
        for key, spec in formats.items():
            assert number(cells[f"{name}.{key}"]) == format(metrics[name][key], spec), f"{name}.{key}"
        assert html.unescape(cells[f"{name}.device"]) == metrics[name]["device"]
        median = float(np.median(metrics[name]["seconds_per_epoch"]))
        assert number(cells[f"{name}.seconds_per_epoch_median"]) == f"{median:.1f}"


def test_text_quotes_the_metrics(page_html, metrics):
    text = number(html.unescape(re.sub(r"<[^>]+>", "", page_html)))
    correlated = metrics["correlated"]
    assert f"{correlated['prior_correlation']:.3f}" in text
    assert f"{correlated['encoded_correlation']:.3f}" in text
    sigma = np.asarray(correlated["prior_covariance"])
    assert math.isclose(correlated["prior_correlation"], sigma[0, 1] / math.sqrt(sigma[0, 0] * sigma[1, 1]),
                        rel_tol=1e-6)
    for name in MODELS:
        for key in ("test_loss", "test_reconstruction", "test_kl"):
            assert f"{metrics[name][key]:.2f}" in text, f"{name}.{key}"
    assert f"{metrics['2d']['seconds_training'] / 60:.1f} minutes" in text
    # The seed tutorial's numbers are quoted as its own.
    for quoted in ("~165", "~161", "~3.9", "~164", "~160", "~4.2", "~166", "~162", "~4.1"):
        assert quoted in text


def test_no_result_is_typed_into_the_source(metrics):
    source = (REPO_ROOT / "page" / "tutorial.md").read_text()
    for name in MODELS:
        m = metrics[name]
        for key in ("test_loss", "test_reconstruction", "test_kl", "seconds_training"):
            assert format(m[key], ".2f") not in source, f"{name}.{key} typed into page/tutorial.md"
    for key in ("prior_correlation", "encoded_correlation"):
        assert f"{metrics['correlated'][key]:.3f}" not in source


# ---------------------------------------------------------------------------------------------
# In the browser


def test_opens_offline_without_errors(laptop):
    assert laptop.blocked == [], f"the page tried to reach the network: {laptop.blocked}"
    assert laptop.errors == [], f"console errors: {laptop.errors}"


def test_every_section_and_figure_is_there(laptop):
    page = laptop.page
    for section in SECTIONS:
        assert page.locator(f"h2[id='{section}']").count() == 1, section
    images = page.evaluate("""() => Array.from(document.images).map(img => ({
        src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0,
        captioned: !!img.closest('figure') && !!img.closest('figure').querySelector('figcaption')}))""")
    assert {image["src"] for image in images} == {f"assets/{figure}" for figure in FIGURES}
    for image in images:
        assert image["src"].startswith("assets/"), image
        assert image["loaded"], f"image did not load: {image['src']}"
        assert image["captioned"], f"image without a caption: {image['src']}"


def test_math_is_rendered_as_mathml(laptop):
    sizes = laptop.page.evaluate("""() => Array.from(document.querySelectorAll('math'))
        .map(m => [m.getAttribute('display'), m.getBoundingClientRect().width])""")
    assert len(sizes) >= 30
    assert sum(display == "block" for display, _ in sizes) >= 8
    assert all(width > 0 for _, width in sizes), "a formula has no width (MathML not rendered?)"


@pytest.mark.parametrize("name", MODELS)
def test_javascript_decoder_matches_keras(laptop, decoders, metrics, name):
    latent_dim = metrics[name]["latent_dim"]
    rng = np.random.default_rng(7)
    z = np.vstack([np.zeros(latent_dim), np.full(latent_dim, 2.5), np.full(latent_dim, -3.0),
                   rng.normal(scale=1.5, size=(5, latent_dim))])
    decoded = laptop.page.evaluate("([name, zs]) => zs.map(z => window.vaeExplorer.decode(name, z))",
                                   [name, z.tolist()])
    decoded = np.asarray(decoded)
    assert decoded.shape == (len(z), 784)
    error = float(np.max(np.abs(decoded - keras_decode(decoders, name, z))))
    assert error <= PIXEL_TOLERANCE, f"{name}: JavaScript decoder differs from Keras by {error:.2e}"


def test_pointer_over_2d_explorer_decodes_live(laptop, decoders):
    page = laptop.page
    plane = page.locator("#explorer-2d .explorer-plane")
    plane.scroll_into_view_if_needed()
    box = plane.bounding_box()
    page.mouse.move(box["x"] + 0.25 * box["width"], box["y"] + 0.3 * box["height"])
    first = state(laptop, "2d")
    page.mouse.move(box["x"] + 0.7 * box["width"], box["y"] + 0.8 * box["height"], steps=3)
    second = state(laptop, "2d")
    assert first["z"][0] < 0 < first["z"][1] and second["z"][1] < 0 < second["z"][0], (first["z"], second["z"])
    assert np.max(np.abs(np.subtract(first["drawn"], second["drawn"]))) > 50, "the drawn digit did not change"
    assert_matches_keras(decoders, "2d", first)
    assert_matches_keras(decoders, "2d", second)
    readout = page.locator("#explorer-2d .explorer-z").inner_text()
    assert readout == "z = ({:.2f}, {:.2f})".format(*second["z"]).replace("-", "−")
    plane.focus()
    page.keyboard.press("ArrowUp")
    third = state(laptop, "2d")
    assert third["z"][0] == second["z"][0] and math.isclose(third["z"][1], second["z"][1] + 0.1, abs_tol=1e-9)
    assert_matches_keras(decoders, "2d", third)


def test_3d_slider_changes_the_slice(laptop, decoders):
    page = laptop.page
    slider = page.locator("#explorer-3d .explorer-slice")
    slider.scroll_into_view_if_needed()
    before = state(laptop, "3d")
    box = slider.bounding_box()
    page.mouse.click(box["x"] + 0.85 * box["width"], box["y"] + box["height"] / 2)
    after = state(laptop, "3d")
    assert after["z"][2] > before["z"][2] + 0.5, (before["z"], after["z"])
    assert after["z"][:2] == before["z"][:2]
    assert np.max(np.abs(np.subtract(before["pixels"], after["pixels"]))) > 1e-3, "the digit did not change"
    assert_matches_keras(decoders, "3d", after)
    shown = page.locator("#explorer-3d .explorer-slice-value").inner_text()
    assert shown == f"{after['z'][2]:.2f}".replace("-", "−")


def test_correlated_explorer_draws_the_prior_ellipses(laptop, decoders, metrics):
    page = laptop.page
    page.locator("#explorer-correlated .explorer-plane").scroll_into_view_if_needed()
    cholesky = np.linalg.cholesky(np.asarray(metrics["correlated"]["prior_covariance"]))
    darkest = []
    for k in (1, 2):
        for angle in np.linspace(0, 2 * np.pi, 12, endpoint=False):
            z0, z1 = k * cholesky @ [np.cos(angle), np.sin(angle)]
            x, y = page.evaluate("([z0, z1]) => window.vaeExplorer.toCanvas('correlated', z0, z1)", [z0, z1])
            neighborhood = [page.evaluate("([x, y]) => window.vaeExplorer.planePixel('correlated', x, y)",
                                          [x + dx, y + dy]) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
            darkest.append(min(max(rgba[:3]) for rgba in neighborhood))
    assert max(darkest) < 90, f"no dark ellipse stroke where the prior's 1σ/2σ contours are: {darkest}"
    assert page.locator("#explorer-correlated .legend-line").count() == 2
    assert_matches_keras(decoders, "correlated", page.evaluate("() => window.vaeExplorer.setZ('correlated', [0.8, 0.4])"))


def test_touch_on_phone_decodes_and_explorer_stacks(phone, decoders):
    page = phone.page
    assert phone.errors == [] and phone.blocked == []
    plane = page.locator("#explorer-2d .explorer-plane")
    plane.scroll_into_view_if_needed()
    box = plane.bounding_box()
    digit_box = page.locator("#explorer-2d .explorer-digit").bounding_box()
    assert digit_box["y"] >= box["y"] + box["height"], "on a phone the digit should be under the plane"
    assert box["width"] <= 390
    before = state(phone, "2d")
    page.touchscreen.tap(box["x"] + 0.8 * box["width"], box["y"] + 0.2 * box["height"])
    after = state(phone, "2d")
    assert after["z"][0] > 0 and after["z"][1] > 0 and after["z"] != before["z"], after["z"]
    assert_matches_keras(decoders, "2d", after)
    widths = page.evaluate("() => Array.from(document.images).map(img => img.getBoundingClientRect().right)")
    assert max(widths) <= 390, "a figure is wider than the phone's screen"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, "the page scrolls sideways"


def test_page_reads_without_javascript(no_javascript):
    page = no_javascript.page
    assert no_javascript.blocked == []
    for section in SECTIONS:
        assert page.locator(f"h2[id='{section}']").is_visible(), section
    loaded = page.evaluate("""() => Array.from(document.images)
        .filter(img => img.complete && img.naturalWidth > 0).map(img => img.getAttribute('src'))""")
    assert sorted(loaded) == sorted(f"assets/{figure}" for figure in FIGURES)
    assert page.locator("math").count() >= 30
    notes = page.locator(".explorer-note")
    assert notes.count() == 3 and all(notes.nth(i).is_visible() for i in range(3))
    assert not any(page.locator(".explorer-live").nth(i).is_visible() for i in range(3))
