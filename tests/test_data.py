"""Tests for vae.data: IDX / npz reading, folder layouts, validation, Keras fallback."""

import gzip
import os
import re
from pathlib import Path

import numpy as np
import pytest

from vae import data
from vae.data import DataError, load_dataset, load_mnist, read_idx

IDX_NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]

# The real data sets (gzip IDX files); CI always has them.
REAL_DATA_DIR = Path(
    os.environ.get("VAE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data"
)


# ---------------------------------------------------------------------------
# Helpers that write small data sets
# ---------------------------------------------------------------------------


def idx_bytes(array):
    """The bytes of a valid IDX file holding the uint8 array."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim])
    for size in array.shape:
        header += int(size).to_bytes(4, "big")
    return header + array.tobytes()


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
# The real data sets
# ---------------------------------------------------------------------------


def real_data_dir():
    if not REAL_DATA_DIR.is_dir():
        pytest.fail(
            f"real data folder {REAL_DATA_DIR} not found; it should hold mnist/ and "
            f"fashion-mnist/ with the gzip IDX files (set VAE_DATA_DIR to point elsewhere)"
        )
    return REAL_DATA_DIR


def test_real_mnist():
    (x_train, y_train), (x_test, y_test) = load_mnist(real_data_dir())
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


def test_real_fashion_mnist():
    (x_train, y_train), (x_test, y_test) = load_dataset("fashion_mnist", real_data_dir())
    assert x_train.shape == (60000, 28, 28, 1)
    assert x_test.shape == (10000, 28, 28, 1)
    assert (len(y_train), len(y_test)) == data.DATASET_SIZES["fashion_mnist"]
    assert np.bincount(y_train).tolist() == [6000] * 10
