"""ln p(x) three ways: the ELBO, the importance-weighted estimate and, for a 2-D latent space, quadrature."""

import keras
import numpy as np
import pytest

from vae.config import Config
from vae.data import load_mnist
from vae.evaluation import evaluate
from vae.likelihood import (RunningLogSumExp, data_convention, decoder_log_likelihoods,
                            importance_weighted_log_likelihood, log_likelihood_by_quadrature, log_likelihood_graph)
from vae.priors import GaussianPrior
from vae.training import train
from vae.variants import build
from vae_2d import VAE, build_decoder, build_encoder
from vae_correlated import CorrelatedVAE

PRIORS = {"standard": np.eye(2), "correlated": [[1.0, 0.4], [0.4, 0.5]]}


def test_running_log_sum_exp_equals_the_direct_one_in_chunks():
    values = np.random.default_rng(0).normal(-500, 50, size=(3, 1000))
    total = RunningLogSumExp(3)
    for start in range(0, 1000, 128):
        total.add(values[:, start:start + 128])
    expected = values.max(axis=1) + np.log(np.exp(values - values.max(axis=1, keepdims=True)).sum(axis=1))
    np.testing.assert_allclose(total.result(), expected, rtol=1e-12)


@pytest.mark.parametrize("prior", PRIORS)
def test_quadrature_matches_a_linear_gaussian_model_in_closed_form(prior):
    """x = W z + b + noise (σ = 0.5) with z ~ N(0, Σ) has p(x) = N(x; b, W Σ Wᵀ + σ² I) exactly."""
    rng = np.random.default_rng(1)
    sigma, noise, dims = np.asarray(PRIORS[prior], float), 0.5, 5
    weights, bias = rng.normal(size=(dims, 2)), rng.normal(size=dims)
    cholesky = np.linalg.cholesky(sigma)
    z = rng.normal(size=(6, 2)) @ cholesky.T
    x = z @ weights.T + bias + noise * rng.normal(size=(6, dims))  # images the model generates

    def gaussian_log_likelihoods(pixels, z):
        means = z @ weights.T + bias  # (G, D)
        squared = (pixels ** 2).sum(1)[:, None] - 2 * pixels @ means.T + (means ** 2).sum(1)[None, :]
        return -0.5 * squared / noise ** 2 - 0.5 * dims * np.log(2 * np.pi * noise ** 2)

    covariance = weights @ sigma @ weights.T + noise ** 2 * np.eye(dims)
    residual = x - bias
    exact = -0.5 * (np.einsum("nd,de,ne->n", residual, np.linalg.inv(covariance), residual)
                    + np.linalg.slogdet(2 * np.pi * covariance)[1])
    np.testing.assert_allclose(log_likelihood_by_quadrature(gaussian_log_likelihoods, cholesky, x), exact, atol=1e-6)


@pytest.fixture(scope="module", params=list(PRIORS))
def trained(request):
    """A small 2-D model trained for 3 epochs on 3,000 images, with either prior (the 2-D chapter's VAE, or the
    correlated chapter's); and 200 test images."""
    (x_train, _), (x_test, _) = load_mnist()
    keras.utils.set_random_seed(0)
    prior = GaussianPrior(PRIORS[request.param])
    encoder, decoder = build_encoder(2, seed=0), build_decoder(2)
    vae = VAE(encoder, decoder) if request.param == "standard" else CorrelatedVAE(encoder, decoder, prior.covariance)
    train(vae, x_train[:3000], x_test[:1000], epochs=3, batch_size=128, learning_rate=1e-3, seed=0, verbose=0,
          jit_compile=False)
    return vae, prior, x_test[:200]


def test_one_sample_averages_to_the_elbo_within_its_monte_carlo_error(trained):
    vae, prior, images = trained
    estimates = importance_weighted_log_likelihood(vae.encoder, vae.decoder, prior, images, samples=1, seed=3)
    elbo = -evaluate(vae, images)["loss"]  # one sample per image too, with the KL in closed form
    error = estimates.std() / np.sqrt(len(images))
    assert abs(estimates.mean() - elbo) < 4 * error, (estimates.mean(), elbo, error)


def test_estimates_rise_with_k_towards_the_quadrature_value_and_never_exceed_it(trained):
    vae, prior, images = trained
    images = images[:100]
    exact = log_likelihood_by_quadrature(decoder_log_likelihoods(vae.decoder), prior.cholesky,
                                         images.reshape(len(images), -1), spacing=0.05)
    means, errors = [], []
    for samples in [1, 10, 100, 1000]:
        estimates = importance_weighted_log_likelihood(vae.encoder, vae.decoder, prior, images, samples, seed=samples)
        gap = exact - estimates  # ≥ 0 on average: the estimate is a lower bound
        means.append(gap.mean())
        errors.append(gap.std() / np.sqrt(len(images)))
        assert gap.mean() > -3 * errors[-1], (samples, gap.mean(), errors[-1])
    assert means == sorted(means, reverse=True), means  # closer with every tenfold K
    assert means[-1] < 0.5 * means[0]


