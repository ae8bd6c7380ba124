"""A variational autoencoder with a two-dimensional latent space, trained on MNIST.

    python code/vae_2d.py              # the hyperparameters at the bottom of this file
    python code/vae_2d.py --epochs 5   # override one for this run (see --help)

The encoder maps each 28×28 digit to a Gaussian q(z|x) = N(μ, diag σ²) over a 2-D latent plane; a
`Sampling` layer draws z = μ + σ·ε from it; the decoder maps z back to one probability per pixel.
Training minimizes the negative ELBO, reconstruction + β·KL(q(z|x) ‖ N(0, I)), in nats per image.
Two latent dimensions are few enough to draw: every figure is a picture of the latent plane.

This file is the whole model. The flags that change it (--architecture conv, --likelihood,
--binarize, --free-bits, --kl-warmup-epochs, --distribute, --precision) extend it from outside,
each in one short class of vae/variants.py; `--help` says what each does.

Writes assets/Clusters2D.png, latent2D.png, reconstructions_2d.png, history_2d.png, samples_2d.png, timeline_2d.png,
interpolation_2d.png, posterior_widths_2d.png and holes_2d.png, and models/encoder_2d.h5, decoder_2d.h5, timeline_2d.npz,
test_encodings_2d.npz and metrics_2d.json, all together at the end, replacing an earlier run's.
"""

from vae.start import start

start(__file__)  # before TensorFlow loads: --help, a bad flag and Ctrl-C answer at once (vae/start.py)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

from vae.config import Config, parse_flags  # noqa: E402

