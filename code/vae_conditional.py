"""A conditional VAE: the digit's label goes into the encoder and the decoder, so it draws any digit on demand.

    python code/vae_conditional.py              # the hyperparameters at the bottom of this file
    python code/vae_conditional.py --epochs 5   # override one for this run (see --help)

The 2-D chapter's VAE learns one code z for everything about an image, its class included: the digits
lie in clusters of the latent plane. Here both networks are also given the label y (Sohn et al. 2015;
Kingma et al. 2014): the encoder is q(z|x, y), the decoder p(x|z, y), and the loss is
reconstruction + β·KL(q(z|x, y) ‖ N(0, I)), the negative ELBO of ln p(x|y). The label already says
which digit; the code z has only to say how it is drawn (slant, width, stroke), and the digits no
longer form clusters. To draw a 7, give the decoder y = 7 and any z ~ N(0, I). The label joins each
network one-hot, beside the flattened image and beside z; `ConditionalVAE` is the 2-D chapter's VAE
(vae_2d.py), with the labels passed to both networks.
(--likelihood, --binarize, --dataset, --architecture and the rest: as in vae_2d.py.)

Writes assets/samples_conditional.png, assets/style_transfer_conditional.png,
assets/ClustersConditional.png, assets/latentConditional.png, assets/reconstructions_conditional.png,
assets/history_conditional.png, models/encoder_conditional.h5, models/decoder_conditional.h5 (both take
[input, label]), models/test_encodings_conditional.npz and models/metrics_conditional.json
(replacing those of an earlier run, all together at the end).
"""

from vae.start import start

start(__file__)  # before TensorFlow loads: --help, a bad flag and Ctrl-C answer at once (vae/start.py)

import keras  # noqa: E402
from keras import layers  # noqa: E402

from vae.config import Config, parse_flags  # noqa: E402
from vae_2d import VAE, Sampling  # noqa: E402  the 2-D chapter's model

NUM_CLASSES = 10  # digits 0..9 (Fashion-MNIST's and CIFAR-10's ten classes too)
STYLE_GRID_CLASS = 4  # latentConditional.png decodes the grid of codes as this class
SAMPLES_PER_CLASS = 100  # drawings per class that a separate classifier judges


def one_hot(num_classes):
    """The label input, integers (batch,) in 0..num_classes-1, and its one-hot code (batch, num_classes)."""
    label = keras.Input(shape=(), dtype="int32", name="label")
    return label, layers.CategoryEncoding(num_classes, output_mode="one_hot", name="one_hot")(label)


