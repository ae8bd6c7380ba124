"""Evaluation: the test-set loss, and the encoder and decoder applied in large batches."""

import keras
import numpy as np

EVAL_BATCH_SIZE = 1000  # evaluation has no gradients, so it takes larger batches


def evaluate(vae, data):
    """The loss, reconstruction and KL on `data`, the images (or a conditional VAE's (images, labels)),
    in nats per image, as a dict of floats."""
    from vae.training import batched  # the run's batching; the rest of this module needs no training

    results = vae.evaluate(batched(data, EVAL_BATCH_SIZE), verbose=0, return_dict=True)
    return {name: float(value) for name, value in results.items()}


def encode(encoder, images, batch_size=EVAL_BATCH_SIZE, labels=None):
    """The posterior means and log-variances of `images`: two (N, latent_dim) NumPy arrays.

    `encoder` outputs (z_mean, z_log_var, z) in training, (z_mean, z_log_var) as saved. A conditional
    encoder is also given the images' `labels`, integers (N,).
    """
    def batch(i):
        return images[i:i + batch_size] if labels is None else [images[i:i + batch_size], labels[i:i + batch_size]]

    outputs = [encoder(batch(i), training=False) for i in range(0, len(images), batch_size)]
    z_mean = np.concatenate([keras.ops.convert_to_numpy(output[0]) for output in outputs])
    z_log_var = np.concatenate([keras.ops.convert_to_numpy(output[1]) for output in outputs])
    return z_mean, z_log_var


def decode(decoder, z, labels=None):
    """The decoded images of latent points `z` (N, latent_dim) in one batched call, as figures draw them:
    (N, h, w) for grey-scale images, (N, 28, 28) for MNIST; (N, h, w, c) for colour ones. A conditional
    decoder is also given `labels`, integers (N,): the class to draw at each point."""
    z = np.asarray(z, dtype="float32")
    inputs = z if labels is None else [z, np.asarray(labels, dtype="int32")]
    images = keras.ops.convert_to_numpy(decoder(inputs, training=False))
    return images[..., 0] if images.shape[-1] == 1 else images


def latent_usage(z_mean, z_log_var):
    """Per latent dimension, two (latent_dim,) arrays: the variance of z_mean over the images
    (how far the code moves between them) and the mean posterior variance exp(z_log_var)
    (how unsure each code is). A dimension in use has the first ≫ the second."""
    return z_mean.var(axis=0), np.exp(z_log_var).mean(axis=0)


ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): a dimension is active when Cov_x(E_q[z]) exceeds this


def latent_statistics(z_mean, z_log_var, prior_covariance=None):
    """What each latent dimension does over a set of images, as a dict for the metrics (lists per dimension):

    - latent_activity: Cov_x(E_q[z]), the variance over the images of the posterior mean μ;
      active_units: how many dimensions have it above ACTIVE_UNIT_THRESHOLD;
    - posterior_sigma_median: the median of the posterior's σ = exp(½ ln σ²), per dimension;
    - kl_per_dimension: the mean over the images of KL(q(zᵢ|x) ‖ p(zᵢ)) against the prior's marginal
      N(0, Σᵢᵢ). For N(0, I) these add up to the KL; for a correlated prior they do not (the KL of the
      joint also counts the prior's correlation), so kl_per_dimension_sums_to_kl says which.
    """
    z_mean, z_log_var = np.asarray(z_mean, np.float64), np.asarray(z_log_var, np.float64)
    k = z_mean.shape[1]
    covariance = np.eye(k) if prior_covariance is None else np.asarray(prior_covariance, np.float64)
    prior_variance = np.diag(covariance)
    activity = z_mean.var(axis=0)
    variance = np.exp(z_log_var)
    kl = 0.5 * (variance / prior_variance + z_mean ** 2 / prior_variance - 1 + np.log(prior_variance) - z_log_var)
    return {
        "active_unit_threshold": ACTIVE_UNIT_THRESHOLD,
        "active_units": int((activity > ACTIVE_UNIT_THRESHOLD).sum()),
        "latent_activity": activity.tolist(),
        "posterior_sigma_median": np.median(np.sqrt(variance), axis=0).tolist(),
        "kl_per_dimension": kl.mean(axis=0).tolist(),
        "kl_per_dimension_sums_to_kl": bool(np.allclose(covariance, np.diag(prior_variance))),
    }


HOLE_RATIO = 0.1  # a cell of the latent plane is a hole where q(z) < HOLE_RATIO · p(z)


