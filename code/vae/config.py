"""Hyperparameters: the `Config` a script's `__main__` block fills in, the flags that override it, and their checks.

This module loads no TensorFlow, so that `--help` and a refused value answer at once.
"""

import argparse
import dataclasses
import math
import os
import re
from pathlib import Path

import numpy as np

from vae.checks import FLOAT32_MAX, FLOAT32_TINY, LIKELIHOODS, check_covariance
from vae.data import DATASET_SIZES, IMAGE_SHAPES

REPO_ROOT = Path(__file__).resolve().parents[2]

# Upper bounds of the size-like hyperparameters: beyond them a run would exhaust memory or
# draw nothing useful, and the error comes after training instead of before it.
MAX_LATENT_DIM = 1024
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = DATASET_SIZES["mnist"][0]  # one batch of the whole training set
MAX_SEED = 2**32 - 1  # NumPy's and TensorFlow's seeds are 32-bit
MAX_GRID_SIZE = 100  # a 100 × 100 manifold figure is 2,800 × 2,800 pixels
MAX_GRID_LIMIT = 100.0  # in prior standard deviations: far past where any code lies
# Free bits, in nats per latent dimension: ln 60,000 ≈ 11 nats is enough to tell every training image apart,
# so a floor of 10 nats on every dimension's KL leaves the KL term nothing to hold back.
MAX_FREE_BITS = 10.0
DEVICE_NAME = re.compile(r"/(device:)?(cpu|gpu|tpu):\d+", re.IGNORECASE)  # "/gpu:0", "/device:GPU:1"
DISTRIBUTE = ("none", "mirrored", "multi_worker")  # vae/distribute.py says what each does
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")  # Keras' dtype policies
BINARIZE = ("off", "dynamic")  # "dynamic": training images drawn afresh as Bernoulli(pixel) at every step
DATASETS = tuple(DATASET_SIZES)  # "mnist", "fashion_mnist", "cifar10": vae/data.py says where each comes from
ARCHITECTURES = ("mlp", "conv")  # the encoder's and decoder's layers: vae/model.py
# The likelihood a run gets unless it names one: the Bernoulli's cross-entropy for the grey-scale sets, as the
# tutorial has it; for colour photos, whose pixels are rarely near 0 or 1, the continuous Bernoulli's density.
DEFAULT_LIKELIHOODS = {"mnist": "bernoulli", "fashion_mnist": "bernoulli", "cifar10": "continuous_bernoulli"}


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
    kl_warmup_epochs: int = 0  # the KL's weight rises from 0 to beta over this many epochs (vae/schedules.py); 0: off
    free_bits: float = 0.0  # nats per latent dimension: a dimension's KL below it is not penalized; 0: off
    likelihood: "str | None" = None  # p(x|z) per pixel: "bernoulli", or "continuous_bernoulli", a density on [0, 1];
    # None: the data set's own (DEFAULT_LIKELIHOODS), set by check()
    binarize: str = "off"  # "dynamic": train on images drawn as Bernoulli(pixel) at every step, test on one draw
    dataset: str = "mnist"  # or "fashion_mnist", "cifar10"; the outputs of another than MNIST carry its name
    architecture: str = "mlp"  # or "conv": strided convolutions; the outputs of "conv" carry its name
    seed: int = 0
    train_size: "int | None" = None  # use the first N training images; None: all (60,000; CIFAR-10's 50,000)
    prior_cov: "list | None" = None  # the prior's covariance Σ (k×k); None: N(0, I)
    grid_size: int = 20  # decoded manifold figures: grid_size × grid_size digits
    grid_limit: float = 3.0  # ... over z from -grid_limit to +grid_limit
    # Compile the training step with XLA: faster epochs after a few seconds' compiling. None: on for "mlp", off for
    # "conv", whose convolutions XLA's fused steps (vae/fused.py) run about 40× slower on a CPU, set by check().
    xla: "bool | None" = None
    data_dir: "str | None" = None  # a folder with the data set; None: $VAE_DATA_DIR, else the repository's data/
    out: str = str(REPO_ROOT)  # assets/ and models/ are written under this folder
    distribute: str = "none"  # "none": one device; "mirrored": local GPUs; "multi_worker": machines in TF_CONFIG
    devices: "list | None" = None  # for "mirrored": device names such as ["/gpu:0", "/gpu:1"]; None: all GPUs
    precision: str = "float32"  # or "mixed_float16" (GPUs), "mixed_bfloat16" (CPUs, TPUs)

    def check(self, min_latent_dim=1):
        """Raise ConfigError for the first hyperparameter out of range; return self.

        Folder names may be given as `pathlib.Path`; they are kept as strings.
        """
        _check_int("latent_dim", self.latent_dim, min_latent_dim, MAX_LATENT_DIM)
        _check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        _check_int("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        _check_number("learning_rate", self.learning_rate, FLOAT32_TINY, FLOAT32_MAX)
        _check_number("beta", self.beta, 0.0, FLOAT32_MAX)
        _check_int("kl_warmup_epochs", self.kl_warmup_epochs, 0, MAX_EPOCHS)
        if self.kl_warmup_epochs >= self.epochs and self.kl_warmup_epochs > 0:
            raise ConfigError(f"kl_warmup_epochs must be less than epochs ({self.epochs}), so that the last epochs "
                              f"train with the full beta, got {self.kl_warmup_epochs}")
        _check_number("free_bits", self.free_bits, -math.inf, math.inf)  # a finite number; its range:
        if not 0 <= self.free_bits <= MAX_FREE_BITS:
            raise ConfigError(f"free_bits must be from 0 to {MAX_FREE_BITS:g} nats per latent dimension (ln 60,000 ≈ "
                              f"11 nats already tells every training image apart), got {self.free_bits:g}")
        _check_choice("dataset", self.dataset, DATASETS)
        _check_choice("architecture", self.architecture, ARCHITECTURES)
        if self.likelihood is None:
            self.likelihood = DEFAULT_LIKELIHOODS[self.dataset]
        _check_choice("likelihood", self.likelihood, LIKELIHOODS)
        _check_choice("binarize", self.binarize, BINARIZE)
        if self.binarize == "dynamic" and IMAGE_SHAPES[self.dataset][-1] > 1:
            raise ConfigError(f"binarize 'dynamic' draws binary images from grey-scale pixels; {self.dataset} is in "
                              f"colour. Use binarize 'off'")
        if self.likelihood == "continuous_bernoulli" and self.binarize == "dynamic":
            # On pixels of exactly 0 or 1 its density grows without bound as λ → 0 or 1: no maximum to train to.
            raise ConfigError("likelihood 'continuous_bernoulli' is a density for grayscale pixels in [0, 1]; with "
                              "binarize 'dynamic' every pixel is 0 or 1, where it grows without bound. Use "
                              "likelihood 'bernoulli' for binarized images")
        _check_int("seed", self.seed, 0, MAX_SEED)
        if self.train_size is not None:
            _check_int("train_size", self.train_size, 1, DATASET_SIZES[self.dataset][0])
        if self.prior_cov is not None:
            try:
                check_covariance(self.prior_cov, self.latent_dim)
            except ValueError as error:
                raise ConfigError(f"prior_cov: {error}") from None
            sigma = np.asarray(self.prior_cov, dtype=np.float64)
            if self.free_bits and not np.array_equal(sigma, np.diag(np.diag(sigma))):
                raise ConfigError("free_bits needs a prior with independent dimensions (a diagonal prior_cov): the KL "
                                  "to a correlated prior does not split into one term per latent dimension")
        _check_int("grid_size", self.grid_size, 2, MAX_GRID_SIZE)
        _check_number("grid_limit", self.grid_limit, FLOAT32_TINY, MAX_GRID_LIMIT)
        if self.xla is None:
            self.xla = self.architecture == "mlp"
        if not isinstance(self.xla, bool):
            raise ConfigError(f"xla must be True or False, got {self.xla!r}")
        if self.data_dir is not None:
            self.data_dir = _check_folder("data_dir", self.data_dir, must_exist=True)
        self.out = _check_folder("out", self.out, must_exist=False)
        _check_choice("distribute", self.distribute, DISTRIBUTE)
        if self.devices is not None:
            if self.distribute != "mirrored":
                raise ConfigError(f"devices is only for distribute='mirrored', got distribute={self.distribute!r}")
            if (not isinstance(self.devices, (list, tuple)) or not self.devices
                    or not all(isinstance(d, str) and DEVICE_NAME.fullmatch(d) for d in self.devices)):
                raise ConfigError(f"devices must be a list of device names such as ['/gpu:0', '/gpu:1'], "
                                  f"got {self.devices!r}")
            if len(set(map(str.lower, self.devices))) < len(self.devices):
                raise ConfigError(f"devices names a device twice: {self.devices!r}")
            self.devices = list(self.devices)
        _check_choice("precision", self.precision, PRECISIONS)
        return self


def _check_choice(name, value, choices):
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_int(name, value, minimum, maximum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be from {minimum:,} to {maximum:,}, got {value:,}")


def _check_number(name, value, minimum, maximum):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if not minimum <= value <= maximum:
        minimum_text = "0" if minimum == 0 else f"{minimum:.2g}"
        raise ConfigError(f"{name} must be from {minimum_text} to {maximum:.2g} "
                          f"(what float32 training can use), got {value:g}")


def _check_folder(name, value, must_exist):
    """`value` (a str or os.PathLike) as a string; a ConfigError if it cannot be the folder named `name`."""
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{name} must be a folder name, got {value!r}")
    folder = os.fspath(value)
    if any(len(os.fsencode(part)) > 255 for part in Path(folder).parts):
        raise ConfigError(f"{name}: a name in {folder} is longer than 255 bytes, the file system's limit")
    if os.path.isdir(folder):
        return folder
    if os.path.lexists(folder):
        raise ConfigError(f"{name}: {folder} exists and is not a folder")
    if must_exist:
        raise ConfigError(f"{name}: {folder} is not a folder")
    return folder


def parse_covariance(text):
    """'1.0,0.4;0.4,0.5' → [[1.0, 0.4], [0.4, 0.5]]: rows split by ';', entries by ','."""
    try:
        return [[float(entry) for entry in row.split(",")] for row in text.split(";")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected rows of numbers like '1.0,0.4;0.4,0.5', got {text!r}"
        ) from None


def parse_devices(text):
    """'/gpu:0,/gpu:1' → ['/gpu:0', '/gpu:1']."""
    return [name.strip() for name in text.split(",")]


def parse_flags(defaults, argv=None, min_latent_dim=1, description=None):
    """Return a copy of `defaults` with the command-line flags applied, checked.

    Every flag is named after its field (`--batch-size` sets batch_size) and
    defaults to the value in the script's `__main__` block. Its help shows that default once.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    flag = parser.add_argument
    flag("--latent-dim", type=int, default=defaults.latent_dim, help="latent dimensions k (default: %(default)s)")
    flag("--epochs", type=int, default=defaults.epochs, help="passes over the training set (default: %(default)s)")
    flag("--batch-size", type=int, default=defaults.batch_size,
         help="images per gradient step (default: %(default)s)")
    flag("--learning-rate", type=float, default=defaults.learning_rate, help="Adam's step size (default: %(default)s)")
    flag("--beta", type=float, default=defaults.beta, help="weight of the KL term, 1 gives the ELBO (default: %(default)s)")
    flag("--kl-warmup-epochs", type=int, default=defaults.kl_warmup_epochs, metavar="N",
         help="KL warm-up: epoch e ≤ N weighs the KL by beta·(e−1)/N, later epochs by beta; 0: off "
              "(default: %(default)s)")
    flag("--free-bits", type=float, default=defaults.free_bits, metavar="NATS",
         help="free bits: each latent dimension's KL (batch mean) below NATS counts as NATS in the loss, so it "
              "is not pulled to the prior; the reported KL stays the true one; 0: off (default: %(default)s)")
    flag("--likelihood", choices=LIKELIHOODS, default=defaults.likelihood,
         help="p(x|z) of each pixel: bernoulli (binary cross-entropy on the pixels) or continuous_bernoulli "
              "(a density on [0, 1]; the decoder then draws its mean) (default: " +
              ("bernoulli, for cifar10 continuous_bernoulli)" if defaults.likelihood is None else "%(default)s)"))
    flag("--binarize", choices=BINARIZE, default=defaults.binarize,
         help="off: grayscale pixels; dynamic: each training image drawn afresh as Bernoulli(pixel) at every "
              "step, the test set drawn once with a fixed seed (default: %(default)s)")
    flag("--dataset", choices=DATASETS, default=defaults.dataset,
         help="mnist (digits), fashion_mnist (clothes; both 28×28 grey-scale) or cifar10 (32×32 colour photos); "
              "the outputs of another than mnist carry its name, e.g. Clusters2D_cifar10.png (default: %(default)s)")
    flag("--architecture", choices=ARCHITECTURES, default=defaults.architecture,
         help="mlp: the tutorial's dense layers; conv: strided convolutions, for any image size; the outputs of "
              "conv carry its name, e.g. encoder_2d_conv.h5 (default: %(default)s)")
    flag("--seed", type=int, default=defaults.seed,
         help="seed for weights, shuffling and sampling (default: %(default)s)")
    flag("--train-size", type=int, default=defaults.train_size, metavar="N",
         help="train on the first N training images, of 60,000 (cifar10: 50,000) (default: " +
              ("all 60,000)" if defaults.train_size is None else "%(default)s)"))
    if defaults.prior_cov is not None:
        flag("--prior-cov", type=parse_covariance, default=defaults.prior_cov, metavar="'A,B;C,D'",
             help="the prior's covariance matrix Σ, rows separated by ';' (default: %s)"
                  % ";".join(",".join(f"{v:g}" for v in row) for row in defaults.prior_cov))
    flag("--grid-size", type=int, default=defaults.grid_size,
         help="digits per side of a manifold figure (default: %(default)s)")
    flag("--grid-limit", type=float, default=defaults.grid_limit,
         help="manifold figures span ±this (default: %(default)s)")
    flag("--xla", action=argparse.BooleanOptionalAction, default=defaults.xla,
         help="compile the training step with XLA; --no-xla saves the compiling for short runs "
              "(default: %s)" % ({True: "--xla", False: "--no-xla"}.get(defaults.xla, "--xla; with --architecture "
                                 "conv --no-xla, as XLA's fused steps run convolutions about 40× slower on a CPU")))
    flag("--data-dir", default=defaults.data_dir, metavar="DIR",
         help="folder with the data set: IDX files or mnist.npz, CIFAR-10's cifar-10-batches-py/ or "
              "cifar-10-python.tar.gz (default: " +
              ("$VAE_DATA_DIR, else the repository's data/, else Keras' download)"
               if defaults.data_dir is None else "%(default)s)"))
    flag("--out", default=defaults.out, metavar="DIR",
         help="write assets/ and models/ under DIR (default: %(default)s)")
    flag("--distribute", choices=DISTRIBUTE, default=defaults.distribute,
         help="none: one device; mirrored: every local GPU (or --devices); multi_worker: the machines "
              "in $TF_CONFIG (default: %(default)s)")
    flag("--devices", type=parse_devices, default=defaults.devices, metavar="'/gpu:0,/gpu:1'",
         help="with --distribute mirrored: the devices to use, comma-separated (default: " +
              ("every GPU)" if defaults.devices is None else ",".join(defaults.devices) + ")"))
    flag("--precision", choices=PRECISIONS, default=defaults.precision,
         help="float32, or 16-bit layers: mixed_float16 on GPUs, mixed_bfloat16 on CPUs (default: %(default)s)")
    args = parser.parse_args(argv)
    config = dataclasses.replace(defaults, **vars(args))
    try:
        return config.check(min_latent_dim)
    except ConfigError as error:
        parser.error(str(error))
