"""How likely is an image under a trained VAE? ln p(x), in nats per image, three ways.

The likelihood is the model's own, as in training (vae/pixels.py): with l the decoder's logits,

    ln p(x|z) = Σ_pixels [x·l − A(l)],

with A(l) = softplus(l) for the Bernoulli likelihood (the binary cross-entropy of grayscale pixels
x in [0, 1], the tutorial's default) and A(l) = softplus(l) − ln C(l) for the continuous Bernoulli.
Which one a decoder has is told by its layer "pixel_means" (`vae.pixels.decoder_likelihood`).

- The ELBO, ln p(x|z) − KL(q(z|x) ‖ p(z)) with one z ~ q(z|x), is what training maximizes
  (vae.evaluation.evaluate reports its negative): a lower bound on ln p(x).
- `importance_weighted_log_likelihood`: ln (1/K) Σₖ p(x|zₖ) p(zₖ) / q(zₖ|x) with zₖ ~ q(z|x)
  (Burda et al. 2016). For K = 1 its average is the ELBO; it rises towards ln p(x) as K grows.
- `log_likelihood_by_quadrature`: for a 2-D latent space, ∫ p(x|z) p(z) dz summed over a fine grid,
  the exact value up to the grid's resolution. The gap it leaves to the K-sample estimates is
  what more samples recover; what remains between it and the ELBO at large K is the encoder's
  approximation gap (the true posterior p(z|x) is not one narrow Gaussian).

Log-sum-exp is accumulated in float64; images and samples are taken in batches so that memory
stays bounded for any K and any grid. The heavy parts (the decoder on every sample or grid point,
and the products x·l) run as TensorFlow graphs on all cores.

`likelihood_metrics` gathers the numbers a script or code/explore.py records: the ELBO, the
K-sample estimate with its Monte Carlo error, and how long they took, with `data_convention`
saying in words which pixels and which likelihood they are about.
"""

import math
import time

import keras
import numpy as np
import tensorflow as tf

from vae.data import DATASET_TITLES, IMAGE_SHAPES, TEST_BINARIZATION_SEED
from vae.evaluation import encode
from vae.pixels import decoder_likelihood, log_partition


def logits_model(decoder):
    """The decoder up to its layer "logits": z (N, latent_dim) → logits (N, pixels·channels), 784 for MNIST
    ([z, label] → logits for a conditional decoder). Logits that are image-shaped (a convolutional decoder
    saved before its logits were flattened) are flattened here in the order images are flattened."""
    logits = decoder.get_layer("logits").output
    if len(logits.shape) > 2:
        logits = keras.layers.Flatten()(logits)
    return keras.Model(decoder.input, logits)

LOG_2PI = math.log(2 * math.pi)
# Latent points are decoded in calls of 16,384 for the MLP, whose largest layer output is its 784 logits
# ((16,384, 784) float32 is 51 MB); a decoder with larger layer outputs (the convolutional one's reach
# 28·28·32 values per image) gets fewer points per call, so that its outputs stay about that size.
DECODED_VALUES_AT_ONCE = 16_384 * 784


def decodes_at_once(decoder):
    """How many latent points to decode per call: 16,384 for the MLP decoder, fewer for a larger one."""
    largest = max(math.prod(layer.output.shape[1:]) for layer in decoder.layers)
    return max(1, DECODED_VALUES_AT_ONCE // largest)


def data_convention(likelihood="bernoulli", binarize="off", dataset="mnist", channels=None):
    """Which pixels the numbers are about and under which likelihood, in words, for the metrics.
    channels: the images' (1 or 3), needed for a folder of images; else the data set's."""
    title = DATASET_TITLES[dataset]
    if binarize != "off":
        pixels = f"binary {title} pixels (the test set drawn once as Bernoulli(pixel), seed {TEST_BINARIZATION_SEED})"
    elif (channels or IMAGE_SHAPES[dataset][-1]) == 1:
        pixels = f"grayscale {title} pixels in [0, 1]"
    else:
        pixels = f"{title} colour values (red, green and blue of each pixel) in [0, 1]"
    if likelihood == "bernoulli":
        model = "as the targets of one Bernoulli likelihood per pixel"
        if binarize == "off":
            model += " (not binarized)"
    else:
        model = ("under one continuous Bernoulli density per pixel (log densities on [0, 1], not comparable "
                 "with a Bernoulli's log probabilities)")
    return f"{pixels} {model}, in nats per image, on the test set"


def log_likelihood_graph(decoder):
    """A TensorFlow function (pixels (n, 784 for MNIST), z (n·d, k)) → ln p(x|z) (n, d) float32, where the d
    latent points z[i·d:(i+1)·d] belong to image i: the decoder's logits and x·l − Σ A(l) in one graph."""
    logits_of = logits_model(decoder)
    likelihood = decoder_likelihood(decoder)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None, None], tf.float32)])
    def log_likelihoods(pixels, z):
        logits = logits_of(z, training=False)
        logits = tf.reshape(logits, (tf.shape(pixels)[0], -1, tf.shape(pixels)[1]))
        return tf.einsum("np,ndp->nd", pixels, logits) - tf.reduce_sum(log_partition(logits, likelihood), axis=-1)

    return log_likelihoods