def aggregate_posterior(z_mean, z_log_var, prior_covariance, limit, cells=120):
    """The aggregate posterior q(z) = mean over the images of q(z|x), against the prior p(z), on the
    (z0, z1) plane (the marginals of both, for a larger latent space): the probability of each of
    cells × cells square cells over [−limit, limit]².

    Each diagonal Gaussian's mass in a cell is exact, a product of differences of normal CDFs per axis,
    so the whole grid is one matrix product. The prior's is its density at the cell's center times the
    cell's area (it is smooth on that scale). Returns (edges (cells + 1,), q (cells, cells), p (cells, cells)),
    indexed [z0 cell, z1 cell].
    """
    from scipy.special import ndtr

    edges = np.linspace(-limit, limit, cells + 1)
    mean, sigma = np.asarray(z_mean, np.float64)[:, :2], np.exp(0.5 * np.asarray(z_log_var, np.float64)[:, :2])
    mass = [np.diff(ndtr((edges[None, :] - mean[:, d, None]) / sigma[:, d, None]), axis=1) for d in (0, 1)]
    q = mass[0].T @ mass[1] / len(mean)
    centers = (edges[:-1] + edges[1:]) / 2
    c0, c1 = np.meshgrid(centers, centers, indexing="ij")
    points = np.stack([c0.ravel(), c1.ravel()], axis=1)
    covariance = np.asarray(prior_covariance, np.float64)[:2, :2]
    whitened = np.linalg.solve(np.linalg.cholesky(covariance), points.T)
    density = np.exp(-0.5 * (whitened ** 2).sum(axis=0)) / (2 * np.pi * np.sqrt(np.linalg.det(covariance)))
    p = density.reshape(cells, cells) * (edges[1] - edges[0]) ** 2
    return edges, q, p


def hole_statistics(q, p):
    """How much of the prior lies where the encodings do not: the prior's probability in the cells where
    q < HOLE_RATIO · p (holes), and the aggregate posterior's probability in the cells where p < HOLE_RATIO · q."""
    return {
        "hole_ratio": HOLE_RATIO,
        "prior_mass_in_holes": float(p[q < HOLE_RATIO * p].sum()),
        "posterior_mass_where_prior_is_low": float(q[p < HOLE_RATIO * q].sum()),
    }


# The KL's two parts (Hoffman and Johnson 2016, "ELBO surgery"). Over N images, the average KL splits exactly:
#
#     E_n[KL(q(z|x_n) ‖ p(z))] = I(n; z) + KL(q(z) ‖ p(z)),
#
# with q(z) = (1/N) Σ_n q(z|x_n) the aggregate posterior. I(n; z), the mutual information between an image's
# index and its code, is at most ln N: it grows as the codes of different images move apart, which a good
# autoencoder needs. KL(q(z) ‖ p(z)) measures how far the codes as a whole are from the prior: the part that
# a sample drawn from the prior pays for. Both are computed here for the finite mixture of the N posteriors.

MARGINAL_KL_SAMPLES = 10_000  # Monte Carlo draws from q(z) above 2-D: a standard error near 0.01 nats
GRID_CELLS_PER_SIGMA = 2  # the 2-D grid's cells per median posterior σ along each axis
GRID_REACH = 6.0  # the grid covers every posterior's mean ± GRID_REACH σ
GRID_MAX_CELLS = 1600  # cells per axis at most ((1600, 1600) float64 is 20 MB)
TERM_REACH = 12.0  # a posterior's density beyond μ ± 12σ (below e^-72 of its peak) is left out of ln q(z)
EXPONENT_FLOOR = -100.0  # terms below e^-100 of the largest are dropped from a log-sum-exp (no slow subnormals)
VALUES_AT_ONCE = 1 << 22  # (rows × N) float64 blocks of at most 32 MB
ROWS = 64  # points of ln q(z) computed together


def posterior_log_density(z, z_mean, z_log_var):
    """ln N(z_m; μ_n, diag σ_n²) for every point z (M, k) and posterior n of z_mean, z_log_var (N, k):
    (M, N) float64, in nats, one latent dimension at a time (no (M, N, k) array)."""
    z, mean, log_var = (np.asarray(a, np.float64) for a in (z, z_mean, z_log_var))
    log_density = np.zeros((len(z), len(mean)))
    for d in range(mean.shape[1]):
        scaled = (z[:, d, None] - mean[None, :, d]) * np.exp(-0.5 * log_var[None, :, d])
        log_density -= 0.5 * scaled ** 2
    return log_density - 0.5 * (log_var.sum(axis=1) + mean.shape[1] * np.log(2 * np.pi))


