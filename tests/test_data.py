"""Tests for vae.data: where the data comes from, IDX / npz reading, validation, bounded reading,
files that are not regular files, the Keras fallback, and property-based tests (Hypothesis)."""

import contextlib
import gzip
import io
import json
import os
import re
import signal
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import idx_bytes, real_fashion_dir, run_python
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vae import data
from vae.data import DataError, load_dataset, load_mnist, read_idx

IDX_NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


# ---------------------------------------------------------------------------
# Helpers that write small data sets
# ---------------------------------------------------------------------------


def write_file(path, content, compress=False):
    """Write bytes to path (gzip-compressed if compress); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(content)
    else:
        path.write_bytes(content)
    return path


def write_idx(path, array, compress=False):
    """Write a valid IDX file for the uint8 array; returns the path written."""
    return write_file(path, idx_bytes(array), compress)


def small_arrays(n_train=5, n_test=3, seed=0):
    """Random uint8 images (N, 28, 28) with 0 and 255 present, labels 0..9."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    x_train[0, 0, 0], x_train[0, 0, 1] = 0, 255
    y_train = rng.integers(0, 10, size=n_train, dtype=np.uint8)
    y_test = rng.integers(0, 10, size=n_test, dtype=np.uint8)
    y_train[0], y_train[1] = 0, 9
    return (x_train, y_train), (x_test, y_test)


def write_idx_set(folder, arrays, compress=False):
    """Write the four IDX files of arrays into folder; returns {base name: path}."""
    (x_train, y_train), (x_test, y_test) = arrays
    contents = [x_train, y_train, x_test, y_test]
    return {
        base: write_idx(Path(folder) / base, array, compress)
        for base, array in zip(IDX_NAMES, contents)
    }


def write_npz(path, arrays=None, **override):
    """Write a Keras-style mnist.npz; override replaces or adds keys (None removes)."""
    (x_train, y_train), (x_test, y_test) = arrays or small_arrays()
    content = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    content.update(override)
    content = {key: value for key, value in content.items() if value is not None}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **content)
    return path


def assert_matches(loaded, arrays):
    """loaded (from load_dataset) equals the uint8 arrays, converted as documented."""
    for (x, y), (raw_x, raw_y) in zip(loaded, arrays):
        assert x.dtype == np.float32
        assert x.shape == (len(raw_x), 28, 28, 1)
        assert y.dtype == np.int32
        assert y.shape == (len(raw_y),)
        assert x.min() >= 0.0 and x.max() <= 1.0
        np.testing.assert_array_equal(x[..., 0], raw_x.astype(np.float32) / 255)
        np.testing.assert_array_equal(y, raw_y.astype(np.int32))


def raises_data_error(*parts):
    """pytest.raises(DataError) whose message contains every part, in order."""
    return pytest.raises(DataError, match=".*".join(re.escape(str(p)) for p in parts))


def idx_header(*dims):
    """An IDX header for unsigned bytes with these dimensions, e.g. idx_header(60000, 28, 28)."""
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def npy_bytes(array=None, header=None, payload=b""):
    """The bytes of a .npy file holding array, or of a forged header dict followed by payload."""
    f = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(f, np.asarray(array), allow_pickle=True)
    else:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(payload)
    return f.getvalue()


def write_npz_members(path, compression=zipfile.ZIP_STORED, **members):
    """Write an npz whose members are the given .npy bytes, the other keys small valid arrays."""
    (x_train, y_train), (x_test, y_test) = small_arrays()
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    contents = {key: npy_bytes(value) for key, value in arrays.items()}
    contents.update(members)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as archive:
        for key, content in contents.items():
            archive.writestr(key + ".npy", content)
    return path


SPECIAL_KINDS = {  # what is put in place of a data file -> what the message says
    "fifo": "is not a regular file (a FIFO)",
    "folder": "is a folder, not a file",
    "broken symlink": "is a broken symlink",
    "symlink loop": "is a symlink loop",
}


