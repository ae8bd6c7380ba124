"""End to end: each chapter script runs as a reader runs it, on a small subset of the real MNIST
(2,000 training and 1,000 test images); the 2-D one with XLA, as by default, the others without its
compiling, which a two-epoch run does not repay."""

import json
import struct

import keras
import numpy as np
import pytest

from conftest import run_script

METRIC_KEYS = {
    "test_loss", "test_reconstruction", "test_kl", "test_elbo", "train_loss", "val_loss", "epochs", "batch_size",
    "latent_dim", "learning_rate", "beta", "seed", "seconds_per_epoch", "seconds_total",
    "tensorflow_version", "keras_version", "history",
}


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 200 and height > 100, f"{path} is only {width}×{height}"
    assert len(data) < 600_000, f"{path} is {len(data)} bytes: keep figures lean"


def check_run(out, name, figures, latent_dim):
    """Every file of a small run exists and is what it says; returns the metrics."""
    inside = [f"{figure}_{name}.png" for figure in ("samples", "interpolation", "posterior_widths", "holes")]
    for figure in figures + inside + [f"reconstructions_{name}.png", f"history_{name}.png"]:
        assert_png(out / "assets" / figure)
    encoder = keras.models.load_model(out / "models" / f"encoder_{name}.h5", compile=False)
    decoder = keras.models.load_model(out / "models" / f"decoder_{name}.h5", compile=False)
    assert [tuple(o.shape) for o in encoder.outputs] == [(None, latent_dim)] * 2  # z_mean, z_log_var
    assert tuple(decoder.output.shape) == (None, 28, 28, 1)
    metrics = json.loads((out / "models" / f"metrics_{name}.json").read_text())
    assert METRIC_KEYS <= metrics.keys()
    assert metrics["latent_dim"] == latent_dim and metrics["epochs"] == 2
    assert metrics["train_images"] == 2000 and metrics["test_images"] == 1000
    assert len(metrics["seconds_per_epoch"]) == 2
    # Training worked: the loss went down, and the test loss is its two parts.
    assert metrics["history"]["loss"][1] < metrics["history"]["loss"][0]
    assert metrics["history"]["val_loss"][1] < metrics["history"]["val_loss"][0]
    assert metrics["test_loss"] == pytest.approx(
        metrics["test_reconstruction"] + metrics["beta"] * metrics["test_kl"], rel=1e-4)
    assert metrics["test_elbo"] == -(metrics["test_reconstruction"] + metrics["test_kl"])  # whatever β is
    assert (metrics["kl_warmup_epochs"], metrics["free_bits"]) == (0, 0.0)
    assert 80 < metrics["test_loss"] < 400 and metrics["test_kl"] > 0
    encodings = np.load(out / "models" / f"test_encodings_{name}.npz")
    assert encodings["z_mean"].shape == (1000, latent_dim) and encodings["labels"].shape == (1000,)
    # Beyond the ELBO (vae/inspection.py): ln p(x) by importance sampling is above the ELBO on average.
    assert metrics["iw_samples"] == 50 and metrics["likelihood_images"] == 1000
    assert metrics["iw_log_likelihood"] > metrics["elbo"] - 3 * metrics["elbo_standard_error"]
    assert len(metrics["kl_per_dimension"]) == len(metrics["posterior_sigma_median"]) == latent_dim
    assert 0 <= metrics["active_units"] <= latent_dim and "Bernoulli" in metrics["data_convention"]
    return metrics


def test_vae_2d_end_to_end(tmp_path, small_mnist):
    result = run_script("vae_2d.py", "--epochs", 2, "--out", tmp_path,
                        env_extra={"VAE_DATA_DIR": str(small_mnist)})
    assert result.returncode == 0, result.stderr[-3000:]
    check_run(tmp_path, "2d", ["Clusters2D.png", "latent2D.png"], latent_dim=2)
    assert "Test set (1,000 images)" in result.stdout
    assert str(tmp_path / "models" / "metrics_2d.json") in result.stdout


