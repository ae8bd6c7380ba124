"""Evaluation: the test-set loss, and the encoder and decoder applied in large batches."""

import keras
import numpy as np

from vae.training import EVAL_BATCH_SIZE, batched


def evaluate(vae, data):
    """The loss, reconstruction and KL on `data`, the images (or a conditional VAE's (images, labels)),
    in nats per image, as a dict of floats."""
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