class RunningLogSumExp:
    """ln Σ exp(values) over chunks of values added along axis 1, per row, in float64."""

    def __init__(self, rows):
        self.max = np.full(rows, -np.inf)
        self.sum = np.zeros(rows)

    def add(self, values):
        values = np.asarray(values, dtype=np.float64)
        new_max = np.maximum(self.max, values.max(axis=1))
        self.sum = self.sum * np.exp(self.max - new_max) + np.exp(values - new_max[:, None]).sum(axis=1)
        self.max = new_max

    def add_reduced(self, block_max, block_sum):
        """Add a chunk already reduced to its maximum m and Σ exp(values − m), per row."""
        block_max, block_sum = np.asarray(block_max, np.float64), np.asarray(block_sum, np.float64)
        new_max = np.maximum(self.max, block_max)
        self.sum = self.sum * np.exp(self.max - new_max) + block_sum * np.exp(block_max - new_max)
        self.max = new_max

    def result(self):
        return self.max + np.log(self.sum)


@tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.float32)])
def _reduce_block(log_likelihoods, log_weight):
    """One block of the quadrature: values = ln p(x|z) + ln w(z) (N, G), reduced per row to its
    maximum m and Σ exp(values − m) in float32 (the terms are ≤ 1, summed over one block), so that
    only (N,) numbers per block meet the float64 accumulator."""
    values = log_likelihoods + log_weight[None, :]
    block_max = tf.reduce_max(values, axis=1)
    return block_max, tf.reduce_sum(tf.exp(values - block_max[:, None]), axis=1)


