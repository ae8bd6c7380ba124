"""The 2-D chapter's model (code/vae_2d.py): the Sampling layer, the encoder and decoder, the VAE's losses,
and saving to .h5; the correlated chapter's KL; and the flags' extensions of the model (vae/variants.py)."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_python
from vae.config import Config
from vae.pixels import ContinuousBernoulliMean, continuous_bernoulli_log_normalizer
from vae.priors import GaussianPrior
from vae.variants import build
from vae_2d import VAE, Sampling, build_decoder, build_encoder
from vae_correlated import CorrelatedVAE

IMAGES = np.random.default_rng(1).random((8, 28, 28, 1)).astype("float32")


def test_sampling_has_the_posterior_mean_and_variance():
    mu = np.array([[1.5, -2.0, 0.0]], "float32")
    log_var = np.log(np.array([[0.25, 4.0, 1.0]], "float32"))
    n = 200_000
    z = np.asarray(Sampling(seed=1)([np.repeat(mu, n, 0), np.repeat(log_var, n, 0)]))
    assert z.shape == (n, 3)
    np.testing.assert_allclose(z.mean(axis=0), mu[0], atol=0.02)
    np.testing.assert_allclose(z.var(axis=0), np.exp(log_var[0]), rtol=0.02)
    assert abs(np.corrcoef(z.T)[0, 1]) < 0.01  # independent coordinates: the covariance is diagonal


def test_sampling_draws_fresh_noise_each_call():
    mu, log_var = np.zeros((4, 2), "float32"), np.zeros((4, 2), "float32")
    layer = Sampling(seed=3)
    assert not np.allclose(np.asarray(layer([mu, log_var])), np.asarray(layer([mu, log_var])))


@pytest.mark.parametrize("latent_dim", [1, 2, 3])
def test_encoder_and_decoder_shapes(latent_dim):
    encoder, decoder = build_encoder(latent_dim), build_decoder(latent_dim)
    z_mean, z_log_var, z = (np.asarray(t) for t in encoder(IMAGES[:5]))
    assert z_mean.shape == z_log_var.shape == z.shape == (5, latent_dim)
    decoded = np.asarray(decoder(z))
    assert decoded.shape == (5, 28, 28, 1)
    assert decoded.min() >= 0 and decoded.max() <= 1


def test_the_networks_are_the_tutorials_layer_for_layer():
    """The page's explorers and the saved models depend on these names (Keras numbers repeats: dense, dense_1)."""
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
    assert build_decoder(2).get_layer("pixel_means").activation.__name__ == "sigmoid"


def test_the_reconstruction_is_the_summed_binary_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3, size=(8, 784)).astype("float32")
    p = 1 / (1 + np.exp(-logits.astype("float64")))
    x = IMAGES.reshape(8, 784)
    expected = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)
    vae = VAE(build_encoder(2), build_decoder(2))
    np.testing.assert_allclose(np.asarray(vae.reconstruction_loss(IMAGES, logits)), expected, rtol=1e-5)


def test_the_kl_is_the_textbook_formula_and_zero_only_at_the_prior():
    vae = VAE(build_encoder(3), build_decoder(3))
    rng = np.random.default_rng(2)
    mu, log_var = rng.normal(size=(6, 3)).astype("float32"), rng.normal(size=(6, 3)).astype("float32")
    expected = 0.5 * np.sum(np.exp(log_var) + mu**2 - 1 - log_var, axis=1)  # ½ Σ (σ² + μ² − 1 − ln σ²)
    np.testing.assert_allclose(np.asarray(vae.kl_divergence(mu, log_var)), expected, rtol=1e-5)
    assert np.all(np.asarray(vae.kl_divergence(mu, log_var)) > 0)
    assert float(vae.kl_divergence(np.zeros((1, 3), "float32"), np.zeros((1, 3), "float32"))[0]) == 0.0


