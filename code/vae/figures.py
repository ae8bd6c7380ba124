"""Every figure of the tutorial. Each function draws one figure and saves it as a PNG.

Latent codes are NumPy arrays of shape (N, latent_dim); labels are digits 0..9, shape (N,).
Decoders are called once per figure on the whole batch of latent points.
"""

import matplotlib

matplotlib.use("Agg")  # draw to files; no window needed

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import BoundaryNorm
from matplotlib.patches import Ellipse
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from vae.evaluation import decode
from vae.saving import save_figure

DIGIT_COLORS = plt.get_cmap("tab10")
DIGIT_NORM = BoundaryNorm(np.arange(-0.5, 10.5), DIGIT_COLORS.N)


def _scatter_digits(ax, x, y, labels, size=3, **kwargs):
    """Scatter points colored by their digit; returns the artist, for a colorbar."""
    return ax.scatter(x, y, c=labels, cmap=DIGIT_COLORS, norm=DIGIT_NORM, s=size, alpha=0.6,
                      linewidths=0, rasterized=True, **kwargs)


def _digit_colorbar(figure, artist, ax):
    colorbar = figure.colorbar(artist, ax=ax, ticks=range(10), fraction=0.046, pad=0.04)
    colorbar.set_label("digit")
    colorbar.solids.set_alpha(1)


def _prior_ellipses(ax, covariance, color="black"):
    """Draw the 1σ and 2σ contours of N(0, covariance[:2, :2]) on `ax`."""
    eigenvalues, eigenvectors = np.linalg.eigh(np.asarray(covariance)[:2, :2])
    angle = np.degrees(np.arctan2(eigenvectors[1, 1], eigenvectors[0, 1]))
    for k, style in [(1, "-"), (2, "--")]:
        width, height = 2 * k * np.sqrt(eigenvalues[::-1])
        ax.add_patch(Ellipse((0, 0), width, height, angle=angle, fill=False, color=color,
                             linestyle=style, linewidth=1.5, label=f"prior {k}σ"))


