"""End to end: each chapter script runs as a reader runs it, on a small subset of the real MNIST."""

import json
import struct

import keras
import numpy as np
import pytest

from conftest import real_data_dir, run_script

METRIC_KEYS = {
    "test_loss", "test_reconstruction", "test_kl", "train_loss", "val_loss", "epochs", "batch_size",
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
    for figure in figures + [f"reconstructions_{name}.png", f"history_{name}.png"]:
        assert_png(out / "assets" / figure)
    import vae.model  # noqa: F401  registers Sampling for loading

    encoder = keras.models.load_model(out / "models" / f"encoder_{name}.h5")
    decoder = keras.models.load_model(out / "models" / f"decoder_{name}.h5")
    assert [tuple(o.shape) for o in encoder.outputs] == [(None, latent_dim)] * 3
    assert tuple(decoder.output.shape) == (None, 28, 28, 1)
    metrics = json.loads((out / "models" / f"metrics_{name}.json").read_text())
    assert METRIC_KEYS <= metrics.keys()
    assert metrics["latent_dim"] == latent_dim and metrics["epochs"] == 2
    assert metrics["train_images"] == 2000 and metrics["test_images"] == 10000
    assert len(metrics["seconds_per_epoch"]) == 2
    # Training worked: the loss went down, and the test loss is its two parts.
    assert metrics["history"]["loss"][1] < metrics["history"]["loss"][0]
    assert metrics["history"]["val_loss"][1] < metrics["history"]["val_loss"][0]
    assert metrics["test_loss"] == pytest.approx(
        metrics["test_reconstruction"] + metrics["beta"] * metrics["test_kl"], rel=1e-4)
    assert 80 < metrics["test_loss"] < 400 and metrics["test_kl"] > 0
    return metrics


def test_vae_2d_end_to_end(tmp_path):
    result = run_script("vae_2d.py", "--train-size", 2000, "--epochs", 2, "--out", tmp_path,
                        env_extra={"VAE_DATA_DIR": str(real_data_dir())})
    assert result.returncode == 0, result.stderr[-3000:]
    check_run(tmp_path, "2d", ["Clusters2D.png", "latent2D.png"], latent_dim=2)
    assert "Test set (10,000 images)" in result.stdout
    assert str(tmp_path / "models" / "metrics_2d.json") in result.stdout
