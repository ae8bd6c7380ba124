"""The convolutional encoder and decoder for any image shape (vae/conv.py, --architecture conv), a convolutional
VAE that learns, the names of a reader's experiment's outputs, and a chapter run end to end on colour images."""

import json
import runpy
import sys

import keras
import numpy as np
import pytest

from conftest import REPO_ROOT, real_fashion_dir, small_cifar10, write_cifar10
from vae.config import Config, ConfigError
from vae.conv import build_conv_decoder, build_conv_encoder
from vae.data import read_idx
from vae.likelihood import logits_model
from vae.variants import build
from vae_2d import VAE, Sampling, build_decoder, build_encoder

SHAPES = [(28, 28, 1), (32, 32, 3), (27, 23, 2)]  # MNIST's, CIFAR-10's, and sides that are not multiples of 4


@pytest.mark.parametrize("image_shape", SHAPES)
def test_conv_encoder_and_decoder_shapes(image_shape):
    encoder = build_conv_encoder(3, image_shape, Sampling)
    decoder = build_conv_decoder(3, image_shape)
    images = np.random.default_rng(0).random((4, *image_shape), dtype="float32")
    z_mean, z_log_var, z = (np.asarray(t) for t in encoder(images))
    assert z_mean.shape == z_log_var.shape == z.shape == (4, 3)
    decoded = np.asarray(decoder(z))
    assert decoded.shape == (4, *image_shape) and 0 <= decoded.min() and decoded.max() <= 1
    assert [layer.name for layer in decoder.layers[-3:]] == ["logits", "pixel_means", "image"]
    assert any(isinstance(layer, keras.layers.Conv2D) for layer in encoder.layers)
    # One logit per pixel and channel, flattened in the images' own order: σ(logits) are the pixel means.
    logits = np.asarray(logits_model(decoder)(z))
    assert logits.shape == (4, int(np.prod(image_shape)))
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), decoded.reshape(4, -1), rtol=1e-5, atol=1e-6)


def test_conv_reconstruction_pairs_every_pixel_and_channel_with_its_logit():
    """The VAE's binary cross-entropy summed over (h, w, c), against float64 from the image-shaped logits (the
    layer "logit_image", before "logits" flattens them)."""
    decoder = build_conv_decoder(2, (32, 32, 3))
    vae = VAE(build_conv_encoder(2, (32, 32, 3), Sampling), decoder)
    z = np.random.default_rng(1).normal(size=(3, 2)).astype("float32")
    images = np.random.default_rng(2).random((3, 32, 32, 3), dtype="float32")
    image_logits = np.asarray(keras.Model(decoder.input, decoder.get_layer("logit_image").output)(z), np.float64)
    assert image_logits.shape == (3, 32, 32, 3)
    p = 1 / (1 + np.exp(-image_logits))
    expected = -np.sum(images * np.log(p) + (1 - images) * np.log(1 - p), axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(vae.reconstruction_loss(images, vae.decoder_logits(z))), expected, rtol=1e-5)


def test_a_conv_vae_learns_in_a_few_steps():
    """Nine steps on 128 test digits of the repository's MNIST take the loss from about 544 nats to about 300."""
    keras.utils.set_random_seed(0)
    vae = build(VAE, build_encoder(2), build_decoder(2), Config(architecture="conv").check())  # --architecture conv
    assert any(isinstance(layer, keras.layers.Conv2D) for layer in vae.encoder.layers + vae.decoder.layers)
    vae.compile(optimizer=keras.optimizers.Adam(2e-3))
    digits = read_idx(REPO_ROOT / "data" / "mnist" / "t10k-images-idx3-ubyte.gz")[:128, :, :, None] / np.float32(255)
    losses = vae.fit(digits, epochs=9, batch_size=128, shuffle=False, verbose=0).history["loss"]  # one step an epoch
    first, last = losses[0], losses[-1]
    assert last < first - 150, (first, last)


def test_an_unknown_architecture_is_refused():
    with pytest.raises(ConfigError, match="architecture must be one of 'mlp', 'conv', got 'resnet'"):
        Config(architecture="resnet").check()  # --architecture resnet: refused before any model is built


# ---------------------------------------------------------------------------------------------
# A reader's experiment: its own output names, its own data


@pytest.fixture
def experiment_of(tmp_path, monkeypatch):
    """experiment_of(**fields): an Experiment "2d" of Config(**fields) writing under tmp_path, its lock
    released and sys.excepthook restored afterwards."""
    from vae.experiment import Experiment

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    made = []

    def make(**fields):
        made.append(Experiment(Config(out=tmp_path, **fields), "2d", min_latent_dim=2))
        return made[-1]

    yield make
    for experiment in made:
        experiment.lock.release()


