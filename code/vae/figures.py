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
from matplotlib.collections import EllipseCollection
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


PALETTE_COLORS = 64


def save_png(figure, path):
    """Save `figure` to `path` as a palette PNG of PALETTE_COLORS colors at DPI, atomically, and close it.

    64 colors are plenty for these plots (gray digits, ten class colors, text) and take a fifth of
    the bytes of RGBA; the page's 4 MB budget needs that. A figure of colour images (CIFAR-10) keeps 256.
    """
    colour = any(shown.get_array().ndim == 3 for ax in figure.axes for shown in ax.images)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.05, facecolor="white")
    plt.close(figure)
    colors = 256 if colour else PALETTE_COLORS
    image = Image.open(buffer).convert("RGB").quantize(colors=colors, dither=Image.Dither.NONE)
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG", optimize=True, dpi=(DPI, DPI))


def _show_images(ax, image, **kwargs):
    """imshow of an image or a mosaic of them, values in [0, 1]: grey-scale, (h, w) or (h, w, 1), as dark
    ink on white; colour, (h, w, 3), as it is."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return ax.imshow(image, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest", **kwargs)
    return ax.imshow(np.clip(image, 0, 1), interpolation="nearest", **kwargs)


def _scatter_digits(ax, x, y, labels, size=3, **kwargs):
    """Scatter points colored by their digit; returns the artist."""
    return ax.scatter(x, y, c=labels, cmap=DIGIT_COLORS, norm=DIGIT_NORM, s=size, alpha=0.6,
                      linewidths=0, rasterized=True, **kwargs)


def _digit_numerals(ax, points, labels, fontsize=14):
    """Write each digit class's numeral at the median of its points (2 or 3 columns), so that the
    classes can be told apart without color. Images without classes (one label) get none."""
    if len(np.unique(labels)) < 2:
        return
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


def _latent_ticks(ax, step=1.0, most=12):
    """Ticks at round latent values, multiples of `step` (so 0 is one of them), or of 2, 5, 10, ... times
    `step` where the axes span more than `most` steps (a model whose codes spread out to |z| = 20)."""
    span = max(np.ptp(ax.get_xlim()), np.ptp(ax.get_ylim()))
    step = next(step * factor for factor in (1, 2, 5, 10, 20, 50, 100, float("inf")) if span <= most * step * factor)
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


def plot_manifold(decoder, path, grid_size=20, limit=3.0, fixed=(), title=None, label=None):
    """Decode a grid over (z0, z1) from -limit to +limit and tile the digits into one image.

    `fixed` holds the values of the remaining latent dimensions (z2, …), e.g. (0.5,) for
    a slice of a 3-D latent space. The axes are in latent units: each digit is centered on
    the code it was decoded from, and the ticks sit at whole latent values, 0 included.
    A conditional decoder draws class `label` at every point.
    """
    grid = latent_grid(grid_size, limit)
    z = np.hstack([grid, np.tile(np.asarray(fixed, dtype=float), (len(grid), 1))])
    labels = None if label is None else np.full(len(z), label)
    digits = decode(decoder, z, labels)  # (grid_size², h, w), or (grid_size², h, w, c) in colour
    height, width, colour = digits.shape[1], digits.shape[2], digits.shape[3:]
    mosaic = (digits.reshape(grid_size, grid_size, height, width, *colour).swapaxes(1, 2)
              .reshape(grid_size * height, grid_size * width, *colour))

    half_cell = limit / (grid_size - 1)  # half the spacing of the grid, in latent units
    edge = limit + half_cell
    figure, ax = plt.subplots(figsize=(6.6, 6.6))
    _show_images(ax, mosaic, extent=(-edge, edge, -edge, edge))
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
        _show_images(ax, digit, extent=(z0 - tile / 2, z0 + tile / 2, z1 - tile / 2, z1 + tile / 2))
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

    Images are (N, h, w), (N, h, w, 1) or colour (N, h, w, 3) in [0, 1]; with fewer than `count`, all N are drawn.
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
            _show_images(ax, images[column])
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


# ---------------------------------------------------------------------------------------------
# Looking inside a trained model: generation, interpolation, posterior widths, holes, traversals

SUBSCRIPTS = "₀₁₂₃₄₅₆₇₈₉"


def _dimension_name(d):
    return f"z{SUBSCRIPTS[d]}" if d < 10 else f"z{d}"


def _digit_strip(ax, digits, columns, gap=2, frames=()):
    """Tile images, (N, h, w) grey-scale or (N, h, w, c) colour, e.g. (N, 28, 28) digits, into rows of
    `columns`, `gap` white pixels apart, on `ax`, without axes. `frames` lists (row, column) tiles to
    outline (test images among decoded ones). Returns the centers of the rows (y) and of the columns (x)."""
    digits = np.asarray(digits)
    if digits.ndim == 4 and digits.shape[-1] == 1:
        digits = digits[..., 0]
    height, width, colour = digits.shape[1], digits.shape[2], digits.shape[3:]
    rows = -(-len(digits) // columns)
    cell_height, cell_width = height + gap, width + gap
    white = 1.0 if colour else 0.0  # grey-scale is drawn as ink: 0 is white
    mosaic = np.full((rows * cell_height - gap, columns * cell_width - gap, *colour), white)
    for index, digit in enumerate(digits):
        r, c = divmod(index, columns)
        mosaic[r * cell_height:r * cell_height + height, c * cell_width:c * cell_width + width] = digit
    _show_images(ax, mosaic)
    for r, c in frames:
        ax.add_patch(matplotlib.patches.Rectangle((c * cell_width - 1.5, r * cell_height - 1.5), width + 2, height + 2,
                                                  fill=False, edgecolor="tab:blue", linewidth=1.5, clip_on=False))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return np.arange(rows) * cell_height + height / 2, np.arange(columns) * cell_width + width / 2


def plot_prior_samples(decoder, cholesky, path, rows=4, columns=10, seed=0, title=None, items="digits"):
    """rows × columns digits decoded from prior samples z = L ε, ε ~ N(0, I) (L = I for N(0, I))."""
    cholesky = np.asarray(cholesky, dtype=float)
    epsilon = np.random.default_rng(seed).standard_normal((rows * columns, len(cholesky)))
    digits = decode(decoder, epsilon @ cholesky.T)
    figure, ax = plt.subplots(figsize=(COLUMN_WIDTH, COLUMN_WIDTH * rows / columns + 0.45))
    _digit_strip(ax, digits, columns)
    prior = "N(0, I)" if np.allclose(cholesky, np.eye(len(cholesky))) else "N(0, Σ), z = L ε"
    ax.set_title(title or f"{rows * columns} {items} decoded from codes drawn from the prior {prior}")
    save_png(figure, path)


def plot_samples_compared(decoders, titles, path, rows=2, columns=10, seed=0):
    """One strip of rows × columns digits per decoder, all decoded from the same prior samples
    z ~ N(0, I) (seed `seed`), each strip under its title: how models trained differently draw the
    same codes. `decoders` and `titles` are lists of equal length; the decoders share a latent size."""
    latent_dim = decoders[0].input.shape[-1]
    z = np.random.default_rng(seed).standard_normal((rows * columns, latent_dim))
    figure, axes = plt.subplots(len(decoders), 1, squeeze=False,
                                figsize=(COLUMN_WIDTH, len(decoders) * (COLUMN_WIDTH * rows / columns + 0.5)))
    for ax, decoder, title in zip(axes[:, 0], decoders, titles):
        _digit_strip(ax, decode(decoder, z), columns)
        ax.set_title(title, fontsize=12)
    save_png(figure, path)


def interpolation_pairs(labels, count=5, seed=0):
    """`count` pairs (i, j) of test-image indices whose labels differ, drawn reproducibly."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(1000):
        if len(pairs) == count or len(np.unique(labels)) < 2:
            break
        i, j = rng.integers(0, len(labels), 2)
        if labels[i] != labels[j] and labels[i] not in [labels[a] for a, _ in pairs] \
                and labels[j] not in [labels[b] for _, b in pairs]:
            pairs.append((int(i), int(j)))
    return pairs