def plot_latent_clusters(z_mean, labels, path, prior_covariance=None, title=None):
    """The posterior means (z0, z1) of the test images, colored by digit.

    With `prior_covariance`, the prior's 1σ and 2σ ellipses are drawn over them.
    """
    figure, ax = plt.subplots(figsize=(7.5, 6.5))
    points = _scatter_digits(ax, z_mean[:, 0], z_mean[:, 1], labels)
    if prior_covariance is not None:
        _prior_ellipses(ax, prior_covariance)
        ax.legend(loc="upper right")
    _digit_colorbar(figure, points, ax)
    ax.set_xlabel("z0 (posterior mean)")
    ax.set_ylabel("z1 (posterior mean)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title or f"Test images in the latent space ({len(z_mean):,} points)")
    save_figure(figure, path)


def latent_grid(grid_size, limit):
    """A grid_size × grid_size grid of points over [-limit, limit]², shape (grid_size², 2).

    Row-major, top row first: row i has u1 = +limit … -limit going down, so that the
    grid reads like a plot with z1 pointing up.
    """
    values = np.linspace(-limit, limit, grid_size)
    u1, u0 = np.meshgrid(values[::-1], values, indexing="ij")
    return np.stack([u0.ravel(), u1.ravel()], axis=1)


def plot_manifold(decoder, path, grid_size=20, limit=3.0, fixed=(), title=None):
    """Decode a grid over (z0, z1) from -limit to +limit and tile the digits into one image.

    `fixed` holds the values of the remaining latent dimensions (z2, …), e.g. (0.5,) for
    a slice of a 3-D latent space. Axis ticks are in latent units.
    """
    grid = latent_grid(grid_size, limit)
    z = np.hstack([grid, np.tile(np.asarray(fixed, dtype=float), (len(grid), 1))])
    digits = decode(decoder, z).reshape(grid_size, grid_size, 28, 28)
    mosaic = digits.transpose(0, 2, 1, 3).reshape(grid_size * 28, grid_size * 28)

    figure, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1)
    centers = 14 + 28 * np.arange(grid_size)
    values = np.linspace(-limit, limit, grid_size)
    step = max(1, grid_size // 7)
    ax.set_xticks(centers[::step], [f"{v:.1f}" for v in values[::step]])
    ax.set_yticks(centers[::step], [f"{v:.1f}" for v in values[::-1][::step]])
    ax.set_xlabel("z0")
    ax.set_ylabel("z1")
    ax.set_title(title or f"Decoded {grid_size}×{grid_size} grid over the latent plane")
    save_figure(figure, path)


def plot_prior_manifold(decoder, path, cholesky, grid_size=20, limit=2.5, title=None):
    """Decode a regular grid in ε-space mapped through z = L ε, and draw each digit at its z.

    The grid of digits then has the prior's shape: tilted and stretched like N(0, L Lᵀ).
    """
    cholesky = np.asarray(cholesky)
    epsilon = latent_grid(grid_size, limit)  # ε0, ε1 on the grid; any further ε are 0
    epsilon = np.hstack([epsilon, np.zeros((len(epsilon), len(cholesky) - 2))])
    z = epsilon @ cholesky.T
    digits = decode(decoder, z)

    # Each digit is drawn as a small square tile centered on its z, sized to the grid's spacing.
    spacing = 2 * limit / (grid_size - 1)
    tile = 0.95 * spacing * np.abs(np.diag(cholesky)[:2]).min()
    figure, ax = plt.subplots(figsize=(9, 8))
    for (z0, z1), digit in zip(z, digits):
        ax.imshow(digit, cmap="gray_r", vmin=0, vmax=1, interpolation="antialiased",
                  extent=(z0 - tile / 2, z0 + tile / 2, z1 - tile / 2, z1 + tile / 2))
    _prior_ellipses(ax, cholesky @ cholesky.T, color="tab:red")
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]]) * limit @ cholesky[:2, :2].T
    ax.plot(corners[:, 0], corners[:, 1], color="tab:blue", linewidth=1, label="grid |ε| ≤ %.1f" % limit)
    ax.legend(loc="upper left")
    margin = tile
    ax.set_xlim(z[:, 0].min() - margin, z[:, 0].max() + margin)
    ax.set_ylim(z[:, 1].min() - margin, z[:, 1].max() + margin)
    ax.set_aspect("equal")
    ax.set_xlabel("z0")
    ax.set_ylabel("z1")
    ax.set_title(title or "Decoded grid z = L ε: the manifold over the prior's geometry")
    save_figure(figure, path)


def plot_reconstructions(originals, reconstructions, path, count=10):
    """The first `count` test images (top row) above their reconstructions (bottom row)."""
    figure, axes = plt.subplots(2, count, figsize=(1.2 * count, 2.8))
    for column in range(count):
        for row, images in enumerate([originals, reconstructions]):
            axes[row, column].imshow(np.squeeze(images[column]), cmap="gray_r", vmin=0, vmax=1)
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstructed")
    figure.suptitle("Test images and their reconstructions (decoder mean of one posterior sample)")
    save_figure(figure, path)


def plot_history(history, path):
    """Loss, reconstruction and KL per epoch, training (solid) and test (dashed), nats per image."""
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key, title in zip(axes, ["loss", "reconstruction", "kl"],
                              ["loss = reconstruction + β·KL", "reconstruction (BCE)", "KL(q(z|x) ‖ p(z))"]):
        ax.plot(epochs, history[key], "-o", markersize=3, label="training")
        ax.plot(epochs, history[f"val_{key}"], "--s", markersize=3, label="test")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per image")
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(figure, path)