def importance_weighted_log_likelihood(encoder, decoder, prior, images, samples=1000, seed=0, progress=None):
    """The importance-weighted estimate of ln p(x) with K = `samples` draws from q(z|x): (N,) float64.

    encoder: image → (z_mean, z_log_var, ...); decoder: z → pixel means, with layers "logits" and "pixel_means";
    prior: a vae.priors.GaussianPrior (its own density ln N(z; 0, Σ)); images: (N, h, w, c) in [0, 1].
    The draws are decoded `decodes_at_once(decoder)` at a time, so memory is bounded for any K.
    `progress(images done, images)`, if given, is called with 0 at the start and after each batch of images.
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be ≥ 1, got {samples}")
    log_likelihoods = log_likelihood_graph(decoder)
    z_mean, z_log_var = (values.astype(np.float64) for values in encode(encoder, images))
    pixels = images.reshape(len(images), -1).astype(np.float32)
    rng = np.random.default_rng(seed)
    at_once = decodes_at_once(decoder)
    per_round = max(1, at_once // samples)  # images per round, each drawing up to `chunk` samples at once
    chunk = min(samples, at_once)
    estimates = []
    if progress is not None:
        progress(0, len(images))
    for start in range(0, len(images), per_round):
        mean, log_var, x = (values[start:start + per_round] for values in (z_mean, z_log_var, pixels))
        n, k = mean.shape
        total = RunningLogSumExp(n)
        for drawn in range(0, samples, chunk):
            epsilon = rng.standard_normal((n, min(chunk, samples - drawn), k))
            z = mean[:, None, :] + np.exp(0.5 * log_var)[:, None, :] * epsilon  # (n, draws, k)
            log_likelihood = log_likelihoods(x, z.reshape(-1, k).astype(np.float32)).numpy()
            log_prior = prior.log_density(z.reshape(-1, k)).reshape(z.shape[:2])
            log_posterior = -0.5 * (k * LOG_2PI + log_var.sum(axis=1)[:, None] + (epsilon ** 2).sum(axis=-1))
            total.add(log_likelihood + log_prior - log_posterior)
        estimates.append(total.result() - math.log(samples))
        if progress is not None:
            progress(start + n, len(images))
    return np.concatenate(estimates)


def evidence_lower_bound(encoder, decoder, prior, images, seed=0):
    """The ELBO of each image as training computes it: ln p(x|z) with one z ~ q(z|x), minus the
    KL(q(z|x) ‖ p(z)) in closed form. (N,) float64, nats."""
    log_likelihoods = log_likelihood_graph(decoder)
    z_mean, z_log_var = encode(encoder, images)
    epsilon = np.random.default_rng(seed).standard_normal(z_mean.shape)
    z = (z_mean + np.exp(0.5 * z_log_var) * epsilon).astype(np.float32)
    pixels = images.reshape(len(images), -1).astype(np.float32)
    step = min(4096, decodes_at_once(decoder))
    reconstruction = np.concatenate([log_likelihoods(pixels[i:i + step], z[i:i + step]).numpy()[:, 0]
                                     for i in range(0, len(images), step)])
    kl = keras.ops.convert_to_numpy(prior.kl_divergence(z_mean.astype(np.float64), z_log_var.astype(np.float64)))
    return reconstruction.astype(np.float64) - kl


def likelihood_metrics(encoder, decoder, prior, images, samples, seed=0, binarize="off", dataset="mnist",
                       progress=None):
    """The ELBO and the K-sample estimate of ln p(x) on `images`, means in nats per image with their
    Monte Carlo standard errors, the seconds taken and the throughput (images × samples per second).

    `binarize` is the run's setting ("dynamic": `images` are the test set binarized once) and `dataset` the
    images' data set, for the data convention recorded with the numbers. `progress`: that of
    `importance_weighted_log_likelihood`."""
    started = time.perf_counter()
    elbo = evidence_lower_bound(encoder, decoder, prior, images, seed=seed)
    estimates = importance_weighted_log_likelihood(encoder, decoder, prior, images, samples, seed=seed + 1,
                                                  progress=progress)
    seconds = time.perf_counter() - started
    return {
        "data_convention": data_convention(decoder_likelihood(decoder), binarize, dataset, images.shape[-1]),
        "likelihood_images": len(images),
        "elbo": float(elbo.mean()),
        "elbo_standard_error": float(elbo.std() / math.sqrt(len(elbo))),
        "iw_samples": int(samples),
        "iw_log_likelihood": float(estimates.mean()),
        # The estimates' spread over the images: each one's own Monte Carlo noise is far smaller.
        "iw_log_likelihood_standard_error": float(estimates.std() / math.sqrt(len(estimates))),
        "iw_gain_over_elbo": float((estimates - elbo).mean()),
        "iw_seconds": seconds,
        "iw_samples_per_second": len(images) * (samples + 1) / seconds,
    }


def decoder_log_likelihoods(decoder):
    """A function (pixels (N, 784 for MNIST), z (G, k)) → ln p(x|z) for every pair, (N, G) float32 tensor, as one
    matrix product: x·l − Σ A(l) with the decoder's logits l of each z, in one TensorFlow graph."""
    logits_of = logits_model(decoder)
    likelihood = decoder_likelihood(decoder)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None, None], tf.float32)])
    def log_likelihoods(pixels, z):
        logits = logits_of(z, training=False)
        return (tf.matmul(pixels, logits, transpose_b=True)
                - tf.reduce_sum(log_partition(logits, likelihood), axis=1)[None, :])

    return lambda pixels, z: log_likelihoods(np.asarray(pixels, dtype=np.float32), np.asarray(z, dtype=np.float32))


bernoulli_log_likelihoods = decoder_log_likelihoods  # its earlier name, which benchmarks/likelihood_speed.py uses


def quadrature_grid(cholesky, limit=5.0, spacing=0.02):
    """The quadrature's midpoint grid for a 2-D prior N(0, L Lᵀ): the points z = L ε (G, 2) over
    ε ∈ [−limit, limit]² and their log weights ln N(ε; 0, I) dε (G,), so that Σ w f(z) ≈ ∫ f(z) p(z) dz.
    G = (2·limit/spacing)², 250,000 at the defaults; ε's first coordinate varies slowest."""
    cholesky = np.asarray(cholesky, dtype=np.float64)
    if cholesky.shape != (2, 2):
        raise ValueError(f"quadrature needs a 2-D latent space, got a {cholesky.shape[0]}-D prior")
    centers = np.arange(-limit + spacing / 2, limit, spacing)
    e0, e1 = np.meshgrid(centers, centers, indexing="ij")
    epsilon = np.stack([e0.ravel(), e1.ravel()], axis=1)  # (G, 2)
    log_weight = -0.5 * (epsilon ** 2).sum(axis=1) - LOG_2PI + 2 * math.log(spacing)  # ln N(ε; 0, I) dε
    return epsilon @ cholesky.T, log_weight