def interpolate(z_start, z_end, steps, method="linear", cholesky=None):
    """`steps` latent points from z_start to z_end (both included): (steps, k).

    "linear": z(t) = (1 − t) z_start + t z_end. "spherical": the great-circle interpolation (slerp) of
    the whitened codes ε = L⁻¹ z, mapped back by z = L ε. Under a Gaussian prior a straight line between
    two codes passes closer to the origin, where few codes lie, than either end; slerp keeps the norm of ε.
    """
    t = np.linspace(0, 1, steps)[:, None]
    if method == "linear":
        return (1 - t) * z_start + t * z_end
    if method != "spherical":
        raise ValueError(f"method must be 'linear' or 'spherical', got {method!r}")
    cholesky = np.eye(len(z_start)) if cholesky is None else np.asarray(cholesky, dtype=float)
    a, b = np.linalg.solve(cholesky, z_start), np.linalg.solve(cholesky, z_end)
    cosine = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)
    angle = np.arccos(np.clip(cosine, -1, 1))
    if angle < 1e-6:
        epsilon = (1 - t) * a + t * b
    else:
        epsilon = (np.sin((1 - t) * angle) * a + np.sin(t * angle) * b) / np.sin(angle)
    return epsilon @ cholesky.T


def plot_interpolation(decoder, images, z_mean, labels, path, pairs=None, steps=8, method="linear",
                       cholesky=None, title=None, items="digits"):
    """One row per pair of test images of different digits: the first image (framed), `steps` digits
    decoded along the path between their posterior means (`interpolate`, ends included), the second image (framed)."""
    z_mean, labels = np.asarray(z_mean, dtype=float), np.asarray(labels)
    if pairs is None:
        # Test images of different digits; with one digit class only, its first and last image.
        pairs = interpolation_pairs(labels) or [(0, len(labels) - 1)]
    if not pairs or len(labels) < 2:
        raise ValueError("plot_interpolation needs at least two test images")
    tiles, frames = [], []
    for row, (i, j) in enumerate(pairs):
        path_z = interpolate(z_mean[i], z_mean[j], steps, method, cholesky)
        tiles += [np.squeeze(images[i]), *decode(decoder, path_z), np.squeeze(images[j])]
        frames += [(row, 0), (row, steps + 1)]
    columns = steps + 2
    figure, ax = plt.subplots(figsize=(COLUMN_WIDTH, COLUMN_WIDTH * len(pairs) / columns + 0.45))
    _digit_strip(ax, tiles, columns, gap=6, frames=frames)
    ax.set_title(title or f"Walking between test {items} ({method} path of μ; framed: the test images)")
    save_png(figure, path)


