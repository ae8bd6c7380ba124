"""Load MNIST and Fashion-MNIST as float32 images for the VAE.

Both data sets are 28 x 28 grey-scale images with labels 0..9.
`load_dataset` returns them as

    x: float32, shape (N, 28, 28, 1), pixel values scaled from 0..255 to [0, 1]
    y: int32, shape (N,), class labels 0..9

The data comes from a local folder when one is named (the `data_dir`
argument, else the environment variable VAE_DATA_DIR), otherwise from
`keras.datasets`, which downloads it (this needs internet access).

A local folder DIR may hold either

* the four IDX files published by Yann LeCun (plain or gzip-compressed
  with a `.gz` suffix), in DIR itself or in DIR/mnist/ (MNIST) or
  DIR/fashion-mnist/ or DIR/fashion_mnist/ (Fashion-MNIST):

      train-images-idx3-ubyte   train-labels-idx1-ubyte
      t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

* or, for MNIST only, Keras' `mnist.npz` in DIR or DIR/mnist/.

Every problem with the data (missing files, truncated or corrupt files,
wrong shapes, bad labels) raises `DataError`, whose message names the file
and the problem.
"""

import gzip
import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """The data could not be found or is malformed. The message says which file and why."""


# Published (train, test) sizes of each data set.
DATASET_SIZES = {"mnist": (60000, 10000), "fashion_mnist": (60000, 10000)}

IMAGE_SIZE = 28  # images are IMAGE_SIZE x IMAGE_SIZE pixels
NUM_CLASSES = 10  # labels are 0 .. NUM_CLASSES - 1

# The four IDX files, without the optional ".gz" suffix.
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
IDX_NAMES = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]

NPZ_NAME = "mnist.npz"  # the file keras.datasets.mnist.load_data() downloads
NPZ_KEYS = ["x_train", "y_train", "x_test", "y_test"]

# Sub-folders of the data folder that are also searched, per data set.
SUBFOLDERS = {"mnist": ["mnist"], "fashion_mnist": ["fashion-mnist", "fashion_mnist"]}

ENV_VAR = "VAE_DATA_DIR"

# IDX magic number: two zero bytes, the data type (0x08 = unsigned byte),
# then the number of dimensions (1 for labels, 3 for images).
IDX_UBYTE = 0x08


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def load_dataset(name="mnist", data_dir=None):
    """Return (x_train, y_train), (x_test, y_test) for "mnist" or "fashion_mnist".

    x: float32, shape (N, 28, 28, 1), values in [0, 1] (uint8 pixel / 255).
    y: int32, shape (N,), labels 0..9.

    data_dir: folder with the files (see the module docstring). If None,
    the environment variable VAE_DATA_DIR is used when set and non-empty;
    otherwise the data is downloaded with keras.datasets.
    """
    name = name.replace("-", "_")  # accept "fashion-mnist" as well
    if name not in DATASET_SIZES:
        raise DataError(
            f"unknown data set {name!r}; choose one of: {', '.join(DATASET_SIZES)}"
        )

    if data_dir is None:
        data_dir = os.environ.get(ENV_VAR) or None

    if data_dir is None:
        (x_train, y_train), (x_test, y_test) = _download_with_keras(name)
        source = f"keras.datasets.{name}.load_data()"
        train_sources = (source + " x_train", source + " y_train")
        test_sources = (source + " x_test", source + " y_test")
    else:
        (x_train, y_train), (x_test, y_test), train_sources, test_sources = (
            _load_from_folder(name, Path(data_dir).expanduser())
        )

    _check_pair(x_train, y_train, *train_sources)
    _check_pair(x_test, y_test, *test_sources)
    return (_to_float(x_train), _to_int(y_train)), (_to_float(x_test), _to_int(y_test))


def load_mnist(data_dir=None):
    """MNIST digits; same return value as `load_dataset("mnist", data_dir)`."""
    return load_dataset("mnist", data_dir)