def readable_view(z_mean, labels):
    """(elevation, azimuth) in degrees of a camera that looks straight at the plane
    where the digit clusters are most separated (the 2-D linear discriminant plane)."""
    plane = LinearDiscriminantAnalysis(n_components=2).fit(z_mean, labels).scalings_[:, :2]
    normal = np.cross(plane[:, 0], plane[:, 1])
    normal /= np.linalg.norm(normal)
    if normal[2] < 0:
        normal = -normal
    elevation = np.degrees(np.arcsin(np.clip(normal[2], -1, 1)))
    azimuth = np.degrees(np.arctan2(normal[1], normal[0]))
    # Matplotlib's 3-D axes read poorly from straight above: keep the camera below 60°.
    return min(elevation, 60.0), azimuth


def plot_clusters_3d(z_mean, labels, path):
    """The test images' posterior means in 3-D, colored by digit, seen from `readable_view`."""
    elevation, azimuth = readable_view(z_mean, labels)
    figure = plt.figure(figsize=(8, 7))
    ax = figure.add_subplot(projection="3d")
    points = ax.scatter(z_mean[:, 0], z_mean[:, 1], z_mean[:, 2], c=labels, cmap=DIGIT_COLORS,
                        norm=DIGIT_NORM, s=5, alpha=0.75, linewidths=0, rasterized=True)
    ax.view_init(elev=elevation, azim=azimuth)
    ax.set_xlabel("z0")
    ax.set_ylabel("z1")
    ax.set_zlabel("z2")
    ax.set_title(f"3-D latent space, test images (view: elevation {elevation:.0f}°, azimuth {azimuth:.0f}°)")
    _digit_colorbar(figure, points, ax)
    save_figure(figure, path)


def plot_pairwise_projections(z_mean, labels, path):
    """The three pairwise projections (z0, z1), (z1, z2), (z0, z2) side by side."""
    figure, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    for ax, (i, j) in zip(axes, [(0, 1), (1, 2), (0, 2)]):
        points = _scatter_digits(ax, z_mean[:, i], z_mean[:, j], labels, size=2)
        ax.set_xlabel(f"z{i}")
        ax.set_ylabel(f"z{j}")
        ax.set_title(f"(z{i}, z{j})")
        ax.set_aspect("equal", adjustable="datalim")
    _digit_colorbar(figure, points, axes)
    save_figure(figure, path)


def plot_latent_variance(between, within, path):
    """Per latent dimension: `between`, the variance of z_mean over the test set (how much the
    code moves between images), beside `within`, the mean posterior variance E[σ²] (how unsure
    it is); both from `evaluation.latent_usage`.

    A dimension in use has Var[z_mean] ≫ E[σ²]; an unused one has Var[z_mean] ≈ 0 and E[σ²] ≈ 1.
    """
    dims = np.arange(len(between))
    figure, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.bar(dims - 0.2, between, width=0.4, label="Var[z_mean] over test images")
    ax.bar(dims + 0.2, within, width=0.4, label="mean posterior variance E[σ²]")
    ax.axhline(1.0, color="gray", linestyle=":", label="prior variance")
    for x, value in zip(np.r_[dims - 0.2, dims + 0.2], np.r_[between, within]):
        ax.annotate(f"{value:.3g}", (x, value), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(dims, [f"z{d}" for d in dims])
    ax.set_ylim(0, 1.5 * max(1.0, between.max(), within.max()))  # headroom for the legend
    ax.set_ylabel("variance")
    ax.set_title("Which latent dimensions does the model use?")
    ax.legend()
    save_figure(figure, path)


def plot_covariance(prior_covariance, empirical_covariance, path):
    """The prior's Σ beside the empirical covariance of the encoded test means, values annotated."""
    matrices = [np.asarray(prior_covariance), np.asarray(empirical_covariance)]
    titles = ["prior covariance Σ", "covariance of z_mean over the test set"]
    limit = max(np.abs(m).max() for m in matrices)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, matrix, title in zip(axes, matrices, titles):
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=13,
                    color="white" if abs(value) > 0.6 * limit else "black")
        ticks = range(len(matrix))
        ax.set_xticks(ticks, [f"z{i}" for i in ticks])
        ax.set_yticks(ticks, [f"z{i}" for i in ticks])
        ax.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    save_figure(figure, path)
