"""The explorers show the prior (its 1σ and 2σ contours on the plane) and, for a picked test image, its loss split:
−ELBO = reconstruction + KL in nats, the reconstruction term E_q[−ln p(x | z)] averaged over the posterior by
Gauss–Hermite quadrature with the page's int8 decoder, the KL exact from μ and σ.

Checked against the same sums in NumPy on the same int8 network, and against the chapter's model in Keras: its
encoder's μ and ln σ², its decoder's logits, and the chapter's reconstruction term (summed binary cross-entropy
from the logits) and KL formula.
"""

import base64
import os

import numpy as np
import pytest
from test_page import (REPO_ROOT, OpenPage, browser, explorer_models, test_images,  # noqa: F401 (fixtures)
                       UNFOLDED_EXPLORERS_STARTED)

MODELS = ("2d", "3d", "correlated")
EXACT_NATS = 1e-6  # relative: the JavaScript sums vs the same sums in NumPy on the same int8 network
RECONSTRUCTION_NATS = 1.0  # the int8 decoder's reconstruction term vs Keras' float32 decoder's (measured: ≤ 0.71)
KL_NATS = 1e-4  # the KL from the shipped float32 μ, σ vs from Keras' encoder outputs
PICKED = (0, 7, 23, 49)  # which of the shipped test images to pick


@pytest.fixture(scope="module")
def laptop(browser, committed_root):  # noqa: F811
    opened = OpenPage(browser, committed_root, viewport={"width": 1280, "height": 900})
    for name in MODELS:
        opened.page.locator(f"#explorer-{name}").scroll_into_view_if_needed()
        opened.page.wait_for_function("name => window.vaeExplorer.models().includes(name)", arg=name, timeout=20_000)
    yield opened
    opened.close()


def int8_network(model):
    """[(kernel float64 (in, out) = int8 × scale, bias, activation)] of an explorer's data."""
    layers = []
    for layer in model["layers"]:
        kernel = np.frombuffer(base64.b64decode(layer["kernel"]), np.int8).reshape(layer["in"], layer["out"])
        scale = np.frombuffer(base64.b64decode(layer["scale"]), "<f4").astype(np.float64)
        layers.append((kernel * scale, np.frombuffer(base64.b64decode(layer["bias"]), "<f4").astype(np.float64),
                       layer["activation"]))
    return layers


def numpy_logits(model, z):
    x = np.asarray(z, dtype=np.float64)
    for kernel, bias, activation in int8_network(model):
        x = x @ kernel + bias
        if activation == "relu":
            x = np.maximum(x, 0)
    return x


def quadrature_points(mu, sigma, count=5):
    """z = μ + σ·node over every combination of `count` Gauss–Hermite nodes, and their weights (summing to 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(count)
    weights = weights / weights.sum()
    k = len(mu)
    grid = np.stack(np.meshgrid(*[nodes] * k, indexing="ij"), -1).reshape(-1, k)
    product = np.prod(np.stack(np.meshgrid(*[weights] * k, indexing="ij"), -1).reshape(-1, k), axis=1)
    return np.asarray(mu) + np.asarray(sigma) * grid, product


def bernoulli_nats(pixels, logits):
    """The chapter's −ln p(x | z): binary cross-entropy from logits summed over the 784 pixels, (N,) nats."""
    return np.sum(np.maximum(logits, 0) - pixels * logits + np.log1p(np.exp(-np.abs(logits))), axis=-1)


def kl_nats(mu, log_var, covariance=None):
    """KL(N(μ, diag σ²) ‖ N(0, Σ)) in nats (Σ = I by default), as the chapters compute it."""
    mu, log_var = np.asarray(mu, np.float64), np.asarray(log_var, np.float64)
    var = np.exp(log_var)
    if covariance is None:
        return -0.5 * np.sum(1 + log_var - mu ** 2 - var)
    inverse = np.linalg.inv(covariance)
    return 0.5 * (np.trace(inverse @ np.diag(var)) + mu @ inverse @ mu - len(mu) + np.linalg.slogdet(covariance)[1]
                  - np.sum(log_var))