def log_aggregate_posterior(z, z_mean, z_log_var):
    """ln q(z) = ln (1/N) Σ_n q(z|x_n) at points z (M, k), for the N posteriors z_mean, z_log_var (N, k):
    (M,) float64, a log-sum-exp in float64.

    The points are taken a few at a time, in order along z₀; for each group, only the posteriors whose box
    μ ± TERM_REACH σ meets the group's box enter the sum. Every other term is below e^(−TERM_REACH²/2) times
    its posterior's peak, far below what float64 resolves beside the point's own posterior. This keeps the
    work near N × (the posteriors nearby) rather than M × N, and memory bounded for any N."""
    z, mean, log_var = (np.asarray(a, np.float64) for a in (z, z_mean, z_log_var))
    reach = TERM_REACH * np.exp(0.5 * log_var)
    low, high = mean - reach, mean + reach
    rows = int(np.clip(VALUES_AT_ONCE // len(mean), 1, ROWS))
    order = np.argsort(z[:, 0])
    result = np.empty(len(z))
    for start in range(0, len(z), rows):
        group = order[start:start + rows]
        nearby = np.all((low <= z[group].max(axis=0)) & (high >= z[group].min(axis=0)), axis=1)
        log_density = posterior_log_density(z[group], mean[nearby], log_var[nearby])
        largest = log_density.max(axis=1, keepdims=True)
        terms = np.exp(np.maximum(log_density - largest, EXPONENT_FLOOR))
        result[group] = largest[:, 0] + np.log(terms.sum(axis=1))
    return result - np.log(len(mean))


def marginal_kl_by_sampling(z_mean, z_log_var, prior_covariance, samples=MARGINAL_KL_SAMPLES, seed=0):
    """KL(q(z) ‖ p(z)) by Monte Carlo, for any latent size: z drawn from q(z) (an image n at random, then
    z ~ q(z|x_n)), the mean of ln q(z) − ln p(z) over `samples` draws. Returns (estimate, standard error), nats."""
    from vae.priors import GaussianPrior

    rng = np.random.default_rng(seed)
    mean, log_var = np.asarray(z_mean, np.float64), np.asarray(z_log_var, np.float64)
    chosen = rng.integers(len(mean), size=samples)
    z = mean[chosen] + np.exp(0.5 * log_var[chosen]) * rng.standard_normal((samples, mean.shape[1]))
    log_ratio = log_aggregate_posterior(z, mean, log_var) - GaussianPrior(prior_covariance).log_density(z)
    return float(log_ratio.mean()), float(log_ratio.std(ddof=1) / np.sqrt(samples))


def marginal_kl_on_grid(z_mean, z_log_var, prior_covariance, cells_per_sigma=GRID_CELLS_PER_SIGMA):
    """KL(q(z) ‖ p(z)) in 2-D, summed over a grid of cells: Σ_c Q_c ln(Q_c / P_c), with Q_c each cell's exact
    probability under q (a product of differences of normal CDFs per axis, as in `aggregate_posterior`) and
    P_c the prior's density at the cell's center times its area.

    The grid covers every posterior's μ ± GRID_REACH σ, with cells_per_sigma cells per median σ along each
    axis (GRID_MAX_CELLS at most). A sum over cells misses how q and p vary within a cell; the same sum over
    cells twice as wide tells by how much, and the estimate is extrapolated from the two (the error falls as
    the cell's area). Returns a dict: marginal_kl, the correction that extrapolation made, the mass of q
    outside the grid and the grid's cells per axis."""
    from scipy.special import ndtr
    from vae.priors import GaussianPrior

    mean, sigma = np.asarray(z_mean, np.float64), np.exp(0.5 * np.asarray(z_log_var, np.float64))
    edges = []
    for d in (0, 1):
        low, high = (mean[:, d] - GRID_REACH * sigma[:, d]).min(), (mean[:, d] + GRID_REACH * sigma[:, d]).max()
        cells = 2 * int(np.ceil((high - low) * cells_per_sigma / np.median(sigma[:, d]) / 2))  # even: pairs merge
        cells = min(cells, GRID_MAX_CELLS)
        edges.append(np.linspace(low, high, cells + 1))
    q = np.zeros((len(edges[0]) - 1, len(edges[1]) - 1))
    rows = max(1, VALUES_AT_ONCE // max(q.shape))
    for start in range(0, len(mean), rows):
        block = slice(start, start + rows)
        mass = [np.diff(ndtr((edges[d][None, :] - mean[block, d, None]) / sigma[block, d, None]), axis=1)
                for d in (0, 1)]
        q += mass[0].T @ mass[1]
    q /= len(mean)
    prior = GaussianPrior(prior_covariance)

    def discrete_kl(q, edges):
        """Σ_c Q_c ln(Q_c / P_c) over the cells between `edges`, P_c by the prior's density at their centers."""
        c0, c1 = np.meshgrid(*[(e[:-1] + e[1:]) / 2 for e in edges], indexing="ij")
        log_p = prior.log_density(np.stack([c0.ravel(), c1.ravel()], axis=1)).reshape(q.shape)
        log_p += np.log((edges[0][1] - edges[0][0]) * (edges[1][1] - edges[1][0]))
        inside = q > 0
        return float((q[inside] * (np.log(q[inside]) - log_p[inside])).sum())

    fine = discrete_kl(q, edges)
    # Cells twice as wide along each axis: each merges four of q's, the prior's taken at their centers the same way.
    coarse = discrete_kl(q.reshape(q.shape[0] // 2, 2, q.shape[1] // 2, 2).sum(axis=(1, 3)), [e[::2] for e in edges])
    correction = (fine - coarse) / 3  # the error ∝ the cell's area: fine + (fine − coarse)/(4 − 1)
    return {"marginal_kl": fine + correction, "grid_correction": correction, "grid_cells": list(q.shape),
            "mass_outside_grid": float(max(0.0, 1.0 - q.sum()))}


def mean_kl(z_mean, z_log_var, prior_covariance):
    """E_n[KL(q(z|x_n) ‖ p(z))], the KL of the loss averaged over the images, in nats (float64)."""
    from vae.priors import GaussianPrior

    kl = GaussianPrior(prior_covariance).kl_divergence(np.asarray(z_mean, np.float64), np.asarray(z_log_var, np.float64))
    return float(np.mean(keras.ops.convert_to_numpy(kl)))


def kl_split(z_mean, z_log_var, prior_covariance, samples=MARGINAL_KL_SAMPLES, seed=0):
    """The average KL of N posteriors z_mean, z_log_var (N, k) split into I(n; z) + KL(q(z) ‖ p(z)), as a dict:
    images, mean_kl, marginal_kl (on a grid in 2-D, `marginal_kl_on_grid`; by Monte Carlo above, with its
    marginal_kl_standard_error), mutual_information = mean_kl − marginal_kl, and its bound ln_n = ln N."""
    k = np.asarray(z_mean).shape[1]
    result = {"images": len(z_mean), "mean_kl": mean_kl(z_mean, z_log_var, prior_covariance)}
    if k == 2:
        result.update(method="grid", **marginal_kl_on_grid(z_mean, z_log_var, prior_covariance))
    else:
        estimate, error = marginal_kl_by_sampling(z_mean, z_log_var, prior_covariance, samples, seed)
        result.update(method="monte carlo", marginal_kl=estimate, marginal_kl_standard_error=error, samples=samples)
    result["mutual_information"] = result["mean_kl"] - result["marginal_kl"]
    result["ln_n"] = float(np.log(len(z_mean)))
    return result


# A conditional VAE: does the decoder draw the class asked for, and does the code still know the class?


def train_classifier(images, labels, num_classes=10, epochs=3, seed=0):
    """A small classifier to judge drawn images by: Flatten → Dense 256 relu → Dense num_classes softmax,
    trained with Adam on `images` (N, h, w, c) and their integer `labels` (N,). A few epochs on MNIST's
    60,000 training images give it about 97% on the test set."""
    keras.utils.set_random_seed(seed)
    classifier = keras.Sequential([
        keras.Input(shape=images.shape[1:]),
        keras.layers.Flatten(),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ], name="judge")
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    classifier.fit(images, labels, batch_size=128, epochs=epochs, verbose=0)
    return classifier


def class_agreement(classifier, images, labels):
    """The fraction of `images` (N, h, w[, c]) that `classifier` assigns to their `labels` (N,)."""
    images = np.asarray(images, dtype="float32")
    if images.ndim == 3:
        images = images[..., None]
    predicted = classifier.predict(images, batch_size=EVAL_BATCH_SIZE, verbose=0).argmax(axis=1)
    return float((predicted == np.asarray(labels)).mean())


def class_from_code(z_mean, labels, neighbors=10):
    """How well the class can be read off the code: the accuracy of a k-nearest-neighbour vote (k =
    `neighbors`) among the first half of the codes z_mean (N, k) for the second half. About 1/10 means the
    code holds no class (a conditional VAE's, given the label); near 1, the classes lie apart."""
    from sklearn.neighbors import KNeighborsClassifier

    half = len(z_mean) // 2
    vote = KNeighborsClassifier(neighbors).fit(z_mean[:half], labels[:half])
    return float(vote.score(z_mean[half:], labels[half:]))
