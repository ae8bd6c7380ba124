"""Priors p(z) over the latent space and their KL divergence to the encoder's posterior.

The encoder's posterior is a diagonal Gaussian q(z|x) = N(μ, diag σ²), given by
`z_mean` = μ and `z_log_var` = ln σ², each of shape (batch, latent_dim).
Every KL here is in nats per image, shape (batch,).
"""

import numpy as np
from keras import ops

from vae.checks import check_covariance


class GaussianPrior:
    """The prior p(z) = N(0, Σ), kept through its Cholesky factor L (Σ = L Lᵀ, L lower triangular).

    `GaussianPrior.standard(k)` is the usual N(0, I) prior of a VAE.
    """

    def __init__(self, covariance):
        self.covariance = check_covariance(covariance)
        self.latent_dim = self.covariance.shape[0]
        self.cholesky = np.linalg.cholesky(self.covariance)
        # ln det Σ = 2 Σᵢ ln Lᵢᵢ
        self.log_det = 2.0 * float(np.sum(np.log(np.diag(self.cholesky))))
        # diag(Σ⁻¹)ⱼ = Σᵢ (L⁻¹)ᵢⱼ², with L⁻¹ from one triangular solve L X = I (no explicit inverse of Σ).
        identity = np.eye(self.latent_dim)
        cholesky_solve_identity = ops.convert_to_numpy(
            ops.solve_triangular(self.cholesky, identity, lower=True)
        )
        self.precision_diagonal = np.sum(np.square(cholesky_solve_identity), axis=0)

    @classmethod
    def standard(cls, latent_dim):
        """The standard normal prior N(0, I) in `latent_dim` dimensions."""
        return cls(np.eye(latent_dim))

    @property
    def is_standard(self):
        return bool(np.array_equal(self.covariance, np.eye(self.latent_dim)))

    @property
    def correlation(self):
        """The correlation matrix Σᵢⱼ / √(Σᵢᵢ Σⱼⱼ), shape (k, k)."""
        scale = np.sqrt(np.diag(self.covariance))
        return self.covariance / np.outer(scale, scale)

    def kl_divergence(self, z_mean, z_log_var):
        """KL(N(μ, diag σ²) ‖ N(0, Σ)) in nats, shape (batch,):

        ½ [tr(Σ⁻¹ diag σ²) + μᵀ Σ⁻¹ μ − k + ln det Σ − Σᵢ ln σᵢ²],
        with μᵀ Σ⁻¹ μ = ‖L⁻¹ μ‖² from a triangular solve. For Σ = I this is the chapter's textbook KL (code/vae_2d.py, `VAE.kl_divergence`).
        """
        dtype = z_mean.dtype
        cholesky = ops.cast(self.cholesky, dtype)
        # Solve L w = μ for every image at once: the right-hand sides are the columns of μᵀ.
        whitened_mean = ops.solve_triangular(cholesky, ops.transpose(z_mean), lower=True)
        mahalanobis = ops.sum(ops.square(whitened_mean), axis=0)
        trace = ops.sum(ops.exp(z_log_var) * ops.cast(self.precision_diagonal, dtype), axis=-1)
        log_det_ratio = self.log_det - ops.sum(z_log_var, axis=-1)
        return 0.5 * (trace + mahalanobis - self.latent_dim + log_det_ratio)

    @property
    def is_diagonal(self):
        """True when Σ is diagonal: the latent dimensions are independent under the prior."""
        return bool(np.array_equal(self.covariance, np.diag(np.diag(self.covariance))))

    def kl_per_dimension(self, z_mean, z_log_var):
        """KL(N(μᵢ, σᵢ²) ‖ N(0, Σᵢᵢ)) of each latent dimension i, in nats, shape (batch, latent_dim):

        ½ [(σᵢ² + μᵢ²) / Σᵢᵢ − 1 + ln Σᵢᵢ − ln σᵢ²]. For a diagonal Σ they add up to `kl_divergence`'s KL.
        For any other Σ the KL does not split into one term per dimension (it also counts the prior's
        correlations), so this raises ValueError there.
        """
        if not self.is_diagonal:
            raise ValueError("the KL to a prior with correlated dimensions (a covariance that is not diagonal) "
                             "does not split into one term per latent dimension")
        dtype = z_mean.dtype
        variance = ops.cast(np.diag(self.covariance), dtype)  # Σᵢᵢ, (latent_dim,)
        return 0.5 * ((ops.exp(z_log_var) + ops.square(z_mean)) / variance - 1.0 + ops.log(variance) - z_log_var)

    def log_density(self, z):
        """ln N(z; 0, Σ) of latent points z (N, k): (N,) float64, in nats.

        −½ [‖L⁻¹ z‖² + k ln 2π + ln det Σ], with L⁻¹ z from one triangular solve.
        """
        whitened = np.linalg.solve(self.cholesky, np.asarray(z, dtype=np.float64).T)
        return -0.5 * (np.sum(np.square(whitened), axis=0) + self.latent_dim * np.log(2 * np.pi) + self.log_det)

    def sample(self, num_samples, seed=None):
        """Draw prior samples z = L ε with ε ~ N(0, I), as a NumPy array of shape (num_samples, k)."""
        epsilon = np.random.default_rng(seed).standard_normal((num_samples, self.latent_dim))
        return epsilon @ self.cholesky.T