def build_encoder(latent_dim, num_classes, image_shape=(28, 28, 1), seed=None):
    """[image (batch, 28, 28, 1), label (batch,)] → 784 + one-hot → 512 → 256 → [z_mean, z_log_var, z]."""
    images = keras.Input(shape=image_shape, name="image")
    label, label_one_hot = one_hot(num_classes)
    x = layers.Concatenate(name="with_label")([layers.Flatten()(images), label_one_hot])
    x = layers.Dense(512, activation="relu")(x)
    x = layers.Dense(256, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling(seed=seed, name="z")([z_mean, z_log_var])
    return keras.Model([images, label], [z_mean, z_log_var, z], name="encoder")


def build_decoder(latent_dim, num_classes, image_shape=(28, 28, 1)):
    """[z (batch, latent_dim), label (batch,)] → z + one-hot → 256 → 512 → 784 logits → sigmoid → (batch, 28, 28, 1)."""
    z = keras.Input(shape=(latent_dim,), name="z")
    label, label_one_hot = one_hot(num_classes)
    x = layers.Concatenate(name="with_label")([z, label_one_hot])
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dense(512, activation="relu")(x)
    logits = layers.Dense(image_shape[0] * image_shape[1] * image_shape[2], name="logits")(x)
    pixels = layers.Activation("sigmoid", name="pixel_means")(logits)
    images = layers.Reshape(image_shape, name="image")(pixels)
    return keras.Model([z, label], images, name="decoder")


class ConditionalVAE(VAE):
    """The 2-D chapter's VAE, trained on (images, labels) pairs: both networks are given the labels.
    Its loss, reconstruction + β·KL, bounds −ln p(x|y), the image given its label."""

    def call(self, data):
        images, labels = data
        _, _, z = self.encoder([images, labels])
        return self.decoder([z, labels])

    def compute_losses(self, data, training=False):
        """(reconstruction, kl) of each image, each (batch,) nats; `data` is (images, labels)."""
        images, labels = data
        z_mean, z_log_var, z = self.encoder([images, labels], training=training)
        logits = self.decoder_logits([z, labels], training=training)
        return self.reconstruction_loss(images, logits), self.kl_divergence(z_mean, z_log_var)


def main(config):
    import numpy as np

    from vae.data import DATASET_ITEMS
    from vae.evaluation import class_agreement, class_from_code, decode, encode, train_classifier
    from vae.experiment import Experiment
    from vae.figures import plot_class_samples, plot_latent_clusters, plot_manifold, plot_style_transfer

    run = Experiment(config, name="conditional", min_latent_dim=2)
    (x_train, y_train), (x_test, y_test) = run.load_data(needs_classes=True)  # a folder of images: 2 classes or more
    num_classes = run.num_classes  # NUM_CLASSES, or a folder's own
    y_train, y_test = y_train.astype("int32"), y_test.astype("int32")  # the networks' label inputs are int32

    encoder = build_encoder(config.latent_dim, num_classes, x_train.shape[1:], seed=config.seed)
    decoder = build_decoder(config.latent_dim, num_classes, x_train.shape[1:])
    vae = run.model(ConditionalVAE, encoder, decoder, beta=config.beta)
    vae.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    # The data are (images, labels) pairs: train_step passes them to compute_losses as they are.
    history = run.fit(vae, (x_train, y_train), (x_test, y_test))
    encoder, decoder = vae.encoder, vae.decoder

    # Draw every class from the same ten codes: a row per class, a column per code (one style).
    items = DATASET_ITEMS[config.dataset]
    plot_class_samples(decoder, run.asset("samples_conditional.png"), num_classes, items=items)

    # The codes of the test images, each found with its own label: style, with the class taken out.
    z_mean, _ = encode(encoder, x_test, labels=y_test)
    plot_latent_clusters(z_mean, y_test, run.asset("ClustersConditional.png"),
                         title=f"Test images in the conditional VAE's latent plane ({len(z_mean):,} points)")
    style_class = min(STYLE_GRID_CLASS, num_classes - 1)  # a folder of images may have fewer classes
    plot_manifold(decoder, run.asset("latentConditional.png"), config.grid_size, config.grid_limit,
                  fixed=[0.0] * (config.latent_dim - 2), label=style_class,
                  title=f"A {style_class} decoded over a {config.grid_size}×{config.grid_size} grid of codes")

    # The first test image of each of the first six classes, its style drawn as every class.
    firsts = [int(np.flatnonzero(y_test == c)[0]) for c in range(num_classes) if np.any(y_test == c)]
    plot_style_transfer(decoder, x_test[firsts[:6]], z_mean[firsts[:6]],
                        run.asset("style_transfer_conditional.png"), num_classes)

    # Does the decoder draw the class it is asked for? A separate classifier, trained on the training
    # images, judges drawings from fresh prior codes; and can the class still be read off the code?
    classifier = train_classifier(x_train, y_train, num_classes, seed=config.seed)
    asked = np.repeat(np.arange(num_classes), SAMPLES_PER_CLASS)
    z = np.random.default_rng(config.seed).standard_normal((len(asked), config.latent_dim))
    drawn = decode(decoder, z, labels=asked)
    agreement = [class_agreement(classifier, drawn[asked == c], asked[asked == c]) for c in range(num_classes)]

    run.finish(
        vae, history, x_test, y_test, z_mean,
        num_classes=num_classes,
        judge_test_accuracy=class_agreement(classifier, x_test, y_test),
        samples_judged=len(asked),
        samples_of_asked_class=float(np.mean(agreement)),
        samples_of_asked_class_per_class=agreement,
        class_from_code_accuracy=class_from_code(z_mean, y_test),
        style_grid_class=style_class,
    )


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
        grid_size=20,  # latentConditional.png decodes a grid_size × grid_size grid ...
        grid_limit=3.0,  # ... over z0, z1 from -grid_limit to +grid_limit
    )
    main(parse_flags(hyperparameters, min_latent_dim=2, description=__doc__))