def test_the_quadrature_grid_is_fine_enough(trained):
    vae, prior, images = trained
    log_likelihoods = decoder_log_likelihoods(vae.decoder)
    pixels = images[:5].reshape(5, -1)
    coarse = log_likelihood_by_quadrature(log_likelihoods, prior.cholesky, pixels, spacing=0.05)
    fine = log_likelihood_by_quadrature(log_likelihoods, prior.cholesky, pixels, spacing=0.025)
    np.testing.assert_allclose(coarse, fine, atol=0.01)


def test_zero_samples_are_refused(trained):
    vae, prior, images = trained
    with pytest.raises(ValueError, match="samples must be ≥ 1, got 0"):
        importance_weighted_log_likelihood(vae.encoder, vae.decoder, prior, images, samples=0)


# ---------------------------------------------------------------------------------------------
# The continuous Bernoulli: every estimate uses the decoder's own likelihood, normalizer included


@pytest.fixture(scope="module")
def continuous_bernoulli():
    """A small 2-D continuous-Bernoulli model (--likelihood continuous_bernoulli) after 20 steps on 256 images;
    and 200 test images."""
    (x_train, _), (x_test, _) = load_mnist()
    keras.utils.set_random_seed(0)
    config = Config(latent_dim=2, likelihood="continuous_bernoulli").check()
    vae = build(VAE, build_encoder(2, seed=0), build_decoder(2), config)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    vae.fit(x_train[:256], epochs=20, batch_size=256, shuffle=False, verbose=0)  # 20 steps on the same batch
    return vae, GaussianPrior.standard(2), x_test[:200]


def test_the_estimates_use_the_continuous_bernoulli_as_training_does(continuous_bernoulli):
    vae, _, images = continuous_bernoulli
    z = np.random.default_rng(4).normal(size=(5, 2)).astype(np.float32)
    pixels = images[:5].reshape(5, -1)
    training = -np.asarray(vae.reconstruction_loss(images[:5], vae.decoder_logits(z)))  # the training loss's
    np.testing.assert_allclose(log_likelihood_graph(vae.decoder)(pixels, z).numpy()[:, 0], training, rtol=1e-5)
    np.testing.assert_allclose(np.diag(decoder_log_likelihoods(vae.decoder)(pixels, z).numpy()), training, rtol=1e-5)


def test_one_sample_averages_to_the_continuous_bernoulli_elbo(continuous_bernoulli):
    vae, prior, images = continuous_bernoulli
    estimates = importance_weighted_log_likelihood(vae.encoder, vae.decoder, prior, images, samples=1, seed=3)
    elbo = -evaluate(vae, images)["loss"]
    error = estimates.std() / np.sqrt(len(images))
    assert abs(estimates.mean() - elbo) < 4 * error, (estimates.mean(), elbo, error)


def test_the_data_convention_says_which_pixels_and_which_likelihood():
    assert data_convention() == ("grayscale MNIST pixels in [0, 1] as the targets of one Bernoulli likelihood "
                                 "per pixel (not binarized), in nats per image, on the test set")
    binary = data_convention("bernoulli", "dynamic")
    assert "binary" in binary and "seed 0" in binary and "not binarized" not in binary
    assert "continuous Bernoulli density" in data_convention("continuous_bernoulli", "off")
    for text in (binary, data_convention("continuous_bernoulli", "dynamic")):
        assert text.endswith(", in nats per image, on the test set")  # tools/update_readme.py cuts it there


def test_quadrature_is_skipped_when_a_posterior_reaches_beyond_its_grid():
    """A posterior whose mass lies beyond the grid's ±5 prior standard deviations would be missed, and the
    'exact' value reported too low (a continuous-Bernoulli model spread its codes out to |z| ≈ 22): counted,
    in the whitened plane of a correlated prior too."""
    from vae.inspection import QUADRATURE_LIMIT, posteriors_beyond_grid

    z_mean = np.array([[0.0, 0.0], [4.5, 0.0], [0.0, -4.9], [12.0, 3.0]])
    z_log_var = np.log(np.array([[0.01, 0.01], [0.01, 0.01], [0.0001, 0.0001], [0.01, 0.01]]) ** 2)
    assert posteriors_beyond_grid(z_mean, z_log_var, np.eye(2), QUADRATURE_LIMIT) == 1  # the 4th; the 3rd just fits
    assert posteriors_beyond_grid(z_mean, np.log(np.full((4, 2), 0.2) ** 2), np.eye(2), QUADRATURE_LIMIT) == 2
    # Under N(0, Σ) with Σ = diag(4, 1), z0 = 8 is ε0 = 4: inside.
    assert posteriors_beyond_grid(np.array([[8.0, 0.0]]), np.log(np.full((1, 2), 0.01) ** 2),
                                  np.diag([2.0, 1.0]), QUADRATURE_LIMIT) == 0