def plot_posterior_widths(z_mean, z_log_var, labels, path, count=300, zoom=None, title=None, prior_covariance=None):
    """The posterior means of the first `count` test images on the (z0, z1) plane, each with its
    μ ± 2σ ellipse, over the prior's 2σ contour (left; the circle of N(0, I), or the ellipse of
    `prior_covariance`), and a close-up (right) of the square `zoom`
    = (center0, center1, half-width) where the ellipses can be told apart (default: around the
    busiest point, 0.4 wide)."""
    z_mean = np.asarray(z_mean, dtype=float)[:count, :2]
    sigma = np.exp(0.5 * np.asarray(z_log_var, dtype=float)[:count, :2])
    labels = np.asarray(labels)[:count]
    if zoom is None:
        distances = np.linalg.norm(z_mean[:, None] - z_mean[None], axis=-1)
        center = z_mean[np.argmax((distances < 0.3).sum(axis=1))]
        zoom = (center[0], center[1], 0.2)
    figure, axes = plt.subplots(1, 2, figsize=(COLUMN_WIDTH, 3.9), gridspec_kw={"wspace": 0.3})
    for ax in axes:
        colors = DIGIT_COLORS(labels.astype(int) % 10)
        ax.add_collection(EllipseCollection(4 * sigma[:, 0], 4 * sigma[:, 1], np.zeros(len(sigma)), units="xy",
                                            offsets=z_mean, offset_transform=ax.transData, facecolors=colors,
                                            edgecolors=colors, alpha=0.35, linewidths=0.8))
        ax.scatter(z_mean[:, 0], z_mean[:, 1], s=2, color="black", linewidths=0)
        ax.set_aspect("equal")
        ax.set_xlabel("z₀")
    covariance = np.eye(2) if prior_covariance is None else np.asarray(prior_covariance, dtype=float)[:2, :2]
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    width, height = 4 * np.sqrt(eigenvalues[::-1])
    axes[0].add_patch(Ellipse((0, 0), width, height, angle=np.degrees(np.arctan2(eigenvectors[1, 1], eigenvectors[0, 1])),
                              fill=False, color="black", linestyle="--", linewidth=1.5))
    extent = max(2.2, np.abs(z_mean).max() + 0.2)
    axes[0].set_xlim(-extent, extent)
    axes[0].set_ylim(-extent, extent)
    _latent_ticks(axes[0], 2.0 if extent > 3 else 1.0)
    axes[0].set_ylabel("z₁")
    axes[0].set_title("dashed: the prior's 2σ", fontsize=12)
    c0, c1, half = zoom
    axes[1].set_xlim(c0 - half, c0 + half)
    axes[1].set_ylim(c1 - half, c1 + half)
    axes[1].xaxis.set_major_locator(MultipleLocator(0.1))
    axes[1].yaxis.set_major_locator(MultipleLocator(0.1))
    axes[1].set_title(f"close-up, {2 * half:g} × {2 * half:g}", fontsize=12)
    axes[0].add_patch(matplotlib.patches.Rectangle((c0 - half, c1 - half), 2 * half, 2 * half, fill=False,
                                                   edgecolor="black", linewidth=1.2))
    figure.suptitle(title or f"Posterior means and their μ ± 2σ ellipses, {len(z_mean)} test images", y=0.99)
    save_png(figure, path)


