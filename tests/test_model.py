"""The Sampling layer, the encoder and decoder, the VAE's losses, and saving to .h5."""

import json
import re

import keras
import numpy as np
import pytest

from conftest import run_python
from vae.model import VAE, Sampling, build_decoder, build_encoder, reconstruction_loss
from vae.pixels import ContinuousBernoulliMean, continuous_bernoulli_log_normalizer
from vae.priors import GaussianPrior, kl_divergence


def test_sampling_has_the_posterior_mean_and_variance():
    mu = np.array([[1.5, -2.0, 0.0]], "float32")
    log_var = np.log(np.array([[0.25, 4.0, 1.0]], "float32"))
    n = 200_000
    z = np.asarray(Sampling(seed=1)([np.repeat(mu, n, 0), np.repeat(log_var, n, 0)]))
    assert z.shape == (n, 3)
    np.testing.assert_allclose(z.mean(axis=0), mu[0], atol=0.02)
    np.testing.assert_allclose(z.var(axis=0), np.exp(log_var[0]), rtol=0.02)
    # Independent coordinates: the covariance is diagonal.
    assert abs(np.corrcoef(z.T)[0, 1]) < 0.01


def test_sampling_draws_fresh_noise_each_call():
    mu, log_var = np.zeros((4, 2), "float32"), np.zeros((4, 2), "float32")
    layer = Sampling(seed=3)
    assert not np.allclose(np.asarray(layer([mu, log_var])), np.asarray(layer([mu, log_var])))


@pytest.mark.parametrize("latent_dim", [1, 2, 3])
def test_encoder_and_decoder_shapes(latent_dim):
    encoder, decoder = build_encoder(latent_dim), build_decoder(latent_dim)
    images = np.random.default_rng(0).random((5, 28, 28, 1), dtype="float32")
    z_mean, z_log_var, z = (np.asarray(t) for t in encoder(images))
    assert z_mean.shape == z_log_var.shape == z.shape == (5, latent_dim)
    decoded = np.asarray(decoder(z))
    assert decoded.shape == (5, 28, 28, 1)
    assert decoded.min() >= 0 and decoded.max() <= 1


def test_architecture_is_the_tutorials():
    encoder, decoder = build_encoder(2), build_decoder(2)
    dense = lambda model: [(layer.units, layer.activation.__name__) for layer in model.layers
                           if isinstance(layer, keras.layers.Dense)]
    assert dense(encoder) == [(512, "relu"), (256, "relu"), (2, "linear"), (2, "linear")]
    assert dense(decoder) == [(256, "relu"), (512, "relu"), (784, "linear")]
    assert decoder.get_layer("pixel_means").activation.__name__ == "sigmoid"
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in encoder.layers)


def test_reconstruction_loss_is_summed_binary_cross_entropy():
    rng = np.random.default_rng(0)
    images = rng.random((4, 28, 28, 1)).astype("float32")
    logits = rng.normal(scale=3, size=(4, 784)).astype("float32")
    p = 1 / (1 + np.exp(-logits.astype("float64")))
    x = images.reshape(4, 784)
    expected = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)
    np.testing.assert_allclose(np.asarray(reconstruction_loss(images, logits)), expected, rtol=1e-5)


def test_vae_losses_are_reconstruction_plus_beta_kl():
    keras.utils.set_random_seed(0)
    encoder, decoder = build_encoder(2), build_decoder(2)
    vae = VAE(encoder, decoder, beta=0.5)
    images = np.random.default_rng(1).random((8, 28, 28, 1)).astype("float32")
    loss, reconstruction, kl = (float(t) for t in vae.compute_losses(images))
    assert loss == pytest.approx(reconstruction + 0.5 * kl, rel=1e-6)
    z_mean, z_log_var, _ = encoder(images)
    assert kl == pytest.approx(float(np.mean(kl_divergence(z_mean, z_log_var))), rel=1e-5)
    assert isinstance(vae.prior, GaussianPrior) and vae.prior.is_standard


def test_a_few_train_steps_lower_the_loss():
    keras.utils.set_random_seed(0)
    vae = VAE(build_encoder(2), build_decoder(2))
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = (np.random.default_rng(2).random((256, 28, 28, 1)) > 0.7).astype("float32")
    first = vae.train_on_batch(images, return_dict=True)["loss"]
    for _ in range(30):
        last = vae.train_on_batch(images, return_dict=True)["loss"]
    assert last < first - 50


