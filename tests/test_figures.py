"""The figures (code/vae/figures.py): drawn for the page's column at 2× density, with round latent
ticks, and robust to small or one-class inputs. Each test draws from small synthetic data."""

import numpy as np
import pytest
from PIL import Image

from vae import figures


def blob_decoder(z, training=False):
    """A stand-in decoder: a Gaussian blob whose position follows (z0, z1); (N, 28, 28, 1)."""
    z = np.asarray(z)
    rows, columns = np.mgrid[0:28, 0:28]
    centers = 14 + 3 * np.clip(z[:, :2], -4, 4)
    images = np.exp(-((columns - centers[:, 0, None, None]) ** 2 + (rows - centers[:, 1, None, None]) ** 2) / 8)
    return images[..., None].astype("float32")


@pytest.fixture
def drawn(monkeypatch):
    """The figures passed to save_png (instead of closed), so that their axes can be inspected."""
    captured = []
    save_png = figures.save_png

    def capture(figure, path):
        captured.append(figure)
        figure.canvas.draw()
        save_png(figure, path)

    monkeypatch.setattr(figures, "save_png", capture)
    return captured


def clusters(count=600, dims=2, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count)
    return rng.normal(size=(count, dims)) + labels[:, None] % 3, labels


def test_png_is_a_2x_palette_image_of_modest_size(tmp_path):
    z, labels = clusters()
    path = tmp_path / "clusters.png"
    figures.plot_latent_clusters(z, labels, path)
    image = Image.open(path)
    assert image.mode == "P", "an 8-bit palette PNG"
    assert image.info["dpi"] == pytest.approx((figures.DPI, figures.DPI), abs=0.01)
    assert image.width <= figures.DPI * (figures.COLUMN_WIDTH + 0.3), "no wider than the page's column at 2×"
    assert path.stat().st_size < 400_000


def test_manifold_ticks_are_round_latent_values_including_zero(tmp_path, drawn):
    figures.plot_manifold(blob_decoder, tmp_path / "manifold.png", grid_size=20, limit=3.0)
    ax = drawn[-1].axes[0]
    for ticks in (ax.get_xticks(), ax.get_yticks()):
        inside = [t for t in ticks if -3.2 <= t <= 3.2]
        assert inside == [-3, -2, -1, 0, 1, 2, 3]
    # The image spans the grid's cells: each digit is centered on its code.
    left, right, bottom, top = ax.get_images()[0].get_extent()
    assert (left, right) == pytest.approx((-3 - 3 / 19, 3 + 3 / 19))


