"""The pixels' likelihood (vae/pixels.py): the continuous Bernoulli is a density on [0, 1] with the mean
it states, finite with finite gradients everywhere; binarized training draws fresh binary images at
every step, while the test set's one draw is fixed; a small continuous-Bernoulli VAE trains and saves.
The VAEs are the 2-D chapter's, extended as the flags --binarize and --likelihood extend it (vae/variants.py)."""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae import pixels
from vae.config import Config, ConfigError
from vae.data import binarize, load_mnist
from vae import variants
from vae.variants import build
from vae_2d import VAE, build_decoder, build_encoder

# Near ½ (l = 0), on both sides of the series' threshold, and near 0 and 1 (|l| = 10, 20).
LOGITS = [0.0, 1e-4, -1e-4, 1e-2, -1e-2, 0.0999, 0.1001, -0.5, 1.0, -3.0, 10.0, -10.0, 20.0, -20.0]


def grid(points=20_000):
    """Midpoints of `points` equal cells of [0, 1], float64, and the cells' width."""
    return (np.arange(points) + 0.5) / points, 1.0 / points


def density(x, logit):
    """p(x|l) of one pixel on the points x (G,), float64, from `log_likelihood` in float32."""
    logits = np.full((len(x), 1), logit, np.float32)
    log_p = pixels.log_likelihood(x[:, None].astype(np.float32), logits, "continuous_bernoulli")
    return np.exp(np.asarray(log_p, np.float64))


@pytest.mark.parametrize("logit", LOGITS)
def test_the_continuous_bernoulli_is_a_density_on_0_1_with_its_stated_mean(logit):
    x, width = grid()
    p = density(x, logit)
    assert np.sum(p) * width == pytest.approx(1.0, abs=1e-5)
    mean = float(pixels.continuous_bernoulli_mean(np.float32(logit)))
    assert np.sum(x * p) * width == pytest.approx(mean, abs=1e-5)


def test_its_mean_is_one_half_at_logit_0_and_moves_towards_0_and_1():
    means = np.asarray(pixels.continuous_bernoulli_mean(np.array([-1e4, -20.0, 0.0, 20.0, 1e4], np.float32)))
    assert means[2] == 0.5
    np.testing.assert_allclose(means, [1e-4, 0.05, 0.5, 0.95, 1 - 1e-4], rtol=1e-6)


def reference_log_normalizer(logits):
    """ln C(l) = ln(l / tanh(l/2)) in float64; ln 2 at 0."""
    logits = np.asarray(logits, np.float64)
    safe = np.where(logits == 0, 1.0, logits)
    return np.where(logits == 0, np.log(2.0), np.log(safe / np.tanh(safe / 2)))


def reference_mean(logits):
    """σ(l)/tanh(l/2) − 1/l = 1/(1 − e⁻ˡ) − 1/l in float64, for l ≠ 0."""
    logits = np.asarray(logits, np.float64)
    return 1 / -np.expm1(-logits) - 1 / logits


def test_log_normalizer_and_mean_match_float64_on_both_sides_of_the_series_threshold():
    logits = np.concatenate([np.geomspace(1e-4, 60, 2001), [pixels.SMALL_LOGIT]])
    logits = np.concatenate([logits, -logits]).astype(np.float32)
    np.testing.assert_allclose(np.asarray(pixels.continuous_bernoulli_log_normalizer(logits)),
                               reference_log_normalizer(logits), rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(pixels.continuous_bernoulli_mean(logits)), reference_mean(logits),
                               rtol=0, atol=5e-6)
    assert float(pixels.continuous_bernoulli_log_normalizer(np.float32(0.0))) == pytest.approx(np.log(2), abs=1e-7)


