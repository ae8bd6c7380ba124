"""The drawing pad beside the 2-D explorer: strokes by mouse, pen or touch (Pointer Events), or a test digit edited at
the keyboard, prepared as MNIST's digits were and encoded in the page by the 2-D encoder (int8, loaded only when the pad
is first used); the plane shows its μ ± 2σ, the pad its reconstruction, −ELBO split and the nearest test codes' classes.

Checked against NumPy (page/build.py's mnist_raster and ink_strokes, and the same int8 network) and against the
chapter's encoder in Keras (models/encoder_2d.h5), at 1280 and 390 CSS pixels, with no console errors.
"""

import base64
import json
import os

import numpy as np
import pytest
from test_page import REPO_ROOT, OpenPage, browser, build_page, test_images  # noqa: F401 (fixtures)
from test_page_explorers_prior import bernoulli_nats, kl_nats, numpy_logits, quadrature_points

NAME = "2d"
EXACT = 1e-5  # the JavaScript encoder vs the same int8 network in NumPy (μ and ln σ²)
ENCODER_TOLERANCE = 0.05  # the int8 encoder vs Keras' float32 encoder, on μ and on ln σ² (measured: ≤ 0.043)
SIZES = {1280: dict(viewport={"width": 1280, "height": 900}),
         390: dict(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)}
SEVEN = [[(0.2, 0.15), (0.8, 0.15), (0.45, 0.9)]]  # strokes in the pad's 0..1 coordinates
CIRCLE = [[(0.5 + 0.25 * np.cos(t), 0.5 + 0.38 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 40)]]
STROKES = [SEVEN, CIRCLE, [[(0.5, 0.1), (0.48, 0.9)]], [[(0.5, 0.5)]], [[(0.3, 0.3), (0.35, 0.32)], [(0.9, 0.9)]],
           *build_page.scribble_strokes()[:3]]


def open_at(browser, committed_root, width):  # noqa: F811
    opened = OpenPage(browser, committed_root, **SIZES[width])
    opened.page.locator(f"#explorer-{NAME}").scroll_into_view_if_needed()
    opened.page.wait_for_function("name => window.vaeExplorer.models().includes(name)", arg=NAME, timeout=20_000)
    return opened


@pytest.fixture(scope="module")
def laptop(browser, committed_root):  # noqa: F811
    opened = open_at(browser, committed_root, 1280)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def encoder_data():
    text = (REPO_ROOT / "assets" / "explorer" / f"encoder_{NAME}.js").read_text()
    return json.loads(text[text.index("= {") + 2:text.rindex(";")])


@pytest.fixture(scope="module")
def explorer_model():
    text = (REPO_ROOT / "assets" / "explorer" / f"{NAME}.js").read_text()
    return json.loads(text[text.index("= {") + 2:text.rindex(";")])


@pytest.fixture(scope="module")
def keras_encoder(committed_root):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from vae.saving import load_model_safely

    return load_model_safely(committed_root / "models" / f"encoder_{NAME}.h5")


def numpy_encode(data, pixels):
    """The pad's int8 encoder in NumPy (float64): (N, 784) → (μ (N, k), ln σ² (N, k))."""
    x = np.asarray(pixels, dtype=np.float64).reshape(-1, 784)
    for layer in data["layers"]:
        kernel = np.frombuffer(base64.b64decode(layer["kernel"]), np.int8).reshape(layer["in"], layer["out"])
        scale = np.frombuffer(base64.b64decode(layer["scale"]), "<f4").astype(np.float64)
        x = (x @ kernel) * scale + np.frombuffer(base64.b64decode(layer["bias"]), "<f4")
        if layer["activation"] == "relu":
            x = np.maximum(x, 0)
    k = x.shape[1] // 2
    return x[:, :k], x[:, k:]


def keras_encode(encoder, pixels):
    mu, log_var = encoder.predict(np.asarray(pixels, "float32").reshape(-1, 28, 28, 1), verbose=0)[:2]
    return np.asarray(mu, np.float64), np.asarray(log_var, np.float64)


def numpy_raster(strokes):
    return build_page.mnist_raster(build_page.ink_strokes(strokes)).ravel()


def load_encoder(page):
    """Use the pad once (Start from a test digit) so that its encoder loads; returns the pad's state."""
    page.locator(f"#explorer-{NAME} .explorer-pad-test").click()
    page.wait_for_function("name => window.vaeExplorer.pad(name).posterior", arg=NAME, timeout=20_000)
    return page.evaluate("name => window.vaeExplorer.pad(name)", NAME)