def make_special(path, kind):
    """Put a FIFO, a folder, a broken symlink or a symlink loop at path (one of SPECIAL_KINDS)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "broken symlink":
        path.symlink_to(path.parent / "nothing-here")
    elif kind == "symlink loop":
        path.symlink_to(path.name)  # a link to itself
    return path


@contextlib.contextmanager
def time_limit(seconds):
    """Raise TimeoutError in the block after `seconds` s, so that a hang fails the test instead."""
    def give_up(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# The repository's own data folder, data/ (it holds MNIST in data/mnist/).
REPO_DATA_DIR = data.REPO_DATA_DIR


@pytest.fixture(autouse=True)
def no_data_sources(monkeypatch, tmp_path_factory):
    """Tests start without VAE_DATA_DIR and without the repository's data/ folder.

    The loader's module sees an empty folder in place of REPO/data; the tests
    that need a data source set one up themselves.
    """
    monkeypatch.delenv("VAE_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "REPO_DATA_DIR", tmp_path_factory.mktemp("no_repo_data"))


# ---------------------------------------------------------------------------
# Where the data comes from: data_dir, then $VAE_DATA_DIR, then REPO/data, then the download
# ---------------------------------------------------------------------------


@pytest.fixture
def three_sources(tmp_path, monkeypatch):
    """Three different small MNISTs: in tmp/named, in tmp/env/mnist, in a stand-in repository copy.

    Returns {"named": arrays, "env": arrays, "repository": arrays}; the download fails the test.
    """
    arrays = {source: small_arrays(seed=seed) for seed, source in
              enumerate(["named", "env", "repository"], start=10)}
    write_idx_set(tmp_path / "named", arrays["named"])
    write_idx_set(tmp_path / "env" / "mnist", arrays["env"], compress=True)
    write_idx_set(tmp_path / "repo_data" / "mnist", arrays["repository"], compress=True)
    monkeypatch.setattr(data, "REPO_DATA_DIR", tmp_path / "repo_data")

    def no_download(name):
        pytest.fail("the loader downloaded although a local copy was there")

    monkeypatch.setattr(data, "_download_with_keras", no_download)
    return arrays


def test_named_folder_comes_first(tmp_path, monkeypatch, three_sources):
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path / "env"))
    assert_matches(load_mnist(tmp_path / "named"), three_sources["named"])
    assert "--data-dir" in data.data_source("mnist", tmp_path / "named")


def test_env_var_comes_before_the_repository_copy(tmp_path, monkeypatch, three_sources):
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path / "env"))
    assert_matches(load_mnist(), three_sources["env"])
    assert data.data_source() == f"the folder {tmp_path / 'env'} (from $VAE_DATA_DIR)"


def test_repository_copy_comes_before_the_download(tmp_path, three_sources):
    assert_matches(load_mnist(), three_sources["repository"])
    assert data.data_source() == f"the repository's copy in {tmp_path / 'repo_data'}"


def test_download_comes_last(monkeypatch):
    arrays = small_arrays(seed=5)
    asked = []

    def fake_download(name):
        asked.append(name)
        return arrays

    monkeypatch.setattr(data, "_download_with_keras", fake_download)
    assert_matches(load_mnist(), arrays)
    assert asked == ["mnist"]
    assert data.data_source() == "download with keras.datasets.mnist.load_data()"


def test_repository_copy_of_mnist_is_not_used_for_fashion_mnist(monkeypatch, three_sources):
    arrays = small_arrays(seed=6)
    monkeypatch.setattr(data, "_download_with_keras", lambda name: arrays)
    assert_matches(load_dataset("fashion_mnist"), arrays)


def test_missing_named_folder_does_not_fall_through(tmp_path, monkeypatch, three_sources):
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path / "env"))
    with raises_data_error(tmp_path / "nowhere", "--data-dir", "does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_missing_env_folder_does_not_fall_through(tmp_path, monkeypatch, three_sources):
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path / "nowhere"))
    with raises_data_error(tmp_path / "nowhere", "$VAE_DATA_DIR", "does not exist"):
        load_mnist()


def test_named_folder_without_the_data_does_not_fall_through(tmp_path, three_sources):
    (tmp_path / "empty").mkdir()
    with raises_data_error("no mnist files found", tmp_path / "empty"):
        load_mnist(tmp_path / "empty")


def test_broken_repository_copy_says_so(tmp_path, three_sources):
    bad = tmp_path / "repo_data" / "mnist" / (IDX_NAMES[2] + ".gz")
    bad.write_bytes(bad.read_bytes()[:-30])
    with raises_data_error(bad, "corrupt gzip", "repository's own copy", "git checkout data/"):
        load_mnist()


def test_repository_copy_missing_a_file_says_so(tmp_path, three_sources):
    (tmp_path / "repo_data" / "mnist" / (IDX_NAMES[1] + ".gz")).unlink()
    with raises_data_error("missing file", IDX_NAMES[1], "repository's own copy"):
        load_mnist()


def test_importing_the_loader_does_not_import_keras():
    result = run_python(
        "import sys, vae.data; "
        "print(sorted(m for m in ['keras', 'tensorflow'] if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# Round trip and folder layouts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    images = np.arange(2 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28)
    labels = np.array([3, 7, 0], dtype=np.uint8)
    images_path = write_idx(tmp_path / "images", images, compress)
    labels_path = write_idx(tmp_path / "labels", labels, compress)
    read_images = read_idx(images_path)
    read_labels = read_idx(labels_path, ndim=1)
    assert read_images.dtype == np.uint8 and read_images.shape == (2, 28, 28)
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)
    read_images[0, 0, 0] = 1  # a normal, writeable array


@pytest.mark.parametrize("sub", ["", "mnist"])
@pytest.mark.parametrize("compress", [False, True])
def test_load_idx_layouts(tmp_path, sub, compress):
    arrays = small_arrays()
    write_idx_set(tmp_path / sub, arrays, compress)
    assert_matches(load_dataset("mnist", tmp_path), arrays)


def test_load_mnist_accepts_str_path(tmp_path):
    arrays = small_arrays()
    write_idx_set(tmp_path, arrays)
    assert_matches(load_mnist(str(tmp_path)), arrays)


def test_mixed_plain_and_gzip_files(tmp_path):
    (x_train, y_train), (x_test, y_test) = arrays = small_arrays()
    write_idx(tmp_path / IDX_NAMES[0], x_train, compress=True)
    write_idx(tmp_path / IDX_NAMES[1], y_train)
    write_idx(tmp_path / IDX_NAMES[2], x_test)
    write_idx(tmp_path / IDX_NAMES[3], y_test, compress=True)
    assert_matches(load_mnist(tmp_path), arrays)


def test_plain_file_preferred_over_gzip(tmp_path):
    arrays = small_arrays(seed=1)
    write_idx_set(tmp_path, arrays)
    write_idx_set(tmp_path, small_arrays(seed=2), compress=True)
    assert_matches(load_mnist(tmp_path), arrays)


@pytest.mark.parametrize("sub", ["", "mnist"])
def test_load_npz(tmp_path, sub):
    arrays = small_arrays()
    write_npz(tmp_path / sub / "mnist.npz", arrays)
    assert_matches(load_mnist(tmp_path), arrays)


def test_idx_preferred_over_npz(tmp_path):
    idx_arrays = small_arrays(seed=1)
    write_idx_set(tmp_path / "mnist", idx_arrays, compress=True)
    write_npz(tmp_path / "mnist.npz", small_arrays(seed=2))
    assert_matches(load_mnist(tmp_path), idx_arrays)


def test_complete_subfolder_preferred_over_partial_top_folder(tmp_path):
    arrays = small_arrays()
    write_idx(tmp_path / IDX_NAMES[0], arrays[0][0])  # a stray file in DIR
    write_idx_set(tmp_path / "mnist", arrays)
    assert_matches(load_mnist(tmp_path), arrays)


def test_env_var(tmp_path, monkeypatch):
    arrays = small_arrays()
    write_idx_set(tmp_path / "mnist", arrays, compress=True)
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path))
    assert_matches(load_mnist(), arrays)


def test_data_dir_argument_overrides_env_var(tmp_path, monkeypatch):
    arrays = small_arrays()
    write_idx_set(tmp_path / "given", arrays)
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path / "does-not-exist"))
    assert_matches(load_mnist(tmp_path / "given"), arrays)


@pytest.mark.parametrize("sub", ["fashion-mnist", "fashion_mnist", ""])
def test_fashion_mnist_layouts(tmp_path, sub):
    arrays = small_arrays(seed=3)
    write_idx_set(tmp_path / sub, arrays, compress=True)
    assert_matches(load_dataset("fashion_mnist", tmp_path), arrays)


def test_fashion_mnist_does_not_read_mnist_files(tmp_path):
    write_idx_set(tmp_path / "mnist", small_arrays())
    write_npz(tmp_path / "mnist.npz")
    with raises_data_error("no fashion_mnist files found", tmp_path, "fashion-mnist"):
        load_dataset("fashion_mnist", tmp_path)


def test_unknown_dataset_name(tmp_path):
    with raises_data_error("unknown data set", "cifar"):
        load_dataset("cifar", tmp_path)


# ---------------------------------------------------------------------------
# Missing folders and files
# ---------------------------------------------------------------------------


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "nowhere"
    with raises_data_error(missing, "does not exist"):
        load_mnist(missing)


def test_missing_env_data_dir(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("VAE_DATA_DIR", str(missing))
    with raises_data_error(missing, "does not exist"):
        load_mnist()


def test_data_dir_is_a_file(tmp_path):
    a_file = write_file(tmp_path / "file.txt", b"hello")
    with raises_data_error(a_file, "not a folder"):
        load_mnist(a_file)


def test_empty_data_dir_lists_what_was_looked_for(tmp_path):
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert "no mnist files found" in message
    for name in IDX_NAMES + ["mnist.npz", str(tmp_path), str(tmp_path / "mnist")]:
        assert name in message


@pytest.mark.parametrize("missing", IDX_NAMES)
def test_missing_one_idx_file(tmp_path, missing):
    paths = write_idx_set(tmp_path / "mnist", small_arrays(), compress=True)
    paths[missing].unlink()
    with pytest.raises(DataError, match="missing file") as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "mnist" / missing) in message
    for present in set(IDX_NAMES) - {missing}:
        assert present not in message


# ---------------------------------------------------------------------------
# Malformed IDX files
# ---------------------------------------------------------------------------


def write_set_with(folder, base, content, compress=False):
    """A valid IDX set in folder, except that file `base` holds `content`."""
    paths = write_idx_set(folder, small_arrays())
    paths[base].unlink()
    return write_file(Path(folder) / base, content, compress)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_header_magic(tmp_path, compress):
    bad = write_set_with(tmp_path, IDX_NAMES[0], b"\x00\x00", compress)
    with raises_data_error(bad, "truncated header"):
        load_mnist(tmp_path)


def test_truncated_header_dims(tmp_path):
    # Magic says 3 dims (16-byte header) but only 2 dims follow.
    content = bytes([0, 0, 8, 3]) + (5).to_bytes(4, "big") + (28).to_bytes(4, "big")
    bad = write_set_with(tmp_path, IDX_NAMES[2], content)
    with raises_data_error(bad, "truncated header", "16"):
        load_mnist(tmp_path)


def test_empty_file(tmp_path):
    bad = write_set_with(tmp_path, IDX_NAMES[1], b"")
    with raises_data_error(bad, "truncated header"):
        load_mnist(tmp_path)


@pytest.mark.parametrize(
    "base, magic, expected",
    [
        (IDX_NAMES[0], bytes([1, 0, 8, 3]), "0x01000803"),  # bytes 0-1 not zero
        (IDX_NAMES[0], bytes([0, 0, 0x0D, 3]), "0x00000d03"),  # float data type
        (IDX_NAMES[1], bytes([0, 0, 8, 3]), "0x00000803"),  # images where labels belong
        (IDX_NAMES[2], bytes([0, 0, 8, 1]), "0x00000801"),  # labels where images belong
    ],
)
def test_wrong_magic(tmp_path, base, magic, expected):
    content = magic + bytes(100)
    bad = write_set_with(tmp_path, base, content)
    wanted = "0x00000801" if "labels" in base else "0x00000803"
    with raises_data_error(bad, "wrong magic number", "expected " + wanted, "found " + expected):
        load_mnist(tmp_path)


def test_swapped_image_and_label_files(tmp_path):
    (x_train, y_train), _ = small_arrays()
    write_idx_set(tmp_path, small_arrays())
    write_idx(tmp_path / IDX_NAMES[0], y_train)
    write_idx(tmp_path / IDX_NAMES[1], x_train)
    with raises_data_error(tmp_path / IDX_NAMES[0], "wrong magic number"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_payload(tmp_path, compress):
    images = small_arrays()[0][0]
    content = idx_bytes(images)[:-100]
    bad = write_set_with(tmp_path, IDX_NAMES[0], content, compress)
    expected = images.size
    with raises_data_error(bad, "truncated payload", str(expected), str(expected - 100)):
        load_mnist(tmp_path)


def test_trailing_bytes(tmp_path):
    labels = small_arrays()[1][1]
    bad = write_set_with(tmp_path, IDX_NAMES[3], idx_bytes(labels) + b"\x01\x02")
    with raises_data_error(bad, "disagree with the file size", "2 extra trailing bytes"):
        load_mnist(tmp_path)


def test_corrupt_gzip_not_gzip(tmp_path):
    bad = write_file(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((1, 28, 28))))
    for base in IDX_NAMES[1:]:
        write_idx(tmp_path / base, np.zeros(1 if "labels" in base else (1, 28, 28)))
    with raises_data_error(bad, "corrupt gzip"):
        load_mnist(tmp_path)


def test_corrupt_gzip_cut_short(tmp_path):
    paths = write_idx_set(tmp_path, small_arrays(), compress=True)
    bad = paths[IDX_NAMES[2]]
    bad.write_bytes(bad.read_bytes()[:-30])
    with raises_data_error(bad, "corrupt gzip"):
        load_mnist(tmp_path)


def test_corrupt_gzip_damaged_data(tmp_path):
    paths = write_idx_set(tmp_path, small_arrays(), compress=True)
    bad = paths[IDX_NAMES[0]]
    content = bytearray(bad.read_bytes())
    for i in range(20, len(content) - 20, 7):  # scramble the compressed stream
        content[i] ^= 0xFF
    bad.write_bytes(bytes(content))
    with raises_data_error(bad, "corrupt gzip"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_count_mismatch(tmp_path, split):
    paths = write_idx_set(tmp_path, small_arrays(n_train=5, n_test=3))
    labels_path = paths[f"{split}-labels-idx1-ubyte"]
    write_idx(labels_path, np.zeros(4, dtype=np.uint8))
    images_path = paths[f"{split}-images-idx3-ubyte"]
    n_images = 5 if split == "train" else 3
    with raises_data_error(
        "counts disagree", images_path, f"{n_images} images", labels_path, "4 labels"
    ):
        load_mnist(tmp_path)


def test_wrong_image_size(tmp_path):
    bad = write_set_with(tmp_path, IDX_NAMES[2], idx_bytes(np.zeros((3, 32, 32))))
    with raises_data_error(bad, "wrong image size", "32x32"):
        load_mnist(tmp_path)


def test_zero_images(tmp_path):
    paths = write_idx_set(tmp_path, small_arrays())
    write_idx(paths[IDX_NAMES[0]], np.zeros((0, 28, 28)))
    write_idx(paths[IDX_NAMES[1]], np.zeros(0))
    with raises_data_error(paths[IDX_NAMES[0]], "no images"):
        load_mnist(tmp_path)


def test_label_out_of_range(tmp_path):
    bad = write_set_with(tmp_path, IDX_NAMES[1], idx_bytes([1, 2, 10, 3, 255]))
    with raises_data_error(bad, "out of range 0..9", "10 at index 2"):
        load_mnist(tmp_path)


def test_read_idx_missing_file(tmp_path):
    with raises_data_error(tmp_path / "nothing", "file not found"):
        read_idx(tmp_path / "nothing")


# ---------------------------------------------------------------------------
# Malformed npz files
# ---------------------------------------------------------------------------


def test_npz_not_a_zip_archive(tmp_path):
    bad = write_file(tmp_path / "mnist.npz", b"this is not a zip file at all")
    with raises_data_error(bad, "not an npz (zip) archive", "b'this'"):
        load_mnist(tmp_path)


def test_npz_cut_short(tmp_path):
    bad = write_npz(tmp_path / "mnist.npz")
    bad.write_bytes(bad.read_bytes()[:-200])
    with raises_data_error(bad, "unreadable npz"):
        load_mnist(tmp_path)


def test_npz_missing_key(tmp_path):
    bad = write_npz(tmp_path / "mnist.npz", y_test=None)
    with raises_data_error(bad, "missing key", "y_test"):
        load_mnist(tmp_path)


def test_npz_wrong_image_dtype(tmp_path):
    x_train = small_arrays()[0][0].astype(np.float32)
    bad = write_npz(tmp_path / "mnist.npz", x_train=x_train)
    with raises_data_error(bad, "x_train", "wrong dtype", "float32"):
        load_mnist(tmp_path)


def test_npz_wrong_label_dtype(tmp_path):
    bad = write_npz(tmp_path / "mnist.npz", y_test=np.zeros(3, dtype=np.float64))
    with raises_data_error(bad, "y_test", "wrong dtype", "float64"):
        load_mnist(tmp_path)


def test_npz_flat_images(tmp_path):
    bad = write_npz(tmp_path / "mnist.npz", x_test=np.zeros((3, 784), dtype=np.uint8))
    with raises_data_error(bad, "x_test", "wrong shape", "(3, 784)"):
        load_mnist(tmp_path)


def test_npz_wrong_image_size(tmp_path):
    bad = write_npz(tmp_path / "mnist.npz", x_train=np.zeros((5, 28, 27), dtype=np.uint8))
    with raises_data_error(bad, "x_train", "wrong image size", "28x27"):
        load_mnist(tmp_path)


def test_npz_labels_wrong_shape(tmp_path):
    bad = write_npz(tmp_path / "mnist.npz", y_train=np.zeros((5, 1), dtype=np.uint8))
    with raises_data_error(bad, "y_train", "wrong shape", "(5, 1)"):
        load_mnist(tmp_path)


def test_npz_count_mismatch(tmp_path):
    bad = write_npz(tmp_path / "mnist.npz", y_train=np.zeros(4, dtype=np.uint8))
    with raises_data_error("counts disagree", bad, "5 images", "4 labels"):
        load_mnist(tmp_path)


def test_npz_label_out_of_range(tmp_path):
    bad = write_npz(tmp_path / "mnist.npz", y_test=np.array([0, -1, 2], dtype=np.int64))
    with raises_data_error(bad, "y_test", "out of range", "-1 at index 1"):
        load_mnist(tmp_path)


# ---------------------------------------------------------------------------
# Download through keras.datasets (monkeypatched: no network)
# ---------------------------------------------------------------------------


def test_keras_download_failure(monkeypatch):
    import keras

    def fail():
        raise Exception("URL fetch failure on https://example.invalid/mnist.npz\nsecond line")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", fail)
    with pytest.raises(DataError, match="download") as info:
        load_mnist()
    message = str(info.value)
    assert "URL fetch failure on https://example.invalid/mnist.npz" in message
    assert "second line" not in message
    for hint in ["--data-dir DIR", "VAE_DATA_DIR=DIR", "mnist.npz"] + IDX_NAMES:
        assert hint in message
    assert isinstance(info.value.__cause__, Exception)
    assert "URL fetch failure" in str(info.value.__cause__)


def test_keras_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", None)  # makes `import keras` fail
    with raises_data_error("downloading mnist", "failed", "ModuleNotFoundError", "--data-dir DIR"):
        load_mnist()


def test_keras_download_used_when_env_var_empty(monkeypatch):
    import keras

    arrays = small_arrays()
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: arrays)
    monkeypatch.setenv("VAE_DATA_DIR", "")
    assert_matches(load_mnist(), arrays)


def test_keras_download_fashion_mnist(monkeypatch):
    import keras

    arrays = small_arrays(seed=4)
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", lambda: arrays)
    assert_matches(load_dataset("fashion_mnist"), arrays)


def test_keras_download_fashion_mnist_failure(monkeypatch):
    import keras

    def fail():
        raise OSError("no network")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", fail)
    with raises_data_error("fashion_mnist", "failed", "OSError: no network", "fashion-mnist"):
        load_dataset("fashion_mnist")


def test_keras_download_bad_arrays(monkeypatch):
    import keras

    (x_train, y_train), test = small_arrays()
    monkeypatch.setattr(
        keras.datasets.mnist, "load_data", lambda: ((x_train, y_train[:-1]), test)
    )
    with raises_data_error("counts disagree", "keras.datasets.mnist.load_data()"):
        load_mnist()


# ---------------------------------------------------------------------------
# Things that are not regular files, and paths the system refuses
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SPECIAL_KINDS)
@pytest.mark.parametrize("name", [IDX_NAMES[0], IDX_NAMES[1] + ".gz", "mnist.npz"])
def test_special_file_in_place_of_a_data_file(tmp_path, name, kind):
    if not name.endswith(".npz"):  # the other three IDX files are valid
        write_idx_set(tmp_path, small_arrays(), compress=name.endswith(".gz"))
    bad = make_special(tmp_path / name, kind)
    with time_limit(10), raises_data_error(bad, SPECIAL_KINDS[kind]):
        load_mnist(tmp_path)


@pytest.mark.parametrize("kind", ["fifo", "broken symlink", "symlink loop"])
def test_special_file_as_the_data_folder(tmp_path, kind):
    bad = make_special(tmp_path / "data", kind)
    expected = {"fifo": "is not a folder (a FIFO)", "broken symlink": "is a broken symlink",
                "symlink loop": "is a symlink loop"}[kind]
    with time_limit(10), raises_data_error(bad, expected):
        load_mnist(bad)


def test_path_component_too_long(tmp_path):
    too_long = tmp_path / ("x" * 300)
    with raises_data_error(too_long, "cannot be read", "File name too long"):
        load_mnist(too_long)
    with raises_data_error(too_long, "cannot be read", "File name too long"):
        read_idx(too_long)


def test_null_byte_in_path():
    with raises_data_error("cannot be read", "null"):
        load_mnist("data\0dir")


def test_all_labels_one_class_is_valid(tmp_path):
    (x_train, y_train), (x_test, y_test) = small_arrays()
    arrays = (x_train, np.full_like(y_train, 7)), (x_test, np.full_like(y_test, 7))
    write_idx_set(tmp_path, arrays)
    assert_matches(load_mnist(tmp_path), arrays)


# ---------------------------------------------------------------------------
# npz files that are not what they claim
# ---------------------------------------------------------------------------


def test_npy_saved_as_npz(tmp_path):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(npy_bytes(small_arrays()[0][0]))
    with raises_data_error(bad, "not an npz (zip) archive", "single .npy array"):
        load_mnist(tmp_path)


def test_random_bytes_as_npz(tmp_path):
    bad = write_file(tmp_path / "mnist.npz", np.random.default_rng(0).bytes(5000))
    with raises_data_error(bad, "not an npz (zip) archive"):
        load_mnist(tmp_path)


def test_empty_npz_file(tmp_path):
    bad = write_file(tmp_path / "mnist.npz", b"")
    with raises_data_error(bad, "not an npz (zip) archive", "empty"):
        load_mnist(tmp_path)


def test_npz_object_member_is_not_unpickled(tmp_path):
    objects = np.array([1, None], dtype=object)
    bad = write_npz_members(tmp_path / "mnist.npz", y_train=npy_bytes(objects))
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert str(bad) in message and "y_train" in message
    assert "not a plain numeric array" in message
    assert "allow_pickle" not in message


def test_npz_structured_member(tmp_path):
    record = np.zeros(3, dtype=[("a", "<i4"), ("b", "<f4")])
    write_npz_members(tmp_path / "mnist.npz", y_test=npy_bytes(record))
    with raises_data_error("y_test", "not a plain numeric array"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("shape", [(10**9, 28, 28), (2**63, 28, 28), (10**30, 28, 28)])
def test_npz_member_header_claims_huge_shape(tmp_path, shape):
    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
    member = npy_bytes(header=header, payload=bytes(100))
    bad = write_npz_members(tmp_path / "mnist.npz", x_train=member)
    with raises_data_error(bad, "x_train", "too large", "MAX_DATA_BYTES"):
        load_mnist(tmp_path)


def test_npz_member_header_negative_shape(tmp_path):
    header = {"descr": "|u1", "fortran_order": False, "shape": (-5,)}
    write_npz_members(tmp_path / "mnist.npz", y_train=npy_bytes(header=header, payload=bytes(5)))
    with raises_data_error("y_train", "negative size"):
        load_mnist(tmp_path)


def test_npz_member_data_cut_short(tmp_path):
    member = npy_bytes(small_arrays()[0][0])[:-10]
    bad = write_npz_members(tmp_path / "mnist.npz", x_train=member)
    with raises_data_error(bad, "unreadable npz"):
        load_mnist(tmp_path)


def test_npz_compressed_is_read(tmp_path):
    arrays = small_arrays()
    (x_train, y_train), (x_test, y_test) = arrays
    path = tmp_path / "mnist.npz"
    np.savez_compressed(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    assert_matches(load_mnist(tmp_path), arrays)


# ---------------------------------------------------------------------------
# Bounded reading: gzip bombs and huge sparse files, measured in a fresh process
# ---------------------------------------------------------------------------

# Peak memory is read from /proc/self/status (VmHWM, the peak resident memory of this process),
# not from getrusage's ru_maxrss: on Linux a process started from a large one (such as pytest,
# after it has loaded MNIST) begins with the parent's ru_maxrss, which would hide any increase.
MEASURE = """
import json, time
from vae import data

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB -> MB