def _accumulate(total, log_likelihoods, pixels, z, log_weight):
    """Add the terms ln p(x|z) + ln w of the points z (B, 2) to `total`, a RunningLogSumExp over the images."""
    values = log_likelihoods(pixels, z)
    if isinstance(values, np.ndarray) and values.dtype == np.float64:  # exact to float64 throughout
        total.add(values + log_weight[None, :])
    else:
        total.add_reduced(*(v.numpy() for v in _reduce_block(tf.cast(values, tf.float32),
                                                               log_weight.astype(np.float32))))


def log_likelihood_by_quadrature(log_likelihoods, cholesky, pixels, limit=5.0, spacing=0.02, grid_batch=8192,
                                 progress=None):
    """ln p(x) = ln ∫ p(x|z) p(z) dz for a 2-D latent space and prior N(0, L Lᵀ): (N,) float64.

    The integral is taken over ε ∈ [−limit, limit]² with z = L ε, where p(z) dz = N(ε; 0, I) dε,
    by the midpoint rule on a grid of the given spacing (a posterior σ of 0.03 spans several points
    at 0.02). log_likelihoods(pixels (N, D), z (G, 2)) → (N, G), e.g. `decoder_log_likelihoods`.
    `progress(grid points done, grid points)`, if given, is called with 0 at the start and after each block.
    """
    z, log_weight = quadrature_grid(cholesky, limit, spacing)
    total = RunningLogSumExp(len(pixels))
    if progress is not None:
        progress(0, len(z))
    for start in range(0, len(z), grid_batch):
        block = slice(start, start + grid_batch)
        _accumulate(total, log_likelihoods, pixels, z[block], log_weight[block])
        if progress is not None:
            progress(min(start + grid_batch, len(z)), len(z))
    return total.result()


def log_mass_by_region(log_likelihoods, cholesky, pixels, regions, count, limit=5.0, spacing=0.02, grid_batch=8192,
                       progress=None):
    """ln ∫ over region r of p(x|z) p(z) dz, for each image and each of `count` regions: (N, count) float64.

    `regions` (G,) labels each point of `quadrature_grid(cholesky, limit, spacing)` with a region in
    [0, count), e.g. the digit whose codes lie there. The log-sum-exp of a row is the image's ln p(x) of
    `log_likelihood_by_quadrature`, and exp(row − ln p(x)) the exact posterior p(z|x)'s mass in each region.
    A region without grid points gets −inf. `progress` as in `log_likelihood_by_quadrature`."""
    z, log_weight = quadrature_grid(cholesky, limit, spacing)
    regions = np.asarray(regions)
    if regions.shape != (len(z),) or regions.min() < 0 or regions.max() >= count:
        raise ValueError(f"regions must label each of the {len(z):,} grid points with 0 to {count - 1}")
    result = np.full((len(pixels), count), -np.inf)
    done = 0
    if progress is not None:
        progress(0, len(z))
    for region in range(count):
        points = np.flatnonzero(regions == region)
        if len(points) == 0:
            continue
        total = RunningLogSumExp(len(pixels))
        for start in range(0, len(points), grid_batch):
            block = points[start:start + grid_batch]
            _accumulate(total, log_likelihoods, pixels, z[block], log_weight[block])
            done += len(block)
            if progress is not None:
                progress(done, len(z))
        result[:, region] = total.result()
    return result


def log_joint(log_likelihoods, prior, pixels, z):
    """ln p(x|z) + ln p(z) of each image at each latent point: (N, G) float64, for pixels (N, D) and z (G, k).
    Minus the image's ln p(x), it is the exact posterior's log density ln p(z|x) at z."""
    values = np.asarray(log_likelihoods(pixels, z), dtype=np.float64)
    return values + prior.log_density(np.asarray(z, dtype=np.float64))[None, :]


