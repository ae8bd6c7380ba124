"""The KL divergences and the Gaussian prior, checked against independent NumPy computations."""

import functools

import numpy as np
import pytest

from vae.checks import check_covariance
from vae.priors import GaussianPrior
from vae_2d import VAE

kl_divergence = functools.partial(VAE.kl_divergence, None)  # the chapter's KL to N(0, I); it reads nothing of the model


def numpy_kl(mu, log_var, covariance):
    """KL(N(μ, diag σ²) ‖ N(0, Σ)) per row, with an explicit inverse and slogdet."""
    k = mu.shape[1]
    inverse = np.linalg.inv(covariance)
    _, log_det = np.linalg.slogdet(covariance)
    variances = np.exp(log_var)
    trace = variances @ np.diag(inverse)
    mahalanobis = np.einsum("bi,ij,bj->b", mu, inverse, mu)
    return 0.5 * (trace + mahalanobis - k + log_det - log_var.sum(axis=1))


def random_posterior(rng, batch, k):
    return rng.normal(size=(batch, k)), rng.normal(scale=0.8, size=(batch, k))


def random_covariance(rng, k):
    a = rng.normal(size=(k, k))
    return a @ a.T + 0.3 * np.eye(k)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_standard_kl_matches_numpy(k):
    rng = np.random.default_rng(k)
    mu, log_var = random_posterior(rng, 64, k)
    expected = numpy_kl(mu, log_var, np.eye(k))
    got = np.asarray(kl_divergence(mu.astype("float32"), log_var.astype("float32")))
    assert got.shape == (64,)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_standard_kl_is_zero_only_at_the_prior_and_positive_elsewhere():
    zeros = np.zeros((3, 2), "float32")
    np.testing.assert_allclose(np.asarray(kl_divergence(zeros, zeros)), 0.0, atol=1e-7)
    rng = np.random.default_rng(0)
    mu, log_var = random_posterior(rng, 100, 2)
    assert np.all(np.asarray(kl_divergence(mu.astype("float32"), log_var.astype("float32"))) > 0)