def read_idx(path, ndim=None):
    """Read one IDX file (plain, or gzip if the name ends in ".gz").

    Returns a uint8 numpy array whose shape is the dimensions in the file's
    header, e.g. (N, 28, 28) for images or (N,) for labels.
    ndim: the number of dimensions the file must have (3 for images,
    1 for labels), or None to accept any.
    Raises DataError for a missing, unreadable, truncated or malformed file.
    """
    path = Path(path)
    data = _read_bytes(path)

    # Magic number: bytes 0-1 zero, byte 2 the data type, byte 3 the number of dims.
    if len(data) < 4:
        raise DataError(
            f"{path}: truncated header: the file has {len(data)} bytes, "
            f"an IDX header needs at least 4"
        )
    magic = int.from_bytes(data[0:4], "big")
    if ndim is None:
        magic_ok = data[0] == 0 and data[1] == 0 and data[2] == IDX_UBYTE and data[3] >= 1
        expected = "0x000008NN (unsigned bytes, NN >= 1 dimensions)"
    else:
        magic_ok = magic == (IDX_UBYTE << 8) + ndim
        expected = f"0x{(IDX_UBYTE << 8) + ndim:08x} (unsigned bytes, {ndim} dimension(s))"
    if not magic_ok:
        raise DataError(
            f"{path}: wrong magic number: expected {expected}, found 0x{magic:08x}"
        )

    # One big-endian uint32 per dimension follows the magic number.
    num_dims = data[3]
    header_size = 4 + 4 * num_dims
    if len(data) < header_size:
        raise DataError(
            f"{path}: truncated header: {num_dims} dimension(s) need a "
            f"{header_size}-byte header, the file has only {len(data)} bytes"
        )
    dims = tuple(np.frombuffer(data, dtype=">u4", count=num_dims, offset=4).tolist())

    # The payload is one byte per value, so it must be exactly prod(dims) bytes.
    expected_bytes = math.prod(dims)
    found_bytes = len(data) - header_size
    dims_text = " x ".join(str(d) for d in dims)
    if found_bytes < expected_bytes:
        raise DataError(
            f"{path}: truncated payload: the header dimensions {dims_text} need "
            f"{expected_bytes} data bytes, found only {found_bytes}"
        )
    if found_bytes > expected_bytes:
        raise DataError(
            f"{path}: header dimensions disagree with the file size: {dims_text} "
            f"needs {expected_bytes} data bytes, found {found_bytes} "
            f"({found_bytes - expected_bytes} extra trailing bytes)"
        )

    array = np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)
    return array.copy()  # frombuffer gives a read-only view; hand back a normal array


def read_idx_images(path):
    """Read an IDX image file; returns uint8 array (N, 28, 28)."""
    images = read_idx(path, ndim=3)
    _check_images(images, str(path))
    return images


def read_idx_labels(path):
    """Read an IDX label file; returns uint8 array (N,) with values 0..9."""
    labels = read_idx(path, ndim=1)
    _check_labels(labels, str(path))
    return labels


def read_npz(path):
    """Read Keras' mnist.npz; returns (x_train, y_train), (x_test, y_test) as stored.

    x: uint8 (N, 28, 28); y: integer (N,) with values 0..9.
    """
    path = Path(path)
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in NPZ_KEYS if key not in npz.files]
            if missing:
                raise DataError(
                    f"{path}: missing key(s) {', '.join(missing)}; expected keys "
                    f"{', '.join(NPZ_KEYS)}, found {', '.join(npz.files) or 'none'}"
                )
            for key in NPZ_KEYS:
                arrays[key] = npz[key]
    except DataError:
        raise
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(f"{path}: unreadable npz file ({_one_line(err)})") from err

    for key in ["x_train", "x_test"]:
        _check_images(arrays[key], f"{path} [{key}]")
    for key in ["y_train", "y_test"]:
        _check_labels(arrays[key], f"{path} [{key}]")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


# ---------------------------------------------------------------------------
# Finding the files
# ---------------------------------------------------------------------------