def test_saved_models_load_in_a_fresh_process_with_the_same_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    encoder, decoder = build_encoder(2), build_decoder(2)
    from vae.saving import save_model
    save_model(encoder, tmp_path / "encoder.h5")
    save_model(decoder, tmp_path / "decoder.h5")
    images = np.random.default_rng(3).random((6, 28, 28, 1)).astype("float32")
    z = np.random.default_rng(4).normal(size=(6, 2)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "z.npy", z)
    z_mean, z_log_var, _ = encoder(images)
    decoded = decoder(z)

    result = run_python(f"""
import json, numpy as np, keras
import vae.model  # registers Sampling
folder = {str(tmp_path)!r}
encoder = keras.models.load_model(folder + "/encoder.h5", safe_mode=True)
decoder = keras.models.load_model(folder + "/decoder.h5", safe_mode=True)
z_mean, z_log_var, z = encoder(np.load(folder + "/images.npy"))
np.save(folder + "/z_mean.npy", np.asarray(z_mean)); np.save(folder + "/z_log_var.npy", np.asarray(z_log_var))
np.save(folder + "/decoded.npy", np.asarray(decoder(np.load(folder + "/z.npy"))))
print(json.dumps([type(l).__name__ for l in encoder.layers]))
""")
    assert result.returncode == 0, result.stderr
    assert "Sampling" in json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.load(tmp_path / "z_mean.npy"), np.asarray(z_mean), atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "z_log_var.npy"), np.asarray(z_log_var), atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "decoded.npy"), np.asarray(decoded), atol=1e-6)


def test_the_bernoulli_reconstruction_is_bit_for_bit_the_summed_cross_entropy():
    """The default likelihood computes what the committed models were trained with, to the last bit."""
    rng = np.random.default_rng(5)
    images = rng.random((4, 28, 28, 1)).astype("float32")
    logits = rng.normal(scale=3, size=(4, 784)).astype("float32")
    before = keras.ops.sum(keras.ops.binary_crossentropy(images.reshape(-1, 784), logits, from_logits=True), axis=-1)
    np.testing.assert_array_equal(np.asarray(reconstruction_loss(images, logits)), np.asarray(before))


@pytest.mark.parametrize("likelihood, pixel_means", [("bernoulli", keras.layers.Activation),
                                                     ("continuous_bernoulli", ContinuousBernoulliMean)])
def test_both_decoders_end_in_logits_pixel_means_and_image(likelihood, pixel_means):
    decoder = build_decoder(2, likelihood=likelihood)
    assert [layer.name for layer in decoder.layers[-3:]] == ["logits", "pixel_means", "image"]
    assert type(decoder.get_layer("pixel_means")) is pixel_means


def test_the_vae_refuses_a_decoder_built_for_another_likelihood():
    with pytest.raises(ValueError, match="decoder was built for likelihood='continuous_bernoulli', not 'bernoulli'"):
        VAE(build_encoder(2), build_decoder(2, likelihood="continuous_bernoulli"))


def test_the_continuous_bernoulli_reconstruction_adds_the_normalizer():
    rng = np.random.default_rng(6)
    images = rng.random((4, 28, 28, 1)).astype("float32")
    logits = rng.normal(scale=3, size=(4, 784)).astype("float32")
    normalizer = np.sum(np.asarray(continuous_bernoulli_log_normalizer(logits)), axis=1)
    np.testing.assert_allclose(np.asarray(reconstruction_loss(images, logits, "continuous_bernoulli")),
                               np.asarray(reconstruction_loss(images, logits)) - normalizer, rtol=1e-5)