def test_the_correlated_kl_is_the_cholesky_formula_and_the_standard_one_for_the_identity():
    rng = np.random.default_rng(3)
    mu, log_var = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    sigma = np.array([[1.0, 0.4], [0.4, 0.5]])
    vae = CorrelatedVAE(build_encoder(2), build_decoder(2), prior_cov=sigma)
    precision = np.linalg.inv(sigma)
    expected = [0.5 * (np.trace(precision @ np.diag(np.exp(v))) + m @ precision @ m - 2
                       + np.log(np.linalg.det(sigma)) - v.sum()) for m, v in zip(mu, log_var)]
    np.testing.assert_allclose(np.asarray(vae.kl_divergence(mu, log_var)), expected, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(GaussianPrior(sigma).kl_divergence(mu, log_var)), expected, rtol=1e-10)
    standard = CorrelatedVAE(build_encoder(2), build_decoder(2), prior_cov=np.eye(2))
    np.testing.assert_allclose(np.asarray(standard.kl_divergence(mu, log_var)),
                               np.asarray(VAE(build_encoder(2), build_decoder(2)).kl_divergence(mu, log_var)),
                               rtol=1e-10)


def test_the_loss_is_reconstruction_plus_beta_kl():
    keras.utils.set_random_seed(0)
    vae = VAE(build_encoder(2, seed=0), build_decoder(2), beta=0.5)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    results = vae.evaluate(IMAGES, batch_size=8, verbose=0, return_dict=True)
    assert results["loss"] == pytest.approx(results["reconstruction"] + 0.5 * results["kl"], rel=1e-5)


def test_a_few_train_steps_lower_the_loss():
    keras.utils.set_random_seed(0)
    vae = VAE(build_encoder(2), build_decoder(2))
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = (np.random.default_rng(2).random((256, 28, 28, 1)) > 0.7).astype("float32")
    history = vae.fit(images, epochs=30, batch_size=256, verbose=0, shuffle=False).history["loss"]
    assert history[-1] < history[0] - 50