def _load_from_folder(name, data_dir):
    """Load `name` from the folder data_dir.

    Order of preference: a folder with all four IDX files (DIR, then its
    sub-folders), then mnist.npz (MNIST only), and otherwise a DataError.
    Returns (train, test, train_sources, test_sources); the sources are the
    file names used in error messages.
    """
    if not data_dir.exists():
        raise DataError(f"data folder {data_dir} does not exist")
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} is not a folder")

    folders = [data_dir] + [data_dir / sub for sub in SUBFOLDERS[name]]

    # 1. IDX files. Remember the first folder that has only some of them.
    partial = None
    for folder in folders:
        found = {base: _find_idx_file(folder, base) for base in IDX_NAMES}
        present = [base for base in IDX_NAMES if found[base] is not None]
        if len(present) == len(IDX_NAMES):
            x_train = read_idx_images(found[TRAIN_IMAGES])
            y_train = read_idx_labels(found[TRAIN_LABELS])
            x_test = read_idx_images(found[TEST_IMAGES])
            y_test = read_idx_labels(found[TEST_LABELS])
            train_sources = (str(found[TRAIN_IMAGES]), str(found[TRAIN_LABELS]))
            test_sources = (str(found[TEST_IMAGES]), str(found[TEST_LABELS]))
            return (x_train, y_train), (x_test, y_test), train_sources, test_sources
        if present and partial is None:
            partial = folder

    # 2. Keras' mnist.npz (MNIST only).
    npz_folders = [data_dir, data_dir / "mnist"] if name == "mnist" else []
    for folder in npz_folders:
        npz_path = folder / NPZ_NAME
        if npz_path.is_file():
            (x_train, y_train), (x_test, y_test) = read_npz(npz_path)
            train_sources = (f"{npz_path} [x_train]", f"{npz_path} [y_train]")
            test_sources = (f"{npz_path} [x_test]", f"{npz_path} [y_test]")
            return (x_train, y_train), (x_test, y_test), train_sources, test_sources

    # 3. Nothing complete: say what is missing, or what was looked for where.
    if partial is not None:
        missing = [
            str(partial / base) + "[.gz]"
            for base in IDX_NAMES
            if _find_idx_file(partial, base) is None
        ]
        raise DataError(
            f"missing file(s) in {partial}: {', '.join(missing)} "
            f"(the other IDX files of {name} are there)"
        )
    wanted = ", ".join(IDX_NAMES) + " (each optionally .gz)"
    if name == "mnist":
        wanted += f", or {NPZ_NAME}"
    raise DataError(
        f"no {name} files found in data folder {data_dir}: looked for {wanted} "
        f"in {', '.join(str(f) for f in folders)}"
    )


def _find_idx_file(folder, base):
    """Path of folder/base or folder/base.gz (plain preferred), or None."""
    for candidate in [folder / base, folder / (base + ".gz")]:
        if candidate.is_file():
            return candidate
    return None


def _download_with_keras(name):
    """Call keras.datasets.<name>.load_data(); DataError if that fails."""
    import keras  # imported here so that `import vae.data` stays fast

    loader = getattr(keras.datasets, name)
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as err:
        raise DataError(
            f"downloading {name} with keras.datasets.{name}.load_data() failed "
            f"({_one_line(err)}). To use a local copy instead, pass --data-dir DIR "
            f"or set {ENV_VAR}=DIR, where DIR (or DIR/{SUBFOLDERS[name][0]}/) holds "
            f"the four IDX files {', '.join(IDX_NAMES)} (plain or .gz)"
            + (f", or {NPZ_NAME}" if name == "mnist" else "")
        ) from err
    return (np.asarray(x_train), np.asarray(y_train)), (np.asarray(x_test), np.asarray(y_test))


# ---------------------------------------------------------------------------
# Reading and checking
# ---------------------------------------------------------------------------


def _read_bytes(path):
    """All bytes of path, gunzipped if the name ends in ".gz"."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip file ({_one_line(err)})") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read file ({_one_line(err)})") from err


def _check_images(images, source):
    """Images must be a non-empty uint8 array of shape (N, 28, 28)."""
    if images.dtype != np.uint8:
        raise DataError(f"{source}: wrong dtype: expected uint8 images, found {images.dtype}")
    if images.ndim != 3:
        raise DataError(
            f"{source}: wrong shape: expected (N, {IMAGE_SIZE}, {IMAGE_SIZE}), "
            f"found {images.shape}"
        )
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"{source}: wrong image size: expected {IMAGE_SIZE}x{IMAGE_SIZE}, "
            f"found {images.shape[1]}x{images.shape[2]}"
        )
    if images.shape[0] == 0:
        raise DataError(f"{source}: holds no images (0 images)")


def _check_labels(labels, source):
    """Labels must be a 1-D integer array with values 0..9."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: wrong dtype: expected integer labels, found {labels.dtype}")
    if labels.ndim != 1:
        raise DataError(f"{source}: wrong shape: expected (N,), found {labels.shape}")
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if bad.size > 0:
        raise DataError(
            f"{source}: label values out of range 0..{NUM_CLASSES - 1}: "
            f"{bad.size} bad, e.g. {labels[bad[0]]} at index {bad[0]}"
        )


def _check_pair(images, labels, images_source, labels_source):
    """Images and labels must be valid and equally many."""
    _check_images(images, images_source)
    _check_labels(labels, labels_source)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"image and label counts disagree: {images_source} has {images.shape[0]} "
            f"images, {labels_source} has {labels.shape[0]} labels"
        )


def _to_float(images):
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]."""
    x = images.astype(np.float32)
    x /= 255.0
    return x[..., np.newaxis]


def _to_int(labels):
    """Integer labels (N,) -> int32 (N,)."""
    return labels.astype(np.int32)


def _one_line(err):
    """'TypeName: first line of the message' for an exception."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
