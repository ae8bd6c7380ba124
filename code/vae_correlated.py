"""A variational autoencoder with a correlated Gaussian prior p(z) = N(0, Σ), trained on MNIST.

    python code/vae_correlated.py                                  # the block at the bottom
    python code/vae_correlated.py --prior-cov "1.0,-0.5;-0.5,1.0"  # another Σ for this run

The standard VAE's prior N(0, I) treats the latent dimensions as independent. Here the prior is
N(0, Σ) with Σ = L Lᵀ, L its Cholesky factor. Only the prior changes, so only the KL does: the networks
and the training are the 2-D chapter's (vae_2d.py), and `CorrelatedVAE` below overrides one method.
- the posterior is still q(z|x) = N(μ, diag σ²), sampled as z = μ + σ·ε;
- the KL becomes ½[tr(Σ⁻¹ diag σ²) + μᵀ Σ⁻¹ μ − k + ln det Σ − Σᵢ ln σᵢ²];
- samples from the prior are z = L ε, and so is the grid we decode to draw the manifold.
(--likelihood, --binarize, --dataset, --architecture and the rest: as in vae_2d.py.)

Writes assets/ClustersCorrelated.png, KLAdapted.png, covariance_matrix.png, reconstructions_correlated.png,
history_correlated.png, samples_correlated.png, interpolation_correlated.png, posterior_widths_correlated.png
and holes_correlated.png, and models/encoder_correlated.h5, decoder_correlated.h5,
test_encodings_correlated.npz and metrics_correlated.json, all together at the end.
"""

from vae.start import start

start(__file__)  # before TensorFlow loads: --help, a bad flag and Ctrl-C answer at once (vae/start.py)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from vae.config import Config, parse_flags  # noqa: E402
from vae_2d import VAE, build_decoder, build_encoder  # noqa: E402  the 2-D chapter's model


class CorrelatedVAE(VAE):
    """The 2-D chapter's VAE with the prior N(0, Σ): only the KL changes."""

    def __init__(self, encoder, decoder, prior_cov, beta=1.0, **kwargs):
        super().__init__(encoder, decoder, beta=beta, **kwargs)
        self.prior_cov = np.asarray(prior_cov, dtype=np.float64)  # Σ, (k, k)
        self.cholesky = np.linalg.cholesky(self.prior_cov)  # L, lower triangular, Σ = L Lᵀ

    def kl_divergence(self, z_mean, z_log_var):
        """KL(N(μ, diag σ²) ‖ N(0, Σ)) = ½[tr(Σ⁻¹ diag σ²) + μᵀ Σ⁻¹ μ − k + ln det Σ − Σᵢ ln σᵢ²], (batch,) nats.

        With Σ⁻¹ = L⁻ᵀ L⁻¹: μᵀ Σ⁻¹ μ = ‖L⁻¹ μ‖², diag(Σ⁻¹)ⱼ = Σᵢ (L⁻¹)ᵢⱼ², and ln det Σ = 2 Σᵢ ln Lᵢᵢ.
        """
        k = self.cholesky.shape[0]
        cholesky = ops.cast(self.cholesky, z_mean.dtype)
        inverse = ops.solve_triangular(cholesky, ops.eye(k, dtype=z_mean.dtype), lower=True)  # L⁻¹
        mahalanobis = ops.sum(ops.square(ops.matmul(z_mean, ops.transpose(inverse))), axis=-1)  # ‖L⁻¹ μ‖²
        trace = ops.sum(ops.exp(z_log_var) * ops.sum(ops.square(inverse), axis=0), axis=-1)  # tr(Σ⁻¹ diag σ²)
        log_det = 2.0 * ops.sum(ops.log(ops.diagonal(cholesky)))
        return 0.5 * (trace + mahalanobis - k + log_det - ops.sum(z_log_var, axis=-1))


def main(config):
    from vae.evaluation import encode
    from vae.experiment import Experiment
    from vae.figures import plot_covariance, plot_latent_clusters, plot_prior_manifold
    from vae.inspection import look_inside
    from vae.priors import GaussianPrior

    run = Experiment(config, name="correlated", min_latent_dim=2)
    (x_train, _), (x_test, y_test) = run.load_data()

    encoder = build_encoder(config.latent_dim, x_train.shape[1:], seed=config.seed)
    decoder = build_decoder(config.latent_dim, x_train.shape[1:])
    vae = run.model(CorrelatedVAE, encoder, decoder, prior_cov=config.prior_cov, beta=config.beta)
    vae.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    history = run.fit(vae, x_train, x_test)

    # The test digits' posterior means, with the prior's 1σ and 2σ ellipses drawn over them.
    prior = GaussianPrior(config.prior_cov)
    z_mean, z_log_var = encode(vae.encoder, x_test)
    plot_latent_clusters(z_mean, y_test, run.asset("ClustersCorrelated.png"),
                         prior_covariance=prior.covariance, title="Test images under the prior N(0, Σ)")

    # The decoded manifold over the prior's geometry: a square grid in ε-space, mapped to z = L ε.
    plot_prior_manifold(vae.decoder, run.asset("KLAdapted.png"), prior.cholesky, config.grid_size, config.grid_limit)

    # Did the encodings take on the prior's covariance?
    encoded_covariance = np.cov(z_mean.T)
    plot_covariance(prior.covariance, encoded_covariance, run.asset("covariance_matrix.png"))

    # Inside the model (vae/inspection.py): new digits from z = L ε, walks, posterior widths, the holes
    # of the codes under this prior, and ln p(x) beyond the ELBO with the prior's own density.
    inside = look_inside(run.asset, "correlated", vae.encoder, vae.decoder, prior, x_test, y_test, z_mean, z_log_var,
                         binarize=config.binarize, dataset=config.dataset,
                         train_codes=encode(vae.encoder, x_train))

    run.finish(vae, history, x_test, y_test, z_mean, **inside,
               prior_covariance=prior.covariance.tolist(),
               prior_correlation=float(prior.correlation[0, 1]),
               encoded_covariance=encoded_covariance.tolist(),
               encoded_correlation=float(np.corrcoef(z_mean.T)[0, 1]))


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