def hole_points(q, p, edges, count=6, ratio=0.1, radius=2.0, prior_covariance=None):
    """Up to `count` cell centers (z0, z1), inside the prior's `radius`σ ellipse, where q < ratio · p,
    the emptiest first and each at least a quarter of the plane's width from the others."""
    centers = (edges[:-1] + edges[1:]) / 2
    c0, c1 = np.meshgrid(centers, centers, indexing="ij")
    points = np.stack([c0.ravel(), c1.ravel()], axis=1)
    covariance = np.eye(2) if prior_covariance is None else np.asarray(prior_covariance, float)[:2, :2]
    mahalanobis = np.linalg.norm(np.linalg.solve(np.linalg.cholesky(covariance), points.T), axis=0)
    score = (q / p).ravel()
    candidates = np.flatnonzero((mahalanobis <= radius) & (score < ratio))
    chosen = []
    spacing = (edges[-1] - edges[0]) / 8
    for index in candidates[np.argsort(score[candidates])]:
        if all(np.linalg.norm(points[index] - points[other]) >= spacing for other in chosen):
            chosen.append(index)
        if len(chosen) == count:
            break
    return points[chosen]


def plot_aggregate_posterior(decoder, edges, q, p, path, prior_covariance=None, latent_dim=2, ratio=0.1,
                             title=None):
    """Left: the aggregate posterior q(z) of the test images (log scale) with the prior's 1σ and 2σ
    contours. Right: ln(q/p), blue where the codes are denser than the prior, red where the prior has
    mass that no code uses (q < ratio · p: holes), with numbered hole points. Below: what the decoder
    draws at each numbered point (the other latent values at 0, the prior's mean)."""
    covariance = np.eye(2) if prior_covariance is None else np.asarray(prior_covariance, float)
    holes = hole_points(q, p, edges, ratio=ratio, prior_covariance=covariance)
    figure = plt.figure(figsize=(COLUMN_WIDTH, 5.6))
    grid = figure.add_gridspec(2, 2, height_ratios=[3.6, 1.0], hspace=0.28, wspace=0.32)
    extent = (edges[0], edges[-1], edges[0], edges[-1])
    ax_q, ax_ratio = figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1])
    cell_area = (edges[1] - edges[0]) ** 2
    density = np.log10(np.maximum(q / cell_area, 1e-4))
    image = ax_q.imshow(density.T, origin="lower", extent=extent, cmap="Greys", vmin=-4,
                        vmax=max(density.max(), -3), interpolation="nearest")
    colorbar = figure.colorbar(image, ax=ax_q, fraction=0.046, pad=0.03)
    colorbar.set_label("log₁₀ q(z)", fontsize=11)
    ax_q.set_title("aggregate posterior q(z)", fontsize=12)
    log_ratio = np.log(np.maximum(q, 1e-300) / p)
    shown = np.where(p > 1e-4 * p.max(), np.clip(log_ratio, -5, 5), np.nan)
    image = ax_ratio.imshow(shown.T, origin="lower", extent=extent, cmap="RdBu", vmin=-5, vmax=5,
                            interpolation="nearest")
    colorbar = figure.colorbar(image, ax=ax_ratio, fraction=0.046, pad=0.03)
    colorbar.set_label("ln q(z)/p(z)", fontsize=11)
    ax_ratio.set_title("red: prior mass, no codes", fontsize=12)
    for number, (z0, z1) in enumerate(holes, start=1):
        ax_ratio.text(z0, z1, str(number), fontsize=12, fontweight="bold", ha="center", va="center",
                      path_effects=OUTLINE)
    for ax in (ax_q, ax_ratio):
        _prior_ellipses(ax, covariance, color="black")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(edges[0], edges[-1])
        ax.set_aspect("equal")
        _latent_ticks(ax, 2.0 if edges[-1] > 3 else 1.0)
        ax.set_xlabel("z₀")
    ax_q.set_ylabel("z₁")
    ax_digits = figure.add_subplot(grid[1, :])
    if len(holes):
        z = np.hstack([holes, np.zeros((len(holes), latent_dim - 2))])
        _, centers = _digit_strip(ax_digits, decode(decoder, z), max(len(holes), 1), gap=14)
        for number in range(len(holes)):
            ax_digits.text(centers[number], -3, str(number + 1), ha="center", va="bottom", fontsize=12,
                           fontweight="bold")
        ax_digits.set_title("decoded at the numbered holes", fontsize=12, pad=16)
    else:
        ax_digits.axis("off")
        ax_digits.text(0.5, 0.5, f"no cell inside the prior's 2σ has q < {ratio:g} p", ha="center",
                       va="center", transform=ax_digits.transAxes)
    if title:
        figure.suptitle(title)
    save_png(figure, path)
    return holes


