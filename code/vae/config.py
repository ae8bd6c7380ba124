"""Hyperparameters: the `Config` a script's `__main__` block fills in, the flags that override it, and their checks.

Each hyperparameter is declared once, as a field of `Config` with one line of help, its bounds or choices;
the flags, their `--help`, the generic checks and the flag table of the README and the page come from there.
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
from vae.images import COLORS, DEFAULT_IMAGE_SIZES, MAX_IMAGE_SIZE, MAX_IMAGES

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
IMAGE_FOLDER = "images"  # --dataset images: a reader's own folder of images, --data-dir DIR (vae/images.py)
ARCHITECTURES = ("mlp", "conv")  # the encoder's and decoder's layers: the chapter's, or vae/conv.py
# The likelihood a run gets unless it names one: the Bernoulli's cross-entropy for grey-scale images, as the
# tutorial has it; for colour photos (cifar10, an rgb folder), whose pixels are rarely near 0 or 1, the
# continuous Bernoulli's density.
DEFAULT_LIKELIHOODS = {"grayscale": "bernoulli", "colour": "continuous_bernoulli"}


class ConfigError(ValueError):
    """A hyperparameter outside what it accepts; the message names the parameter."""


def hyperparameter(default, help_text, *, bounds=None, why=" (what float32 training can use)", choices=None, parse=None,
                   metavar=None, default_text=None):
    """A field of `Config` and its flag: help_text is one line; bounds (min, max) and choices are checked by
    Config.check, `why` says where a number's bounds come from; parse turns the flag's text into a value
    (the default's type unless given; bool: --name and --no-name); default_text says what a default means."""
    return dataclasses.field(default=default, metadata=dict(
        help=help_text, bounds=bounds, why=why, choices=choices, parse=parse or type(default), metavar=metavar,
        default_text=default_text))


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


@dataclasses.dataclass
class Config:
    """Everything one training run needs. Each field is a flag too: `--batch-size` sets batch_size."""

    latent_dim: int = hyperparameter(2, "latent dimensions k", bounds=(1, MAX_LATENT_DIM))
    epochs: int = hyperparameter(30, "passes over the training set", bounds=(1, MAX_EPOCHS))
    batch_size: int = hyperparameter(128, "images per gradient step", bounds=(1, MAX_BATCH_SIZE))
    learning_rate: float = hyperparameter(1e-3, "Adam's step size", bounds=(FLOAT32_TINY, FLOAT32_MAX))
    beta: float = hyperparameter(1.0, "weight of the KL term; 1 gives the ELBO", bounds=(0.0, FLOAT32_MAX))
    kl_warmup_epochs: int = hyperparameter(
        0, "KL warm-up: epoch e ≤ N weighs the KL by beta·(e−1)/N, later epochs by beta; 0: off "
           "(vae/variants.py: KLWarmUp)",
        bounds=(0, MAX_EPOCHS), metavar="N")
    free_bits: float = hyperparameter(
        0.0, "free bits: a latent dimension whose KL (batch mean) is below NATS gets no KL gradient, so it is not "
             "pulled to the prior; the KL and the loss stay the true ones; 0: off (vae/variants.py: FreeBits)",
        bounds=(0.0, MAX_FREE_BITS), metavar="NATS",
        why=" nats per latent dimension (ln 60,000 ≈ 11 nats already tells every training image apart)")
    likelihood: str | None = hyperparameter(
        None, "p(x|z) of each pixel: bernoulli (binary cross-entropy) or continuous_bernoulli (a density on "
              "[0, 1]; the decoder then draws its mean; vae/variants.py: ContinuousBernoulli)",
        choices=LIKELIHOODS, default_text="bernoulli, for cifar10 continuous_bernoulli")
    binarize: str = hyperparameter(
        "off", "off: grey-scale pixels; dynamic: each training image drawn afresh as Bernoulli(pixel) at every "
               "step, the test images once with a fixed seed (vae/variants.py: DynamicBinarization)", choices=BINARIZE)
    dataset: str = hyperparameter(
        "mnist", "mnist (digits), fashion_mnist (clothes; both 28×28 grey-scale), cifar10 (32×32 colour "
                 "photos) or images (your folder of PNG, JPEG, BMP or GIF files, --data-dir DIR, class sub-folders "
                 "optional; vae/images.py); another than mnist adds its name to the outputs",
        choices=(*DATASETS, IMAGE_FOLDER))
    image_size: int | None = hyperparameter(
        None, "with --dataset images: each image resized to N × N pixels as Keras resizes (aspect ratio not kept)",
        bounds=(4, MAX_IMAGE_SIZE), parse=int, metavar="N", default_text="28, for --color rgb 32")
    color: str | None = hyperparameter(
        None, "with --dataset images: read the images as grayscale (1 channel) or rgb (3)", choices=COLORS,
        parse=str, default_text="grayscale")
    architecture: str = hyperparameter(
        "mlp", "mlp: the tutorial's dense layers; conv: strided convolutions (vae/conv.py), which add their name to "
               "the outputs",
        choices=ARCHITECTURES)
    seed: int = hyperparameter(0, "seed for weights, shuffling and sampling", bounds=(0, MAX_SEED))
    train_size: int | None = hyperparameter(
        None, "train on the first N training images, of 60,000 (cifar10: 50,000)",
        parse=int, metavar="N", default_text="all 60,000")
    prior_cov: list | None = hyperparameter(
        None, "the prior's covariance Σ, rows separated by ';' (a flag of vae_correlated.py only)",
        parse=parse_covariance, metavar="'A,B;C,D'", default_text="the identity: N(0, I)")
    grid_size: int = hyperparameter(20, "digits per side of a manifold figure", bounds=(2, MAX_GRID_SIZE))
    grid_limit: float = hyperparameter(
        3.0, "manifold figures span z from −X to +X", bounds=(FLOAT32_TINY, MAX_GRID_LIMIT), metavar="X")
    xla: bool | None = hyperparameter(
        None, "compile the training step with XLA (off for conv: XLA's fused steps run convolutions about 40× "
              "slower on a CPU); --no-xla saves the compiling for short runs",
        parse=bool, default_text="--xla, for conv --no-xla")
    data_dir: str | None = hyperparameter(
        None, "folder with the data set: IDX files or mnist.npz, CIFAR-10's cifar-10-batches-py/ or "
              "cifar-10-python.tar.gz", parse=str, metavar="DIR",
        default_text="$VAE_DATA_DIR, else the repository's data/, else Keras' download")
    out: str = hyperparameter(
        str(REPO_ROOT), "write assets/ and models/ under DIR", metavar="DIR", default_text="the repository")
    distribute: str = hyperparameter(
        "none", "none: one device; mirrored: every local GPU (or --devices); multi_worker: the machines in "
                "$TF_CONFIG (vae/variants.py: SeveralDevices)", choices=DISTRIBUTE)
    devices: list | None = hyperparameter(
        None, "with --distribute mirrored: the devices to use, comma-separated",
        parse=parse_devices, metavar="'/gpu:0,/gpu:1'", default_text="every GPU")
    precision: str = hyperparameter(
        "float32", "float32, or 16-bit layers: mixed_float16 on GPUs, mixed_bfloat16 on CPUs "
                   "(vae/variants.py: SeveralDevices)", choices=PRECISIONS)

    def check(self, min_latent_dim=1):
        """Raise ConfigError for the first hyperparameter out of range; return self.

        Fills in the defaults that depend on other fields (likelihood, xla). Folder names may be
        given as `pathlib.Path`; they are kept as strings.
        """
        # The checks declared with each field: its type, choices and bounds.
        for field in dataclasses.fields(self):
            name, value, declared = field.name, getattr(self, field.name), field.metadata
            if value is None and field.default is None:
                continue  # not set: its default is worked out below, or it needs none
            if declared["choices"]:
                _check_choice(name, value, declared["choices"])
            elif declared["parse"] is bool and not isinstance(value, bool):
                raise ConfigError(f"{name} must be True or False, got {value!r}")
            elif declared["bounds"]:
                minimum, maximum = declared["bounds"]
                if name == "latent_dim":
                    minimum = min_latent_dim  # the script's own: a 2-D manifold needs 2 dimensions
                if declared["parse"] is int:
                    _check_int(name, value, minimum, maximum)
                else:
                    _check_number(name, value, minimum, maximum, declared["why"])
        # The checks that involve more than one field.
        if self.kl_warmup_epochs >= self.epochs and self.kl_warmup_epochs > 0:
            raise ConfigError(f"kl_warmup_epochs must be less than epochs ({self.epochs}), so that the last epochs "
                              f"train with the full beta, got {self.kl_warmup_epochs}")
        if self.dataset == IMAGE_FOLDER:
            if self.data_dir is None:
                raise ConfigError("dataset 'images' reads your folder of images: name it with data_dir (--data-dir DIR)")
            self.color = self.color or "grayscale"
            self.image_size = self.image_size or DEFAULT_IMAGE_SIZES[self.color]
        elif self.image_size is not None or self.color is not None:
            raise ConfigError(f"image_size and color are for dataset 'images' (a folder of images), and the dataset "
                              f"is {self.dataset!r}: {IMAGE_SHAPES[self.dataset]} images")
        colour = self.color == "rgb" if self.dataset == IMAGE_FOLDER else IMAGE_SHAPES[self.dataset][-1] > 1
        if self.likelihood is None:
            self.likelihood = DEFAULT_LIKELIHOODS["colour" if colour else "grayscale"]
        if self.binarize == "dynamic" and colour:
            raise ConfigError(f"binarize 'dynamic' draws binary images from grey-scale pixels; {self.dataset} is in "
                              f"colour. Use binarize 'off'")
        if self.likelihood == "continuous_bernoulli" and self.binarize == "dynamic":
            # On pixels of exactly 0 or 1 its density grows without bound as λ → 0 or 1: no maximum to train to.
            raise ConfigError("likelihood 'continuous_bernoulli' is a density for grayscale pixels in [0, 1]; with "
                              "binarize 'dynamic' every pixel is 0 or 1, where it grows without bound. Use "
                              "likelihood 'bernoulli' for binarized images")
        if self.train_size is not None:  # a folder's size is checked when it is read
            _check_int("train_size", self.train_size, 1,
                       MAX_IMAGES if self.dataset == IMAGE_FOLDER else DATASET_SIZES[self.dataset][0])
        if self.prior_cov is not None:
            try:
                check_covariance(self.prior_cov, self.latent_dim)
            except ValueError as error:
                raise ConfigError(f"prior_cov: {error}") from None
            sigma = np.asarray(self.prior_cov, dtype=np.float64)
            if self.free_bits and not np.array_equal(sigma, np.diag(np.diag(sigma))):
                raise ConfigError("free_bits needs a prior with independent dimensions (a diagonal prior_cov): the KL "
                                  "to a correlated prior does not split into one term per latent dimension")
        if self.xla is None:
            self.xla = self.architecture == "mlp"  # see xla's help
        if self.data_dir is not None:
            self.data_dir = _check_folder("data_dir", self.data_dir, must_exist=True)
        self.out = _check_folder("out", self.out, must_exist=False)
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
        return self


def _check_choice(name, value, choices):
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_int(name, value, minimum, maximum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be from {minimum:,} to {maximum:,}, got {value:,}")


def _check_number(name, value, minimum, maximum, why):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if not minimum <= value <= maximum:
        minimum_text = "0" if minimum == 0 else f"{minimum:.2g}"
        raise ConfigError(f"{name} must be from {minimum_text} to {maximum:.2g}{why}, got {value:g}")


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


def flag_name(field_name):
    """'batch_size' → '--batch-size'."""
    return "--" + field_name.replace("_", "-")


def shown_default(field, value):
    """A default as --help and the flag table show it: what it means, or the value as the flag spells it."""
    is_default = value is None if field.default is None else value == field.default
    if is_default and field.metadata["default_text"]:
        return field.metadata["default_text"]
    if isinstance(value, bool):
        return flag_name(field.name) if value else "--no-" + field.name.replace("_", "-")
    if field.name == "prior_cov":  # rows split by ';', as --prior-cov takes them
        return ";".join(",".join(map(str, np.atleast_1d(row))) for row in value)
    if field.name == "devices":
        return ",".join(map(str, value))
    return str(value)


def parse_flags(defaults, argv=None, min_latent_dim=1, description=None):
    """Return a copy of `defaults` with the command-line flags applied, checked.

    Every field is a flag (`--batch-size` sets batch_size) that defaults to the value in the
    script's `__main__` block. Its help shows that default once.
    """
    # argument_default=SUPPRESS: a flag not given is not in the parsed flags, so its field keeps the block's value.
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     argument_default=argparse.SUPPRESS)
    for field in dataclasses.fields(Config):
        if field.name == "prior_cov" and defaults.prior_cov is None:
            continue  # only a script with a prior of its own takes --prior-cov
        declared = field.metadata
        help_text = f"{declared['help']} (default: {shown_default(field, getattr(defaults, field.name))})"
        options = dict(help=help_text.replace("%", "%%"), metavar=declared["metavar"])
        if declared["choices"]:
            options["choices"] = declared["choices"]
        elif declared["parse"] is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = declared["parse"]
        parser.add_argument(flag_name(field.name), **options)
    config = dataclasses.replace(defaults, **vars(parser.parse_args(argv)))
    try:
        return config.check(min_latent_dim)
    except ConfigError as error:
        parser.error(str(error))


def flags_markdown():
    """The flags as a markdown table, one row per flag: the flag, its default in `Config`, what it does."""
    rows = ["| flag | default | what it does |", "|---|---|---|"]
    for field in dataclasses.fields(Config):
        flags = [flag_name(field.name)]
        if field.metadata["parse"] is bool:
            flags.append("--no-" + flags[0][2:])
        elif field.metadata["metavar"]:
            flags[0] += " " + field.metadata["metavar"]
        default = shown_default(field, field.default)
        if not field.metadata["default_text"]:
            default = f"`{default}`"  # a value, as code
        cells = [", ".join(f"`{flag}`" for flag in flags), default, field.metadata["help"]]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"
