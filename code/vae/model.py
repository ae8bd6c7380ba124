"""The VAE: a `Sampling` layer, the encoder, the decoder and the `VAE` model that trains them.

Images are (batch, height, width, channels) floats in [0, 1], (batch, 28, 28, 1) for MNIST;
latent codes are (batch, latent_dim). Losses are in nats per image. The likelihood p(x|z) of the
pixels, Bernoulli or continuous Bernoulli, is in vae/pixels.py.

Two architectures: "mlp", the tutorial's dense layers, and "conv", strided convolutions that keep
the image's neighbourhoods, for images of any size and number of channels.
"""

import math

import keras
import tensorflow as tf
from keras import layers, ops

from vae.distribute import as_step_outputs, normal_noise, share_of_global_mean
from vae.pixels import decoder_likelihood, log_likelihood, pixel_means_layer, sample_bernoulli
from vae.priors import GaussianPrior

IMAGE_SHAPE = (28, 28, 1)  # MNIST's, the builders' default
IMAGE_PIXELS = 28 * 28
# The convolutional encoder's filters, each layer halving the height and width (kernel 4, stride 2); the
# decoder's transposed convolutions double them back in reverse order. A kernel of 4 at stride 2 covers
# every output pixel equally often, where a kernel of 3 leaves a checkerboard in the decoded images.
CONV_FILTERS = (32, 64)
CONV_KERNEL = 4