@pytest.fixture(scope="module")
def keras_parts(committed_root):
    """{model: (encoder, decoder logits model)} of the chapter models, loaded safely."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from vae.saving import load_model_safely

    parts = {}
    for name in MODELS:
        encoder = load_model_safely(committed_root / "models" / f"encoder_{name}.h5")
        decoder = load_model_safely(committed_root / "models" / f"decoder_{name}.h5")
        parts[name] = (encoder, keras.Model(decoder.inputs, decoder.get_layer("logits").output))
    return parts


def dark_share(page, name, points):
    """The share of the latent points (z0, z1) where the plane has a dark stroke within one CSS pixel."""
    dark = 0
    for z0, z1 in points:
        x, y = page.evaluate("([name, z0, z1]) => window.vaeExplorer.toCanvas(name, z0, z1)", [name, z0, z1])
        neighborhood = page.evaluate("""([name, x, y]) => [-1, 0, 1].flatMap(dx => [-1, 0, 1].map(dy =>
            window.vaeExplorer.planePixel(name, x + dx, y + dy)))""", [name, x, y])
        dark += min(max(rgba[:3]) for rgba in neighborhood) < 90
    return dark / len(points)


@pytest.mark.parametrize("name", MODELS)
def test_the_plane_shows_the_prior_contours(laptop, explorer_models, name):
    """Dark strokes along the prior's 1σ (solid) and 2σ (dashed) contours, L·(k cos t, k sin t) for Σ = L Lᵀ (L = I for
    N(0, I)), and mostly none between them; in 3-D at every slice. The legend says what they are."""
    page = laptop.page
    page.locator(f"#explorer-{name} .explorer-plane").scroll_into_view_if_needed()
    covariance = explorer_models[name]["prior_covariance"]
    cholesky = np.linalg.cholesky(np.asarray(covariance)) if covariance else np.eye(2)
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)])
    for z2 in ([0.0, 1.0] if name == "3d" else [None]):
        if z2 is not None:
            page.evaluate("z2 => window.vaeExplorer.setZ('3d', [0.5, 0.5, z2])", z2)
        assert dark_share(page, name, (cholesky @ circle).T) == 1, "the 1σ contour, solid"
        assert dark_share(page, name, (2 * cholesky @ circle).T) >= 0.5, "the 2σ contour, dashed"
        assert dark_share(page, name, (1.5 * cholesky @ circle).T) <= 0.25, "nothing dark between them"
    legend = page.locator(f"#explorer-{name} .explorer-legend").inner_text()
    inside = [round(100 * (1 - np.exp(-k * k / 2))) for k in (1, 2)]  # a 2-D Gaussian's mass within radius k
    assert "1σ (solid) and 2σ (dashed)" in legend and f"{inside[0]}% and {inside[1]}%" in legend, legend


@pytest.mark.parametrize("name", MODELS)
def test_a_picked_image_shows_its_loss_split(laptop, explorer_models, keras_parts, test_images, name):  # noqa: F811
    model = explorer_models[name]
    encoder, logits_model = keras_parts[name]
    covariance = np.asarray(model["prior_covariance"]) if model["prior_covariance"] else None
    for t in PICKED:
        picked = laptop.page.evaluate("([name, t]) => window.vaeExplorer.pick(name, t)", [name, t])
        loss, pixels = picked["loss"], np.asarray(picked["pixels"])
        assert loss["total"] == pytest.approx(loss["reconstruction"] + loss["kl"], rel=1e-12)
        # The same sums in NumPy, on the int8 network, at the shipped μ and σ.
        z, weights = quadrature_points(picked["z"], picked["sigma"])
        exact = weights @ bernoulli_nats(pixels, numpy_logits(model, z))
        assert loss["reconstruction"] == pytest.approx(exact, rel=EXACT_NATS)
        assert loss["kl"] == pytest.approx(kl_nats(picked["z"], 2 * np.log(picked["sigma"]), covariance), rel=EXACT_NATS)
        # The chapter's model in Keras: its encoder on the test image, its decoder's logits at the same nodes.
        image = test_images[picked["index"]][None, :, :, None].astype("float32") / 255
        mu, log_var = (np.asarray(a, np.float64)[0] for a in encoder.predict(image, verbose=0)[:2])
        z, weights = quadrature_points(mu, np.exp(0.5 * log_var))
        keras_reconstruction = weights @ bernoulli_nats(pixels, np.asarray(logits_model.predict(
            z.astype("float32"), verbose=0), np.float64))
        assert abs(loss["reconstruction"] - keras_reconstruction) <= RECONSTRUCTION_NATS, (t, loss, keras_reconstruction)
        assert abs(loss["kl"] - kl_nats(mu, log_var, covariance)) <= KL_NATS
        text = laptop.page.locator(f"#explorer-{name} .explorer-picked-loss").inner_text()
        assert f"ELBO {loss['total']:.1f} nats = reconstruction {loss['reconstruction']:.1f}" in text, text
        assert f"KL {loss['kl']:.2f}" in text and "averaged over the posterior" in text, text
    assert laptop.errors == []
