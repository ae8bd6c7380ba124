"""A variational autoencoder with a correlated Gaussian prior p(z) = N(0, Σ), trained on MNIST.

    python code/vae_correlated.py                                  # the block at the bottom
    python code/vae_correlated.py --prior-cov "1.0,-0.5;-0.5,1.0"  # another Σ for this run

The standard VAE's prior N(0, I) treats the latent dimensions as independent. Here the
prior is N(0, Σ) with Σ = L Lᵀ (L its Cholesky factor). Only the prior changes:
- the posterior is still q(z|x) = N(μ, diag σ²), sampled as z = μ + σ·ε;
- the KL becomes ½[tr(Σ⁻¹ diag σ²) + μᵀ Σ⁻¹ μ − k + ln det Σ − Σᵢ ln σᵢ²]  (vae/priors.py);
- samples from the prior are z = L ε, and so is the grid we decode to draw the manifold.
The encoder learns to lay the digits out along the prior's tilted, stretched ellipse.
(--likelihood, --binarize, --dataset and --architecture: as in vae_2d.py.)

Writes assets/ClustersCorrelated.png, assets/KLAdapted.png, assets/covariance_matrix.png,
assets/reconstructions_correlated.png, assets/history_correlated.png, assets/samples_correlated.png,
assets/interpolation_correlated.png, assets/posterior_widths_correlated.png, assets/holes_correlated.png,
models/encoder_correlated.h5, models/decoder_correlated.h5, models/test_encodings_correlated.npz
and models/metrics_correlated.json (replacing those of an earlier run, all together at the end).
"""

import numpy as np

from vae.config import Config, parse_flags


def main(config):
    # TensorFlow loads with these imports, here rather than at the top, so that --help answers at once.
    from vae.evaluation import encode
    from vae.experiment import Experiment
    from vae.figures import plot_covariance, plot_latent_clusters, plot_prior_manifold
    from vae.inspection import look_inside
    from vae.model import build_vae
    from vae.priors import GaussianPrior

    experiment = Experiment(config, name="correlated", min_latent_dim=2)
    prior = GaussianPrior(config.prior_cov)
    (x_train, _), (x_test, y_test) = experiment.load_data()

    # The 2-D chapter's networks, in a VAE whose KL is taken against this prior (vae/model.py).
    encoder, decoder, vae = build_vae(config, image_shape=x_train.shape[1:], prior=prior)
    history = experiment.train(vae, x_train, x_test)  # with a KL warm-up if config.kl_warmup_epochs

    # The test digits' posterior means, with the prior's 1σ and 2σ ellipses drawn over them.
    z_mean, z_log_var = encode(encoder, x_test)
    plot_latent_clusters(z_mean, y_test, experiment.asset("ClustersCorrelated.png"),
                         prior_covariance=prior.covariance, title="Test images under the prior N(0, Σ)")

    # The decoded manifold over the prior's geometry: a square grid in ε-space, mapped to z = L ε.
    plot_prior_manifold(decoder, experiment.asset("KLAdapted.png"), prior.cholesky,
                        config.grid_size, config.grid_limit)

    # Did the encodings take on the prior's covariance?
    encoded_covariance = np.cov(z_mean.T)
    plot_covariance(prior.covariance, encoded_covariance, experiment.asset("covariance_matrix.png"))

    # Inside the model (vae/inspection.py): new digits from z = L ε, walks, posterior widths, the holes
    # of the codes under this prior, and ln p(x) beyond the ELBO with the prior's own density.
    inside = look_inside(experiment.asset, "correlated", encoder, decoder, prior, x_test, y_test, z_mean, z_log_var,
                         binarize=config.binarize, dataset=config.dataset)

    experiment.finish(
        vae, history, x_test, y_test, z_mean, **inside,
        prior_covariance=prior.covariance.tolist(),
        prior_correlation=float(prior.correlation[0, 1]),
        encoded_covariance=encoded_covariance.tolist(),
        encoded_correlation=float(np.corrcoef(z_mean.T)[0, 1]),
    )


if __name__ == "__main__":
    # The hyperparameters. Edit them here, or override one for a single run with a flag.
    hyperparameters = Config(
        latent_dim=2,
        prior_cov=[[1.0, 0.4],  # Σ: variances 1.0 and 0.5 on the diagonal, covariance 0.4,
                   [0.4, 0.5]],  # so a correlation of 0.4 / √(1.0 · 0.5) ≈ 0.566
        epochs=30,
        batch_size=128,
        learning_rate=1e-3,
        beta=1.0,  # weight of the KL term: 1 is the true ELBO, < 1 sharper, > 1 smoother
        kl_warmup_epochs=0,  # the KL's weight rises from 0 to beta over this many epochs; 0: off
        seed=0,
        train_size=None,  # None: all 60,000 training images
        grid_size=20,  # the manifold figure decodes a grid_size × grid_size grid of ε ...
        grid_limit=2.5,  # ... from -grid_limit to +grid_limit, mapped to z = L ε
    )
    main(parse_flags(hyperparameters, min_latent_dim=2, description=__doc__))
