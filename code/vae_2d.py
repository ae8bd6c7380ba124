"""A variational autoencoder with a two-dimensional latent space, trained on MNIST.

    python code/vae_2d.py              # the hyperparameters at the bottom of this file
    python code/vae_2d.py --epochs 5   # override one for this run (see --help)

The encoder maps each 28×28 digit to a Gaussian q(z|x) = N(μ, diag σ²) over a 2-D latent
plane; a `Sampling` layer draws z = μ + σ·ε from it; the decoder maps z back to pixel
probabilities. Training minimizes reconstruction + β·KL(q(z|x) ‖ N(0, I)) in nats per
image. Two latent dimensions are few enough to draw: every figure below is a picture of
the latent plane.

The pixels are Bernoulli targets by default; --likelihood continuous_bernoulli makes p(x|z) a
density on [0, 1] (vae/pixels.py), and --binarize dynamic trains on binary draws of the images.
--dataset fashion_mnist or cifar10 trains on another data set (vae/data.py; CIFAR-10's likelihood is the
continuous Bernoulli unless --likelihood says otherwise), --architecture conv on strided convolutions
(vae/model.py). Such a run's outputs carry their names, e.g. assets/Clusters2D_cifar10_conv.png and
models/metrics_2d_cifar10_conv.json, beside the tutorial's own.

Writes assets/Clusters2D.png, assets/latent2D.png, assets/reconstructions_2d.png,
assets/history_2d.png, assets/samples_2d.png, assets/interpolation_2d.png,
assets/posterior_widths_2d.png, assets/holes_2d.png, models/encoder_2d.h5, models/decoder_2d.h5, models/test_encodings_2d.npz
and models/metrics_2d.json (replacing those of an earlier run, all together at the end).
"""

from vae.config import Config, parse_flags


def main(config):
    # TensorFlow loads with these imports, here rather than at the top, so that --help answers at once.
    from vae.evaluation import encode
    from vae.experiment import Experiment
    from vae.figures import plot_latent_clusters, plot_manifold
    from vae.inspection import look_inside
    from vae.model import build_vae
    from vae.priors import GaussianPrior

    experiment = Experiment(config, name="2d", min_latent_dim=2)
    (x_train, _), (x_test, y_test) = experiment.load_data()

    # Encoder 784 → 512 → 256 → (μ, ln σ²) → z, decoder z → 256 → 512 → 784 (--architecture conv: strided
    # convolutions), and the VAE that trains them with the block's β, likelihood, ...: see vae/model.py.
    encoder, decoder, vae = build_vae(config, image_shape=x_train.shape[1:])  # (28, 28, 1) for MNIST
    history = experiment.train(vae, x_train, x_test)  # with a KL warm-up if config.kl_warmup_epochs

    # Where does the encoder put each test digit? Its posterior mean μ, colored by label.
    z_mean, z_log_var = encode(encoder, x_test)
    plot_latent_clusters(z_mean, y_test, experiment.asset("Clusters2D.png"))

    # What does the decoder draw at each point of the plane? A grid of z, decoded in one call.
    plot_manifold(decoder, experiment.asset("latent2D.png"), config.grid_size, config.grid_limit,
                  fixed=[0.0] * (config.latent_dim - 2))

    # Inside the model: new digits from the prior, walks between test digits, how wide each posterior
    # is, where the prior has mass and the codes do not, and ln p(x) beyond the ELBO (vae/inspection.py).
    inside = look_inside(experiment.asset, "2d", encoder, decoder, GaussianPrior.standard(config.latent_dim),
                         x_test, y_test, z_mean, z_log_var, binarize=config.binarize,
                         dataset=config.dataset)

    experiment.finish(vae, history, x_test, y_test, z_mean, **inside)


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
        grid_size=20,  # the manifold figure decodes a grid_size × grid_size grid ...
        grid_limit=3.0,  # ... over z0, z1 from -grid_limit to +grid_limit
    )
    main(parse_flags(hyperparameters, min_latent_dim=2, description=__doc__))