def assert_posterior_is_the_models(posterior, pixels, explorer_model, encoder_data, keras_encoder):
    """The pad's posterior, reconstruction, loss split and neighbours for the raster `pixels`: the int8 networks' in
    NumPy, and close to Keras' encoder."""
    mu, log_var = numpy_encode(encoder_data, [pixels])
    assert np.max(np.abs(np.asarray(posterior["mu"]) - mu[0])) <= EXACT
    assert np.max(np.abs(np.asarray(posterior["logVar"]) - log_var[0])) <= EXACT
    keras_mu, keras_log_var = keras_encode(keras_encoder, [pixels])
    assert np.max(np.abs(np.asarray(posterior["mu"]) - keras_mu[0])) <= ENCODER_TOLERANCE
    assert np.max(np.abs(np.asarray(posterior["logVar"]) - keras_log_var[0])) <= ENCODER_TOLERANCE
    sigma = np.exp(0.5 * np.asarray(posterior["logVar"]))
    z, weights = quadrature_points(posterior["mu"], sigma)
    loss = posterior["loss"]
    assert loss["reconstruction"] == pytest.approx(
        weights @ bernoulli_nats(np.asarray(pixels), numpy_logits(explorer_model, z)), rel=1e-6)
    assert loss["kl"] == pytest.approx(kl_nats(posterior["mu"], posterior["logVar"]), rel=1e-6)
    assert abs(loss["kl"] - kl_nats(keras_mu[0], keras_log_var[0])) <= 0.5  # KL: 2·|Δ ln σ| + small μ terms
    rebuilt = 1 / (1 + np.exp(-numpy_logits(explorer_model, [posterior["mu"]])[0]))
    assert np.max(np.abs(np.asarray(posterior["reconstruction"]) - rebuilt)) <= 1e-6


def test_nothing_loads_before_the_pad_is_used(laptop):
    assert laptop.page.evaluate("window.vaeExplorer.stats()")["encoders"] == []
    assert not [url for url in laptop.loaded if "encoder_" in url]
    state = laptop.page.evaluate("name => window.vaeExplorer.pad(name)", NAME)
    assert state["posterior"] is None and not state["loaded"]


def test_preprocessing_equals_numpy(laptop, encoder_data):
    load_encoder(laptop.page)
    for strokes in STROKES:
        shown = np.asarray(laptop.page.evaluate("([name, s]) => window.vaeExplorer.preprocess(name, s)",
                                                [NAME, [[list(map(float, p)) for p in stroke] for stroke in strokes]]))
        expected = numpy_raster(strokes)
        assert shown.shape == (784,) and np.max(np.abs(shown - expected)) <= 1 / 255 + 1e-12, strokes
        assert np.mean(shown == expected) >= 0.995, strokes
    digit = numpy_raster(SEVEN).reshape(28, 28)
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (20, 21), "scaled into 20 × 20 (anti-aliased edges)"
    centre = [np.sum(digit.sum(axis=a) * (np.arange(28) + 0.5)) / digit.sum() for a in (1, 0)]
    assert np.all(np.abs(np.asarray(centre) - 14) <= 0.5), centre
    assert 0 < np.mean((digit > 0) & (digit < 1)) and set(np.round(digit.ravel() * 255, 6)) <= set(map(float, range(256)))


def test_javascript_encoder_equals_numpy_and_keras(laptop, encoder_data, keras_encoder, test_images):  # noqa: F811
    load_encoder(laptop.page)
    pixels = np.vstack([test_images[::500].reshape(-1, 784) / 255, [numpy_raster(s) for s in STROKES]])
    shown = laptop.page.evaluate("([name, xs]) => xs.map(x => window.vaeExplorer.encode(name, x))", [NAME, pixels.tolist()])
    mu, log_var = np.asarray([s["mu"] for s in shown]), np.asarray([s["logVar"] for s in shown])
    exact_mu, exact_log_var = numpy_encode(encoder_data, pixels)
    assert np.max(np.abs(mu - exact_mu)) <= EXACT and np.max(np.abs(log_var - exact_log_var)) <= EXACT
    keras_mu, keras_log_var = keras_encode(keras_encoder, pixels)
    assert np.max(np.abs(mu - keras_mu)) <= ENCODER_TOLERANCE
    assert np.max(np.abs(log_var - keras_log_var)) <= ENCODER_TOLERANCE


def draw_with_mouse(page, strokes):
    pad = page.locator(f"#explorer-{NAME} .explorer-pad-canvas")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    for stroke in strokes:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=4)
        page.mouse.up()


