"""Shared test helpers: where the real data is, and how to run a chapter script as a reader would."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CODE_DIR = REPO_ROOT / "code"


def real_fashion_dir():
    """A folder with the real Fashion-MNIST (not in the repository): $VAE_DATA_DIR if set, else
    ../shared/data beside the repository. Skips the test when neither holds fashion-mnist/."""
    folder = Path(os.environ.get("VAE_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")
    if not any((folder / sub).is_dir() for sub in ["fashion-mnist", "fashion_mnist"]):
        pytest.skip("no real Fashion-MNIST: set VAE_DATA_DIR to a folder holding fashion-mnist/")
    return folder



def idx_bytes(array):
    """The bytes of a valid IDX file holding the array as uint8."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return header + array.tobytes()


def write_idx(path, array):
    """A plain IDX file holding the uint8 array."""
    Path(path).write_bytes(idx_bytes(array))


def write_mnist(folder, train, test, only_class=None):
    """The first `train` training and `test` test images of the repository's MNIST, as IDX files
    in `folder`; with `only_class`, only the images of that digit. Returns the folder."""
    from vae.data import read_idx

    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in [("train", train), ("t10k", test)]:
        images = read_idx(REPO_ROOT / "data" / "mnist" / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(REPO_ROOT / "data" / "mnist" / f"{prefix}-labels-idx1-ubyte.gz")
        keep = np.flatnonzero(labels == only_class) if only_class is not None else np.arange(len(labels))
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images[keep[:count]])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels[keep[:count]])
    return folder


@pytest.fixture(scope="session")
def small_mnist(tmp_path_factory):
    """A folder with a small subset of the real MNIST (2,000 training and 1,000 test images), so
    that a script's run takes seconds."""
    return write_mnist(tmp_path_factory.mktemp("small_mnist"), train=2000, test=1000)

def script_command(script, *args, env_extra=None):
    """The command line and environment that run `python code/<script> args...` as a reader would."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    return [sys.executable, str(CODE_DIR / script), *map(str, args)], env


def run_script(script, *args, timeout=600, env_extra=None):
    """Run `python code/<script> args...` in a fresh process; return the CompletedProcess."""
    command, env = script_command(script, *args, env_extra=env_extra)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO_ROOT)


def run_python(code, timeout=300):
    """Run a Python snippet in a fresh process with code/ on the path; return the CompletedProcess."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(CODE_DIR)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO_ROOT)


@pytest.fixture(scope="session")
def committed_root(tmp_path_factory):
    """A folder that mirrors the repository with the committed results: assets/*.png and models/*
    as in git HEAD (a reader's own run of a script rewrites them in the working tree), and
    everything else (index.html, assets/explorer/, page/, code/) linked from the working tree.
    Outside a git checkout, assets/ and models/ come from the working tree too.

    The checks of the committed page and README (stale page, stale README, quality bars, the
    explorers' decoders against Keras, the browser tests) run against this folder.
    """
    root = tmp_path_factory.mktemp("committed")
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar", "HEAD", "assets", "models"],
                             capture_output=True)
    if archive.returncode == 0:
        subprocess.run(["tar", "-x", "-C", str(root), "--exclude=assets/explorer"], input=archive.stdout, check=True)
    else:  # not a git checkout (or nothing committed yet): the working tree's results
        (root / "assets").mkdir()
        for path in (REPO_ROOT / "assets").glob("*.png"):
            (root / "assets" / path.name).symlink_to(path)
        (root / "models").symlink_to(REPO_ROOT / "models")
    (root / "assets").mkdir(exist_ok=True)
    (root / "assets" / "explorer").symlink_to(REPO_ROOT / "assets" / "explorer")
    for name in ["index.html", "page", "code", "README.md", "benchmarks"]:
        if (REPO_ROOT / name).exists():
            (root / name).symlink_to(REPO_ROOT / name)
    return root
