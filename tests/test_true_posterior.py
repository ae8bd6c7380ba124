"""The exact posterior p(z|x) beside q(z|x) (code/explore.py, vae/inspection.true_posteriors): the gap
ln p(x) − ELBO is KL(q(z|x) ‖ p(z|x)), the best Gaussian's share of it, and the rule that chooses the digits."""

import keras
import numpy as np
import pytest

from vae.inspection import choose_digits, grid_cell_of
from vae.likelihood import (best_gaussian_gap, decoder_log_likelihoods, expected_elbo, log_likelihood_by_quadrature,
                            log_mass_by_region, posterior_gap_on_grid, quadrature_grid)
from vae.priors import GaussianPrior

PRIORS = {"standard": np.eye(2), "correlated": [[1.0, 0.4], [0.4, 0.5]]}


def tiny_decoder(pixels=6, seed=0, ignores_z=False):
    """z (2) → 8 tanh → `pixels` logits → sigmoid, with random weights; with `ignores_z` the logits are a bias
    alone, so that p(z|x) = p(z)."""
    keras.utils.set_random_seed(seed)
    z = keras.Input(shape=(2,))
    hidden = keras.layers.Dense(8, activation="tanh")(z)
    logits = keras.layers.Dense(pixels, name="logits", bias_initializer=keras.initializers.RandomNormal(seed=seed),
                                kernel_initializer="zeros" if ignores_z else keras.initializers.RandomNormal(
                                    stddev=2.0, seed=seed))(hidden)
    means = keras.layers.Activation("sigmoid", name="pixel_means")(logits)
    return keras.Model(z, means)


@pytest.mark.parametrize("prior", PRIORS)
def test_the_gap_on_the_grid_is_log_likelihood_minus_an_independent_elbo(prior):
    """KL(q ‖ p(z|x)) by quadrature on q's grid equals ln p(x) (quadrature over the prior) minus the ELBO's
    expectation from 20,000 draws of q with its KL to the prior in closed form, for q near and far from p(z|x)."""
    prior = GaussianPrior(PRIORS[prior])
    log_likelihoods = decoder_log_likelihoods(tiny_decoder())
    pixels = (np.random.default_rng(1).random((3, 6)) > 0.5).astype(np.float32)
    z_mean = np.array([[0.0, 0.0], [0.8, -0.5], [-1.5, 1.0]])
    z_log_var = np.log(np.array([[0.3, 0.5], [0.05, 0.2], [0.4, 0.4]]) ** 2)
    exact = log_likelihood_by_quadrature(log_likelihoods, prior.cholesky, pixels, spacing=0.01)
    gap = posterior_gap_on_grid(log_likelihoods, prior, pixels, z_mean, z_log_var, exact)
    elbo, error = expected_elbo(log_likelihoods, prior, pixels, z_mean, z_log_var, samples=20_000, seed=2)
    assert np.all(gap > 0)
    np.testing.assert_array_less(np.abs(gap - (exact - elbo)), 4 * error + 1e-3)


def test_a_posterior_equal_to_q_leaves_no_gap_and_the_best_diagonal_gaussian_is_known():
    """A decoder that ignores z has p(z|x) = p(z). With q = p(z) = N(0, I) the gap is 0; for the correlated
    prior the best diagonal Gaussian has σᵢ² = 1 / (Σ⁻¹)ᵢᵢ and leaves ½ [Σᵢ ln (Σ⁻¹)ᵢᵢ + ln det Σ] (mode-seeking KL)."""
    log_likelihoods = decoder_log_likelihoods(tiny_decoder(ignores_z=True))
    pixels = np.array([[1, 0, 1, 1, 0, 0]], dtype=np.float32)
    standard = GaussianPrior.standard(2)
    exact = log_likelihood_by_quadrature(log_likelihoods, standard.cholesky, pixels)
    assert abs(posterior_gap_on_grid(log_likelihoods, standard, pixels, np.zeros((1, 2)), np.zeros((1, 2)),
                                     exact)[0]) < 1e-5  # float32 logits; the prior beyond ±5σ: e^(−12.5)
    sigma = np.asarray(PRIORS["correlated"])
    correlated = GaussianPrior(sigma)
    exact = log_likelihood_by_quadrature(log_likelihoods, correlated.cholesky, pixels)
    gap, mean, log_var = best_gaussian_gap(log_likelihoods, correlated, pixels,
                                           [(np.array([0.3, -0.2]), np.zeros(2))], exact[0])
    precision = np.diag(np.linalg.inv(sigma))
    assert gap == pytest.approx(0.5 * (np.log(precision).sum() + np.linalg.slogdet(sigma)[1]), abs=1e-3)
    np.testing.assert_allclose(mean, 0, atol=5e-3)
    np.testing.assert_allclose(np.exp(log_var), 1 / precision, rtol=5e-3)


