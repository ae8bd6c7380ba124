"""The flags that change a chapter's model, each an extension of the chapter's own `VAE`.

A chapter script builds its encoder, decoder and `VAE` as the tutorial teaches, then asks the runner
for its model: `run.model(VAE, encoder, decoder, beta=...)` (vae/experiment.py), which calls `build`
here. With the block's defaults that is the chapter's `VAE(encoder, decoder, beta=...)` itself. Each flag
that asks for more adds one small class in front of the chapter's (a mixin: Python's method order
makes its method run instead of the chapter's, and `super()` reach the chapter's), or rebuilds a network:

- --likelihood continuous_bernoulli: `ContinuousBernoulli` (the reconstruction term) and a decoder
  that ends in the continuous Bernoulli's mean (vae/pixels.py);
- --binarize dynamic: `DynamicBinarization` (the batch a training step sees);
- --free-bits: `FreeBits` (the KL's gradient);
- --kl-warmup-epochs: `KLWarmUp` (β becomes a variable that vae/schedules.py sets each epoch);
- --distribute and --precision: `SeveralDevices` (each replica's share of the loss, loss scaling),
  a sampling layer that draws its own ε on every replica, float32 output layers;
- --architecture conv: the convolutional networks of vae/conv.py in place of the chapter's.

Shapes as in the chapters: images (batch, h, w, c) in [0, 1], codes (batch, latent_dim), losses
(batch,) in nats per image.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from vae.conv import build_conv_decoder, build_conv_encoder
from vae.distribute import as_step_outputs, normal_noise, share_of_global_mean, uniform_noise
from vae.pixels import ContinuousBernoulliMean, log_likelihood


class ContinuousBernoulli:
    """--likelihood continuous_bernoulli: −ln p(x|z) is the continuous Bernoulli's, a density on [0, 1]:
    the cross-entropy minus its normalizer Σ ln C(l) (vae/pixels.py), (batch,) nats."""

    def reconstruction_loss(self, images, logits):
        return -log_likelihood(ops.reshape(images, ops.shape(logits)), logits, "continuous_bernoulli")


class DynamicBinarization:
    """--binarize dynamic: each training step sees its images drawn afresh as binary pixels, 1 with
    probability the grey level (evaluation takes the test images as given, binarized once)."""

    def train_step(self, data):
        images, *labels = data if isinstance(data, tuple) else (data,)
        binary = sample_bernoulli(images, self.binarize_seed_generator)
        return super().train_step((binary, *labels) if labels else binary)


def sample_bernoulli(means, seed_generator):
    """Binary images drawn afresh: each pixel 1 with probability `means` (its grayscale value), else 0.

    Same shape and dtype as `means`, values exactly 0 or 1; `seed_generator` is a
    keras.random.SeedGenerator. With several replicas each draws its own (vae/distribute.py).
    """
    return ops.cast(uniform_noise(ops.shape(means), means.dtype, seed_generator) < means, means.dtype)


class FreeBits:
    """--free-bits λ (Kingma et al. 2016): a latent dimension whose KL, averaged over the batch, is below λ
    nats feels no pull to the prior. The KL's value is unchanged (the metrics report the true KL); below
    the floor only its gradient is stopped. Needs a prior whose KL splits per dimension (diagonal Σ)."""

    free_bits = 0.0  # λ, nats per latent dimension

    def kl_divergence(self, z_mean, z_log_var):
        # KL(N(μᵢ, σᵢ²) ‖ N(0, Σᵢᵢ)) of each dimension: (batch, latent_dim); Σ = I unless the model has prior_cov.
        variance = ops.cast(np.diag(getattr(self, "prior_cov", np.eye(z_mean.shape[-1]))), z_mean.dtype)
        per_dimension = 0.5 * ((ops.exp(z_log_var) + ops.square(z_mean)) / variance - 1.0
                               + ops.log(variance) - z_log_var)
        below = ops.mean(per_dimension, axis=0) < self.free_bits  # (latent_dim,)
        return ops.sum(ops.where(below, ops.stop_gradient(per_dimension), per_dimension), axis=-1)


class KLWarmUp:
    """--kl-warmup-epochs: the KL's weight β is a variable, which vae.schedules.KLWarmUp raises from 0 to
    `target_beta` over the first epochs; the compiled step reads its current value."""


class SeveralDevices:
    """--distribute and --precision: each replica holds a share of the batch and the optimizer sums their
    gradients, so each minimizes its images' losses divided by the global batch's size; under
    mixed_float16 the optimizer scales the loss to keep small gradients (and unscales them)."""

    def train_step(self, data):
        with tf.GradientTape() as tape:
            reconstruction, kl = self.compute_losses(data, training=True)
            loss = share_of_global_mean(ops.mean(reconstruction + self.beta * kl),
                                        ops.cast(ops.shape(reconstruction)[0], "float32"))
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return as_step_outputs(self.track(reconstruction, kl))

    def test_step(self, data):
        return as_step_outputs(super().test_step(data))


class ReplicaSampling(layers.Layer):
    """The chapter's `Sampling`, z = μ + σ·ε, drawing its own ε on every replica (vae/distribute.py).
    It replaces the chapter's layer only while training on several devices; a saved encoder holds neither."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        return z_mean + ops.exp(0.5 * z_log_var) * normal_noise(ops.shape(z_mean), z_mean.dtype, self.seed_generator)


