"""Shared test helpers: where the real data is, and how to run a chapter script as a reader would."""

import io
import os
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CODE_DIR = REPO_ROOT / "code"

# The quick subset, `python -m pytest -m "not slow"`: the maths, the chapters' models, the flags and the priors,
# in under a minute on two cores. Every other test file is marked slow; so is a test of these that runs a script.
QUICK_FILES = {"test_model.py", "test_priors.py", "test_pixels.py", "test_config.py", "test_listings.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name not in QUICK_FILES:
            item.add_marker(pytest.mark.slow)


def real_fashion_dir():
    """A folder with the real Fashion-MNIST (not in the repository): $VAE_DATA_DIR if set, else
    ../shared/data beside the repository. Skips the test when neither holds fashion-mnist/."""
    folder = Path(os.environ.get("VAE_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")
    if not any((folder / sub).is_dir() for sub in ["fashion-mnist", "fashion_mnist"]):
        pytest.skip("no real Fashion-MNIST: set VAE_DATA_DIR to a folder holding fashion-mnist/")
    return folder



class Python2Pickler(pickle._Pickler):
    """Pickles bytes as Python 2's str (opcodes SHORT_BINSTRING, BINSTRING), as the published CIFAR-10
    batches were written; an unpickler with encoding="bytes" reads them back as bytes."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes_as_str(self, value):
        if len(value) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(value)]) + value)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(value)) + value)
        self.memoize(value)

    dispatch[bytes] = save_bytes_as_str


def cifar_batch_bytes(images=None, labels=None, batch=None):
    """A CIFAR-10 batch file's bytes, as published: a protocol-2 pickle, by Python 2 and NumPy 1, of a dict whose
    b"data" is uint8 (N, 3072), each row an image's red, green and blue planes, and b"labels" a list of ints.
    `batch` is pickled instead of the dict of `images` (N, 32, 32, 3) and `labels`, for malformed files."""
    if batch is None:
        rows = np.asarray(images, np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
        batch = {b"batch_label": b"a small batch", b"labels": [int(label) for label in labels],
                 b"data": np.ascontiguousarray(rows), b"filenames": [b"%d.png" % index for index in range(len(images))]}
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(batch)
    # NumPy 2 names its _reconstruct numpy._core.multiarray; the published files, NumPy 1's numpy.core.multiarray.
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def small_cifar10(per_batch=4, test=6, seed=0):
    """Random CIFAR-10-like data: {batch name: (uint8 images (n, 32, 32, 3), labels (n,))}."""
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{number}" for number in range(1, 6)] + ["test_batch"]
    return {name: (rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, count))
            for name, count in zip(names, [per_batch] * 5 + [test])}


def write_cifar10(folder, batches, archive=False):
    """`batches` ({name: (images, labels)} or {name: bytes}) as the files of cifar-10-batches-py/ in `folder`,
    or with `archive` as folder/cifar-10-python.tar.gz holding them. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: value if isinstance(value, bytes) else cifar_batch_bytes(*value) for name, value in batches.items()}
    if not archive:
        (folder / "cifar-10-batches-py").mkdir(exist_ok=True)
        for name, content in files.items():
            (folder / "cifar-10-batches-py" / name).write_bytes(content)
        return folder
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
        for name, content in files.items():
            member = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
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
    """A folder that mirrors the repository with the committed results: assets/*.png, models/* and
    benchmarks/ as in git HEAD (a reader's own run of a script or benchmark rewrites them in the working
    tree), and everything else (index.html, assets/explorer/, page/, code/) linked from the working tree.
    Outside a git checkout, assets/ and models/ come from the working tree too.

    The checks of the committed page and README (stale page, stale README, quality bars, the
    explorers' decoders against Keras, the browser tests) run against this folder.
    """
    root = tmp_path_factory.mktemp("committed")
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar", "HEAD", "assets", "models",
                              "benchmarks"], capture_output=True)
    if archive.returncode == 0:
        subprocess.run(["tar", "-x", "-C", str(root), "--exclude=assets/explorer"], input=archive.stdout, check=True)
    else:  # not a git checkout (or nothing committed yet): the working tree's results
        (root / "assets").mkdir()
        for path in (REPO_ROOT / "assets").glob("*.png"):
            (root / "assets" / path.name).symlink_to(path)
        (root / "models").symlink_to(REPO_ROOT / "models")
        (root / "benchmarks").symlink_to(REPO_ROOT / "benchmarks")
    (root / "assets").mkdir(exist_ok=True)
    (root / "assets" / "explorer").symlink_to(REPO_ROOT / "assets" / "explorer")
    for name in ["index.html", "page", "code", "README.md"]:
        if (REPO_ROOT / name).exists():
            (root / name).symlink_to(REPO_ROOT / name)
    return root