before = peak_mb()
start = time.perf_counter()
try:
    data.{call}
    outcome = "loaded"
except data.DataError as err:
    outcome = "DataError: " + str(err)
seconds = time.perf_counter() - start
print(json.dumps({{"outcome": outcome, "seconds": seconds, "peak_mb": peak_mb() - before}}))
"""

MAX_PEAK_MB = 200  # the most the peak memory may grow while rejecting a bad file
MAX_SECONDS = 10


def measure(call):
    """Run `vae.data.<call>` in a fresh Python; return {"outcome", "seconds", "peak_mb"}.

    peak_mb: how much the process's peak resident memory grew during the call, in MB.
    """
    if not Path("/proc/self/status").is_file():
        pytest.skip("peak memory is read from /proc/self/status, which only Linux has")
    result = run_python(MEASURE.format(call=call), timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"{call}: {report}")  # shown with pytest -s
    return report


def assert_rejected_cheaply(report, *parts):
    """The call raised DataError with these message parts, quickly and with little memory."""
    assert report["outcome"].startswith("DataError: "), report
    for part in parts:
        assert part in report["outcome"], report
    assert report["peak_mb"] < MAX_PEAK_MB, report
    assert report["seconds"] < MAX_SECONDS, report


def zeros_gzip_members(total_bytes):
    """Gzip members that inflate to total_bytes zero bytes (a multiple of 16 MiB), ~1 kB per 1 MiB.

    A gzip file may hold several members one after another; they inflate to one stream.
    """
    block = 16 * 2**20
    member = gzip.compress(bytes(block), compresslevel=9)
    return member * (total_bytes // block)


def test_gzip_bomb_behind_a_valid_header(tmp_path):
    # A valid MNIST-sized header, then 2 GiB of zeros: a 2 MB file.
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip.compress(idx_header(60000, 28, 28)) + zeros_gzip_members(2 * 2**30))
    assert bomb.stat().st_size < 3e6
    report = measure(f"read_idx({str(bomb)!r}, ndim=3)")
    assert_rejected_cheaply(report, str(bomb), "extra trailing bytes")


def test_gzip_of_zeros_with_trailing_data_in_one_member(tmp_path):
    # One gzip member: a valid header, the 47 MB of data it announces, then 64 MiB more.
    content = idx_header(60000, 28, 28) + bytes(60000 * 28 * 28 + 64 * 2**20)
    bomb = write_file(tmp_path / "train-images-idx3-ubyte.gz", gzip.compress(content, 1))
    report = measure(f"read_idx({str(bomb)!r}, ndim=3)")
    assert_rejected_cheaply(report, str(bomb), "extra trailing bytes")
    # The 47 MB the header announces are read before the extra data shows up: seeing
    # them here shows that the measurement works.
    assert report["peak_mb"] > 40


@pytest.mark.parametrize("compress", [False, True])
def test_header_claiming_4_billion_images(tmp_path, compress):
    content = idx_header(2**32 - 1, 28, 28) + bytes(1000)
    bomb = write_file(tmp_path / "train-images-idx3-ubyte", content, compress)
    report = measure(f"read_idx({str(bomb)!r}, ndim=3)")
    assert_rejected_cheaply(report, str(bomb), "too large", "MAX_DATA_BYTES")


def test_gzip_bomb_behind_a_huge_header(tmp_path):
    bomb = tmp_path / "train-labels-idx1-ubyte.gz"
    bomb.write_bytes(gzip.compress(idx_header(2**32 - 1)) + zeros_gzip_members(2**30))
    report = measure(f"read_idx({str(bomb)!r}, ndim=1)")
    assert_rejected_cheaply(report, str(bomb), "too large")


def sparse_file(path, start, size=100 * 2**30):
    """A file of `size` bytes (100 GiB) that starts with `start`; sparse, so it takes no disk."""
    with open(path, "wb") as f:
        f.write(start)
        f.truncate(size)
    return path


def test_sparse_100_gb_plain_file(tmp_path):
    big = sparse_file(tmp_path / "train-images-idx3-ubyte", idx_header(60000, 28, 28))
    report = measure(f"read_idx({str(big)!r}, ndim=3)")
    assert_rejected_cheaply(report, str(big), "disagree with the file size", "extra trailing bytes")


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte.gz", "mnist.npz"])
def test_sparse_100_gb_compressed_file(tmp_path, name):
    start = gzip.compress(idx_header(60000, 28, 28)) if name.endswith(".gz") else b"PK\x03\x04"
    big = sparse_file(tmp_path / name, start)
    call = f"read_npz({str(big)!r})" if name.endswith(".npz") else f"read_idx({str(big)!r})"
    assert_rejected_cheaply(measure(call), str(big), "too large", "MAX_DATA_BYTES")


def test_npz_member_with_a_4_gb_header_length(tmp_path):
    # .npy version 2.0 has a 4-byte header length: this one claims 4 GiB, followed by
    # 64 MiB of compressed zeros. NumPy's own reader would try to read all of it.
    member = b"\x93NUMPY\x02\x00" + (2**32 - 1).to_bytes(4, "little") + bytes(64 * 2**20)
    bomb = write_npz_members(tmp_path / "mnist.npz", zipfile.ZIP_DEFLATED, x_train=member)
    report = measure(f"read_npz({str(bomb)!r})")
    assert_rejected_cheaply(report, str(bomb), "x_train", "not a valid .npy array")


def test_npz_member_header_claims_huge_shape_in_a_fresh_process(tmp_path):
    header = {"descr": "|u1", "fortran_order": False, "shape": (2**32 - 1, 28, 28)}
    member = npy_bytes(header=header, payload=bytes(64 * 2**20))
    bomb = write_npz_members(tmp_path / "mnist.npz", zipfile.ZIP_DEFLATED, x_train=member)
    report = measure(f"read_npz({str(bomb)!r})")
    assert_rejected_cheaply(report, str(bomb), "x_train", "too large")


def test_bound_allows_mnist_sized_files(tmp_path):
    # The real training images are 47 MB; the bound is well above.
    assert 60000 * 28 * 28 < data.MAX_DATA_BYTES


# ---------------------------------------------------------------------------
# Property-based tests: whatever the bytes, an array or a DataError, quickly
# ---------------------------------------------------------------------------

FUZZ = settings(
    max_examples=150,
    deadline=2000,  # ms per example: a hang or slow path fails
    database=None,  # keep no example database in the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # tmp_path is reused on purpose
)


def load_or_data_error(load, *args):
    """load(*args), or None if it raised DataError; any other exception fails the test."""
    try:
        return load(*args)
    except DataError:
        return None


def check_loaded(loaded):
    """A value that load_mnist returned has the documented types and shapes."""
    if loaded is not None:
        for x, y in loaded:
            assert x.dtype == np.float32 and x.ndim == 4 and x.shape[1:] == (28, 28, 1)
            assert y.dtype == np.int32 and y.shape == (len(x),)
            assert y.min() >= 0 and y.max() <= 9


def check_idx_and_set(tmp_path, base, content, compress):
    """Put content in place of IDX file `base` of a valid set; read it alone and in the set."""
    bad = write_set_with(tmp_path, base, content, compress)
    array = load_or_data_error(read_idx, bad)
    assert array is None or array.dtype == np.uint8
    check_loaded(load_or_data_error(load_mnist, tmp_path))


@FUZZ
@given(content=st.binary(max_size=3000), compress=st.booleans(), base=st.sampled_from(IDX_NAMES))
def test_fuzz_idx_arbitrary_bytes(tmp_path, content, compress, base):
    check_idx_and_set(tmp_path, base, content, compress)


@st.composite
def forged_idx(draw):
    """An IDX file with a forged header: magic, number of dims and dims at random, then data."""
    data_type = draw(st.sampled_from([0x08, 0x08, 0x08, 0x09, 0x0D, 0x00]))
    dims = draw(st.lists(st.one_of(st.sampled_from([0, 1, 2, 28, 60000]),
                                   st.integers(0, 2**32 - 1)), max_size=6))
    num_dims = draw(st.one_of(st.just(len(dims)), st.integers(0, 255)))
    start = bytes([0, 0, data_type, num_dims]) + b"".join(d.to_bytes(4, "big") for d in dims)
    size = int(np.prod(dims, dtype=object)) if dims else 0
    if size <= 5000 and draw(st.booleans()):
        payload = draw(st.binary(min_size=size, max_size=size))  # exactly what the header says
    else:
        payload = draw(st.binary(max_size=3000))
    return start + payload


@FUZZ
@given(content=forged_idx(), compress=st.booleans(), base=st.sampled_from(IDX_NAMES))
def test_fuzz_idx_forged_header(tmp_path, content, compress, base):
    check_idx_and_set(tmp_path, base, content, compress)


# A few bytes of a valid file overwritten: (position, new value) pairs; positions wrap around.
BYTE_CHANGES = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                        min_size=1, max_size=8)


@FUZZ
@given(changes=BYTE_CHANGES)
def test_fuzz_gzip_damaged(tmp_path, changes):
    content = bytearray(gzip.compress(idx_bytes(small_arrays()[0][0])))
    for position, value in changes:
        content[position % len(content)] = value
    check_idx_and_set(tmp_path, IDX_NAMES[0], bytes(content), compress=False)
    bad = write_file(tmp_path / "alone.gz", bytes(content))
    array = load_or_data_error(read_idx, bad)
    assert array is None or array.dtype == np.uint8


def small_npz_bytes(tmp_path, compressed):
    """The bytes of a valid small mnist.npz (2 training images, 1 test image)."""
    path = tmp_path / "valid.npz"
    arrays = small_arrays(n_train=2, n_test=1)
    write_npz(path, arrays) if not compressed else np.savez_compressed(
        path, x_train=arrays[0][0], y_train=arrays[0][1], x_test=arrays[1][0], y_test=arrays[1][1])
    return path.read_bytes()


@FUZZ
@given(content=st.one_of(st.binary(max_size=3000),
                         st.binary(max_size=3000).map(lambda rest: b"PK\x03\x04" + rest)))
def test_fuzz_npz_arbitrary_bytes(tmp_path, content):
    write_file(tmp_path / "mnist.npz", content)
    check_loaded(load_or_data_error(load_mnist, tmp_path))


@FUZZ
@given(changes=BYTE_CHANGES,
       compressed=st.booleans())
def test_fuzz_npz_damaged(tmp_path, changes, compressed):
    content = bytearray(small_npz_bytes(tmp_path, compressed))
    for position, value in changes:
        content[position % len(content)] = value
    write_file(tmp_path / "mnist.npz", bytes(content))
    check_loaded(load_or_data_error(load_mnist, tmp_path))


NPY_DESCRS = ["|u1", "<u2", ">i8", "<i4", "<f4", "|b1", "|O", "|V8", "<U3", "|S2", "<c8",
              [("a", "<i4")], [("a", "|O")]]


@FUZZ
@given(key=st.sampled_from(["x_train", "y_train", "x_test", "y_test"]),
       descr=st.sampled_from(NPY_DESCRS),
       shape=st.lists(st.one_of(st.sampled_from([0, 1, 3, 28]), st.integers(-5, 2**64)),
                      max_size=4),
       fortran_order=st.booleans(),
       payload=st.binary(max_size=5000))
def test_fuzz_npz_forged_header(tmp_path, key, descr, shape, fortran_order, payload):
    header = {"descr": descr, "fortran_order": fortran_order, "shape": tuple(shape)}
    write_npz_members(tmp_path / "mnist.npz", **{key: npy_bytes(header=header, payload=payload)})
    check_loaded(load_or_data_error(load_mnist, tmp_path))


def test_idx_truncated_at_every_length(tmp_path):
    content = idx_bytes(small_arrays()[0][0][:2])  # 2 images: 1,584 data bytes
    for compress in [False, True]:
        whole = gzip.compress(content) if compress else content
        name = "images.gz" if compress else "images"
        for length in range(len(whole)):
            path = write_file(tmp_path / name, whole[:length])
            with pytest.raises(DataError):
                read_idx(path, ndim=3)


def test_npz_truncated_at_every_length(tmp_path):
    for compressed in [False, True]:
        whole = small_npz_bytes(tmp_path, compressed)
        for length in range(len(whole)):
            write_file(tmp_path / "mnist.npz", whole[:length])
            with pytest.raises(DataError):
                load_mnist(tmp_path)


# ---------------------------------------------------------------------------
# The real data sets
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion_dir():
    """The real Fashion-MNIST's folder, found before the tests remove VAE_DATA_DIR; else skip."""
    return real_fashion_dir()


def test_real_mnist_from_the_repository(monkeypatch):
    monkeypatch.setattr(data, "REPO_DATA_DIR", REPO_DATA_DIR)
    assert data.data_source() == f"the repository's copy in {REPO_DATA_DIR}"
    (x_train, y_train), (x_test, y_test) = load_mnist()
    assert x_train.shape == (60000, 28, 28, 1) and x_train.dtype == np.float32
    assert x_test.shape == (10000, 28, 28, 1)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert y_train.dtype == np.int32
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(y_train).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949
    ]
    assert (len(y_train), len(y_test)) == data.DATASET_SIZES["mnist"]


def test_real_fashion_mnist(fashion_dir):
    (x_train, y_train), (x_test, y_test) = load_dataset("fashion_mnist", fashion_dir)
    assert x_train.shape == (60000, 28, 28, 1)
    assert x_test.shape == (10000, 28, 28, 1)
    assert (len(y_train), len(y_test)) == data.DATASET_SIZES["fashion_mnist"]
    assert np.bincount(y_train).tolist() == [6000] * 10