def posterior_gap_on_grid(log_likelihoods, prior, pixels, z_mean, z_log_var, log_likelihood, width=6.0, points=121):
    """KL(q(z|x) ‖ p(z|x)) = ∫ q ln(q / p(z|x)) dz for each image, by the midpoint rule on a grid aligned with
    q: z = μ + σ·u with u ∈ [−width, width]² on points × points cells, where q(z) dz = N(u; 0, I) du (its
    weights renormalized to sum to 1). p(z|x) = p(x|z) p(z) / p(x), with ln p(x) = `log_likelihood` (N,) from
    the quadrature. pixels (N, D), z_mean and z_log_var (N, 2). Returns (N,) float64, in nats: the image's gap
    ln p(x) − ELBO, the part of it that an encoder with a richer q(z|x) could close."""
    spacing = 2 * width / points
    centers = np.arange(-width + spacing / 2, width, spacing)
    u = np.stack([axis.ravel() for axis in np.meshgrid(centers, centers, indexing="ij")], axis=1)  # (P, 2)
    log_weight = -0.5 * (u ** 2).sum(axis=1)
    weight = np.exp(log_weight - log_weight.max())
    weight /= weight.sum()
    gaps = []
    for n in range(len(pixels)):
        sigma = np.exp(0.5 * np.asarray(z_log_var[n], dtype=np.float64))
        z = np.asarray(z_mean[n], dtype=np.float64) + sigma * u
        log_q = -0.5 * (u ** 2).sum(axis=1) - LOG_2PI - np.log(sigma).sum()
        log_posterior = log_joint(log_likelihoods, prior, pixels[n:n + 1], z)[0] - log_likelihood[n]
        gaps.append(float(np.sum(weight * (log_q - log_posterior))))
    return np.asarray(gaps)


def expected_elbo(log_likelihoods, prior, pixels, z_mean, z_log_var, samples=10_000, seed=0):
    """The ELBO's expectation E_q[ln p(x|z)] − KL(q(z|x) ‖ p(z)) for each image, the first term from `samples`
    draws z ~ q(z|x), the KL in closed form: (elbo (N,), its Monte Carlo standard error (N,)), nats.
    Independent of the quadrature: ln p(x) − this is the gap that `posterior_gap_on_grid` computes."""
    rng = np.random.default_rng(seed)
    z_mean, z_log_var = np.asarray(z_mean, np.float64), np.asarray(z_log_var, np.float64)
    elbos, errors = [], []
    for n in range(len(pixels)):
        z = z_mean[n] + np.exp(0.5 * z_log_var[n]) * rng.standard_normal((samples, z_mean.shape[1]))
        values = np.asarray(log_likelihoods(pixels[n:n + 1], z), dtype=np.float64)[0]
        kl = float(keras.ops.convert_to_numpy(prior.kl_divergence(z_mean[n:n + 1], z_log_var[n:n + 1]))[0])
        elbos.append(values.mean() - kl)
        errors.append(values.std() / math.sqrt(samples))
    return np.asarray(elbos), np.asarray(errors)


def best_gaussian_gap(log_likelihoods, prior, pixels, starts, log_likelihood, points=61):
    """The smallest KL(N(μ, diag σ²) ‖ p(z|x)) over all diagonal Gaussians, for one image (pixels (1, D)):
    what is left of the gap ln p(x) − ELBO for the best q(z|x) an encoder of this form could give it, the
    approximation gap; the rest of the encoder's gap is its amortization gap (Cremer et al. 2018).
    Nelder–Mead over (μ, ln σ²) from each start in `starts` [(μ (2,), ln σ² (2,)), ...], with
    `posterior_gap_on_grid` on points × points cells, the best then measured on its default grid.
    Returns (gap in nats, μ (2,), ln σ² (2,))."""
    from scipy.optimize import minimize

    def gap(parameters, grid_points=points):
        mean, log_var = parameters[None, :2], parameters[None, 2:]
        return posterior_gap_on_grid(log_likelihoods, prior, pixels, mean, log_var, [log_likelihood],
                                     points=grid_points)[0]

    best = min((minimize(gap, np.concatenate([mean, log_var]).astype(np.float64), method="Nelder-Mead",
                         options={"xatol": 1e-4, "fatol": 1e-4, "maxiter": 600}) for mean, log_var in starts),
               key=lambda found: found.fun)
    return float(gap(best.x, 121)), best.x[:2], best.x[2:]