def test_prior_with_identity_covariance_equals_standard_kl():
    rng = np.random.default_rng(1)
    mu, log_var = (a.astype("float32") for a in random_posterior(rng, 32, 3))
    prior = GaussianPrior.standard(3)
    assert prior.is_standard
    np.testing.assert_allclose(np.asarray(prior.kl_divergence(mu, log_var)),
                               np.asarray(kl_divergence(mu, log_var)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_correlated_kl_matches_numpy_inverse_and_slogdet(k):
    rng = np.random.default_rng(10 + k)
    covariance = random_covariance(rng, k)
    mu, log_var = random_posterior(rng, 50, k)
    got = np.asarray(GaussianPrior(covariance).kl_divergence(mu, log_var))
    np.testing.assert_allclose(got, numpy_kl(mu, log_var, covariance), rtol=1e-9, atol=1e-9)


def test_correlated_kl_matches_monte_carlo():
    """KL = E_q[ln q(z) − ln p(z)], estimated from 400,000 posterior samples per image."""
    rng = np.random.default_rng(7)
    covariance = np.array([[1.0, 0.4], [0.4, 0.5]])
    mu = np.array([[0.3, -0.5], [1.2, 0.4]])
    log_var = np.array([[-1.0, -0.5], [-2.0, 0.3]])
    prior = GaussianPrior(covariance)
    exact = np.asarray(prior.kl_divergence(mu, log_var))
    inverse = np.linalg.inv(covariance)
    _, log_det = np.linalg.slogdet(covariance)
    for i in range(len(mu)):
        sigma = np.exp(0.5 * log_var[i])
        eps = rng.standard_normal((400_000, 2))
        z = mu[i] + sigma * eps
        log_q = -0.5 * np.sum(eps**2 + log_var[i] + np.log(2 * np.pi), axis=1)
        log_p = -0.5 * (np.einsum("ni,ij,nj->n", z, inverse, z) + log_det + 2 * np.log(2 * np.pi))
        estimate = np.mean(log_q - log_p)
        standard_error = np.std(log_q - log_p) / np.sqrt(len(z))
        assert abs(estimate - exact[i]) < 5 * standard_error + 1e-3, (estimate, exact[i])


def test_prior_keeps_cholesky_factor_and_log_det():
    covariance = np.array([[1.0, 0.4], [0.4, 0.5]])
    prior = GaussianPrior(covariance)
    np.testing.assert_allclose(prior.cholesky @ prior.cholesky.T, covariance)
    assert np.allclose(prior.cholesky, np.tril(prior.cholesky))
    assert prior.log_det == pytest.approx(np.log(np.linalg.det(covariance)))
    assert prior.correlation[0, 1] == pytest.approx(0.4 / np.sqrt(0.5))


def test_prior_samples_have_covariance_sigma():
    covariance = np.array([[1.0, 0.4], [0.4, 0.5]])
    samples = GaussianPrior(covariance).sample(200_000, seed=3)
    assert samples.shape == (200_000, 2)
    np.testing.assert_allclose(samples.mean(axis=0), 0.0, atol=0.01)
    np.testing.assert_allclose(np.cov(samples.T), covariance, atol=0.01)


@pytest.mark.parametrize("covariance, latent_dim, message", [
    ([[1.0, 0.4, 0.1], [0.4, 0.5, 0.2]], None, "not square"),
    ([1.0, 0.5], None, "not square"),
    ([[1.0, 0.4], [0.4]], None, "not square: its rows have lengths"),
    ([[1.0, 0.0], [0.0, 1.0]], 3, "does not match latent_dim"),
    ([[1.0, 0.4], [0.3, 0.5]], 2, "not symmetric"),
    ([[1.0, 2.0], [2.0, 1.0]], 2, "not positive definite"),
    ([[1.0, 0.0], [0.0, 0.0]], 2, "not positive definite"),
    ([[1.0, np.nan], [np.nan, 1.0]], 2, "not finite"),
    ([[np.inf, 0.0], [0.0, 1.0]], 2, "not finite"),
    ([["a", "b"], ["c", "d"]], 2, "square matrix of numbers"),
])
def test_bad_covariance_is_refused_with_its_reason(covariance, latent_dim, message):
    with pytest.raises(ValueError, match=message):
        check_covariance(covariance, latent_dim)


@pytest.mark.parametrize("covariance, message", [
    ([[1.0, 0.4], [0.3, 0.5]], "not symmetric"),
    ([[1.0, 2.0], [2.0, 1.0]], "not positive definite"),
    ([[1.0, 0.4, 0.1], [0.4, 0.5, 0.2]], "not square"),
])
def test_gaussian_prior_refuses_bad_covariance(covariance, message):
    with pytest.raises(ValueError, match=message):
        GaussianPrior(covariance)


def test_the_kl_per_dimension_adds_up_to_the_kl_for_a_diagonal_prior():
    rng = np.random.default_rng(11)
    mu, log_var = (a.astype("float32") for a in random_posterior(rng, 16, 3))
    prior = GaussianPrior(np.diag([1.0, 0.5, 2.0]))
    per_dimension = np.asarray(prior.kl_per_dimension(mu, log_var))
    assert per_dimension.shape == (16, 3) and prior.is_diagonal
    np.testing.assert_allclose(per_dimension.sum(axis=1), np.asarray(prior.kl_divergence(mu, log_var)), rtol=1e-5)
    expected = 0.5 * ((np.exp(log_var) + mu ** 2) / [1.0, 0.5, 2.0] - 1 + np.log([1.0, 0.5, 2.0]) - log_var)
    np.testing.assert_allclose(per_dimension, expected, rtol=1e-5, atol=1e-6)


def test_the_kl_does_not_split_per_dimension_under_a_correlated_prior():
    prior = GaussianPrior([[1.0, 0.4], [0.4, 0.5]])
    assert not prior.is_diagonal
    with pytest.raises(ValueError, match="does not split"):
        prior.kl_per_dimension(np.zeros((1, 2), "float32"), np.zeros((1, 2), "float32"))
