"""The KL's two parts, E_n[KL(q(z|x_n) ‖ p(z))] = I(n; z) + KL(q(z) ‖ p(z)) (vae/evaluation.py), and the hole
shares beside their floor (vae/inspection.py): on small cases where every term is known exactly, the grid
against Monte Carlo, and the keys the evaluation writes into the metrics. No training."""

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from vae import evaluation, inspection
from vae.evaluation import kl_split, log_aggregate_posterior, marginal_kl_by_sampling, marginal_kl_on_grid
from vae.priors import GaussianPrior
from vae_2d import build_decoder, build_encoder

CORRELATED = np.array([[1.0, 0.4], [0.4, 0.5]])


def random_posteriors(count, latent_dim, seed=0, spread=1.0, sigma=(0.05, 0.5)):
    """`count` posteriors: means ~ N(0, spread²), σ log-uniform between sigma[0] and sigma[1]."""
    rng = np.random.default_rng(seed)
    z_mean = spread * rng.standard_normal((count, latent_dim))
    z_log_var = 2 * rng.uniform(np.log(sigma[0]), np.log(sigma[1]), (count, latent_dim))
    return z_mean, z_log_var


@pytest.mark.parametrize("latent_dim", [2, 3])
def test_posteriors_equal_to_the_prior_have_no_kl_at_all(latent_dim):
    split = kl_split(np.zeros((50, latent_dim)), np.zeros((50, latent_dim)), np.eye(latent_dim))
    assert split["mean_kl"] == 0
    assert split["marginal_kl"] == pytest.approx(0, abs=1e-3)
    assert split["mutual_information"] == pytest.approx(0, abs=1e-3)
    assert split["ln_n"] == pytest.approx(math.log(50))


@pytest.mark.parametrize("latent_dim", [2, 3])
def test_identical_posteriors_carry_no_information_and_all_their_kl_is_the_marginal_one(latent_dim):
    # q(z) = q(z|x_n) for every n: I(n; z) = 0 and KL(q(z) ‖ p(z)) is the closed-form KL of one posterior.
    z_mean = np.tile(np.linspace(0.5, -0.3, latent_dim), (40, 1))
    z_log_var = np.tile(np.log(np.linspace(0.2, 0.6, latent_dim) ** 2), (40, 1))
    covariance = CORRELATED if latent_dim == 2 else np.eye(latent_dim)
    split = kl_split(z_mean, z_log_var, covariance, samples=20_000)
    exact = float(GaussianPrior(covariance).kl_divergence(z_mean[:1], z_log_var[:1])[0])
    assert split["mean_kl"] == pytest.approx(exact, rel=1e-12)
    error = split.get("marginal_kl_standard_error", 1e-3)
    assert split["marginal_kl"] == pytest.approx(exact, abs=4 * error)
    assert split["mutual_information"] == pytest.approx(0, abs=4 * error)


@pytest.mark.parametrize("latent_dim", [2, 3])
def test_two_far_apart_posteriors_share_ln_2_nats_of_information(latent_dim):
    # Two posteriors that never overlap: the code tells which image it came from, I(n; z) = ln 2 exactly, and
    # KL(q(z) ‖ p(z)) = mean KL − ln 2. In 2-D the grid gets it to its resolution; in 3-D Monte Carlo to its error.
    z_mean = np.zeros((2, latent_dim))
    z_mean[:, 0] = [-3.0, 3.0]
    z_log_var = np.full((2, latent_dim), np.log(0.1 ** 2))
    split = kl_split(z_mean, z_log_var, np.eye(latent_dim), samples=20_000)
    exact_mean_kl = 0.5 * (latent_dim * (0.01 - 1 - np.log(0.01)) + 9.0)
    assert split["mean_kl"] == pytest.approx(exact_mean_kl, rel=1e-12)
    error = split.get("marginal_kl_standard_error", 0)
    assert split["mutual_information"] == pytest.approx(math.log(2), abs=max(1e-3, 4 * error))
    assert split["ln_n"] == pytest.approx(math.log(2))


def test_the_split_agrees_with_the_mutual_information_estimated_directly():
    # I(n; z) = E_n E_{z ~ q(z|x_n)}[ln q(z|x_n) − ln q(z)], sampled directly, against mean KL − the grid's
    # KL(q(z) ‖ p(z)), for overlapping posteriors under a correlated prior.
    z_mean, z_log_var = random_posteriors(300, 2, seed=1, spread=0.6, sigma=(0.1, 0.6))
    split = kl_split(z_mean, z_log_var, CORRELATED)
    rng = np.random.default_rng(2)
    chosen = rng.integers(300, size=20_000)
    z = z_mean[chosen] + np.exp(0.5 * z_log_var[chosen]) * rng.standard_normal((20_000, 2))
    own = np.array([evaluation.posterior_log_density(z[i:i + 1], z_mean[n:n + 1], z_log_var[n:n + 1])[0, 0]
                    for i, n in enumerate(chosen)])
    information = own - log_aggregate_posterior(z, z_mean, z_log_var)
    error = information.std(ddof=1) / math.sqrt(len(z))
    assert 0.5 < split["mutual_information"] < split["ln_n"]
    assert split["mutual_information"] == pytest.approx(information.mean(), abs=4 * error)


def test_the_grid_and_monte_carlo_agree_in_2d():
    z_mean, z_log_var = random_posteriors(2_000, 2, seed=3, spread=0.8, sigma=(0.03, 0.3))
    grid = marginal_kl_on_grid(z_mean, z_log_var, CORRELATED)
    estimate, error = marginal_kl_by_sampling(z_mean, z_log_var, CORRELATED, samples=20_000, seed=4)
    assert grid["marginal_kl"] > 0.1
    assert grid["marginal_kl"] == pytest.approx(estimate, abs=4 * error + abs(grid["grid_correction"]))
    # The grid holds all of q: its cells' probabilities add up to 1.
    assert grid["mass_outside_grid"] < 1e-6
    # A grid twice as coarse, extrapolated the same way, gives the same number to well within the error.
    coarse = marginal_kl_on_grid(z_mean, z_log_var, CORRELATED, cells_per_sigma=1)
    assert coarse["marginal_kl"] == pytest.approx(grid["marginal_kl"], abs=error)