# ## The model


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
        epsilon = keras.random.normal(ops.shape(z_mean), dtype=z_mean.dtype, seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def build_encoder(latent_dim, image_shape=(28, 28, 1), seed=None):
    """image (batch, 28, 28, 1) → 784 → 512 → 256 → [z_mean, z_log_var, z], each (batch, latent_dim)."""
    images = keras.Input(shape=image_shape, name="image")
    x = layers.Flatten()(images)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.Dense(256, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling(seed=seed, name="z")([z_mean, z_log_var])
    return keras.Model(images, [z_mean, z_log_var, z], name="encoder")


def build_decoder(latent_dim, image_shape=(28, 28, 1)):
    """z (batch, latent_dim) → 256 → 512 → 784 logits → sigmoid: each pixel's probability, (batch, 28, 28, 1).

    The logits have a layer of their own, so that the loss can be computed from them (see `VAE`).
    """
    z = keras.Input(shape=(latent_dim,), name="z")
    x = layers.Dense(256, activation="relu")(z)
    x = layers.Dense(512, activation="relu")(x)
    logits = layers.Dense(image_shape[0] * image_shape[1] * image_shape[2], name="logits")(x)
    pixels = layers.Activation("sigmoid", name="pixel_means")(logits)
    images = layers.Reshape(image_shape, name="image")(pixels)
    return keras.Model(z, images, name="decoder")


class VAE(keras.Model):
    """Trains an encoder and a decoder by minimizing reconstruction + β·KL, the negative ELBO for β = 1.

    Both terms are in nats per image. The metrics "reconstruction" and "kl" are their means over the
    epoch's images, and "loss" the mean of reconstruction + β·kl.
    """

    def __init__(self, encoder, decoder, beta=1.0, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        # The decoder up to its logits: the cross-entropy from logits is exact where a sigmoid rounds to 0 or 1.
        self.decoder_logits = keras.Model(decoder.input, decoder.get_layer("logits").output)
        self.beta = beta
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def call(self, images):
        """The images reconstructed through one sample of their posterior, the images' shape."""
        _, _, z = self.encoder(images)
        return self.decoder(z)

    def reconstruction_loss(self, images, logits):
        """−ln p(x|z): the binary cross-entropy summed over the 784 pixels, (batch,) nats."""
        pixels = ops.reshape(images, ops.shape(logits))
        return ops.sum(ops.binary_crossentropy(pixels, logits, from_logits=True), axis=-1)

    def kl_divergence(self, z_mean, z_log_var):
        """KL(N(μ, diag σ²) ‖ N(0, I)) = −½ Σᵢ (1 + ln σᵢ² − μᵢ² − σᵢ²), (batch,) nats; 0 only at μ = 0, σ = 1."""
        return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)

    def compute_losses(self, images, training=False):
        """(reconstruction, kl) of each image, each (batch,) nats: one posterior sample z per image."""
        z_mean, z_log_var, z = self.encoder(images, training=training)
        logits = self.decoder_logits(z, training=training)
        return self.reconstruction_loss(images, logits), self.kl_divergence(z_mean, z_log_var)

    def train_step(self, images):
        with tf.GradientTape() as tape:
            reconstruction, kl = self.compute_losses(images, training=True)
            loss = ops.mean(reconstruction + self.beta * kl)
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self.track(reconstruction, kl)

    def test_step(self, images):
        return self.track(*self.compute_losses(images))

    def track(self, reconstruction, kl):
        """Add a batch's per-image losses to the epoch's means (exact when the last batch is smaller)."""
        self.loss_tracker.update_state(reconstruction + self.beta * kl)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        return {metric.name: metric.result() for metric in self.metrics}


# ## Training and the figures


def main(config):
    # The figures and the run's safety net: after the imports above, these load in a moment.
    from vae.evaluation import encode
    from vae.experiment import Experiment
    from vae.figures import plot_latent_clusters, plot_manifold
    from vae.inspection import look_inside
    from vae.priors import GaussianPrior

    # Checks the block, takes the run lock, seeds every generator; resumes a killed run (vae/experiment.py).
    run = Experiment(config, name="2d", min_latent_dim=2)
    (x_train, _), (x_test, y_test) = run.load_data()  # (60000, 28, 28, 1) and (10000, 28, 28, 1) in [0, 1]

    encoder = build_encoder(config.latent_dim, x_train.shape[1:], seed=config.seed)
    decoder = build_decoder(config.latent_dim, x_train.shape[1:])
    vae = run.model(VAE, encoder, decoder, beta=config.beta)  # as it is, unless a flag extends it
    vae.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    history = run.fit(vae, x_train, x_test)  # one checkpoint per epoch; stops on a NaN loss

    # Where does the encoder put each test digit? Its posterior mean μ, colored by label.
    z_mean, z_log_var = encode(vae.encoder, x_test)
    plot_latent_clusters(z_mean, y_test, run.asset("Clusters2D.png"))

    # What does the decoder draw at each point of the plane? A grid of z, decoded in one call.
    plot_manifold(vae.decoder, run.asset("latent2D.png"), config.grid_size, config.grid_limit,
                  fixed=[0.0] * (config.latent_dim - 2))

    # Inside the model: new digits from the prior, walks between test digits, how wide each posterior
    # is, where the prior has mass and the codes do not, ln p(x) beyond the ELBO, and the KL split into
    # I(n; z) and KL(q(z) ‖ p(z)) on the test and the training codes (vae/inspection.py).
    inside = look_inside(run.asset, "2d", vae.encoder, vae.decoder, GaussianPrior.standard(config.latent_dim),
                         x_test, y_test, z_mean, z_log_var, binarize=config.binarize, dataset=config.dataset,
                         train_codes=encode(vae.encoder, x_train))

    run.finish(vae, history, x_test, y_test, z_mean, **inside)  # evaluate, save, move every output into place


if __name__ == "__main__":
    # The hyperparameters. Edit them here, or override one for a single run with a flag.
    hyperparameters = Config(
        latent_dim=2,
        epochs=30,
        batch_size=128,
        learning_rate=1e-3,
        beta=1.0,  # weight of the KL term: 1 is the true ELBO, < 1 sharper, > 1 smoother
        kl_warmup_epochs=0,  # the KL's weight rises from 0 to beta over this many epochs; 0: off
        free_bits=0.0,  # nats per latent dimension: a dimension's KL below it gets no gradient; 0: off
        seed=0,
        train_size=None,  # None: all 60,000 training images
        grid_size=20,  # the manifold figure decodes a grid_size × grid_size grid ...
        grid_limit=3.0,  # ... over z0, z1 from -grid_limit to +grid_limit
    )
    main(parse_flags(hyperparameters, min_latent_dim=2, description=__doc__))
