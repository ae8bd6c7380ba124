"""Checks of the maths' inputs that need NumPy only, so that the flags (vae/config.py) can run them
before TensorFlow loads: the pixel likelihoods' names (vae/pixels.py) and the prior's covariance Σ
(vae/priors.py). Like every maths module, it imports nothing from the command line's side.
"""

import numpy as np

LIKELIHOODS = ("bernoulli", "continuous_bernoulli")  # p(x|z) per pixel: vae/pixels.py says what each is
# Training runs in float32: a value it cannot represent becomes 0 or inf.
FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # 1.2e-38, the smallest normal float32
FLOAT32_MAX = float(np.finfo(np.float32).max)  # 3.4e38
MAX_CONDITION_NUMBER = 1e6  # of the prior's Σ: beyond it, Σ⁻¹ in float32 is mostly rounding error


def check_covariance(covariance, latent_dim=None):
    """Return `covariance` as a float64 (k, k) array, or raise ValueError saying what is wrong.

    A covariance must be finite, square, symmetric and positive definite, well enough
    conditioned for float32 training, and, when `latent_dim` is given, latent_dim × latent_dim.
    """
    rows = list(covariance) if isinstance(covariance, (list, tuple)) else None
    if rows and all(isinstance(row, (list, tuple)) for row in rows) and len({len(row) for row in rows}) > 1:
        raise ValueError(f"covariance is not square: its rows have lengths {[len(row) for row in rows]}")
    try:
        sigma = np.array(covariance, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"covariance must be a square matrix of numbers, got {covariance!r}") from error
    if sigma.ndim != 2 or sigma.shape[0] != sigma.shape[1] or sigma.size == 0:
        raise ValueError(f"covariance is not square: shape {sigma.shape}")
    if not np.all(np.isfinite(sigma)) or np.abs(sigma).max() > FLOAT32_MAX:
        raise ValueError(f"covariance is not finite in float32 (it holds inf, nan or a value past 3.4e38): "
                         f"{sigma.tolist()}")
    if latent_dim is not None and sigma.shape[0] != latent_dim:
        raise ValueError(
            f"covariance does not match latent_dim: it is {sigma.shape[0]}×{sigma.shape[0]}, "
            f"latent_dim is {latent_dim}"
        )
    if not np.allclose(sigma, sigma.T, rtol=0.0, atol=1e-8):
        raise ValueError(f"covariance is not symmetric: {sigma.tolist()}")
    eigenvalues = np.linalg.eigvalsh(sigma)
    if eigenvalues[0] <= 0 or _not_cholesky_factorable(sigma):
        raise ValueError(
            f"covariance is not positive definite (eigenvalues {np.round(eigenvalues, 6).tolist()}): "
            f"{sigma.tolist()}"
        )
    condition = eigenvalues[-1] / eigenvalues[0]
    if condition > MAX_CONDITION_NUMBER:
        raise ValueError(
            f"covariance is nearly singular: its condition number is {condition:.3g}, more than "
            f"{MAX_CONDITION_NUMBER:.0e} (eigenvalues {eigenvalues.tolist()}); float32 training would "
            f"divide by its smallest eigenvalue"
        )
    return sigma


def _not_cholesky_factorable(sigma):
    try:
        np.linalg.cholesky(sigma)
        return False
    except np.linalg.LinAlgError:
        return True