def test_free_bits_stop_the_kl_gradient_of_a_dimension_below_the_floor():
    """Free bits λ = 0.5 nats, every image encoded alike (μ = (3, 0.1), ln σ² = −1): dimension 0's KL is
    4.68 nats and gets the ordinary KL gradient; dimension 1's is 0.19, below λ, and gets none. The loss
    counts dimension 1's KL as λ; the reported kl stays the true KL."""
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    encoder, decoder = build_encoder(2), build_decoder(2)
    mean_head, log_var_head = encoder.get_layer("z_mean"), encoder.get_layer("z_log_var")
    mean_head.set_weights([np.zeros_like(mean_head.kernel), np.array([3.0, 0.1], "float32")])
    log_var_head.set_weights([np.zeros_like(log_var_head.kernel), np.full(2, -1.0, "float32")])
    images = np.random.default_rng(7).random((8, 28, 28, 1)).astype("float32")
    kl_0, kl_1 = 0.5 * (np.exp(-1) + 9.0 - 1 + 1), 0.5 * (np.exp(-1) + 0.01 - 1 + 1)  # ½(σ² + μ² − 1 − ln σ²)

    def kl_term_and_gradients(vae):
        with tf.GradientTape() as tape:
            loss, reconstruction, kl = vae.compute_losses(images, training=True)
            kl_in_loss = loss - reconstruction  # the gradient of the reconstruction cancels exactly
        heads = [mean_head.kernel, mean_head.bias, log_var_head.kernel, log_var_head.bias]
        return float(kl_in_loss), float(kl), [np.asarray(g) for g in tape.gradient(kl_in_loss, heads)]

    plain_term, plain_kl, plain_gradients = kl_term_and_gradients(VAE(encoder, decoder))
    free_term, free_kl, free_gradients = kl_term_and_gradients(VAE(encoder, decoder, free_bits=0.5))
    assert plain_kl == pytest.approx(kl_0 + kl_1, rel=1e-5) and free_kl == pytest.approx(kl_0 + kl_1, rel=1e-5)
    assert plain_term == pytest.approx(plain_kl, rel=1e-4)
    assert free_term == pytest.approx(kl_0 + 0.5, rel=1e-4)
    for plain, free in zip(plain_gradients, free_gradients):
        np.testing.assert_allclose(free[..., 0], plain[..., 0], rtol=1e-6)  # dimension 0: the ordinary gradient
        assert np.all(free[..., 1] == 0) and np.any(plain[..., 1] != 0)  # dimension 1: none under free bits
    np.testing.assert_allclose(free_gradients[1], [3.0, 0.0], rtol=1e-6)  # ∂KL₀/∂μ₀ = μ₀


def test_free_bits_need_a_prior_whose_kl_splits_per_dimension():
    with pytest.raises(ValueError, match="diagonal covariance"):
        VAE(build_encoder(2), build_decoder(2), prior=GaussianPrior([[1.0, 0.4], [0.4, 0.5]]), free_bits=0.25)
    assert VAE(build_encoder(2), build_decoder(2), prior=GaussianPrior([[2.0, 0.0], [0.0, 0.5]]), free_bits=0.25)


def test_the_default_mlp_is_the_tutorials_layer_for_layer():
    """The committed models and the page depend on it: the same layers, names and weight shapes as before
    the convolutional architecture came (Keras numbers repeated names: dense, dense_1, ...)."""
    def layers_of(model):
        return [(type(layer).__name__, re.sub(r"_\d+$", "", layer.name), [tuple(w.shape) for w in layer.weights])
                for layer in model.layers]

    assert layers_of(build_encoder(2)) == [
        ("InputLayer", "image", []), ("Flatten", "flatten", []), ("Dense", "dense", [(784, 512), (512,)]),
        ("Dense", "dense", [(512, 256), (256,)]), ("Dense", "z_mean", [(256, 2), (2,)]),
        ("Dense", "z_log_var", [(256, 2), (2,)]), ("Sampling", "z", [])]
    assert layers_of(build_decoder(2)) == [
        ("InputLayer", "z", []), ("Dense", "dense", [(2, 256), (256,)]), ("Dense", "dense", [(256, 512), (512,)]),
        ("Dense", "logits", [(512, 784), (784,)]), ("Activation", "pixel_means", []), ("Reshape", "image", [])]


def test_the_default_vaes_reconstruction_is_the_formula_of_before():
    """The VAE's reconstruction term, bit for bit: −Σ ln p(x|z) over the 784 logits of the "logits" layer."""
    keras.utils.set_random_seed(0)
    encoder, decoder = build_encoder(2, seed=0), build_decoder(2)
    vae = VAE(encoder, decoder)
    assert vae.decoder_logits.layers == keras.Model(decoder.input, decoder.get_layer("logits").output).layers
    images = np.random.default_rng(8).random((6, 28, 28, 1)).astype("float32")
    z = np.random.default_rng(9).normal(size=(6, 2)).astype("float32")
    logits = decoder.get_layer("logits").output
    before = keras.ops.sum(keras.ops.binary_crossentropy(images.reshape(-1, 784),
                                                         keras.Model(decoder.input, logits)(z), from_logits=True), axis=-1)
    np.testing.assert_array_equal(np.asarray(reconstruction_loss(images, vae.decoder_logits(z))), np.asarray(before))
