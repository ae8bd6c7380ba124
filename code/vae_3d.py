"""A variational autoencoder with a three-dimensional latent space, trained on MNIST.

    python code/vae_3d.py              # the hyperparameters at the bottom of this file
    python code/vae_3d.py --epochs 5   # override one for this run (see --help)

The model is the 2-D chapter's, imported from vae_2d.py: only latent_dim changes, from 2 to 3.
A 3-D space no longer fits on one page, so we look at it in pieces: a 3-D scatter, its three pairwise
projections, decoded slices at fixed z2, and how much of each dimension the model uses.
(--likelihood, --binarize, --dataset, --architecture and the rest: as in vae_2d.py.)

Writes assets/Clusters3D.png, 2D3DClusters.png, 3DLatent{1,2,3}.png, latent_variance_3d.png,
reconstructions_3d.png, history_3d.png, samples_3d.png, interpolation_3d.png, posterior_widths_3d.png,
holes_3d.png and traversal_3d.png (with --latent-dim 4 or more, embeddings_3d.png too), and
models/encoder_3d.h5, models/decoder_3d.h5, models/test_encodings_3d.npz and models/metrics_3d.json, all
together at the end.
"""

from vae.start import start

start(__file__)  # before TensorFlow loads: --help, a bad flag and Ctrl-C answer at once (vae/start.py)

import keras  # noqa: E402

from vae.config import Config, parse_flags  # noqa: E402
from vae_2d import VAE, build_decoder, build_encoder  # noqa: E402  the 2-D chapter's model, unchanged

SLICES = [-1.0, 0.0, 1.0]  # the z2 values of the decoded slices 3DLatent1, 2, 3


def main(config):
    from vae.evaluation import encode, latent_usage
    from vae.experiment import Experiment
    from vae.figures import plot_clusters_3d, plot_latent_variance, plot_manifold, plot_pairwise_projections
    from vae.inspection import look_inside
    from vae.priors import GaussianPrior

    run = Experiment(config, name="3d", min_latent_dim=3)
    (x_train, _), (x_test, y_test) = run.load_data()

    # The 2-D chapter's networks and VAE, with config.latent_dim = 3 outputs of the encoder and inputs of the decoder.
    encoder = build_encoder(config.latent_dim, x_train.shape[1:], seed=config.seed)
    decoder = build_decoder(config.latent_dim, x_train.shape[1:])
    vae = run.model(VAE, encoder, decoder, beta=config.beta)
    vae.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    history = run.fit(vae, x_train, x_test)

    # The test digits in 3-D, seen from where the clusters separate best, and flattened three ways.
    z_mean, z_log_var = encode(vae.encoder, x_test)
    plot_clusters_3d(z_mean, y_test, run.asset("Clusters3D.png"))
    plot_pairwise_projections(z_mean, y_test, run.asset("2D3DClusters.png"))

    # Slices through the decoded manifold: the (z0, z1) plane at three heights z2.
    for number, z2 in enumerate(SLICES, start=1):
        plot_manifold(vae.decoder, run.asset(f"3DLatent{number}.png"), config.grid_size, config.grid_limit,
                      fixed=[z2] + [0.0] * (config.latent_dim - 3), title=f"Decoded (z0, z1) slice at z2 = {z2:+.1f}")

    # Which dimensions carry information? Spread of μ across images against the posterior's own σ².
    latent_variance, mean_posterior_variance = latent_usage(z_mean, z_log_var)
    plot_latent_variance(latent_variance, mean_posterior_variance, run.asset("latent_variance_3d.png"))

    # Inside the model (vae/inspection.py): prior samples, walks, posterior widths, holes, and a traversal
    # of each dimension; ln p(x) beyond the ELBO, active units and the KL per dimension.
    inside = look_inside(run.asset, "3d", vae.encoder, vae.decoder, GaussianPrior.standard(config.latent_dim),
                         x_test, y_test, z_mean, z_log_var, binarize=config.binarize, dataset=config.dataset,
                         train_codes=encode(vae.encoder, x_train))

    run.finish(vae, history, x_test, y_test, z_mean, **inside, latent_variance=latent_variance.tolist(),
               mean_posterior_variance=mean_posterior_variance.tolist())


if __name__ == "__main__":
    # The hyperparameters. Edit them here, or override one for a single run with a flag.
    hyperparameters = Config(
        latent_dim=3,
        epochs=30,
        batch_size=128,
        learning_rate=1e-3,
        beta=1.0,  # weight of the KL term: 1 is the true ELBO, < 1 sharper, > 1 smoother
        kl_warmup_epochs=0,  # the KL's weight rises from 0 to beta over this many epochs; 0: off
        free_bits=0.0,  # nats per latent dimension: a dimension's KL below it gets no gradient; 0: off
        seed=0,
        train_size=None,  # None: all 60,000 training images
        grid_size=20,  # each slice decodes a grid_size × grid_size grid ...
        grid_limit=3.0,  # ... over z0, z1 from -grid_limit to +grid_limit
    )
    main(parse_flags(hyperparameters, min_latent_dim=3, description=__doc__))
