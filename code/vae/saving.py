"""Writing results to disk so that a failed or killed run never leaves a half-written file.

Every file is first written under a temporary name in the same folder and then renamed
over the old one in one step (`os.replace`), so a file on disk is always complete:
either the previous run's or this run's.
"""

import contextlib
import json
import logging
import os
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix); on success, rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_model(model, path):
    """Save a functional Keras model to `path` (.h5), atomically.

    Keras 3 calls HDF5 "legacy" and logs a warning for it; the tutorial keeps .h5 on purpose
    (one file, readable by h5py and older Keras), so that warning is silenced here.
    """
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        with atomic_path(path) as temporary:
            model.save(temporary)
    finally:
        absl_logger.setLevel(level)


def save_figure(figure, path, dpi=100):
    """Save a Matplotlib figure to `path` (.png), atomically, and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, bbox_inches="tight")
    plt.close(figure)


def save_json(data, path):
    """Write `data` as indented JSON to `path`, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2) + "\n")


def save_encodings(z_mean, labels, path):
    """Save the test images' posterior means (N, latent_dim) float32 and labels (N,) uint8 as .npz."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as file:
            np.savez_compressed(file, z_mean=np.asarray(z_mean, "float32"), labels=np.asarray(labels, "uint8"))
