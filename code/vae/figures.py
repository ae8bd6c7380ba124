"""Every figure of the tutorial. Each function draws one figure and saves it as a PNG.

Latent codes are NumPy arrays of shape (N, latent_dim); labels are digits 0..9, shape (N,).
Decoders are called once per figure on the whole batch of latent points.

The figures are drawn for the tutorial page's text column: at most 7.5 inches wide, saved at
DPI = 200 pixels per inch, so that 1 inch is 100 CSS pixels on a 2× (high-density) screen; the
PNG's pHYs chunk records those 200 dots per inch, and the page builder reads it to size the image.
The smallest text is 11 points, 15 CSS pixels at full column width. Digit classes are told apart
by their numeral, written at each cluster's center, not by color alone.
"""

import io

import matplotlib

matplotlib.use("Agg")  # draw to files; no window needed

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patheffects
from matplotlib.colors import BoundaryNorm
from matplotlib.patches import Ellipse
from matplotlib.ticker import MultipleLocator
from PIL import Image
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from vae.evaluation import decode
from vae.saving import atomic_path

DPI = 200  # pixels per inch of the saved PNGs: 2 image pixels per CSS pixel (100 CSS px per inch)
COLUMN_WIDTH = 7.5  # inches: the page's text column, about 750 CSS pixels
DIGIT_COLORS = plt.get_cmap("tab10")
DIGIT_NORM = BoundaryNorm(np.arange(-0.5, 10.5), DIGIT_COLORS.N)
DEFAULT_VIEW = (30.0, -60.0)  # (elevation, azimuth) in degrees: Matplotlib's own 3-D default
OUTLINE = [patheffects.withStroke(linewidth=3, foreground="white")]

matplotlib.rcParams.update({
    "font.size": 13,
    "axes.titlesize": 13,
    "axes.labelsize": 13,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 12,
    "savefig.dpi": DPI,
    "figure.dpi": 100,
})


def save_png(figure, path):
    """Save `figure` to `path` as an 8-bit palette PNG at DPI, atomically, and close it.

    256 colors are plenty for these plots and take a quarter of the bytes of RGBA.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.05, facecolor="white")
    plt.close(figure)
    image = Image.open(buffer).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG", optimize=True, dpi=(DPI, DPI))


def _scatter_digits(ax, x, y, labels, size=3, **kwargs):
    """Scatter points colored by their digit; returns the artist."""
    return ax.scatter(x, y, c=labels, cmap=DIGIT_COLORS, norm=DIGIT_NORM, s=size, alpha=0.6,
                      linewidths=0, rasterized=True, **kwargs)


def _digit_numerals(ax, points, labels, fontsize=14):
    """Write each digit class's numeral at the median of its points (2 or 3 columns), so that the
    classes can be told apart without color."""
    for digit in np.unique(labels):
        center = np.median(points[labels == digit], axis=0)
        ax.text(*center, str(int(digit)), fontsize=fontsize, fontweight="bold", ha="center", va="center",
                color="black", path_effects=OUTLINE, zorder=5)


def _prior_ellipses(ax, covariance, color="black"):
    """Draw the 1σ and 2σ contours of N(0, covariance[:2, :2]) on `ax`."""
    eigenvalues, eigenvectors = np.linalg.eigh(np.asarray(covariance)[:2, :2])
    angle = np.degrees(np.arctan2(eigenvectors[1, 1], eigenvectors[0, 1]))
    for k, style in [(1, "-"), (2, "--")]:
        width, height = 2 * k * np.sqrt(eigenvalues[::-1])
        ax.add_patch(Ellipse((0, 0), width, height, angle=angle, fill=False, color=color,
                             linestyle=style, linewidth=2, label=f"prior {k}σ", zorder=4))


def _latent_ticks(ax, step=1.0):
    """Ticks at round latent values, multiples of `step` (so 0 is one of them)."""
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.yaxis.set_major_locator(MultipleLocator(step))


def plot_latent_clusters(z_mean, labels, path, prior_covariance=None, title=None):
    """The posterior means (z0, z1) of the test images, colored by digit, each class's numeral at
    its center. With `prior_covariance`, the prior's 1σ and 2σ ellipses are drawn over them.
    """
    z_mean, labels = np.asarray(z_mean), np.asarray(labels)
    figure, ax = plt.subplots(figsize=(COLUMN_WIDTH, 6.8))
    _scatter_digits(ax, z_mean[:, 0], z_mean[:, 1], labels, size=4)
    _digit_numerals(ax, z_mean[:, :2], labels, fontsize=16)
    if prior_covariance is not None:
        _prior_ellipses(ax, prior_covariance)
        ax.legend(loc="upper left")
    ax.set_xlabel("z₀ (posterior mean)")
    ax.set_ylabel("z₁ (posterior mean)")
    ax.set_aspect("equal", adjustable="datalim")
    _latent_ticks(ax)
    ax.grid(alpha=0.25)
    ax.set_title(title or f"Test images in the latent plane ({len(z_mean):,} points)")
    save_png(figure, path)


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
    a slice of a 3-D latent space. The axes are in latent units: each digit is centered on
    the code it was decoded from, and the ticks sit at whole latent values, 0 included.
    """
    grid = latent_grid(grid_size, limit)
    z = np.hstack([grid, np.tile(np.asarray(fixed, dtype=float), (len(grid), 1))])
    digits = decode(decoder, z).reshape(grid_size, grid_size, 28, 28)
    mosaic = digits.transpose(0, 2, 1, 3).reshape(grid_size * 28, grid_size * 28)

    half_cell = limit / (grid_size - 1)  # half the spacing of the grid, in latent units
    edge = limit + half_cell
    figure, ax = plt.subplots(figsize=(6.6, 6.6))
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest", extent=(-edge, edge, -edge, edge))
    _latent_ticks(ax)
    ax.set_xlabel("z₀")
    ax.set_ylabel("z₁")
    ax.set_title(title or f"Decoded {grid_size}×{grid_size} grid over the latent plane")
    save_png(figure, path)


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
    figure, ax = plt.subplots(figsize=(COLUMN_WIDTH, 6.6))
    for (z0, z1), digit in zip(z[:, :2], digits):
        ax.imshow(digit.reshape(28, 28), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest",
                  extent=(z0 - tile / 2, z0 + tile / 2, z1 - tile / 2, z1 + tile / 2))
    _prior_ellipses(ax, cholesky @ cholesky.T, color="tab:red")
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]]) * limit @ cholesky[:2, :2].T
    ax.plot(corners[:, 0], corners[:, 1], color="tab:blue", linewidth=1.5, label=f"grid |εᵢ| ≤ {limit:g}")
    ax.legend(loc="upper left")
    margin = tile
    ax.set_xlim(z[:, 0].min() - margin, z[:, 0].max() + margin)
    ax.set_ylim(z[:, 1].min() - margin, z[:, 1].max() + margin)
    ax.set_aspect("equal")
    _latent_ticks(ax)
    ax.set_xlabel("z₀")
    ax.set_ylabel("z₁")
    ax.set_title(title or "Decoded grid z = L ε over the prior's geometry")
    save_png(figure, path)