def plot_traversal(decoder, z_mean, path, limit=3.0, steps=7, max_rows=10, title=None):
    """One row per latent dimension (at most `max_rows`, those whose μ varies most over the images):
    that dimension swept from −limit to +limit, the others held at the mean of the test encodings."""
    z_mean = np.asarray(z_mean, dtype=float)
    k = z_mean.shape[1]
    dims = np.arange(k) if k <= max_rows else np.sort(np.argsort(z_mean.var(axis=0))[::-1][:max_rows])
    values = np.linspace(-limit, limit, steps)
    z = np.repeat(z_mean.mean(axis=0)[None], len(dims) * steps, axis=0)
    for row, d in enumerate(dims):
        z[row * steps:(row + 1) * steps, d] = values
    digits = decode(decoder, z)
    figure, ax = plt.subplots(figsize=(COLUMN_WIDTH, 0.72 * len(dims) + 0.9))
    row_centers, column_centers = _digit_strip(ax, digits, steps)
    ax.set_yticks(row_centers, [_dimension_name(d) for d in dims])
    ax.set_xticks(column_centers, [f"{v:g}".replace("-", "−") for v in values])
    ax.tick_params(length=0)
    ax.set_xlabel("value of the swept dimension (the others at the test mean)")
    ax.set_title(title or "Latent traversal: one dimension at a time")
    save_png(figure, path)