def draw_with_touch(opened, strokes):
    page = opened.page
    pad = page.locator(f"#explorer-{NAME} .explorer-pad-canvas")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    session = opened.context.new_cdp_session(page)
    for stroke in strokes:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        steps = [points[0]] + [tuple(a + (b - a) * t for a, b in zip(p, q)) for p, q in zip(points, points[1:])
                               for t in np.linspace(0.25, 1, 4)]
        for index, (x, y) in enumerate(steps):
            session.send("Input.dispatchTouchEvent", {"type": "touchStart" if index == 0 else "touchMove",
                                                      "touchPoints": [{"x": x, "y": y}]})
        session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def assert_drawn(opened, explorer_model, encoder_data, keras_encoder):
    page = opened.page
    page.wait_for_function("name => { const p = window.vaeExplorer.pad(name); return p.posterior && !p.editing; }",
                           arg=NAME, timeout=20_000)
    state = page.evaluate("name => window.vaeExplorer.pad(name)", NAME)
    pixels = numpy_raster(state["strokes"])  # what the page recorded, prepared in NumPy
    posterior = state["posterior"]
    assert np.max(np.abs(np.asarray(posterior["pixels"]) - pixels)) <= 1 / 255 + 1e-12
    assert_posterior_is_the_models(posterior, posterior["pixels"], explorer_model, encoder_data, keras_encoder)
    # The expected encoding: the strokes as drawn, the same as the ideal strokes' up to the pointer's pixels.
    keras_mu, _ = keras_encode(keras_encoder, [numpy_raster(SEVEN)])
    assert np.linalg.norm(np.asarray(posterior["mu"]) - keras_mu[0]) <= 0.3, (posterior["mu"], keras_mu)
    # The plane: μ ± 2σ in blue at μ.
    x, y = page.evaluate("([name, z]) => window.vaeExplorer.toCanvas(name, z[0], z[1])", [NAME, posterior["mu"]])
    r, g, b, _ = page.evaluate("([name, x, y]) => window.vaeExplorer.planePixel(name, x, y)", [NAME, x, y])
    assert b > 150 and r < 100, (r, g, b)
    text = state["result"]
    assert "ELBO" in text and f"KL {posterior['loss']['kl']:.2f}" in text and "nearest to μ" in text, text
    assert opened.errors == [] and opened.blocked == []
    return posterior


def test_mouse_strokes_give_the_expected_encoding(laptop, explorer_model, encoder_data, keras_encoder):
    laptop.page.locator(f"#explorer-{NAME} .explorer-pad-clear").click()
    draw_with_mouse(laptop.page, SEVEN)
    posterior = assert_drawn(laptop, explorer_model, encoder_data, keras_encoder)
    assert posterior["neighbors"][0]["label"] == 7, posterior["neighbors"]


def test_touch_strokes_at_390_give_the_expected_encoding(browser, committed_root, explorer_model, encoder_data,  # noqa: F811
                                                         keras_encoder):
    opened = open_at(browser, committed_root, 390)
    try:
        before = opened.page.evaluate("window.scrollY")
        draw_with_touch(opened, SEVEN)
        assert_drawn(opened, explorer_model, encoder_data, keras_encoder)
        assert opened.page.evaluate("window.scrollY") == before, "drawing does not scroll the page"
        assert opened.page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        opened.close()


def test_keyboard_starts_from_a_test_digit_and_edits_it(laptop, explorer_model, encoder_data, keras_encoder,
                                                        test_images):  # noqa: F811
    page = laptop.page
    button = page.locator(f"#explorer-{NAME} .explorer-pad-test")
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("name => window.vaeExplorer.pad(name).editing", arg=NAME, timeout=20_000)
    state = page.evaluate("name => window.vaeExplorer.pad(name)", NAME)
    assert page.evaluate("document.activeElement.classList.contains('explorer-pad-canvas')")
    first = np.asarray(state["posterior"]["pixels"])
    shown = [t["index"] for t in page.evaluate("name => window.vaeExplorer.pickable(name)", NAME)]
    assert any(np.array_equal(first, test_images[i].ravel() / 255) for i in shown)
    for key in ["ArrowUp"] * 10 + ["ArrowLeft"] * 10:  # to row 4, column 4 (from 14, 14): a blank corner
        page.keyboard.press(key)
    page.keyboard.press("Space")
    edited = page.evaluate("name => window.vaeExplorer.pad(name)", NAME)
    assert edited["cursor"] == [4, 4]
    expected = first.copy()
    expected[4 * 28 + 4] = 0 if first[4 * 28 + 4] >= 0.5 else 1
    assert np.array_equal(np.asarray(edited["posterior"]["pixels"]), expected)
    assert_posterior_is_the_models(edited["posterior"], expected, explorer_model, encoder_data, keras_encoder)
    assert laptop.errors == []


def test_scribble_numbers_are_measured_for_the_page(encoder_data):
    facts = encoder_data["facts"]
    assert facts["scribbles"] == len(build_page.scribble_strokes()) and facts["test_images"] == 10_000
    for key in ("scribble_kl_median", "digit_kl_median", "digit_kl_p99", "scribble_distance_median",
                "scribble_reconstruction_median", "digit_reconstruction_median", "digit_reconstruction_p99"):
        assert facts[key] > 0, key