def plot_reconstructions(originals, reconstructions, path, count=10):
    """The first `count` test images (top row) above their reconstructions (bottom row).

    Images are (N, 28, 28) or (N, 28, 28, 1) in [0, 1]; with fewer than `count`, all N are drawn.
    """
    count = min(count, len(originals), len(reconstructions))
    if count < 1:
        raise ValueError("plot_reconstructions needs at least one image")
    width = COLUMN_WIDTH * max(count, 4) / 10  # 0.75 inch per digit
    figure, axes = plt.subplots(2, count, figsize=(width + 0.5, 2 * width / max(count, 4) + 0.2), squeeze=False,
                                gridspec_kw={"wspace": 0.06, "hspace": 0.06})
    for column in range(count):
        for row, images in enumerate([originals, reconstructions]):
            ax = axes[row, column]
            ax.imshow(np.squeeze(images[column]), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("test", fontsize=12)
    axes[1, 0].set_ylabel("rebuilt", fontsize=12)
    save_png(figure, path)


def plot_history(history, path):
    """Loss, reconstruction and KL per epoch, training (solid) and test (dashed), nats per image,
    stacked in three panels that share the epoch axis."""
    figure, axes = plt.subplots(3, 1, figsize=(COLUMN_WIDTH, 7.2), sharex=True)
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key, title in zip(axes, ["loss", "reconstruction", "kl"],
                              ["loss = reconstruction + β·KL", "reconstruction (binary cross-entropy)",
                               "KL(q(z|x) ‖ p(z))"]):
        ax.plot(epochs, history[key], "-o", markersize=3, label="training")
        ax.plot(epochs, history[f"val_{key}"], "--s", markersize=3, label="test")
        ax.set_title(title, loc="left")
        ax.set_ylabel("nats per image")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right")
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.set_major_locator(MultipleLocator(5 if len(epochs) > 10 else 1))
    figure.align_ylabels(axes)
    save_png(figure, path)


def readable_view(z_mean, labels):
    """(elevation, azimuth) in degrees of a camera that looks straight at the plane
    where the digit clusters are most separated (the 2-D linear discriminant plane).

    That plane needs at least three classes; with fewer, the fixed DEFAULT_VIEW.
    """
    if len(np.unique(labels)) < 3:
        return DEFAULT_VIEW
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
    """The test images' posterior means in 3-D, colored by digit, each class's numeral at its center,
    seen from `readable_view`."""
    z_mean, labels = np.asarray(z_mean), np.asarray(labels)
    elevation, azimuth = readable_view(z_mean, labels)
    figure = plt.figure(figsize=(COLUMN_WIDTH, 6.8))
    ax = figure.add_subplot(projection="3d")
    ax.scatter(z_mean[:, 0], z_mean[:, 1], z_mean[:, 2], c=labels, cmap=DIGIT_COLORS,
               norm=DIGIT_NORM, s=5, alpha=0.75, linewidths=0, rasterized=True)
    _digit_numerals(ax, z_mean[:, :3], labels, fontsize=16)
    ax.view_init(elev=elevation, azim=azimuth)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MultipleLocator(1))
    ax.set_xlabel("z₀", labelpad=8)
    ax.set_ylabel("z₁", labelpad=8)
    ax.set_zlabel("z₂", labelpad=8)
    ax.set_title(f"Test images in the 3-D latent space\n(view: elevation {elevation:.0f}°, azimuth {azimuth:.0f}°)")
    save_png(figure, path)


