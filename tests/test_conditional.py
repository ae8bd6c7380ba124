"""The conditional VAE (code/vae_conditional.py; its conv networks: vae/conv.py with `num_classes`): both
networks take the label, it is used in training on both paths, and the decoder draws the class it is asked for,
as a small classifier trained here judges it."""

import json

import keras
import numpy as np
import pytest

import vae_2d
from conftest import REPO_ROOT, run_script
from test_fused import BATCH_SIZE, FUSED_STEPS, TRAIN_IMAGES, WEIGHT_TOLERANCE, images
from test_scripts import assert_png
from vae.data import read_idx
from vae.evaluation import class_agreement, class_from_code, decode, encode, train_classifier
from vae.config import Config
from vae.fused import FusedTrainFunction
from vae.training import train
from vae.variants import build, num_classes_of
from vae_conditional import ConditionalVAE, build_decoder, build_encoder


@pytest.mark.parametrize("architecture, image_shape", [("mlp", (28, 28, 1)), ("conv", (32, 32, 3))])
def test_both_networks_take_the_label_and_use_it(architecture, image_shape):
    # The chapter's networks, or as --architecture conv rebuilds them (vae/variants.py, vae/conv.py).
    config = Config(architecture=architecture).check()
    vae = build(ConditionalVAE, build_encoder(2, 10, image_shape, seed=0), build_decoder(2, 10, image_shape), config)
    encoder, decoder = vae.encoder, vae.decoder
    assert any(isinstance(layer, keras.layers.Conv2D) for layer in encoder.layers) == (architecture == "conv")
    x = np.random.default_rng(0).uniform(size=(4, *image_shape)).astype("float32")
    labels = np.array([0, 3, 7, 9], dtype="int32")
    z_mean, z_log_var, z = (keras.ops.convert_to_numpy(t) for t in encoder([x, labels]))
    assert z_mean.shape == z_log_var.shape == z.shape == (4, 2)
    assert decoder([z, labels]).shape == (4, *image_shape)
    # Another label gives another code and another drawing: the label reaches both networks.
    other_mean = keras.ops.convert_to_numpy(encoder([x, (labels + 1) % 10])[0])
    assert np.abs(other_mean - z_mean).max() > 1e-4
    assert np.abs(decode(decoder, z, labels) - decode(decoder, z, (labels + 1) % 10)).max() > 1e-4
    # The VAE takes (images, labels): one reconstruction and one loss of each term per image.
    assert vae((x, labels)).shape == (4, *image_shape)
    reconstruction, kl = vae.compute_losses((keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(labels)))
    assert reconstruction.shape == kl.shape == (4,)
    assert num_classes_of(encoder) == 10 and num_classes_of(vae_2d.build_encoder(2)) is None


def test_the_fused_path_trains_a_conditional_vae_as_the_plain_path_does():
    """The labels travel with the images through both training paths (one epoch: a fused call of three full batches,
    then one of a full batch and the smaller last one); the label's weights are trained."""
    x, labels = images(TRAIN_IMAGES, 0), np.random.default_rng(0).integers(0, 10, TRAIN_IMAGES).astype("int32")
    val = (images(200, 1), np.random.default_rng(1).integers(0, 10, 200).astype("int32"))
    weights = []
    for fused_steps in (None, FUSED_STEPS):
        keras.utils.set_random_seed(0)
        vae = ConditionalVAE(build_encoder(2, 10, seed=1), build_decoder(2, 10))
        initial = [w.copy() for w in vae.decoder.get_weights()]
        history = train(vae, (x, labels), val, 1, BATCH_SIZE, 1e-3, seed=0, verbose=0,
                        steps_per_execution=FUSED_STEPS, fused_steps=fused_steps)
        assert np.isfinite(history["val_loss"]).all()
        weights.append(vae.get_weights())
        # The first Dense layer's rows for the one-hot label (after z's two rows) moved in training.
        first_kernel = vae.decoder.get_weights()[0]
        assert first_kernel.shape == (12, 256) and np.abs(first_kernel[2:] - initial[0][2:]).max() > 1e-4
    assert isinstance(vae.train_function, FusedTrainFunction)  # the second run was the fused path
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(*weights)) <= WEIGHT_TOLERANCE


def real_mnist(prefix, count):
    images = read_idx(REPO_ROOT / "data" / "mnist" / f"{prefix}-images-idx3-ubyte.gz")[:count]
    labels = read_idx(REPO_ROOT / "data" / "mnist" / f"{prefix}-labels-idx1-ubyte.gz")[:count]
    return images[..., None].astype("float32") / 255, labels.astype("int32")