def test_the_regions_masses_add_up_to_the_log_likelihood():
    prior = GaussianPrior(PRIORS["correlated"])
    log_likelihoods = decoder_log_likelihoods(tiny_decoder(seed=3))
    pixels = (np.random.default_rng(4).random((5, 6)) > 0.5).astype(np.float32)
    grid, _ = quadrature_grid(prior.cholesky, spacing=0.05)
    regions = (grid[:, 0] > 0).astype(int) + 2 * (grid[:, 1] > 0.3)  # four quadrant-like regions
    log_mass = log_mass_by_region(log_likelihoods, prior.cholesky, pixels, regions, 5, spacing=0.05, grid_batch=999)
    assert np.all(np.isneginf(log_mass[:, 4]))  # a region without grid points
    np.testing.assert_allclose(np.logaddexp.reduce(log_mass, axis=1),
                               log_likelihood_by_quadrature(log_likelihoods, prior.cholesky, pixels, spacing=0.05),
                               atol=1e-4)
    with pytest.raises(ValueError, match="regions must label"):
        log_mass_by_region(log_likelihoods, prior.cholesky, pixels, regions[:-1], 5, spacing=0.05)


def test_each_grid_point_falls_in_its_own_cell():
    cholesky = np.linalg.cholesky(PRIORS["correlated"])
    grid, _ = quadrature_grid(cholesky, limit=1.0, spacing=0.25)
    np.testing.assert_array_equal(grid_cell_of(grid, cholesky, 1.0, 0.25), np.arange(len(grid)))
    assert grid_cell_of(np.array([[50.0, -50.0]]), cholesky, 1.0, 0.25)[0] in range(len(grid))  # clipped to the edge


def test_the_rule_chooses_the_split_the_clearest_and_the_most_confidently_misread_image():
    shares = np.array([
        [0.90, 0.10, 0.00],   # 0: a 0, a little split
        [0.55, 0.45, 0.00],   # 1: a 0, the most split: ambiguous
        [0.999, 0.001, 0.0],  # 2: a 0, the clearest whose q is centred on its own region
        [1.0, 0.0, 0.0],      # 3: a 0 clearer still, but q is centred on region 1 (misread, mostly in 0)
        [0.0, 0.02, 0.98],    # 4: a 1, q centred on region 2, where 98% of its posterior lies: misread
        [0.05, 0.95, 0.0],    # 5: a 1
    ])
    labels = np.array([0, 0, 0, 0, 1, 1])
    centres = np.array([0, 0, 0, 1, 2, 1])
    with np.errstate(divide="ignore"):
        log_mass = np.log(shares) - 130.0
    assert choose_digits(log_mass, labels, centres) == {"ambiguous": 1, "clear": 2, "misread": 4}
    assert choose_digits(log_mass[[0, 1, 2, 5]], labels[[0, 1, 2, 5]], centres[[0, 1, 2, 5]]) == {
        "ambiguous": 1, "clear": 2}  # nothing centred in another region: no misread image


def test_the_committed_true_posteriors_keep_the_identity_and_their_rules():
    """models/likelihood_2d.json (explore.py --model 2d --update-results): each chosen digit's two measures of
    the gap agree within 4 Monte Carlo standard errors and the grid's 0.05 nats, the best Gaussian leaves no more
    than the encoder's q, and each digit is what its rule says; the figure is committed beside it."""
    import json

    from conftest import REPO_ROOT

    result = json.loads((REPO_ROOT / "models" / "likelihood_2d.json").read_text())["true_posterior"]
    assert (REPO_ROOT / "assets" / "true_posterior_2d.png").is_file()
    digits = result["digits"]
    assert set(digits) == {"ambiguous", "clear", "misread"} and len({d["index"] for d in digits.values()}) == 3
    for digit in digits.values():
        assert abs(digit["gap_kl_on_grid"] - digit["gap_log_likelihood_minus_elbo"]) < \
            4 * digit["elbo_standard_error"] + 0.05
        assert 0 <= digit["gap_best_gaussian"] <= digit["gap_kl_on_grid"]
    shares = list(digits["ambiguous"]["class_shares"].values())
    assert len(shares) >= 2 and shares[1] > result["second_class_share"]
    assert digits["clear"]["q_centre_region"] == digits["clear"]["label"]
    assert digits["misread"]["q_centre_region"] != digits["misread"]["label"]