def gradients(function, logits):
    logits = tf.constant(logits, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        values = function(logits)
    return values.numpy(), tape.gradient(values, logits).numpy()


def test_log_normalizer_mean_and_likelihood_are_finite_with_finite_gradients_everywhere():
    logits = np.concatenate([np.linspace(-50, 50, 100_001), [0.0, 1e-30, -1e-30]]).astype(np.float32)
    extremes = np.array([1e30, -1e30, 3e38, -3e38], np.float32)
    x = np.random.default_rng(0).random((1, len(logits))).astype(np.float32)
    for function, inputs in [(pixels.continuous_bernoulli_log_normalizer, np.concatenate([logits, extremes])),
                             (pixels.continuous_bernoulli_mean, np.concatenate([logits, extremes])),
                             (lambda l: pixels.log_likelihood(x, l[None, :], "continuous_bernoulli"), logits)]:
        values, slopes = gradients(function, inputs)
        assert np.all(np.isfinite(values)) and np.all(np.isfinite(slopes))
    # d ln C/dl = 1/l − 1/sinh l: l/6 near 0, where the closed form loses its digits.
    _, slopes = gradients(pixels.continuous_bernoulli_log_normalizer, logits[:100_001])
    l = logits[:100_001].astype(np.float64)
    safe = np.where(np.abs(l) < 1e-3, 1.0, l)
    expected = np.where(np.abs(l) < 1e-3, l / 6, 1 / safe - 1 / np.sinh(safe))
    np.testing.assert_allclose(slopes, expected, rtol=1e-3, atol=1e-6)


def test_the_log_partition_gives_the_same_log_likelihood():
    """ln p(x|l) = x·l − A(l), the form vae/likelihood.py computes, equals `log_likelihood`."""
    rng = np.random.default_rng(1)
    x = rng.random((3, 784)).astype(np.float32)
    logits = rng.normal(scale=4, size=(3, 784)).astype(np.float32)
    for likelihood in ("bernoulli", "continuous_bernoulli"):
        direct = np.asarray(pixels.log_likelihood(x, logits, likelihood))
        partition = np.sum(x * logits - np.asarray(pixels.log_partition(logits, likelihood)), axis=1)
        np.testing.assert_allclose(direct, partition, rtol=1e-5)


def test_an_unknown_likelihood_is_refused():
    with pytest.raises(ValueError, match="likelihood must be one of 'bernoulli', 'continuous_bernoulli', got 'gaus"):
        pixels.log_likelihood(np.zeros((1, 784), np.float32), np.zeros((1, 784), np.float32), "gaussian")
    with pytest.raises(ConfigError, match="likelihood must be one of 'bernoulli', 'continuous_bernoulli', got 'gaus"):
        Config(likelihood="gaussian").check()  # --likelihood gaussian: refused before any model is built


# ---------------------------------------------------------------------------------------------
# Binarized MNIST


def test_bernoulli_draws_are_binary_fresh_each_time_and_average_to_the_pixel_means():
    means = np.linspace(0, 1, 784, dtype=np.float32).reshape(1, 28, 28, 1)
    seed_generator = keras.random.SeedGenerator(0)
    first, draws = (np.asarray(variants.sample_bernoulli(np.repeat(means, 2000, axis=0), seed_generator))
                    for _ in range(2))
    assert set(np.unique(draws)) == {0.0, 1.0}
    assert not np.array_equal(first, draws) and not np.array_equal(draws[0], draws[1])
    assert np.all(draws[:, 0, 0, 0] == 0) and np.all(draws[:, -1, -1, 0] == 1)
    # Seeded, so the same every run; 6 standard errors apart would be a bug, not bad luck.
    standard_error = np.sqrt(means * (1 - means) / len(draws)) + 1e-9
    assert np.all(np.abs(draws.mean(axis=0) - means) <= 6 * standard_error)


class RecordingVAE(VAE):
    """A VAE that keeps the images its training steps see."""

    def compute_losses(self, images, training=False):
        if training:
            self.seen.append(np.asarray(images))
        return super().compute_losses(images, training=training)


@pytest.mark.parametrize("binarize_on", [True, False])
def test_training_steps_see_fresh_binary_draws_only_when_binarizing(binarize_on):
    keras.utils.set_random_seed(0)
    config = Config(binarize="dynamic" if binarize_on else "off", seed=0).check()
    vae = build(RecordingVAE, build_encoder(2, seed=0), build_decoder(2), config)
    vae.seen = []
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    images = np.random.default_rng(2).random((16, 28, 28, 1)).astype(np.float32)
    vae.fit(images, epochs=2, batch_size=16, shuffle=False, verbose=0)  # two steps on the same 16 images
    first, second = vae.seen
    if binarize_on:
        assert set(np.unique(first)) == {0.0, 1.0} and not np.array_equal(first, second)
    else:
        assert np.array_equal(first, images) and np.array_equal(second, images)


def test_the_test_set_is_binarized_once_the_same_in_every_load(small_mnist):
    _, (x_test, _) = load_mnist(small_mnist)
    once, again, other = binarize(x_test), binarize(x_test.copy()), binarize(x_test, seed=1)
    assert np.array_equal(once, again) and not np.array_equal(once, other)
    assert once.dtype == np.float32 and once.shape == x_test.shape and set(np.unique(once)) == {0.0, 1.0}
    assert abs(once.mean() - x_test.mean()) < 0.005  # 784,000 draws: the standard error is about 0.0004


def test_a_binarized_run_tests_on_that_draw_and_trains_on_grayscale(small_mnist, tmp_path, monkeypatch):
    """Experiment.load_data: the training images stay grayscale (the VAE draws them afresh every step)."""
    from vae.experiment import Experiment

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # Experiment sets its own
    experiment = Experiment(Config(binarize="dynamic", data_dir=str(small_mnist), out=str(tmp_path), train_size=500),
                            name="2d")
    try:
        (x_train, _), (x_test, _) = experiment.load_data()
    finally:
        experiment.lock.release()
    (gray_train, _), (gray_test, _) = load_mnist(small_mnist)
    assert np.array_equal(x_train, gray_train[:500])
    assert np.array_equal(x_test, binarize(gray_test))


# ---------------------------------------------------------------------------------------------
# A continuous-Bernoulli VAE


def test_a_small_continuous_bernoulli_vae_trains_saves_and_loads(small_mnist, tmp_path):
    (x_train, _), _ = load_mnist(small_mnist)
    keras.utils.set_random_seed(0)
    config = Config(likelihood="continuous_bernoulli", seed=0).check()  # on grayscale pixels: binarized, it is refused
    vae = build(VAE, build_encoder(2, seed=0), build_decoder(2), config)
    decoder = vae.decoder
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = x_train[:256]
    losses = vae.fit(images, epochs=15, batch_size=256, shuffle=False, verbose=0).history["loss"]  # 15 steps
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0] - 100, losses

    assert pixels.decoder_likelihood(decoder) == "continuous_bernoulli"
    assert pixels.decoder_likelihood(build_decoder(2)) == "bernoulli"
    decoder.save(tmp_path / "decoder.h5")
    loaded = keras.models.load_model(tmp_path / "decoder.h5", compile=False)  # registered by `import vae.pixels`
    assert type(loaded.get_layer("pixel_means")) is pixels.ContinuousBernoulliMean
    assert pixels.decoder_likelihood(loaded) == "continuous_bernoulli"

    z = np.random.default_rng(3).normal(scale=2, size=(64, 2)).astype(np.float32)
    decoded = np.asarray(loaded(z))
    assert decoded.min() >= 0 and decoded.max() <= 1
    np.testing.assert_array_equal(decoded, np.asarray(decoder(z)))
    logits = keras.Model(decoder.input, decoder.get_layer("logits").output)(z)
    np.testing.assert_allclose(decoded.reshape(64, 784), np.asarray(pixels.continuous_bernoulli_mean(logits)),
                               atol=1e-7)
