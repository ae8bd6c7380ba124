"""Hyperparameters: the `Config` a script's `__main__` block fills in, the flags that override it, and their checks."""

import argparse
import dataclasses
import math
from pathlib import Path

from vae.data import DATASET_SIZES
from vae.priors import check_covariance

REPO_ROOT = Path(__file__).resolve().parents[2]


class ConfigError(ValueError):
    """A hyperparameter outside what it accepts; the message names the parameter."""


@dataclasses.dataclass
class Config:
    """Everything one training run needs. Field names match the command-line flags."""

    latent_dim: int = 2
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 1e-3
    beta: float = 1.0  # weight of the KL term; 1 gives the ELBO
    seed: int = 0
    train_size: int | None = None  # use the first N training images; None: all 60,000
    prior_cov: list | None = None  # the prior's covariance Σ (k×k); None: N(0, I)
    grid_size: int = 20  # decoded manifold figures: grid_size × grid_size digits
    grid_limit: float = 3.0  # ... over z from -grid_limit to +grid_limit
    data_dir: str | None = None  # a folder with MNIST; None: $VAE_DATA_DIR, else download
    out: str = str(REPO_ROOT)  # assets/ and models/ are written under this folder

    def check(self, min_latent_dim=1):
        """Raise ConfigError for the first hyperparameter out of range; return self."""
        _check_int("latent_dim", self.latent_dim, minimum=min_latent_dim)
        _check_int("epochs", self.epochs, minimum=1)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_number("learning_rate", self.learning_rate, positive=True)
        _check_number("beta", self.beta)
        _check_int("seed", self.seed, minimum=0)
        if self.train_size is not None:
            _check_int("train_size", self.train_size, minimum=1, maximum=DATASET_SIZES["mnist"][0])
        if self.prior_cov is not None:
            try:
                check_covariance(self.prior_cov, self.latent_dim)
            except ValueError as error:
                raise ConfigError(f"prior_cov: {error}") from None
        _check_int("grid_size", self.grid_size, minimum=2)
        _check_number("grid_limit", self.grid_limit, positive=True)
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise ConfigError(f"data_dir: {self.data_dir} is not a folder")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise ConfigError(f"out: {self.out} exists and is not a folder")
        return self


def _check_int(name, value, minimum, maximum=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        accepted = f"≥ {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ConfigError(f"{name} must be {accepted}, got {value}")


def _check_number(name, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    if not positive and value < 0:
        raise ConfigError(f"{name} must be ≥ 0, got {value}")


def parse_covariance(text):
    """'1.0,0.4;0.4,0.5' → [[1.0, 0.4], [0.4, 0.5]]: rows split by ';', entries by ','."""
    try:
        return [[float(entry) for entry in row.split(",")] for row in text.split(";")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected rows of numbers like '1.0,0.4;0.4,0.5', got {text!r}"
        ) from None


def parse_flags(defaults, argv=None, min_latent_dim=1, description=None):
    """Return a copy of `defaults` with the command-line flags applied, checked.

    Every flag is named after its field (`--batch-size` sets batch_size) and
    defaults to the value in the script's `__main__` block.
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    flag = parser.add_argument
    flag("--latent-dim", type=int, default=defaults.latent_dim, help="latent dimensions k")
    flag("--epochs", type=int, default=defaults.epochs, help="passes over the training set")
    flag("--batch-size", type=int, default=defaults.batch_size, help="images per gradient step")
    flag("--learning-rate", type=float, default=defaults.learning_rate, help="Adam's step size")
    flag("--beta", type=float, default=defaults.beta, help="weight of the KL term (1: the ELBO)")
    flag("--seed", type=int, default=defaults.seed, help="seed for weights, shuffling and sampling")
    flag("--train-size", type=int, default=defaults.train_size, metavar="N",
         help="train on the first N training images (default: all)")
    if defaults.prior_cov is not None:
        flag("--prior-cov", type=parse_covariance, default=defaults.prior_cov, metavar="'A,B;C,D'",
             help="the prior's covariance matrix Σ, rows separated by ';'")
    flag("--grid-size", type=int, default=defaults.grid_size, help="digits per side of a manifold figure")
    flag("--grid-limit", type=float, default=defaults.grid_limit, help="manifold figures span ±this")
    flag("--data-dir", default=defaults.data_dir, metavar="DIR",
         help="folder with MNIST (IDX files or mnist.npz); default: $VAE_DATA_DIR, else download")
    flag("--out", default=defaults.out, metavar="DIR", help="write assets/ and models/ under DIR")
    args = parser.parse_args(argv)
    config = dataclasses.replace(defaults, **vars(args))
    try:
        return config.check(min_latent_dim)
    except ConfigError as error:
        parser.error(str(error))