def plot_embeddings(z_mean, labels, path, count=2000, seed=0):
    """PCA (left) and t-SNE (right) of `count` test encodings, colored by digit, numerals at the class
    centers: two views of a latent space with more than three dimensions."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    z_mean, labels = np.asarray(z_mean, dtype=float)[:count], np.asarray(labels)[:count]
    pca = PCA(n_components=2, random_state=seed).fit(z_mean)
    projected = pca.transform(z_mean)
    perplexity = min(30.0, max(2.0, (len(z_mean) - 1) / 3.5))
    embedded = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z_mean)
    figure, axes = plt.subplots(1, 2, figsize=(COLUMN_WIDTH, 3.9), gridspec_kw={"wspace": 0.25})
    explained = 100 * pca.explained_variance_ratio_
    for ax, points, name in [(axes[0], projected, f"PCA ({explained[0]:.0f}% + {explained[1]:.0f}% of the variance)"),
                             (axes[1], embedded, "t-SNE")]:
        _scatter_digits(ax, points[:, 0], points[:, 1], labels, size=3)
        _digit_numerals(ax, points, labels, fontsize=13)
        ax.set_title(name, fontsize=12)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(f"{len(z_mean):,} test encodings of a {z_mean.shape[1]}-D latent space")
    save_png(figure, path)


def plot_beta_sweep(runs, path, rows=2, columns=5, seed=0):
    """One row per model, trained with its own β: the test images' posterior means (z0, z1), colored by digit,
    with the prior's 1σ and 2σ circles for scale (left), and rows × columns digits decoded from the same prior
    samples z ~ N(0, I) (right). `runs` is a list of (title, z_mean (N, k), labels (N,), decoder)."""
    latent_dim = runs[0][1].shape[1]
    z = np.random.default_rng(seed).standard_normal((rows * columns, latent_dim))
    figure, axes = plt.subplots(len(runs), 2, squeeze=False, figsize=(COLUMN_WIDTH, 2.6 * len(runs)),
                                gridspec_kw={"width_ratios": [1, 1.45], "wspace": 0.08, "hspace": 0.45})
    for (title, z_mean, labels, decoder), (left, right) in zip(runs, axes):
        _scatter_digits(left, z_mean[:, 0], z_mean[:, 1], labels, size=2)
        _prior_ellipses(left, np.eye(2), color="0.3")
        left.set_aspect("equal", adjustable="datalim")
        left.tick_params(labelsize=11)
        left.set_title(title, loc="left", fontsize=11)
        _digit_strip(right, decode(decoder, z), columns)
        right.set_title("decoded prior samples", fontsize=11)
    save_png(figure, path)


def plot_rate_distortion(points, path):
    """The rate-distortion plane (Alemi et al. 2018): each model's rate R (the KL) against its distortion D
    (the reconstruction term), both in nats per image, labelled; R on a log scale, as it spans decades
    between β = 0 and large β. −ELBO = D + R, so models on one dotted curve have the same ELBO.
    `points` is a list of (label, rates, distortions), one rate and distortion per seed (or one number each):
    each seed a small dot, their mean a larger one with bars of ± the sample standard deviation."""
    labels = [label for label, _, _ in points]
    seeds = [(np.atleast_1d(np.asarray(r, float)), np.atleast_1d(np.asarray(d, float))) for _, r, d in points]
    rates = np.array([r.mean() for r, _ in seeds])
    distortions = np.array([d.mean() for _, d in seeds])
    every_rate = np.concatenate([r for r, _ in seeds])
    every_distortion = np.concatenate([d for _, d in seeds])
    figure, ax = plt.subplots(figsize=(COLUMN_WIDTH, 4.6))
    margin = 0.08 * np.ptp(every_distortion) + 1
    d = np.linspace(every_distortion.min() - margin, every_distortion.max() + margin, 400)
    bottom, top = max(every_rate.min(), 1e-3) / 2, every_rate.max() * 2
    for elbo in sorted(set(rates + distortions)):  # one curve R = −ELBO − D through each model's mean
        ax.plot(d, np.where(elbo - d > 0, elbo - d, np.nan), ":", color="0.7", linewidth=1, zorder=1)
    ax.scatter(every_distortion, np.maximum(every_rate, bottom), s=12, color="tab:blue", alpha=0.5, zorder=3,
               label="each seed")
    spread = [(r.std(ddof=1), dd.std(ddof=1)) if len(r) > 1 else (0.0, 0.0) for r, dd in seeds]
    ax.errorbar(distortions, np.maximum(rates, bottom), xerr=[s for _, s in spread], yerr=[s for s, _ in spread],
                fmt="o", markersize=6, color="tab:blue", ecolor="0.2", elinewidth=1, capsize=3, zorder=4,
                label="mean ± sd over seeds" if max(len(r) for r, _ in seeds) > 1 else None)
    ax.set_yscale("log")
    ax.set_xlim(d[0], d[-1])
    ax.set_ylim(bottom, top)
    points = ax.transData.transform(np.column_stack([distortions, np.maximum(rates, bottom)]))  # in pixels
    for label, point, (x, y) in zip(labels, points, zip(distortions, np.maximum(rates, bottom))):
        # Right of its point, unless it is the first of a close group (β = 0.5 beside β = 1): then left.
        close = [other[0] - point[0] for other in points if 0 < abs(other[0] - point[0]) < 80
                 and abs(other[1] - point[1]) < 40]
        left = bool(close) and min(close) > 0  # a neighbour close on the right, none on the left
        ax.annotate(label, (x, y), xytext=(-6 if left else 6, 5), textcoords="offset points", fontsize=11,
                    ha="right" if left else "left", path_effects=OUTLINE)
    ax.set_xlabel("distortion D = reconstruction, nats per image")
    ax.set_ylabel("rate R = KL, nats per image")
    ax.set_title("Rate against distortion (dotted: equal ELBO, D + R)", loc="left")
    ax.grid(alpha=0.3, which="both")
    if max(len(r) for r, _ in seeds) > 1:
        ax.legend(loc="upper right", fontsize=11)
    save_png(figure, path)


def plot_kl_per_dimension(settings, path, free_bits=None):
    """Each setting's KL per latent dimension, in nats, sorted from largest to smallest (log scale): how many
    dimensions carry information and how many collapsed to the prior. `settings` is a list of
    (label, kl_per_dimension) or (label, [kl_per_dimension of each seed]): one line per seed, a setting's
    lines in one color; `free_bits`, if given, draws that floor as a dotted line."""
    figure, ax = plt.subplots(figsize=(COLUMN_WIDTH, 4.2))
    longest = 0
    for (label, kls), marker, color in zip(settings, "os^Dv", plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        kls = np.asarray(kls, float)
        for number, kl in enumerate(kls if kls.ndim == 2 else [kls]):
            kl = np.sort(kl)[::-1]
            longest = max(longest, len(kl))
            ax.plot(np.arange(1, len(kl) + 1), np.maximum(kl, 1e-5), "-" + marker, markersize=4, color=color,
                    alpha=1.0 if number == 0 else 0.55, linewidth=1.4 if number == 0 else 1.0,
                    label=label if number == 0 else None)
    if free_bits:
        ax.axhline(free_bits, linestyle=":", color="0.4", linewidth=1.2)
        ax.annotate(f"free bits, {free_bits:g} nats", (longest, free_bits), xytext=(0, 4),
                    textcoords="offset points", ha="right", fontsize=11, color="0.3")
    ax.set_yscale("log")
    ax.set_xlabel("latent dimension, sorted by its KL")
    ax.set_ylabel("KL, nats per image")
    ax.set_title("KL per latent dimension, one line per seed (below 10⁻⁵ drawn at 10⁻⁵)", loc="left",
                 fontsize=11)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower left", fontsize=11)
    save_png(figure, path)


def plot_seed_spread(settings, metrics, path, negate=()):
    """Settings side by side on a few metrics, one panel per metric: each seed's value a dot, the mean a bar
    with ± the sample standard deviation. `settings` is {tick label: over_seeds summary (vae/spread.py)},
    `metrics` a list of (panel title, metric name); the metrics in `negate` are drawn negated (−ELBO,
    −ln p(x)). Nats per image."""
    figure, axes = plt.subplots(1, len(metrics), squeeze=False, figsize=(COLUMN_WIDTH, 3.6), layout="constrained")
    labels = list(settings)
    for ax, (title, metric) in zip(axes[0], metrics):
        sign = -1.0 if metric in negate else 1.0
        for x, label in enumerate(labels):
            summary = settings[label]
            values = sign * np.asarray(summary["values"][metric], float)
            ax.scatter(np.full(len(values), x) + np.linspace(-0.08, 0.08, len(values)), values, s=18,
                       color="tab:blue", alpha=0.7, zorder=3)
            sd = summary["sd"][metric] or 0.0
            ax.errorbar([x + 0.25], [values.mean()], yerr=[sd], fmt="_", markersize=14, color="0.15", capsize=4,
                        zorder=4)
        ax.set_xticks(range(len(labels)), labels, fontsize=11)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.set_title(title, fontsize=11)
        ax.tick_params(axis="y", labelsize=11)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("nats per image", fontsize=11)
    figure.suptitle("Each seed (dots) and mean ± sd over seeds (bars)", fontsize=11)
    save_png(figure, path)


# ---------------------------------------------------------------------------------------------
# A conditional VAE: the class is given, the code holds the style


def plot_class_samples(decoder, path, num_classes=10, styles=10, seed=0, items="digits"):
    """A conditional decoder's drawings: one row per class 0..num_classes-1, one column per style, each
    column's code z ~ N(0, I) (seed `seed`) shared by every class, so that a column is one style."""
    latent_dim = decoder.inputs[0].shape[-1]
    z = np.random.default_rng(seed).standard_normal((styles, latent_dim))
    classes = np.repeat(np.arange(num_classes), styles)  # row by row
    drawn = decode(decoder, np.tile(z, (num_classes, 1)), labels=classes)
    figure, ax = plt.subplots(figsize=(COLUMN_WIDTH, COLUMN_WIDTH * num_classes / styles + 0.45))
    row_centers, _ = _digit_strip(ax, drawn, styles)
    ax.set_yticks(row_centers, [str(c) for c in range(num_classes)])
    ax.tick_params(axis="y", length=0, labelsize=12)
    ax.set_ylabel("the class asked for")
    ax.set_title(f"{items.capitalize()} on demand: one row per class, one code z ~ N(0, I) per column", fontsize=12)
    save_png(figure, path)


