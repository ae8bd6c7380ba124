"""code/explore.py and vae/inspection.py: every figure and the evaluation from small saved models, for
both priors and a latent space larger than three; a clear message for every bad argument.

The models are untrained (random weights, saved as the chapter scripts save them): the figures and
numbers need only their shapes. Runs in this process (explore.main), on the first test images.
"""

import importlib.util
import json
import math

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT
from vae import figures, inspection
from vae.evaluation import aggregate_posterior, hole_statistics, latent_statistics
from vae.model import build_decoder, build_encoder

_spec = importlib.util.spec_from_file_location("explore", REPO_ROOT / "code" / "explore.py")
explore = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(explore)

CORRELATED = "1.0,0.4;0.4,0.5"


def save_models(folder, latent_dim, seed=0, likelihood="bernoulli"):
    """An encoder image → (z_mean, z_log_var) and a decoder, saved like the chapter scripts' models."""
    keras.utils.set_random_seed(seed)
    training_encoder = build_encoder(latent_dim, seed=seed)
    encoder = keras.Model(training_encoder.input, training_encoder.outputs[:2], name="encoder")
    decoder = build_decoder(latent_dim, likelihood=likelihood)
    paths = folder / f"encoder_{latent_dim}_{likelihood}.h5", folder / f"decoder_{latent_dim}_{likelihood}.h5"
    encoder.save(paths[0])
    decoder.save(paths[1])
    return paths


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{latent_dim: (encoder path, decoder path)} for 2 and 4 dimensions."""
    folder = tmp_path_factory.mktemp("saved_models")
    return {k: save_models(folder, k) for k in (2, 4)}


def run(saved, latent_dim, out, *extra, data_dir=None):
    encoder, decoder = saved[latent_dim]
    argv = ["--encoder", str(encoder), "--decoder", str(decoder), "--out", str(out), "--name", "small", *extra]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    return explore.main(argv)


def assert_page_figure(path):
    image = Image.open(path)
    assert image.mode == "P" and image.info["dpi"] == pytest.approx((figures.DPI, figures.DPI), abs=0.01)
    assert image.width <= figures.DPI * (figures.COLUMN_WIDTH + 0.3)
    assert path.stat().st_size < 200_000, f"{path.name}: {path.stat().st_size:,} bytes"


@pytest.mark.parametrize("prior", ["standard", "correlated"])
def test_every_2d_figure_and_the_evaluation_with_quadrature(saved, tmp_path, small_mnist, prior):
    extra = ["--prior-cov", CORRELATED, "--figures", "none"] if prior == "correlated" else []
    assert run(saved, 2, tmp_path, "--images", "40", "--samples", "20", *extra, data_dir=small_mnist) == 0
    for name in inspection.figures_for(2) if prior == "standard" else []:
        assert_page_figure(tmp_path / "assets" / inspection.figure_filename(name, "small"))
    assert not (tmp_path / "assets" / "traversal_small.png").exists(), "no traversal for a 2-D space"
    result = json.loads((tmp_path / "models" / "likelihood_small.json").read_text())
    assert result["likelihood_images"] == 40 and result["iw_samples"] == 20 and result["latent_dim"] == 2
    assert "Bernoulli" in result["data_convention"] and "nats per image" in result["data_convention"]
    # The bound ordering, within Monte Carlo error: ELBO ≤ IW ≤ exact.
    error = result["iw_log_likelihood_standard_error"]
    assert result["elbo"] <= result["iw_log_likelihood"] + 3 * error
    assert result["iw_log_likelihood"] <= result["quadrature_log_likelihood"] + 3 * error
    assert len(result["kl_per_dimension"]) == len(result["posterior_sigma_median"]) == 2
    assert 0 <= result["active_units"] <= 2 and 0 <= result["prior_mass_in_holes"] <= 1
    assert result["kl_per_dimension_sums_to_kl"] == (prior == "standard")


def test_every_figure_of_a_4d_space_without_evaluation(saved, tmp_path, small_mnist):
    assert run(saved, 4, tmp_path, "--images", "60", "--no-evaluate", "--interpolation", "spherical",
               data_dir=small_mnist) == 0
    drawn = sorted(path.name for path in (tmp_path / "assets").iterdir())
    assert drawn == sorted(inspection.figure_filename(name, "small") for name in inspection.FIGURES)
    for path in (tmp_path / "assets").iterdir():
        assert_page_figure(path)
    assert not (tmp_path / "models" / "likelihood_small.json").exists()


def test_chosen_figures_only_and_evaluation_of_a_4d_space(saved, tmp_path, small_mnist):
    assert run(saved, 4, tmp_path, "--images", "30", "--samples", "3", "--figures", "samples,traversal",
               data_dir=small_mnist) == 0
    assert sorted(p.name for p in (tmp_path / "assets").iterdir()) == ["samples_small.png", "traversal_small.png"]
    result = json.loads((tmp_path / "models" / "likelihood_small.json").read_text())
    assert "quadrature_log_likelihood" not in result and len(result["latent_activity"]) == 4


def test_a_continuous_bernoulli_decoder_is_evaluated_under_its_own_likelihood(tmp_path, small_mnist):
    encoder, decoder = save_models(tmp_path, 2, likelihood="continuous_bernoulli")
    argv = ["--encoder", str(encoder), "--decoder", str(decoder), "--out", str(tmp_path), "--name", "cb",
            "--images", "20", "--samples", "5", "--figures", "samples", "--no-quadrature", "--binarize", "dynamic",
            "--data-dir", str(small_mnist)]
    assert explore.main(argv) == 0
    result = json.loads((tmp_path / "models" / "likelihood_cb.json").read_text())
    assert result["likelihood"] == "continuous_bernoulli" and result["binarize"] == "dynamic"
    assert "continuous Bernoulli" in result["data_convention"] and "binary" in result["data_convention"]
    # Untrained, the decoder's logits are near 0, where the density is near 1 for every pixel: ln p(x) near 0,
    # where a Bernoulli's would be about −784 ln 2 = −543 nats.
    assert -100 < result["elbo"] <= result["iw_log_likelihood"] + 3 * result["iw_log_likelihood_standard_error"]


def test_a_decoder_of_unknown_likelihood_is_refused(saved, tmp_path, capsys):
    z = keras.Input(shape=(2,))
    logits = keras.layers.Dense(784, name="logits")(z)
    images = keras.layers.Reshape((28, 28, 1))(keras.layers.Activation("relu", name="pixel_means")(logits))
    keras.Model(z, images).save(tmp_path / "relu.h5")
    with pytest.raises(SystemExit) as exit_info:
        explore.main(["--encoder", str(saved[2][0]), "--decoder", str(tmp_path / "relu.h5"), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "its layer 'pixel_means' (Activation) is neither a sigmoid (Bernoulli)" in capsys.readouterr().err


def test_a_conditional_model_is_named_not_misread(tmp_path, capsys):
    """A conditional VAE's saved networks also take the label: explore.py says so and points to its script."""
    encoder = build_encoder(2, num_classes=10)
    keras.Model(encoder.inputs, encoder.outputs[:2]).save(tmp_path / "encoder.h5")  # as vae_conditional.py saves it
    build_decoder(2, num_classes=10).save(tmp_path / "decoder.h5")
    with pytest.raises(SystemExit) as exit_info:
        explore.main(["--encoder", str(tmp_path / "encoder.h5"), "--decoder", str(tmp_path / "decoder.h5"),
                      "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "is a conditional VAE's (it also takes the label)" in error and "vae_conditional.py" in error


@pytest.mark.parametrize("arguments, message", [
    (["--samples", "0"], "--samples must be at least 1, got 0"),
    (["--figures", "samples,holes"], "--figures: unknown figure 'holes'; choose from samples"),
    (["--figures", "traversal"], "--figures: traversal needs a larger latent space than 2-D"),
    (["--prior-cov", "1,0,0;0,1,0;0,0,1"], "--prior-cov is 3×3, but the model's latent size is 2"),
    (["--prior-cov", "1,2;2,1"], "--prior-cov:"),
    (["--prior-cov", "a,b"], "--prior-cov: expected rows of numbers"),
])
def test_bad_arguments_are_named(saved, tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        run(saved, 2, tmp_path, *arguments)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_and_non_model_files_and_mismatched_latent_sizes(saved, tmp_path, capsys):
    cases = [
        (["--encoder", str(tmp_path / "absent.h5"), "--decoder", str(saved[2][1])], "--encoder: no such file"),
        (["--encoder", str(saved[2][0])], "give --model NAME, or both --encoder FILE and --decoder FILE"),
        (["--encoder", str(saved[2][0]), "--decoder", str(tmp_path / "text.h5")], "is not a saved Keras model"),
        (["--encoder", str(saved[2][0]), "--decoder", str(saved[4][1])],
         "the encoder's latent size is 2 but the decoder's is 4"),
        (["--encoder", str(saved[2][1]), "--decoder", str(saved[2][1])], "--encoder:"),
    ]
    (tmp_path / "text.h5").write_text("not a model\n")
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            explore.main([*argv, "--out", str(tmp_path)])
        assert exit_info.value.code == 2, argv
        assert message in capsys.readouterr().err, argv


def test_help_lists_the_figures_and_the_default_k(capsys):
    with pytest.raises(SystemExit) as exit_info:
        explore.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "default: 1000" in text and all(name in text for name in inspection.FIGURES)


# ---------------------------------------------------------------------------------------------
# The pieces


def test_spherical_interpolation_keeps_the_whitened_norm_and_both_ends():
    cholesky = np.linalg.cholesky([[1.0, 0.4], [0.4, 0.5]])
    a, b = cholesky @ [1.5, 0.0], cholesky @ [0.0, -1.5]  # whitened codes of norm 1.5, at right angles
    path = figures.interpolate(a, b, 9, "spherical", cholesky)
    np.testing.assert_allclose(path[[0, -1]], [a, b], atol=1e-12)
    norms = np.linalg.norm(np.linalg.solve(cholesky, path.T), axis=0)
    np.testing.assert_allclose(norms, 1.5, err_msg="slerp keeps ‖ε‖ rather than cutting towards the origin")
    linear = figures.interpolate(a, b, 9)
    assert np.linalg.norm(np.linalg.solve(cholesky, linear[4])) == pytest.approx(1.5 / math.sqrt(2))
    np.testing.assert_allclose(linear[4], (a + b) / 2)
    with pytest.raises(ValueError, match="method must be 'linear' or 'spherical'"):
        figures.interpolate(a, b, 3, "cubic")


def test_aggregate_posterior_of_posteriors_equal_to_the_prior_is_the_prior():
    z_mean, z_log_var = np.zeros((5, 2)), np.zeros((5, 2))
    edges, q, p = aggregate_posterior(z_mean, z_log_var, np.eye(2), limit=4.0, cells=80)
    assert q.sum() == pytest.approx(p.sum(), abs=1e-3) and q.sum() > 0.99
    assert np.max(np.abs(q - p)) < 1e-4
    assert hole_statistics(q, p)["prior_mass_in_holes"] < 1e-3
    # Narrow posteriors at a few points leave most of the prior in holes.
    narrow = aggregate_posterior(np.array([[1.0, 1.0], [-1.0, 0.0]]), np.full((2, 2), np.log(0.03 ** 2)),
                                 np.eye(2), limit=4.0, cells=80)
    assert hole_statistics(*narrow[1:])["prior_mass_in_holes"] > 0.9


def test_latent_statistics_count_active_units_and_split_the_kl():
    rng = np.random.default_rng(0)
    z_mean = np.column_stack([rng.normal(size=500), 0.05 * rng.normal(size=500), np.zeros(500)])
    z_log_var = np.log(np.column_stack([np.full(500, 0.01), np.full(500, 0.5), np.ones(500)]))
    stats = latent_statistics(z_mean, z_log_var)
    assert stats["active_units"] == 1  # Var(0.05 ε) = 0.0025 < 0.01
    assert stats["posterior_sigma_median"] == pytest.approx([0.1, math.sqrt(0.5), 1.0])
    full = 0.5 * np.mean(np.sum(np.exp(z_log_var) + z_mean ** 2 - 1 - z_log_var, axis=1))
    assert sum(stats["kl_per_dimension"]) == pytest.approx(full) and stats["kl_per_dimension"][2] == 0