@keras.saving.register_keras_serializable(package="vae")
class Sampling(layers.Layer):
    """The reparameterization trick: z = μ + σ·ε with σ = exp(½ ln σ²) and ε ~ N(0, I).

    Takes [z_mean, z_log_var], each (batch, latent_dim); returns z, (batch, latent_dim).
    The randomness sits in ε, so gradients flow through μ and σ.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = normal_noise(ops.shape(z_mean), z_mean.dtype, self.seed_generator)  # own ε on every replica
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def build_encoder(latent_dim, seed=None, architecture="mlp", image_shape=IMAGE_SHAPE, num_classes=None):
    """image → hidden layers → (z_mean, z_log_var) → Sampling.

    "mlp": Flatten → Dense 512 relu → Dense 256 relu (784 → 512 → 256 for MNIST).
    "conv": Conv2D 32 → Conv2D 64, each kernel 4, stride 2, relu (28×28×1 → 14×14×32 → 7×7×64;
    32×32×3 → 16×16×32 → 8×8×64; an odd side rounds up) → Flatten → Dense 256 relu.
    Outputs [z_mean, z_log_var, z], each (batch, latent_dim). The two heads are
    kept in float32 even under mixed precision: ln σ² is exponentiated in the KL.

    With `num_classes` (a conditional VAE, q(z|x, y)) the encoder takes [image, label], the label an
    integer (batch,) in 0..num_classes-1, joined one-hot to the flattened image's features.
    """
    _check_architecture(architecture)
    images = keras.Input(shape=image_shape, name="image")
    x = images
    if architecture == "conv":
        for filters in CONV_FILTERS:
            x = layers.Conv2D(filters, CONV_KERNEL, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x, inputs = _with_label(x, images, num_classes)
    if architecture == "mlp":
        x = layers.Dense(512, activation="relu")(x)
    x = layers.Dense(256, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean", dtype="float32")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var", dtype="float32")(x)
    z = Sampling(seed=seed, name="z", dtype="float32")([z_mean, z_log_var])
    return keras.Model(inputs, [z_mean, z_log_var, z], name="encoder")


def _with_label(features, network_input, num_classes):
    """For a conditional network: (features joined to the one-hot label, [network_input, label input]).
    Otherwise (features, network_input) unchanged."""
    if not num_classes:
        return features, network_input
    label = keras.Input(shape=(), dtype="int32", name="label")  # (batch,) integers, e.g. the digit 0..9
    one_hot = layers.CategoryEncoding(num_classes, output_mode="one_hot", name="one_hot")(label)
    return layers.Concatenate(name="with_label")([features, one_hot]), [network_input, label]


def build_decoder(latent_dim, likelihood="bernoulli", architecture="mlp", image_shape=IMAGE_SHAPE, num_classes=None):
    """z → hidden layers → "logits", one per pixel and channel → pixel means → image_shape.

    "mlp": Dense 256 relu → Dense 512 relu → Dense 784 (for MNIST) → pixel means → Reshape 28×28×1.
    "conv": Dense 256 relu → Dense 7·7·64 relu → Reshape 7×7×64 → Conv2DTranspose 64 → 32, each kernel 4,
    stride 2, relu (→ 14×14×64 → 28×28×32) → Conv2D (kernel 3) with one filter per channel → pixel
    means. Sizes are for 28×28; a side that is not a multiple of 4 is decoded 4·⌈side/4⌉ long and cropped.

    The layer "logits" and the layer "pixel_means" after it are separate, so that the training loss
    can use the logits directly (see `VAE`). The model's output is the mean of p(x|z) per pixel, in
    [0, 1]: the sigmoid σ(l) for the Bernoulli likelihood, the continuous Bernoulli's mean for
    likelihood="continuous_bernoulli" (vae/pixels.py).

    With `num_classes` (a conditional VAE, p(x|z, y)) the decoder takes [z, label], the label an integer
    (batch,) in 0..num_classes-1, joined one-hot to z: z then only has to say how the class is drawn.
    """
    _check_architecture(architecture)
    z = keras.Input(shape=(latent_dim,), name="z")
    x, inputs = _with_label(z, z, num_classes)
    x = layers.Dense(256, activation="relu")(x)
    if architecture == "mlp":
        x = layers.Dense(512, activation="relu")(x)
        logits = layers.Dense(math.prod(image_shape), name="logits", dtype="float32")(x)
    else:
        height, width, channels = image_shape
        scale = 2 ** len(CONV_FILTERS)  # the encoder's downsampling: 4
        small = (-(-height // scale), -(-width // scale))  # ⌈side / 4⌉: 7×7 for 28×28, 8×8 for 32×32
        x = layers.Dense(small[0] * small[1] * CONV_FILTERS[-1], activation="relu")(x)
        x = layers.Reshape((*small, CONV_FILTERS[-1]))(x)
        for filters in reversed(CONV_FILTERS):
            x = layers.Conv2DTranspose(filters, CONV_KERNEL, strides=2, padding="same", activation="relu")(x)
        extra = (small[0] * scale - height, small[1] * scale - width)
        if any(extra):  # the rows and columns beyond the image, cut from both sides
            x = layers.Cropping2D([(extra_side // 2, extra_side - extra_side // 2) for extra_side in extra])(x)
        logits = layers.Conv2D(channels, 3, padding="same", name="logits", dtype="float32")(x)
    pixels = pixel_means_layer(likelihood)(logits)
    images = layers.Reshape(image_shape, name="image")(pixels)
    return keras.Model(inputs, images, name="decoder")


def _check_architecture(architecture):
    if architecture not in ("mlp", "conv"):
        raise ValueError(f"architecture must be 'mlp' or 'conv', got {architecture!r}")


def logits_model(decoder):
    """The decoder up to its layer "logits": z (N, latent_dim) → logits (N, pixels·channels), 784 for MNIST
    ([z, label] → logits for a conditional decoder).

    The saved decoder ends in its pixel means; the losses need the logits before them. A convolutional
    decoder's logits are image-shaped, (N, h, w, c): flattened here in the order images are flattened.
    """
    logits = decoder.get_layer("logits").output
    if len(logits.shape) > 2:
        logits = layers.Flatten()(logits)
    return keras.Model(decoder.input, logits)


def reconstruction_loss(images, logits, likelihood="bernoulli"):
    """−ln p(x|z) summed over the pixels and channels (784 for MNIST), in nats, shape (batch,).

    images: (batch, h, w, c); logits: (batch, h·w·c), as `logits_model` gives them. For the Bernoulli
    likelihood, the binary cross-entropy; computed from the logits (vae/pixels.py), exact and stable
    even where a sigmoid output would round to 0 or 1.
    """
    return -log_likelihood(ops.reshape(images, (-1, logits.shape[-1])), logits, likelihood)


class VAE(keras.Model):
    """Trains an encoder and a decoder by minimizing reconstruction + β·KL (the negative ELBO for β = 1).

    Both terms are in nats per image, averaged over the batch. The KL is the analytic
    KL(q(z|x) ‖ p(z)) for the given prior (default N(0, I)); the reconstruction is −ln p(x|z) under
    `likelihood`, which must be the one the decoder was built for. With `binarize`, every training
    image is drawn afresh as Bernoulli(pixel) at every step (evaluation takes the images as given).

    Two remedies for dimensions that collapse to the prior (Kingma et al. 2016, Bowman et al. 2016):
    with `free_bits` λ > 0 (nats per latent dimension; needs a diagonal prior) the KL in the loss is
    Σᵢ max(λ, KLᵢ), KLᵢ being dimension i's KL averaged over the batch, so a dimension below λ feels no
    pull to the prior; and the KL's weight in the loss is the variable `kl_weight`, β unless a KL
    warm-up (vae/schedules.py) lowers it in the first epochs. The metric "kl" is always the true KL,
    so reconstruction + kl is always the negative ELBO; "loss" is the objective minimized.

    A conditional VAE (Sohn et al. 2015) is this class with networks built with `num_classes`: the encoder
    takes [images, labels], the decoder [z, labels]; its data are then (images, labels) pairs, labels
    integers (batch,), and the loss bounds ln p(x|y), the images given their labels.
    """

    def __init__(self, encoder, decoder, prior=None, beta=1.0, likelihood="bernoulli", binarize=False, seed=None,
                 free_bits=0.0, **kwargs):
        super().__init__(**kwargs)
        built_for = decoder_likelihood(decoder)
        if built_for != likelihood:
            raise ValueError(f"the decoder was built for likelihood={built_for!r}, not {likelihood!r}: "
                             f"build it with build_decoder(..., likelihood={likelihood!r})")
        self.encoder = encoder
        self.decoder = decoder
        # The same layers as `decoder`, stopping before its pixel means: z → logits (batch, 784 for MNIST).
        self.decoder_logits = logits_model(decoder)
        self.prior = prior if prior is not None else GaussianPrior.standard(encoder.output[0].shape[-1])
        self.beta = float(beta)
        # The KL's weight in this epoch's loss: β, or less while a KL warm-up (vae/schedules.py) sets it.
        # A variable, so that the compiled train step reads its current value without recompiling.
        self.kl_weight = keras.Variable(self.beta, trainable=False, dtype="float32", autocast=False,
                                        name="kl_weight")
        self.free_bits = float(free_bits)  # nats per latent dimension; 0: off
        if self.free_bits < 0:
            raise ValueError(f"free_bits must be ≥ 0 nats per dimension, got {free_bits}")
        if self.free_bits and not self.prior.is_diagonal:
            raise ValueError("free_bits needs a prior with independent dimensions (a diagonal covariance): "
                             "the KL to a correlated prior does not split into one term per dimension")
        self.likelihood = likelihood
        self.binarize = bool(binarize)
        if self.binarize:
            # Seeded apart from the Sampling layer (seeded with `seed` itself): two generators with
            # one seed would draw the same random bits for ε and for the binarization.
            self.binarize_seed_generator = keras.random.SeedGenerator(None if seed is None else seed + 1)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        # The encoder and decoder are built functional models and the VAE adds no weights of its
        # own (kl_weight is not trained), so it is built too (saving weights needs a built model).
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    @property
    def conditional(self):
        """Whether both networks are also given the class label (built with `num_classes`)."""
        return len(self.decoder.inputs) == 2

    def given(self, x, labels):
        """A network's input: `x` alone, or [x, labels] in a conditional VAE."""
        return [x, labels] if self.conditional else x

    def call(self, data, training=False):
        """The reconstruction of the images through one posterior sample, the images' shape.
        `data`: the images, or (images, labels) for a conditional VAE."""
        images, labels = data if self.conditional else (data, None)
        _, _, z = self.encoder(self.given(images, labels), training=training)
        return self.decoder(self.given(z, labels), training=training)

    def compute_losses(self, images, labels=None, training=False):
        """Return (loss, reconstruction, kl), each a scalar in nats per image (`labels`: a conditional VAE's).

        loss = reconstruction + kl_weight · (the KL, or with free bits Σᵢ max(λ, KLᵢ)) is the objective
        minimized; kl is the true KL, so −(reconstruction + kl) is the ELBO.
        """
        z_mean, z_log_var, z = self.encoder(self.given(images, labels), training=training)
        logits = self.decoder_logits(self.given(z, labels), training=training)
        reconstruction = ops.mean(reconstruction_loss(images, logits, self.likelihood))
        if self.free_bits:
            kl_per_dimension = ops.mean(self.prior.kl_per_dimension(z_mean, z_log_var), axis=0)  # (latent_dim,)
            kl = ops.sum(kl_per_dimension)
            # Below λ nats a dimension's KL counts as λ: a constant, so no gradient pulls it to the prior.
            kl_in_loss = ops.sum(ops.maximum(kl_per_dimension, self.free_bits))
        else:
            kl = kl_in_loss = ops.mean(self.prior.kl_divergence(z_mean, z_log_var))
        return reconstruction + self.kl_weight * kl_in_loss, reconstruction, kl

    def train_step(self, data):
        # The images alone (or (images,) from train_on_batch); (images, labels) for a conditional VAE.
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if self.binarize:  # a fresh binary draw of every image, at every step
            images = sample_bernoulli(images, self.binarize_seed_generator)
        with tf.GradientTape() as tape:
            loss, reconstruction, kl = self.compute_losses(images, labels, training=True)
            # With several replicas (vae/distribute.py) each holds a share of the batch, and the optimizer
            # sums their gradients: weight each share's mean by its share of the images.
            loss_share = share_of_global_mean(loss, ops.cast(ops.shape(images)[0], loss.dtype))
            # Under mixed_float16 the optimizer scales the loss to keep small gradients.
            scaled_loss = self.optimizer.scale_loss(loss_share)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self.update_trackers(images, loss, reconstruction, kl)

    def test_step(self, data):
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.update_trackers(images, *self.compute_losses(images, labels, training=False))

    def update_trackers(self, images, loss, reconstruction, kl):
        # Weighted by batch size, so an epoch's value is the exact mean over its images
        # even when the last batch is smaller. With several replicas, each adds its share of the
        # batch, and Keras sums the trackers' totals and counts over the replicas when it reads them.
        batch_size = ops.cast(ops.shape(images)[0], "float32")
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            # A replica can be given no images of a short last batch: its means are 0/0 = NaN, of weight 0.
            loss, reconstruction, kl = (ops.where(batch_size > 0, value, 0.0) for value in (loss, reconstruction, kl))
        self.loss_tracker.update_state(loss, sample_weight=batch_size)
        self.reconstruction_tracker.update_state(reconstruction, sample_weight=batch_size)
        self.kl_tracker.update_state(kl, sample_weight=batch_size)
        return as_step_outputs({metric.name: metric.result() for metric in self.metrics})


def build_vae(config, image_shape=IMAGE_SHAPE, prior=None, num_classes=None):
    """The encoder, the decoder and the `VAE` that trains them, as a chapter's `Config` asks (its latent
    size, architecture, likelihood, β, free bits, binarization and seed) for images of `image_shape`,
    with `prior` (default N(0, I)); with `num_classes`, a conditional VAE. Returns (encoder, decoder, vae)."""
    encoder = build_encoder(config.latent_dim, seed=config.seed, architecture=config.architecture,
                            image_shape=image_shape, num_classes=num_classes)
    decoder = build_decoder(config.latent_dim, likelihood=config.likelihood,  # vae/pixels.py: p(x|z) per pixel
                            architecture=config.architecture, image_shape=image_shape, num_classes=num_classes)
    vae = VAE(encoder, decoder, prior=prior, beta=config.beta, free_bits=config.free_bits,
              likelihood=config.likelihood, binarize=config.binarize == "dynamic", seed=config.seed)
    return encoder, decoder, vae