# The layers that stay float32 under mixed precision: ln σ² is exponentiated, the logits feed the losses.
FLOAT32_LAYERS = ("z_mean", "z_log_var", "z", "logits", "pixel_means")


def rebuilt(network, replace):
    """A copy of `network` with its weights, each layer made anew by `replace(layer)` (None: as it was)."""

    def clone(layer):
        return replace(layer) or layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(network, clone_function=clone)
    copy.set_weights(network.get_weights())
    return copy


def with_float32_outputs(layer):
    if layer.name in FLOAT32_LAYERS:
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})
    return None


def with_replica_sampling(layer):
    if layer.name == "z":
        return ReplicaSampling(seed=layer.seed, name="z", dtype=layer.dtype_policy.name)
    return None


def continuous_bernoulli_decoder(decoder):
    """`decoder` ending in the continuous Bernoulli's mean of its logits instead of their sigmoid."""
    means = ContinuousBernoulliMean(name="pixel_means", dtype="float32")(decoder.get_layer("logits").output)
    images = layers.Reshape(decoder.output.shape[1:], name="image")(means)
    return keras.Model(decoder.input, images, name="decoder")


def num_classes_of(encoder):
    """The number of classes a conditional encoder takes (its one-hot layer's size), else None."""
    for layer in encoder.layers:
        if isinstance(layer, layers.CategoryEncoding):
            return layer.num_tokens
    return None


def build(vae_class, encoder, decoder, config, **kwargs):
    """`vae_class(encoder, decoder, **kwargs)`, with the networks and extensions that `config` (a checked
    vae.config.Config) asks for; with the tutorial's defaults, exactly that. Returns the VAE, built."""
    if config.architecture == "conv":
        sampling = encoder.get_layer("z")
        image_shape, num_classes = encoder.inputs[0].shape[1:], num_classes_of(encoder)
        encoder = build_conv_encoder(config.latent_dim, image_shape, type(sampling), sampling.seed, num_classes)
        decoder = build_conv_decoder(config.latent_dim, image_shape, num_classes)
    if config.likelihood == "continuous_bernoulli":
        decoder = continuous_bernoulli_decoder(decoder)
    if config.precision != "float32":
        encoder, decoder = rebuilt(encoder, with_float32_outputs), rebuilt(decoder, with_float32_outputs)
    if config.distribute != "none":
        encoder = rebuilt(encoder, with_replica_sampling)
    extensions = [extension for extension, wanted in [
        (DynamicBinarization, config.binarize == "dynamic"),
        (SeveralDevices, config.distribute != "none" or config.precision != "float32"),
        (FreeBits, config.free_bits > 0),
        (KLWarmUp, config.kl_warmup_epochs > 0),
        (ContinuousBernoulli, config.likelihood == "continuous_bernoulli"),
    ] if wanted]
    if extensions:
        vae_class = type(vae_class.__name__, (*extensions, vae_class), {})
    vae = vae_class(encoder, decoder, **kwargs)
    if config.binarize == "dynamic":
        # Seeded apart from the Sampling layer's generator (seeded with the seed itself), so that the two
        # draw different random bits.
        vae.binarize_seed_generator = keras.random.SeedGenerator(config.seed + 1)
    if config.free_bits:
        vae.free_bits = float(config.free_bits)
    if config.kl_warmup_epochs:
        vae.target_beta = float(vae.beta)
        vae.beta = keras.Variable(vae.target_beta, trainable=False, dtype="float32", autocast=False, name="kl_weight")
    vae.built = True  # its networks are built and it adds no weights: a checkpoint can be saved and loaded
    return vae