def test_codes_spread_far_out_get_fewer_rounder_ticks(tmp_path, drawn):
    """A model whose codes reach |z| = 20 (the continuous Bernoulli's did) gets ticks every 5, 0 among them,
    not forty overlapping labels."""
    z, labels = clusters()
    figures.plot_latent_clusters(z * 8, labels, tmp_path / "wide.png")
    ax = drawn[-1].axes[0]
    for ticks in (ax.get_xticks(), ax.get_yticks()):
        visible = [t for t in ticks if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert 0 in ticks and len(visible) <= 13 and all(t % 5 == 0 for t in ticks)


def test_reconstructions_with_fewer_images_than_count(tmp_path, drawn):
    originals = np.random.default_rng(0).random((3, 28, 28, 1))
    figures.plot_reconstructions(originals, originals, tmp_path / "three.png", count=10)
    assert len(drawn[-1].axes) == 2 * 3
    figures.plot_reconstructions(originals[:1], originals[:1], tmp_path / "one.png")
    assert len(drawn[-1].axes) == 2
    assert (tmp_path / "three.png").is_file() and (tmp_path / "one.png").is_file()


def test_3d_view_and_plot_with_a_single_class(tmp_path):
    z, _ = clusters(dims=3)
    one_class = np.zeros(len(z), dtype=int)
    assert figures.readable_view(z, one_class) == figures.DEFAULT_VIEW
    assert figures.readable_view(z, one_class % 2 + (np.arange(len(z)) % 2)) == figures.DEFAULT_VIEW  # two classes
    figures.plot_clusters_3d(z, one_class, tmp_path / "one.png")
    assert (tmp_path / "one.png").is_file()


def test_3d_view_looks_at_the_discriminant_plane(tmp_path):
    z, labels = clusters(dims=3)
    elevation, azimuth = figures.readable_view(z, labels)
    assert (elevation, azimuth) != figures.DEFAULT_VIEW and 0 <= elevation <= 60


def test_clusters_are_labelled_by_numerals_at_their_centers(tmp_path, drawn):
    z, labels = clusters(classes=4)
    figures.plot_latent_clusters(z, labels, tmp_path / "clusters.png")
    texts = {text.get_text(): text.get_position() for text in drawn[-1].axes[0].texts}
    for digit in range(4):
        assert texts[str(digit)] == pytest.approx(tuple(np.median(z[labels == digit], axis=0)))


def test_latent_variance_uses_a_log_axis_that_shows_both_bars(tmp_path, drawn):
    figures.plot_latent_variance(np.array([1.2, 0.9, 1.1]), np.array([0.004, 0.006, 0.004]),
                                 tmp_path / "variance.png")
    ax = drawn[-1].axes[0]
    assert ax.get_yscale() == "log"
    low, high = ax.get_ylim()
    assert low < 0.004 and high > 1.2


def test_interpolation_with_one_digit_class_walks_between_two_of_its_images(tmp_path, drawn):
    images = np.random.default_rng(0).random((5, 28, 28, 1))
    z, _ = clusters(count=5)
    figures.plot_interpolation(blob_decoder, images, z, np.zeros(5, dtype=int), tmp_path / "walk.png", steps=4)
    assert (tmp_path / "walk.png").is_file()
    assert figures.interpolation_pairs(np.zeros(5, dtype=int)) == []
    with pytest.raises(ValueError, match="at least two test images"):
        figures.plot_interpolation(blob_decoder, images[:1], z[:1], np.zeros(1, dtype=int), tmp_path / "one.png")


@pytest.mark.parametrize("covariance", [None, [[1.0, 0.4], [0.4, 0.5]]])
def test_posterior_widths_draw_the_prior_s_own_2_sigma_contour(tmp_path, drawn, covariance):
    """The dashed contour of the whole-plane panel is the 2σ ellipse of the model's prior: the circle of
    radius 2 for N(0, I), and for N(0, Σ) the ellipse whose semi-axes are twice the square roots of Σ's
    eigenvalues (the correlated chapter's figure once drew N(0, I)'s circle and called it the prior's)."""
    from matplotlib.patches import Ellipse

    z_mean, labels = clusters(100)
    figures.plot_posterior_widths(z_mean, np.full((100, 2), -6.0), labels, tmp_path / "w.png",
                                  prior_covariance=covariance)
    dashed = [patch for patch in drawn[0].axes[0].patches
              if isinstance(patch, Ellipse) and patch.get_linestyle() == "--"]
    assert len(dashed) == 1
    expected = 2 * np.sqrt(np.linalg.eigvalsh(np.eye(2) if covariance is None else np.asarray(covariance)))
    assert sorted([dashed[0].width / 2, dashed[0].height / 2]) == pytest.approx(sorted(expected))


def test_no_text_is_set_below_11_points():
    """The page shows a figure on a phone at no less than 59% of its drawn size, where 11 points (15.3 CSS
    px at full size) is 9 px: no text in code/vae/figures.py may be set smaller, by rcParams or by hand."""
    import re
    from pathlib import Path

    import matplotlib

    source = Path(figures.__file__).read_text()
    sizes = [int(size) for size in re.findall(r"(?:fontsize|labelsize)=(\d+)", source)]
    assert sizes and min(sizes) >= 11, sorted(set(sizes))
    for key in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
                "legend.fontsize"):
        assert matplotlib.rcParams[key] >= 11, key