def plot_style_transfer(decoder, images, z_mean, path, num_classes=10):
    """For each test image (framed, left): its code μ, found with its own label, decoded with every
    class 0..num_classes-1 (right): the image's style, drawn as each class. images: (n, h, w[, c]);
    z_mean: (n, latent_dim), the images' posterior means."""
    z_mean = np.asarray(z_mean, dtype="float32")
    tiles, frames = [], []
    for row, (image, z) in enumerate(zip(images, z_mean)):
        drawn = decode(decoder, np.repeat(z[None], num_classes, axis=0), labels=np.arange(num_classes))
        tiles += [np.squeeze(image), *drawn]
        frames.append((row, 0))
    columns = num_classes + 1
    figure, ax = plt.subplots(figsize=(COLUMN_WIDTH, COLUMN_WIDTH * len(images) / columns + 0.7))
    _, column_centers = _digit_strip(ax, tiles, columns, gap=4, frames=frames)
    ax.set_xticks(column_centers, ["test"] + [str(c) for c in range(num_classes)])
    ax.tick_params(axis="x", length=0, labelsize=11, labeltop=True, labelbottom=False)
    ax.set_title("Each test image's style (its μ), drawn as every class", fontsize=12, pad=22)
    save_png(figure, path)


def posterior_window(log_posterior, points, z_mean, sigma, mass=0.999, pad=0.15, smallest=0.3):
    """A square (centre0, centre1, half-width) around the grid points (G, 2) that hold `mass` of the exact
    posterior (log densities (G,) up to a constant) and q(z|x)'s ±3σ box, padded by `pad` of its width."""
    weights = np.exp(log_posterior - log_posterior.max())
    order = np.argsort(-weights)
    kept = order[:np.searchsorted(np.cumsum(weights[order]) / weights.sum(), mass) + 1]
    low = np.minimum(points[kept].min(axis=0), z_mean - 3 * sigma)
    high = np.maximum(points[kept].max(axis=0), z_mean + 3 * sigma)
    half = max(smallest / 2, (1 + 2 * pad) * np.max(high - low) / 2)
    centre = (low + high) / 2
    return float(centre[0]), float(centre[1]), float(half)