def test_vae_3d_end_to_end(tmp_path, small_mnist):
    result = run_script("vae_3d.py", "--epochs", 2, "--no-xla", "--out", tmp_path,
                        env_extra={"VAE_DATA_DIR": str(small_mnist)})
    assert result.returncode == 0, result.stderr[-3000:]
    figures = ["Clusters3D.png", "2D3DClusters.png", "3DLatent1.png", "3DLatent2.png", "3DLatent3.png",
               "latent_variance_3d.png"]
    metrics = check_run(tmp_path, "3d", figures + ["traversal_3d.png"], latent_dim=3)
    assert len(metrics["latent_variance"]) == len(metrics["mean_posterior_variance"]) == 3
    encodings = np.load(tmp_path / "models" / "test_encodings_3d.npz")
    np.testing.assert_allclose(encodings["z_mean"].var(axis=0), metrics["latent_variance"], rtol=1e-4)


def test_vae_correlated_end_to_end(tmp_path, small_mnist):
    result = run_script("vae_correlated.py", "--epochs", 2, "--no-xla", "--out", tmp_path,
                        "--prior-cov", "1.0,0.4;0.4,0.5", env_extra={"VAE_DATA_DIR": str(small_mnist)})
    assert result.returncode == 0, result.stderr[-3000:]
    figures = ["ClustersCorrelated.png", "KLAdapted.png", "covariance_matrix.png"]
    metrics = check_run(tmp_path, "correlated", figures, latent_dim=2)
    assert metrics["prior_covariance"] == [[1.0, 0.4], [0.4, 0.5]]
    assert metrics["prior_correlation"] == pytest.approx(0.4 / np.sqrt(0.5))
    z_mean = np.load(tmp_path / "models" / "test_encodings_correlated.npz")["z_mean"]
    np.testing.assert_allclose(metrics["encoded_covariance"], np.cov(z_mean.T), rtol=1e-4)
    assert metrics["encoded_correlation"] == pytest.approx(np.corrcoef(z_mean.T)[0, 1], rel=1e-4)


def test_vae_correlated_refuses_prior_of_the_wrong_size(tmp_path):
    result = run_script("vae_correlated.py", "--prior-cov", "1,0,0;0,1,0;0,0,1", "--out", tmp_path)
    assert result.returncode == 2
    assert "prior_cov: covariance does not match latent_dim: it is 3×3, latent_dim is 2" in result.stderr


@pytest.mark.parametrize("prior_cov, message", [
    ("1.0,0.4;0.3,0.5", "not symmetric"),
    ("1.0,2.0;2.0,1.0", "not positive definite"),
    
    ("1.0,0.4;0.4", "not square"),
    ("1.0,nan;nan,1.0", "not finite"),
])
def test_vae_correlated_refuses_bad_prior_before_loading_data(tmp_path, prior_cov, message):
    result = run_script("vae_correlated.py", "--prior-cov", prior_cov, "--out", tmp_path,
                        env_extra={"VAE_DATA_DIR": str(tmp_path / "missing")})
    assert result.returncode == 2, result.stderr
    assert f"prior_cov: covariance is {message}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_summary_gives_the_elbo_beside_a_loss_weighted_by_beta(capsys):
    """The printed loss is reconstruction + β·KL; with β ≠ 1 a line gives the ELBO, comparable between runs.
    Free bits change only the KL's gradient, not its value (vae/variants.py): with β = 1 the loss is the ELBO's
    negative, and no ELBO line is added."""
    from types import SimpleNamespace

    from vae.experiment import Experiment

    metrics = {"test_images": 1000, "test_loss": 150.0, "test_reconstruction": 130.0, "test_kl": 5.0,
               "test_elbo": -135.0, "beta": 4.0, "free_bits": 0.0, "epochs": 2, "train_images": 2000,
               "seconds_per_epoch": [1.0, 1.0], "seconds_training": 2.0, "seconds_training_this_run": 2.0,
               "seconds_total": 9.0, "resumed_after_epoch": 0, "device": "CPU: test"}
    for changes, loss_line in [
        ({"beta": 1.0, "test_loss": 135.0}, "loss 135.00 = reconstruction 130.00 + 1 × KL 5.00\nTraining"),
        ({}, "loss 150.00 = reconstruction 130.00 + 4 × KL 5.00\nELBO -135.00 = −(reconstruction + KL)"),
        ({"beta": 1.0, "free_bits": 0.5, "test_loss": 135.0}, "loss 135.00 = reconstruction 130.00 + 1 × KL 5.00\nTraining"),
    ]:
        Experiment.print_summary(SimpleNamespace(metrics={**metrics, **changes}), written=[])
        assert loss_line in capsys.readouterr().out
