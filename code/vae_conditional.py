"""A conditional VAE: the digit's label goes into the encoder and the decoder, so it draws any digit on demand.

    python code/vae_conditional.py              # the hyperparameters at the bottom of this file
    python code/vae_conditional.py --epochs 5   # override one for this run (see --help)

The 2-D chapter's VAE learns one code z for everything about an image, its class included: the digits
lie in clusters of the latent plane. Here both networks are also given the label y (Sohn et al. 2015;
Kingma et al. 2014): the encoder is q(z|x, y), the decoder p(x|z, y), and the loss is
reconstruction + β·KL(q(z|x, y) ‖ N(0, I)), the negative ELBO of ln p(x|y). The label already says
which digit; the code z has only to say how it is drawn (slant, width, stroke), and the digits no
longer form clusters. To draw a 7, give the decoder y = 7 and any z ~ N(0, I). The label joins each
network one-hot, beside the flattened image and beside z (vae/model.py, `num_classes`).
(--likelihood, --binarize, --dataset and --architecture: as in vae_2d.py.)

Writes assets/samples_conditional.png, assets/style_transfer_conditional.png,
assets/ClustersConditional.png, assets/latentConditional.png, assets/reconstructions_conditional.png,
assets/history_conditional.png, models/encoder_conditional.h5, models/decoder_conditional.h5 (both take
[input, label]), models/test_encodings_conditional.npz and models/metrics_conditional.json
(replacing those of an earlier run, all together at the end).
"""

from vae.config import Config, parse_flags

NUM_CLASSES = 10  # digits 0..9 (Fashion-MNIST's and CIFAR-10's ten classes too)
STYLE_GRID_CLASS = 4  # latentConditional.png decodes the grid of codes as this class
SAMPLES_PER_CLASS = 100  # drawings per class that a separate classifier judges


def main(config):
    # TensorFlow loads with these imports, here rather than at the top, so that --help answers at once.
    import numpy as np

    from vae.data import DATASET_ITEMS
    from vae.evaluation import class_agreement, class_from_code, decode, encode, train_classifier
    from vae.experiment import Experiment
    from vae.figures import plot_class_samples, plot_latent_clusters, plot_manifold, plot_style_transfer
    from vae.model import build_vae

    experiment = Experiment(config, name="conditional", min_latent_dim=2)
    (x_train, y_train), (x_test, y_test) = experiment.load_data()
    y_train, y_test = y_train.astype("int32"), y_test.astype("int32")  # the networks' label inputs are int32

    # The 2-D chapter's networks, each given the label too: encoder [image, label] → z, decoder [z, label] → image.
    encoder, decoder, vae = build_vae(config, image_shape=x_train.shape[1:], num_classes=NUM_CLASSES)
    # The data are (images, labels) pairs: the VAE's train_step passes the labels to both networks.
    history = experiment.train(vae, (x_train, y_train), (x_test, y_test))

    # Draw every class from the same ten codes: a row per class, a column per code (one style).
    items = DATASET_ITEMS[config.dataset]
    plot_class_samples(decoder, experiment.asset("samples_conditional.png"), NUM_CLASSES, items=items)

    # The codes of the test images, each found with its own label: style, with the class taken out.
    z_mean, _ = encode(encoder, x_test, labels=y_test)
    plot_latent_clusters(z_mean, y_test, experiment.asset("ClustersConditional.png"),
                         title=f"Test images in the conditional VAE's latent plane ({len(z_mean):,} points)")
    plot_manifold(decoder, experiment.asset("latentConditional.png"), config.grid_size, config.grid_limit,
                  fixed=[0.0] * (config.latent_dim - 2), label=STYLE_GRID_CLASS,
                  title=f"A {STYLE_GRID_CLASS} decoded over a {config.grid_size}×{config.grid_size} grid of codes")

    # The first test image of each of the first six classes, its style drawn as every class.
    firsts = [int(np.flatnonzero(y_test == c)[0]) for c in range(NUM_CLASSES) if np.any(y_test == c)]
    plot_style_transfer(decoder, x_test[firsts[:6]], z_mean[firsts[:6]],
                        experiment.asset("style_transfer_conditional.png"), NUM_CLASSES)

    # Does the decoder draw the class it is asked for? A separate classifier, trained on the training
    # images, judges drawings from fresh prior codes; and can the class still be read off the code?
    classifier = train_classifier(x_train, y_train, NUM_CLASSES, seed=config.seed)
    asked = np.repeat(np.arange(NUM_CLASSES), SAMPLES_PER_CLASS)
    z = np.random.default_rng(config.seed).standard_normal((len(asked), config.latent_dim))
    drawn = decode(decoder, z, labels=asked)
    agreement = [class_agreement(classifier, drawn[asked == c], asked[asked == c]) for c in range(NUM_CLASSES)]

    experiment.finish(
        vae, history, x_test, y_test, z_mean,
        num_classes=NUM_CLASSES,
        judge_test_accuracy=class_agreement(classifier, x_test, y_test),
        samples_judged=len(asked),
        samples_of_asked_class=float(np.mean(agreement)),
        samples_of_asked_class_per_class=agreement,
        class_from_code_accuracy=class_from_code(z_mean, y_test),
        style_grid_class=STYLE_GRID_CLASS,
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
        free_bits=0.0,  # nats per latent dimension: a dimension's KL below it is not penalized; 0: off
        seed=0,
        train_size=None,  # None: all 60,000 training images
        grid_size=20,  # latentConditional.png decodes a grid_size × grid_size grid ...
        grid_limit=3.0,  # ... over z0, z1 from -grid_limit to +grid_limit
    )
    main(parse_flags(hyperparameters, min_latent_dim=2, description=__doc__))
