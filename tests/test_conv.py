"""The convolutional encoder and decoder for any image shape, a convolutional VAE that learns, the names
of a reader's experiment's outputs, and a chapter run end to end on colour images."""

import json
import runpy
import sys

import keras
import numpy as np
import pytest

from conftest import REPO_ROOT, real_fashion_dir, small_cifar10, write_cifar10
from vae.config import Config
from vae.data import read_idx
from vae.model import VAE, build_decoder, build_encoder, logits_model, reconstruction_loss

SHAPES = [(28, 28, 1), (32, 32, 3), (27, 23, 2)]  # MNIST's, CIFAR-10's, and sides that are not multiples of 4


@pytest.mark.parametrize("image_shape", SHAPES)
def test_conv_encoder_and_decoder_shapes(image_shape):
    encoder = build_encoder(3, architecture="conv", image_shape=image_shape)
    decoder = build_decoder(3, architecture="conv", image_shape=image_shape)
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
    """The binary cross-entropy summed over (h, w, c), in float64 from the image-shaped "logits" layer."""
    decoder = build_decoder(2, architecture="conv", image_shape=(32, 32, 3))
    z = np.random.default_rng(1).normal(size=(3, 2)).astype("float32")
    images = np.random.default_rng(2).random((3, 32, 32, 3), dtype="float32")
    image_logits = np.asarray(keras.Model(decoder.input, decoder.get_layer("logits").output)(z), np.float64)
    assert image_logits.shape == (3, 32, 32, 3)
    p = 1 / (1 + np.exp(-image_logits))
    expected = -np.sum(images * np.log(p) + (1 - images) * np.log(1 - p), axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(reconstruction_loss(images, logits_model(decoder)(z))), expected, rtol=1e-5)


def test_a_conv_vae_learns_in_a_few_steps():
    """Nine steps on 128 test digits of the repository's MNIST take the loss from about 544 nats to about 300."""
    keras.utils.set_random_seed(0)
    vae = VAE(build_encoder(2, architecture="conv"), build_decoder(2, architecture="conv"))
    vae.compile(optimizer=keras.optimizers.Adam(2e-3))
    digits = read_idx(REPO_ROOT / "data" / "mnist" / "t10k-images-idx3-ubyte.gz")[:128, :, :, None] / np.float32(255)
    first = vae.train_on_batch(digits, return_dict=True)["loss"]
    for _ in range(8):
        last = vae.train_on_batch(digits, return_dict=True)["loss"]
    assert last < first - 150, (first, last)


def test_an_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="architecture must be 'mlp' or 'conv', got 'resnet'"):
        build_encoder(2, architecture="resnet")


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
    training_encoder = build_encoder(2, architecture="conv", image_shape=(32, 32, 3))
    keras.Model(training_encoder.input, training_encoder.outputs[:2]).save(tmp_path / "encoder_c.h5")
    build_decoder(2, "continuous_bernoulli", architecture="conv", image_shape=(32, 32, 3)).save(tmp_path / "decoder_c.h5")
    folder = write_cifar10(tmp_path / "data", small_cifar10(per_batch=1, test=6))
    argv = ["--encoder", str(tmp_path / "encoder_c.h5"), "--decoder", str(tmp_path / "decoder_c.h5"), "--out", str(tmp_path),
            "--data-dir", str(folder), "--figures", "samples", "--samples", "3", "--no-quadrature", "--unmatched"]
    with pytest.raises(SystemExit):  # the data set is MNIST unless named
        explore.main(argv)
    assert "the model takes images (32, 32, 3), but mnist's are (28, 28, 1)" in capsys.readouterr().err
    assert explore.main([*argv, "--dataset", "cifar10"]) == 0
    result = json.loads((tmp_path / "models" / "likelihood_c.json").read_text())
    assert result["dataset"] == "cifar10" and result["likelihood_images"] == 6 and (tmp_path / "assets" / "samples_c.png").exists()