def test_ln_q_leaves_out_only_terms_too_small_to_matter():
    # Narrow and wide posteriors together: the sum over the posteriors nearby equals the sum over all of them.
    z_mean, z_log_var = random_posteriors(3_000, 3, seed=5, sigma=(0.005, 1.0))
    z = np.random.default_rng(6).standard_normal((500, 3))
    z[:100] = z_mean[:100] + 0.01  # some points right on narrow posteriors
    full = np.array([logsumexp(evaluation.posterior_log_density(z[i:i + 1], z_mean, z_log_var)) for i in range(500)])
    np.testing.assert_allclose(log_aggregate_posterior(z, z_mean, z_log_var), full - math.log(3_000), rtol=0, atol=1e-9)


def test_codes_drawn_from_the_prior_leave_a_small_floor_and_real_holes_stand_above_it():
    prior = GaussianPrior(CORRELATED)
    widths = np.full((20_000, 2), np.log(0.1 ** 2))
    clumped = np.repeat([[0.8, 0.0], [-0.8, 0.3]], 10_000, axis=0)  # codes in two clumps only
    shares = inspection.hole_shares(prior, {"test": (prior.sample(20_000, seed=7), widths), "train": (clumped, widths)})
    assert shares["prior_floor"]["test"]["images"] == 20_000
    assert shares["test"]["prior_mass_in_holes"] < 0.01
    assert shares["prior_floor"]["test"]["prior_mass_in_holes"] < 0.01
    assert shares["prior_floor"]["train"]["prior_mass_in_holes"] < 0.01
    assert shares["train"]["prior_mass_in_holes"] > 0.5


@pytest.fixture(scope="module")
def small_model():
    encoder, decoder = build_encoder(2, seed=0), build_decoder(2)
    images = np.random.default_rng(8).uniform(size=(30, 28, 28, 1)).astype("float32")
    z_mean, z_log_var = evaluation.encode(encoder, images)
    return encoder, decoder, images, z_mean, z_log_var


def test_the_evaluation_writes_the_split_and_the_hole_shares_for_test_and_training_codes(small_model):
    encoder, decoder, images, z_mean, z_log_var = small_model
    prior = GaussianPrior.standard(2)
    test_only = inspection.evaluate_model(encoder, decoder, prior, images, z_mean, z_log_var, samples=2)
    train_codes = random_posteriors(200, 2, seed=9)
    both = inspection.evaluate_model(encoder, decoder, prior, images, z_mean, z_log_var, samples=2,
                                     train_codes=train_codes)
    assert set(both) == set(test_only)  # the existing keys, and the two new ones
    assert {"elbo", "iw_log_likelihood", "active_units", "prior_mass_in_holes", "kl_split", "holes"} <= set(both)
    assert set(test_only["kl_split"]) == {"test"} and set(both["kl_split"]) == {"test", "train"}
    assert set(test_only["holes"]) == {"hole_ratio", "test", "prior_floor"}
    assert set(both["holes"]) == {"hole_ratio", "test", "train", "prior_floor"}
    assert set(both["holes"]["prior_floor"]) == {"test", "train"}
    by_hand = evaluation.hole_statistics(*inspection.holes_map(z_mean, z_log_var, prior.covariance)[1:])
    for evaluated in (test_only, both):  # the test codes' holes, under their old keys and under "holes"
        assert evaluated["prior_mass_in_holes"] == evaluated["holes"]["test"]["prior_mass_in_holes"]
        assert evaluated["prior_mass_in_holes"] == pytest.approx(by_hand["prior_mass_in_holes"], rel=1e-12)
        assert evaluated["posterior_mass_where_prior_is_low"] == pytest.approx(
            by_hand["posterior_mass_where_prior_is_low"], rel=1e-12)
    for name, count in (("test", 30), ("train", 200)):
        split = both["kl_split"][name]
        assert split["images"] == count and split["ln_n"] == pytest.approx(math.log(count))
        assert split["mean_kl"] == pytest.approx(split["mutual_information"] + split["marginal_kl"], rel=1e-12)
    assert both["kl_split"]["train"]["mean_kl"] == pytest.approx(
        float(np.mean(GaussianPrior.standard(2).kl_divergence(*train_codes))), rel=1e-12)


@pytest.mark.parametrize("train_codes, message", [
    (np.zeros((5, 2)), "must be a pair"),
    ((np.zeros((5, 3)), np.zeros((5, 3))), r"z_mean must have shape \(N, 2\)"),
    ((np.zeros((5, 2)), np.zeros((4, 2))), "z_mean has 5 rows but z_log_var 4"),
    ((np.zeros((5, 2)), np.full((5, 2), np.nan)), "z_log_var must hold finite numbers"),
])
def test_bad_training_codes_are_refused_before_any_figure_is_drawn(small_model, tmp_path, train_codes, message):
    encoder, decoder, images, z_mean, z_log_var = small_model
    with pytest.raises(ValueError, match=f"train_codes: .*{message}|train_codes {message}"):
        inspection.look_inside(lambda filename: tmp_path / filename, "2d", encoder, decoder, GaussianPrior.standard(2),
                               images, np.zeros(30, int), z_mean, z_log_var, samples=2, train_codes=train_codes)
    assert list(tmp_path.iterdir()) == []