def plot_true_posteriors(decoder, drawing, path, grid_points=160):
    """For each image chosen by vae.inspection.true_posteriors: the image and its reconstruction (decoded
    at q's mean), and the exact posterior p(z|x) on a close-up of the latent plane (shaded: its density)
    with q(z|x)'s 1σ and 2σ ellipses (red) and the classes' regions (thin lines, numerals)."""
    from vae.inspection import class_regions
    from vae.likelihood import log_joint, quadrature_grid

    log_likelihoods, prior, digits = drawing["log_likelihoods"], drawing["prior"], drawing["digits"]
    codes, code_labels = drawing["codes"]
    z_mean, sigma = drawing["z_mean"], np.exp(0.5 * drawing["z_log_var"])
    reconstructions = decode(decoder, z_mean)
    coarse, _ = quadrature_grid(prior.cholesky)
    figure = plt.figure(figsize=(COLUMN_WIDTH, 4.4))
    columns = figure.add_gridspec(1, len(digits), wspace=0.3)
    for n, (role, digit) in enumerate(digits.items()):
        pixels = drawing["images"][n].reshape(1, -1)
        cell = columns[0, n].subgridspec(2, 2, height_ratios=[1, 2.6], hspace=0.55, wspace=0.05)
        for column, (image, caption) in enumerate([(drawing["images"][n], "image"),
                                                   (reconstructions[n], "decoded")]):
            ax = figure.add_subplot(cell[0, column])
            _show_images(ax, image)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(caption, fontsize=11, labelpad=2)
            if column == 0:
                article = "an" if digit["label"] in (8, 11, 18) else "a"
                ax.set_title(f"{role}: {article} {digit['label']}", fontsize=12, x=1.03)
        c0, c1, half = posterior_window(log_joint(log_likelihoods, prior, pixels, coarse)[0], coarse,
                                        z_mean[n], sigma[n])
        axis0 = np.linspace(c0 - half, c0 + half, grid_points)
        axis1 = np.linspace(c1 - half, c1 + half, grid_points)
        points = np.stack([a.ravel() for a in np.meshgrid(axis0, axis1, indexing="xy")], axis=1)
        density = np.exp(log_joint(log_likelihoods, prior, pixels, points)[0] - digit["log_likelihood"])
        ax = figure.add_subplot(cell[1, :])
        ax.imshow(density.reshape(grid_points, grid_points), origin="lower", cmap="Blues", interpolation="bilinear",
                  extent=(c0 - half, c0 + half, c1 - half, c1 + half), vmin=0)
        regions = class_regions(points, codes, code_labels).reshape(grid_points, grid_points)
        ax.contour(axis0, axis1, regions, levels=np.arange(-0.5, 10.5), colors="gray", linewidths=0.7)
        for region in np.unique(regions):
            inside = points[regions.ravel() == region]
            if len(inside) > 0.04 * len(points):
                ax.text(*np.median(inside, axis=0), str(int(region)), fontsize=13, fontweight="bold", ha="center",
                        va="center", color="dimgray", path_effects=OUTLINE, zorder=5)
        for k, style in [(1, "-"), (2, "--")]:
            ax.add_patch(Ellipse(z_mean[n], 2 * k * sigma[n, 0], 2 * k * sigma[n, 1], fill=False, color="red",
                                 linestyle=style, linewidth=1.5, zorder=6))
        ax.set_xlim(c0 - half, c0 + half)
        ax.set_ylim(c1 - half, c1 + half)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=11)
        ax.set_xlabel("z₀", fontsize=11)
        shares = ", ".join(f"{100 * share:.0f}% {c}" for c, share in list(digit["class_shares"].items())[:2]
                           if share >= 0.01)
        ax.set_title(f"p(z|x): {shares}\ngap {digit['gap_kl_on_grid']:.1f} nats", fontsize=11)
    save_png(figure, path)


def plot_out_of_distribution(log_likelihoods, measures, summary, titles, path, bins=60):
    """code/compare_datasets.py's figure. One panel per model: histograms of the exact ln p(x) of its own test
    images and of the other data set's, with its own median (dashed; the lowest 0.5% of the two sets piled up at
    the left edge); and a third panel: ln p(x) under the
    first model against each image's zlib-compressed size. log_likelihoods: {(model, data): (N,) nats};
    measures: {data: {"compressed_bytes": (N,), ...}}; summary: compare_datasets.summarize's."""
    models = list(summary)
    figure, axes = plt.subplots(1, 3, figsize=(COLUMN_WIDTH, 2.9), gridspec_kw={"wspace": 0.5})
    colors = {"mnist": "tab:blue", "fashion_mnist": "tab:orange"}
    for ax, model in zip(axes, models):
        other = summary[model]["out_of_distribution"]
        values = np.concatenate([log_likelihoods[model, model], log_likelihoods[model, other]])
        edges = np.linspace(np.percentile(values, 0.5), values.max(), bins)
        for data in (model, other):
            ax.hist(np.clip(log_likelihoods[model, data], edges[0], None), bins=edges, color=colors[data],
                    alpha=0.55, label=titles[data], density=True)
        ax.axvline(np.median(log_likelihoods[model, model]), color="black", linestyle="--", linewidth=1.2)
        ax.set_title(f"{titles[model]} model", fontsize=11)
        ax.set_xlabel("ln p(x), nats", fontsize=11)
        ax.set_yticks([])
        ax.tick_params(labelsize=11)
    axes[0].legend(fontsize=11, loc="upper left", frameon=False)
    model = models[-1]
    for data in models:
        axes[2].scatter(measures[data]["compressed_bytes"], log_likelihoods[model, data], s=1, color=colors[data],
                        alpha=0.3, linewidths=0, rasterized=True)
    axes[2].set_title(f"{titles[model]} model", fontsize=11)
    axes[2].set_xlabel("zlib bytes of the image", fontsize=11)
    axes[2].set_ylabel("ln p(x), nats", fontsize=11)
    axes[2].tick_params(labelsize=11)
    save_png(figure, path)