def test_the_decoder_draws_the_class_it_is_asked_for():
    """Trained briefly on 6,000 real digits, the decoder's drawings from prior codes are read as the class asked
    for by a classifier trained on the same digits; the class means differ; the code holds little class."""
    x, labels = real_mnist("train", 6000)
    x_test, test_labels = real_mnist("t10k", 1000)
    keras.utils.set_random_seed(0)
    encoder, decoder = build_encoder(2, 10, seed=0), build_decoder(2, 10)
    train(ConditionalVAE(encoder, decoder), (x, labels), (x_test, test_labels), 5, 128, 1e-3, seed=0, verbose=0)

    judge = train_classifier(x, labels, seed=0)
    assert class_agreement(judge, x_test, test_labels) > 0.8  # the judge reads real test digits (0.89 measured)
    asked = np.repeat(np.arange(10), 20)
    drawn = decode(decoder, np.random.default_rng(0).standard_normal((len(asked), 2)), labels=asked)
    assert class_agreement(judge, drawn, asked) > 0.8
    # A wrong label is a control: the same drawings, judged against labels shifted by one, mostly disagree.
    assert class_agreement(judge, drawn, (asked + 1) % 10) < 0.2
    class_means = np.stack([drawn[asked == c].mean(axis=0) for c in range(10)])  # (10, 28, 28)
    distances = np.abs(class_means[:, None] - class_means[None]).mean(axis=(2, 3))
    assert distances[~np.eye(10, dtype=bool)].min() > 0.02  # mean pixel difference between any two classes

    # Given the label, the code keeps the style: the class is far harder to read off it than off an image.
    z_mean, _ = encode(encoder, x_test, labels=test_labels)
    assert class_from_code(z_mean, test_labels) < 0.6


def test_vae_conditional_end_to_end(tmp_path, small_mnist):
    result = run_script("vae_conditional.py", "--epochs", 2, "--no-xla", "--out", tmp_path,
                        env_extra={"VAE_DATA_DIR": str(small_mnist)})
    assert result.returncode == 0, result.stderr[-3000:]
    for figure in ["samples", "style_transfer", "reconstructions", "history"]:
        assert_png(tmp_path / "assets" / f"{figure}_conditional.png")
    for figure in ["ClustersConditional.png", "latentConditional.png"]:
        assert_png(tmp_path / "assets" / figure)
    encoder = keras.models.load_model(tmp_path / "models" / "encoder_conditional.h5", compile=False)
    decoder = keras.models.load_model(tmp_path / "models" / "decoder_conditional.h5", compile=False)
    assert [tuple(i.shape) for i in encoder.inputs] == [(None, 28, 28, 1), (None,)]
    assert [tuple(i.shape) for i in decoder.inputs] == [(None, 2), (None,)]
    metrics = json.loads((tmp_path / "models" / "metrics_conditional.json").read_text())
    assert metrics["model"] == "conditional" and metrics["num_classes"] == 10
    assert metrics["train_images"] == 2000 and metrics["test_images"] == 1000
    assert metrics["history"]["val_loss"][1] < metrics["history"]["val_loss"][0]
    assert metrics["test_elbo"] == -(metrics["test_reconstruction"] + metrics["test_kl"])
    assert metrics["samples_judged"] == 1000 and len(metrics["samples_of_asked_class_per_class"]) == 10
    assert metrics["samples_of_asked_class"] == pytest.approx(np.mean(metrics["samples_of_asked_class_per_class"]))
    assert 0 <= metrics["class_from_code_accuracy"] <= 1 and 0.5 < metrics["judge_test_accuracy"] <= 1
    z_mean = np.load(tmp_path / "models" / "test_encodings_conditional.npz")["z_mean"]
    assert metrics["class_from_code_accuracy"] == pytest.approx(class_from_code(z_mean, np.load(
        tmp_path / "models" / "test_encodings_conditional.npz")["labels"]))


def test_vae_conditional_refuses_a_bad_value_before_loading_data(tmp_path):
    result = run_script("vae_conditional.py", "--latent-dim", 1, "--out", tmp_path,
                        env_extra={"VAE_DATA_DIR": str(tmp_path / "no such folder")})
    assert result.returncode == 2 and "latent_dim" in result.stderr and "Traceback" not in result.stderr