@pytest.mark.slow  # a second Python process loads TensorFlow
def test_saved_models_load_in_a_fresh_process_with_the_same_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    encoder, decoder = build_encoder(2), build_decoder(2)
    from vae.saving import save_model
    save_model(encoder, tmp_path / "encoder.h5")
    save_model(decoder, tmp_path / "decoder.h5")
    z = np.random.default_rng(4).normal(size=(6, 2)).astype("float32")
    np.save(tmp_path / "images.npy", IMAGES)
    np.save(tmp_path / "z.npy", z)
    z_mean, z_log_var, _ = encoder(IMAGES)
    decoded = decoder(z)

    result = run_python(f"""
import json, numpy as np, keras
import vae_2d  # registers Sampling
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


# The flags' extensions (vae/variants.py)

def extended(vae_class=VAE, latent_dim=2, **flags):
    config = Config(latent_dim=latent_dim, **flags).check()
    kwargs = {"beta": config.beta, **({"prior_cov": config.prior_cov} if vae_class is CorrelatedVAE else {})}
    return build(vae_class, build_encoder(latent_dim, seed=0), build_decoder(latent_dim), config, **kwargs)


def test_the_defaults_give_the_chapters_own_vae():
    assert type(extended()) is VAE
    assert type(extended(CorrelatedVAE, prior_cov=[[1.0, 0.4], [0.4, 0.5]])) is CorrelatedVAE


def test_the_continuous_bernoulli_ends_in_its_mean_and_adds_the_normalizer():
    vae = extended(likelihood="continuous_bernoulli")
    assert [layer.name for layer in vae.decoder.layers[-3:]] == ["logits", "pixel_means", "image"]
    assert type(vae.decoder.get_layer("pixel_means")) is ContinuousBernoulliMean
    logits = np.random.default_rng(6).normal(scale=3, size=(8, 784)).astype("float32")
    normalizer = np.sum(np.asarray(continuous_bernoulli_log_normalizer(logits)), axis=1)
    plain = VAE(build_encoder(2), build_decoder(2))
    np.testing.assert_allclose(np.asarray(vae.reconstruction_loss(IMAGES, logits)),
                               np.asarray(plain.reconstruction_loss(IMAGES, logits)) - normalizer, rtol=1e-5)


def test_free_bits_stop_the_kl_gradient_of_a_dimension_below_the_floor():
    """Free bits λ = 0.5 nats, every image encoded alike (μ = (3, 0.1), ln σ² = −1): dimension 0's KL is
    4.68 nats and gets the ordinary KL gradient; dimension 1's is 0.19, below λ, and gets none. The KL's
    value, and so the metrics, stay the true KL."""
    def kl_and_gradients(vae):
        mean_head, log_var_head = vae.encoder.get_layer("z_mean"), vae.encoder.get_layer("z_log_var")
        mean_head.set_weights([np.zeros_like(mean_head.kernel), np.array([3.0, 0.1], "float32")])
        log_var_head.set_weights([np.zeros_like(log_var_head.kernel), np.full(2, -1.0, "float32")])
        with tf.GradientTape() as tape:
            _, kl = vae.compute_losses(IMAGES, training=True)
            kl = tf.reduce_mean(kl)
        heads = [mean_head.kernel, mean_head.bias, log_var_head.kernel, log_var_head.bias]
        return float(kl), [np.asarray(g) for g in tape.gradient(kl, heads)]

    kl_0, kl_1 = 0.5 * (np.exp(-1) + 9.0 - 1 + 1), 0.5 * (np.exp(-1) + 0.01 - 1 + 1)  # ½(σ² + μ² − 1 − ln σ²)
    keras.utils.set_random_seed(0)  # both models start from the same weights
    plain_kl, plain_gradients = kl_and_gradients(extended())
    keras.utils.set_random_seed(0)
    free_kl, free_gradients = kl_and_gradients(extended(free_bits=0.5))
    assert plain_kl == pytest.approx(kl_0 + kl_1, rel=1e-5) and free_kl == pytest.approx(kl_0 + kl_1, rel=1e-5)
    for plain, free in zip(plain_gradients, free_gradients):
        np.testing.assert_allclose(free[..., 0], plain[..., 0], rtol=1e-6)  # dimension 0: the ordinary gradient
        assert np.all(free[..., 1] == 0) and np.any(plain[..., 1] != 0)  # dimension 1: none under free bits
    np.testing.assert_allclose(free_gradients[1], [3.0, 0.0], rtol=1e-6)  # ∂KL₀/∂μ₀ = μ₀


def test_free_bits_with_a_diagonal_correlated_prior_use_its_variances():
    vae = extended(CorrelatedVAE, free_bits=0.01, prior_cov=[[2.0, 0.0], [0.0, 0.5]])
    mu, log_var = np.full((4, 2), 0.3, "float32"), np.full((4, 2), -0.5, "float32")
    np.testing.assert_allclose(np.asarray(vae.kl_divergence(mu, log_var)),
                               np.asarray(CorrelatedVAE.kl_divergence(vae, mu, log_var)), rtol=1e-5)


def test_a_warm_up_makes_beta_a_variable_the_step_reads():
    vae = extended(kl_warmup_epochs=2, epochs=3, beta=2.0)
    assert vae.target_beta == 2.0 and float(vae.beta) == 2.0
    vae.beta.assign(0.0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    results = vae.evaluate(IMAGES, batch_size=8, verbose=0, return_dict=True)
    assert results["loss"] == pytest.approx(results["reconstruction"], rel=1e-6)


def test_dynamic_binarization_trains_on_binary_draws_of_the_images():
    vae = extended(binarize="dynamic")
    seen = []
    original = VAE.compute_losses

    def recording(self, images, training=False):
        seen.append(np.asarray(images))
        return original(self, images, training)

    vae.compute_losses = recording.__get__(vae)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    vae.fit(IMAGES, epochs=1, batch_size=8, verbose=0)
    assert set(np.unique(seen[0])) <= {0.0, 1.0}
    assert 0.3 < seen[0].mean() / IMAGES.mean() < 1.7  # 1 with probability the grey level