@pytest.mark.parametrize("fields, suffix", [
    ({}, ""),
    ({"dataset": "fashion_mnist", "architecture": "conv"}, "_fashion_mnist_conv"),
    ({"dataset": "cifar10"}, "_cifar10"),
    ({"architecture": "conv"}, "_conv"),
])
def test_an_experiments_outputs_carry_its_data_set_and_architecture(experiment_of, fields, suffix):
    experiment = experiment_of(**fields)
    assert experiment.asset("Clusters2D.png").relative_to(experiment.outputs.staging).as_posix() == \
        f"assets/Clusters2D{suffix}.png"
    assert experiment.output("models/metrics_2d.json").name == f"metrics_2d{suffix}.json"
    assert experiment.lock.path.name == f".2d{suffix}.lock" and experiment.progress.folder.name == f".interrupted_2d{suffix}"


def test_fashion_mnist_through_the_experiment(experiment_of, capsys):
    folder = real_fashion_dir()
    (x_train, y_train), (x_test, _) = experiment_of(dataset="fashion_mnist", data_dir=folder, train_size=100).load_data()
    assert x_train.shape == (100, 28, 28, 1) and x_test.shape == (10000, 28, 28, 1) and y_train.dtype == np.int32
    assert f"Fashion-MNIST from the folder {folder}" in capsys.readouterr().out


def test_the_2d_chapter_runs_on_colour_images_with_convolutions(tmp_path, monkeypatch):
    """vae_2d.py --dataset cifar10 --architecture conv, in this process, on a small CIFAR-10 of the test's own:
    every figure drawn in colour, the outputs named apart from the tutorial's, the continuous Bernoulli."""
    folder = write_cifar10(tmp_path / "data", small_cifar10(per_batch=8, test=24, seed=3))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    chapter = runpy.run_path(str(REPO_ROOT / "code" / "vae_2d.py"))
    config = Config(latent_dim=2, epochs=1, batch_size=40, dataset="cifar10", architecture="conv", xla=False,
                    grid_size=3, data_dir=folder, out=tmp_path / "out")
    chapter["main"](config)
    metrics = json.loads((tmp_path / "out" / "models" / "metrics_2d_cifar10_conv.json").read_text())
    assert (metrics["dataset"], metrics["architecture"], metrics["likelihood"]) == ("cifar10", "conv", "continuous_bernoulli")
    assert metrics["train_images"] == 40 and "CIFAR-10 colour values" in metrics["data_convention"]
    written = sorted(path.name for path in (tmp_path / "out" / "assets").iterdir())
    assert written and all(name.endswith("_cifar10_conv.png") for name in written)
    assert "samples_2d_cifar10_conv.png" in written and "Clusters2D_cifar10_conv.png" in written
    from PIL import Image
    samples = np.asarray(Image.open(tmp_path / "out" / "assets" / "reconstructions_2d_cifar10_conv.png").convert("RGB"))
    assert np.abs(samples[..., 0].astype(int) - samples[..., 2]).max() > 50, "the test images are drawn in colour"


def test_explore_loads_a_conv_model_with_its_image_shape(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("explore", REPO_ROOT / "code" / "explore.py")
    explore = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(explore)
    keras.utils.set_random_seed(0)
    config = Config(dataset="cifar10", architecture="conv", likelihood="continuous_bernoulli").check()
    vae = build(VAE, build_encoder(2, (32, 32, 3)), build_decoder(2, (32, 32, 3)), config)  # as a run builds it
    keras.Model(vae.encoder.input, vae.encoder.outputs[:2]).save(tmp_path / "encoder_c.h5")
    vae.decoder.save(tmp_path / "decoder_c.h5")
    folder = write_cifar10(tmp_path / "data", small_cifar10(per_batch=1, test=6))
    argv = ["--encoder", str(tmp_path / "encoder_c.h5"), "--decoder", str(tmp_path / "decoder_c.h5"), "--out", str(tmp_path),
            "--data-dir", str(folder), "--figures", "samples", "--samples", "3", "--no-quadrature", "--unmatched"]
    with pytest.raises(SystemExit):  # the data set is MNIST unless named
        explore.main(argv)
    assert "the model takes images (32, 32, 3), but mnist's are (28, 28, 1)" in capsys.readouterr().err
    assert explore.main([*argv, "--dataset", "cifar10"]) == 0
    result = json.loads((tmp_path / "models" / "likelihood_c.json").read_text())
    assert result["dataset"] == "cifar10" and result["likelihood_images"] == 6 and (tmp_path / "assets" / "samples_c.png").exists()