def plot_pairwise_projections(z_mean, labels, path):
    """The three pairwise projections (z0, z1), (z1, z2), (z0, z2) side by side, numerals at the
    class centers."""
    z_mean, labels = np.asarray(z_mean), np.asarray(labels)
    figure, axes = plt.subplots(1, 3, figsize=(COLUMN_WIDTH, 3.0), sharex=True, sharey=True,
                                gridspec_kw={"wspace": 0.08})
    for ax, (i, j) in zip(axes, [(0, 1), (1, 2), (0, 2)]):
        _scatter_digits(ax, z_mean[:, i], z_mean[:, j], labels, size=1.5)
        _digit_numerals(ax, z_mean[:, [i, j]], labels, fontsize=12)
        ax.set_xlabel(f"z{'₀₁₂'[i]}")
        ax.set_title(f"(z{'₀₁₂'[i]}, z{'₀₁₂'[j]})", fontsize=12)
        ax.text(0.03, 0.97, f"↑ z{'₀₁₂'[j]}", transform=ax.transAxes, ha="left", va="top", fontsize=11)
        ax.set_aspect("equal", adjustable="box")
        _latent_ticks(ax, 2.0)
        ax.grid(alpha=0.25)
    save_png(figure, path)


def plot_latent_variance(between, within, path):
    """Per latent dimension: `between`, the variance of z_mean over the test set (how much the
    code moves between images), beside `within`, the mean posterior variance E[σ²] (how unsure
    it is); both from `evaluation.latent_usage`. A logarithmic axis shows both, however far apart.

    A dimension in use has Var[z_mean] ≫ E[σ²]; an unused one has Var[z_mean] ≈ 0 and E[σ²] ≈ 1.
    """
    between, within = np.asarray(between, dtype=float), np.asarray(within, dtype=float)
    dims = np.arange(len(between))
    figure, ax = plt.subplots(figsize=(COLUMN_WIDTH, 4.2))
    ax.bar(dims - 0.2, between, width=0.4, label="Var[μ] over the test images")
    ax.bar(dims + 0.2, within, width=0.4, label="mean posterior variance E[σ²]", hatch="//", edgecolor="white")
    ax.axhline(1.0, color="gray", linestyle=":", label="prior variance 1")
    for x, value in zip(np.r_[dims - 0.2, dims + 0.2], np.r_[between, within]):
        ax.annotate(f"{value:.2g}", (x, value), ha="center", va="bottom", fontsize=11,
                    xytext=(0, 2), textcoords="offset points")
    ax.set_yscale("log")
    values = np.r_[between, within, 1.0]
    ax.set_ylim(10 ** np.floor(np.log10(max(values.min(), 1e-6)) - 0.3), 10 ** (np.log10(values.max()) + 1.2))
    ax.set_xticks(dims, [f"z{'₀₁₂₃₄₅₆₇₈₉'[d] if d < 10 else d}" for d in dims])
    ax.set_ylabel("variance (log scale)")
    ax.set_title("Which latent dimensions does the model use?")
    ax.legend(loc="upper left", ncols=2, fontsize=11)
    save_png(figure, path)


def plot_covariance(prior_covariance, empirical_covariance, path):
    """The prior's Σ beside the empirical covariance of the encoded test means, values annotated."""
    matrices = [np.asarray(prior_covariance), np.asarray(empirical_covariance)]
    titles = ["prior covariance Σ", "covariance of μ, test set"]
    limit = max(np.abs(m).max() for m in matrices)
    figure, axes = plt.subplots(1, 2, figsize=(COLUMN_WIDTH, 3.6))
    for ax, matrix, title in zip(axes, matrices, titles):
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=14,
                    color="white" if abs(value) > 0.6 * limit else "black")
        ticks = range(len(matrix))
        ax.set_xticks(ticks, [f"z{'₀₁₂₃₄₅₆₇₈₉'[i]}" for i in ticks])
        ax.set_yticks(ticks, [f"z{'₀₁₂₃₄₅₆₇₈₉'[i]}" for i in ticks])
        ax.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    save_png(figure, path)
