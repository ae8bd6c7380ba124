"""Load MNIST, Fashion-MNIST and CIFAR-10 as float32 images for the VAE.

MNIST and Fashion-MNIST are 28 x 28 grey-scale images, CIFAR-10 32 x 32 colour
images (red, green, blue), each with labels 0..9. `load_dataset` returns them as

    x: float32, shape (N, height, width, channels): (N, 28, 28, 1) or (N, 32, 32, 3),
       pixel values scaled from 0..255 to [0, 1]
    y: int32, shape (N,), class labels 0..9

Where the data comes from, first match wins:

1. the folder given as `data_dir` (the scripts' --data-dir flag);
2. else the folder in the environment variable VAE_DATA_DIR, if set and non-empty;
3. else the repository's own copy in data/ (MNIST is there, in data/mnist/);
4. else `keras.datasets`, which downloads it (this needs internet access).

A folder that is named (1 or 2) but broken is an error; the loader does not
quietly try the next source.

A data folder DIR may hold either

* the four IDX files published by Yann LeCun (plain or gzip-compressed
  with a `.gz` suffix), in DIR itself or in DIR/mnist/ (MNIST) or
  DIR/fashion-mnist/ or DIR/fashion_mnist/ (Fashion-MNIST):

      train-images-idx3-ubyte   train-labels-idx1-ubyte
      t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

* or, for MNIST only, Keras' `mnist.npz` in DIR or DIR/mnist/;

* for CIFAR-10, the six batch files of Keras' (and the Toronto site's)
  `cifar-10-batches-py/` folder: data_batch_1 .. data_batch_5 (50,000 training
  images) and test_batch (10,000), in DIR, DIR/cifar-10-batches-py/, DIR/cifar10/
  or DIR/cifar10/cifar-10-batches-py/; or the archive they come in,
  `cifar-10-python.tar.gz`, in DIR or DIR/cifar10/, read without unpacking it.
  Each batch is a Python pickle of a dict: b"data", a uint8 NumPy array
  (N, 3072) whose rows hold the 1,024 red, then green, then blue pixels of an
  image row by row; b"labels", a list of N integers. The pickles are read with
  `CifarUnpickler`, which runs no code the file names (see there).

Every problem with the data (missing files, truncated or corrupt files,
wrong shapes, bad labels, files too large) raises `DataError`, whose message
names the file and the problem. Reading is bounded: a file announcing more
than MAX_DATA_BYTES of data is refused before its data is read, so a corrupt
or hostile file cannot exhaust the memory.
"""

import errno
import gzip
import io
import math
import os
import pickle
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """The data could not be found or is malformed. The message says which file and why."""


# Published (train, test) sizes of each data set, and the shape of one of its images as the loader returns it.
DATASET_SIZES = {"mnist": (60000, 10000), "fashion_mnist": (60000, 10000), "cifar10": (50000, 10000)}
IMAGE_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
# For messages and figure titles; "images" is a reader's own folder (vae/images.py), whose sizes and shape vary.
DATASET_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "images": "image folder"}
DATASET_ITEMS = {"mnist": "digits", "fashion_mnist": "clothes", "cifar10": "photos", "images": "images"}

IMAGE_SIZE = 28  # images are IMAGE_SIZE x IMAGE_SIZE pixels
NUM_CLASSES = 10  # labels are 0 .. NUM_CLASSES - 1

# The largest array one data file may hold, in bytes: 127,551 images of 28 x 28
# uint8 pixels. MNIST's training images are 47,040,000 bytes. Compressed
# files (.gz, .npz) may not be larger than this either.
MAX_DATA_BYTES = 100_000_000

CHUNK_BYTES = 2**20  # files are read 1 MiB at a time

# The four IDX files, without the optional ".gz" suffix.
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
IDX_NAMES = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]

NPZ_NAME = "mnist.npz"  # the file keras.datasets.mnist.load_data() downloads
NPZ_KEYS = ["x_train", "y_train", "x_test", "y_test"]
NPY_HEADER_MAX_BYTES = 10_100  # a .npy header: magic, version, length, at most 10,000 bytes of text

# Sub-folders of the data folder that are also searched, per data set.
SUBFOLDERS = {"mnist": ["mnist"], "fashion_mnist": ["fashion-mnist", "fashion_mnist"],
              "cifar10": ["cifar-10-batches-py", "cifar10", "cifar10/cifar-10-batches-py"]}

# CIFAR-10's files: the batches of the folder cifar-10-batches-py/, which the archive also holds.
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"  # in DIR or DIR/cifar10/
CIFAR_TRAIN_BATCHES = [f"data_batch_{number}" for number in range(1, 6)]
CIFAR_TEST_BATCH = "test_batch"
CIFAR_BATCHES = CIFAR_TRAIN_BATCHES + [CIFAR_TEST_BATCH]
CIFAR_VALUES = 3 * 32 * 32  # one row of b"data": 1,024 red values, then 1,024 green, then 1,024 blue
# The archive is 170,498,071 bytes, its members 186 MB unpacked; both are capped at this many bytes.
MAX_ARCHIVE_BYTES = 250_000_000

ENV_VAR = "VAE_DATA_DIR"

# The repository's own data folder (REPO/data); it holds MNIST in data/mnist/.
REPO_DATA_DIR = Path(__file__).resolve().parents[2] / "data"

# IDX magic number: two zero bytes, the data type (0x08 = unsigned byte),
# then the number of dimensions (1 for labels, 3 for images).
IDX_UBYTE = 0x08

# An .npz file is a zip archive: it starts with a zip entry (or, if empty, the end record).
ZIP_MAGICS = [b"PK\x03\x04", b"PK\x05\x06"]


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def load_dataset(name="mnist", data_dir=None):
    """Return (x_train, y_train), (x_test, y_test) for "mnist", "fashion_mnist" or "cifar10".

    x: float32, shape (N, *IMAGE_SHAPES[name]), values in [0, 1] (uint8 pixel / 255).
    y: int32, shape (N,), labels 0..9.

    data_dir: folder with the files (see the module docstring). If None,
    $VAE_DATA_DIR is used when set and non-empty, else the repository's
    data/ folder when it holds the data set, else keras.datasets downloads it.
    """
    name = _check_name(name)
    source, folder = _choose_source(name, data_dir)

    if source == "download":
        train, test = _download_with_keras(name)
        origin = f"keras.datasets.{name}.load_data()"
        train_sources = (origin + " x_train", origin + " y_train")
        test_sources = (origin + " x_test", origin + " y_test")
    elif source == "repository":
        train, test, train_sources, test_sources = _load_repository_copy(name, folder)
    else:  # a folder named by data_dir ("--data-dir") or by $VAE_DATA_DIR
        train, test, train_sources, test_sources = _load_from_folder(name, folder, source)

    (x_train, y_train), (x_test, y_test) = train, test
    _check_pair(x_train, y_train, *train_sources, _stored_shape(name))
    _check_pair(x_test, y_test, *test_sources, _stored_shape(name))
    return (_to_float(x_train), _to_int(y_train)), (_to_float(x_test), _to_int(y_test))


def load_mnist(data_dir=None):
    """MNIST digits; same return value as `load_dataset("mnist", data_dir)`."""
    return load_dataset("mnist", data_dir)


def data_source(name="mnist", data_dir=None):
    """Say in words where `load_dataset(name, data_dir)` will read from, for a log line."""
    name = _check_name(name)
    source, folder = _choose_source(name, data_dir)
    if source == "download":
        return f"download with keras.datasets.{name}.load_data()"
    if source == "repository":
        return f"the repository's copy in {folder}"
    return f"the folder {folder} (from {source})"


# Binarized MNIST (a run with binarize="dynamic"): the training images are drawn afresh at every step,
# inside the training step (vae/pixels.py); the test set is drawn once, with this seed, the same in every run.
TEST_BINARIZATION_SEED = 0
BINARIZATION_PROTOCOL = ("training images drawn afresh as Bernoulli(pixel) at every step; "
                         f"test set drawn once with seed {TEST_BINARIZATION_SEED}")


def binarize(images, seed=TEST_BINARIZATION_SEED):
    """One binary draw of `images`: each pixel 1 with probability its grayscale value, else 0.

    images: float32 (N, 28, 28, 1) in [0, 1]. Returns float32 of the same shape, values 0 or 1;
    the same draw for the same seed (NumPy's default generator).
    """
    uniform = np.random.default_rng(seed).random(images.shape, dtype=np.float32)  # in [0, 1)
    return (uniform < images).astype(np.float32)


def read_idx(path, ndim=None):
    """Read one IDX file (plain, or gzip if the name ends in ".gz").

    Returns a uint8 numpy array whose shape is the dimensions in the file's
    header, e.g. (N, 28, 28) for images or (N,) for labels.
    ndim: the number of dimensions the file must have (3 for images, whose
    size must then be 28 x 28; 1 for labels), or None to accept any.
    The header is checked before any data is read; a header announcing more
    than MAX_DATA_BYTES bytes is refused.
    Raises DataError for a missing, unreadable, truncated, malformed or too large file.
    """
    path = Path(path)
    file_size = _regular_file_size(path)
    compressed = path.suffix == ".gz"
    if compressed:
        _check_file_not_too_large(path, file_size)
    open_file = gzip.open if compressed else open
    try:
        with open_file(path, "rb") as f:
            dims, header_size = _read_idx_header(f, path, ndim)
            data_size = math.prod(dims)  # one byte per value
            dims_text = " x ".join(str(d) for d in dims)
            if not compressed:  # the file's size must be exactly header + data
                _check_idx_file_size(path, dims_text, header_size, data_size, file_size)

            array, found = _read_up_to(f, data_size)
            if found < data_size:
                raise DataError(
                    f"{path}: truncated payload: the header dimensions {dims_text} need "
                    f"{data_size} data bytes, found only {found}"
                )
            if compressed and f.read(1):  # more data after the announced end
                raise DataError(
                    f"{path}: header dimensions disagree with the file size: {dims_text} "
                    f"needs {data_size} data bytes, but the uncompressed file holds more "
                    f"(extra trailing bytes)"
                )
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip file ({_one_line(err)})") from err
    except (OSError, MemoryError) as err:
        raise DataError(f"{path}: cannot read file ({_one_line(err)})") from err
    return array.reshape(dims)


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
    Each array's header (dtype, shape) is checked before its data is read.
    """
    path = Path(path)
    file_size = _regular_file_size(path)
    _check_file_not_too_large(path, file_size)
    try:
        with open(path, "rb") as f:
            start = f.read(4)
    except OSError as err:
        raise DataError(f"{path}: cannot read file ({_one_line(err)})") from err
    if start not in ZIP_MAGICS:
        found = f"it starts with {start!r}" if start else "it is empty"
        if start == b"\x93NUM":
            found += ", the start of a single .npy array"
        raise DataError(f"{path}: not an npz (zip) archive: {found}, not b'PK\\x03\\x04'")

    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name.removesuffix(".npy"): name for name in archive.namelist()}
            missing = [key for key in NPZ_KEYS if key not in members]
            if missing:
                raise DataError(
                    f"{path}: missing key(s) {', '.join(missing)}; expected keys "
                    f"{', '.join(NPZ_KEYS)}, found {', '.join(members) or 'none'}"
                )
            for key in NPZ_KEYS:
                kind = "images" if key.startswith("x") else "labels"
                arrays[key] = _read_npy_member(archive, members[key], kind, f"{path} [{key}]")
    except DataError:
        raise
    except Exception as err:
        # zipfile and its decompressors raise many types: BadZipFile, zlib.error, EOFError,
        # NotImplementedError (unknown compression), RuntimeError (encrypted), ...
        raise DataError(f"{path}: unreadable npz file ({_one_line(err)})") from err

    for key in ["x_train", "x_test"]:
        _check_images(arrays[key], f"{path} [{key}]")
    for key in ["y_train", "y_test"]:
        _check_labels(arrays[key], f"{path} [{key}]")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


# ---------------------------------------------------------------------------
# Choosing the source and finding the files
# ---------------------------------------------------------------------------


def _check_name(name):
    """The data set's name, "mnist", "fashion_mnist" or "cifar10" ("fashion-mnist" is accepted too)."""
    name = name.replace("-", "_")
    if name not in DATASET_SIZES:
        raise DataError(
            f"unknown data set {name!r}; choose one of: {', '.join(DATASET_SIZES)}"
        )
    return name


def _choose_source(name, data_dir):
    """Where to read `name` from: (source, folder).

    source is "--data-dir" or "$VAE_DATA_DIR" (a named folder), "repository"
    (REPO_DATA_DIR) or "download" (folder None).
    """
    if data_dir is not None:
        return "--data-dir", _as_path(data_dir)
    if os.environ.get(ENV_VAR):
        return "$" + ENV_VAR, _as_path(os.environ[ENV_VAR])
    if any(os.path.lexists(REPO_DATA_DIR / sub) for sub in SUBFOLDERS[name]):
        return "repository", REPO_DATA_DIR
    return "download", None


def _as_path(folder):
    """folder as a Path, with a leading ~ expanded to the home folder."""
    return Path(os.path.expanduser(folder))


def _load_repository_copy(name, folder):
    """_load_from_folder for the repository's data/; an error says it is the repository's copy."""
    try:
        return _load_from_folder(name, folder)
    except DataError as err:
        raise DataError(
            f"{err}. This is the repository's own copy of {name} in {folder}: restore it "
            f"with `git checkout data/`, or name another folder with --data-dir DIR "
            f"or {ENV_VAR}=DIR"
        ) from err


def _load_from_folder(name, data_dir, named_by=None):
    """Load `name` from the folder data_dir.

    Order of preference: a folder with all four IDX files (DIR, then its
    sub-folders), then mnist.npz (MNIST only), and otherwise a DataError.
    named_by: how the folder was named ("--data-dir", "$VAE_DATA_DIR"), for messages.
    Returns (train, test, train_sources, test_sources); the sources are the
    file names used in error messages.
    """
    _check_folder(data_dir, named_by)
    if name == "cifar10":
        return _load_cifar10_from_folder(data_dir)
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
        if os.path.lexists(npz_path):
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
    """Path of folder/base or folder/base.gz (plain preferred), or None.

    Anything with that name counts, even a folder or a broken symlink: reading it
    then says what is wrong with it, rather than calling it missing.
    """
    for candidate in [folder / base, folder / (base + ".gz")]:
        if os.path.lexists(candidate):
            return candidate
    return None


def _download_with_keras(name):
    """Call keras.datasets.<name>.load_data(); DataError if that fails.

    Keras reads CIFAR-10's pickles with an unpickler restricted to NumPy's names, as this module does.
    """
    try:
        import keras  # imported here, not at the top, so that `import vae.data` stays light

        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as err:
        if name == "cifar10":
            files = f"the batches {', '.join(CIFAR_BATCHES)}, or {CIFAR_ARCHIVE}"
        else:
            files = f"the four IDX files {', '.join(IDX_NAMES)} (plain or .gz)" + (f", or {NPZ_NAME}" if name == "mnist" else "")
        raise DataError(
            f"downloading {name} with keras.datasets.{name}.load_data() failed "
            f"({_one_line(err)}). To use a local copy instead, pass --data-dir DIR "
            f"or set {ENV_VAR}=DIR, where DIR (or DIR/{SUBFOLDERS[name][0]}/) holds {files}"
        ) from err
    # CIFAR-10's labels come as (N, 1): flattened to (N,) like the others.
    labels = [np.asarray(y).reshape(-1) if np.ndim(y) == 2 and np.shape(y)[1] == 1 else np.asarray(y)
              for y in (y_train, y_test)]
    return (np.asarray(x_train), labels[0]), (np.asarray(x_test), labels[1])


# ---------------------------------------------------------------------------
# What kind of path is it?
# ---------------------------------------------------------------------------


def _check_folder(folder, named_by=None):
    """Raise DataError unless folder is a folder (following symlinks)."""
    where = f"data folder {folder}" + (f" (from {named_by})" if named_by else "")
    try:
        mode = os.stat(folder).st_mode
    except (OSError, ValueError) as err:
        raise DataError(f"{where} {_stat_problem(folder, err, missing='does not exist')}") from err
    if stat.S_ISREG(mode):
        raise DataError(f"{where} is a file, not a folder")
    if not stat.S_ISDIR(mode):
        raise DataError(f"{where} is not a folder ({_special_kind(mode)})")


def _regular_file_size(path):
    """The size in bytes of path, which must be a regular file (symlinks followed).

    A folder, FIFO, socket, device, broken symlink or symlink loop is a DataError
    saying which; a FIFO is never opened (reading one would wait forever).
    """
    try:
        info = os.stat(path)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: {_stat_problem(path, err)}") from err
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path}: is not a regular file ({_special_kind(info.st_mode)})")
    return info.st_size


def _stat_problem(path, err, missing="file not found"):
    """Why os.stat(path) failed, in words; `missing` says that nothing is there."""
    if getattr(err, "errno", None) == errno.ELOOP:
        return "is a symlink loop"
    if getattr(err, "errno", None) == errno.ENOENT:
        if os.path.islink(path):
            return "is a broken symlink (its target does not exist)"
        return missing
    return f"cannot be read ({_one_line(err)})"


def _special_kind(mode):
    """'a FIFO', 'a socket', ... for a file mode that is not a regular file or folder."""
    kinds = [(stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")]
    for is_kind, words in kinds:
        if is_kind(mode):
            return words
    return f"file mode 0o{mode:o}"


# ---------------------------------------------------------------------------
# Reading, bounded
# ---------------------------------------------------------------------------


def _check_file_not_too_large(path, file_size):
    """A compressed file (.gz, .npz) may not be larger than MAX_DATA_BYTES."""
    if file_size > MAX_DATA_BYTES:
        raise DataError(
            f"{path}: too large: {file_size:,} bytes, more than the {MAX_DATA_BYTES:,} "
            f"bytes (MAX_DATA_BYTES) this loader accepts"
        )


def _check_data_size(source, shape, itemsize=1):
    """An array of this shape may hold at most MAX_DATA_BYTES bytes.

    A size of 0 counts as 1 here, so that an empty array cannot announce
    absurd other dimensions either.
    """
    if math.prod(max(size, 1) for size in shape) * itemsize > MAX_DATA_BYTES:
        shape_text = " x ".join(str(size) for size in shape)
        raise DataError(
            f"{source}: too large: the header announces {shape_text} values, more than the "
            f"{MAX_DATA_BYTES:,} bytes (MAX_DATA_BYTES) this loader accepts for one array, "
            f"about {MAX_DATA_BYTES // IMAGE_SIZE**2:,} images of {IMAGE_SIZE}x{IMAGE_SIZE}"
        )


def _read_idx_header(f, path, ndim):
    """Read and check the IDX header at the start of the open file f.

    Returns (dims, header_size): the dimensions, e.g. (60000, 28, 28), and
    the header's length in bytes (4 + 4 per dimension).
    """
    # Magic number: bytes 0-1 zero, byte 2 the data type, byte 3 the number of dims.
    magic_bytes = f.read(4)
    if len(magic_bytes) < 4:
        raise DataError(
            f"{path}: truncated header: the file has {len(magic_bytes)} bytes, "
            f"an IDX header needs at least 4"
        )
    magic = int.from_bytes(magic_bytes, "big")
    if ndim is None:
        magic_ok = magic_bytes[:3] == bytes([0, 0, IDX_UBYTE]) and magic_bytes[3] >= 1
        expected = "0x000008NN (unsigned bytes, NN >= 1 dimensions)"
    else:
        magic_ok = magic == (IDX_UBYTE << 8) + ndim
        expected = f"0x{(IDX_UBYTE << 8) + ndim:08x} (unsigned bytes, {ndim} dimension(s))"
    if not magic_ok:
        raise DataError(
            f"{path}: wrong magic number: expected {expected}, found 0x{magic:08x}"
        )

    # One big-endian uint32 per dimension follows the magic number.
    num_dims = magic_bytes[3]
    header_size = 4 + 4 * num_dims
    dims_bytes = f.read(4 * num_dims)
    if len(dims_bytes) < 4 * num_dims:
        raise DataError(
            f"{path}: truncated header: {num_dims} dimension(s) need a "
            f"{header_size}-byte header, the file has only {4 + len(dims_bytes)} bytes"
        )
    dims = tuple(int.from_bytes(dims_bytes[i:i + 4], "big") for i in range(0, len(dims_bytes), 4))

    if ndim == 3 and dims[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"{path}: wrong image size: expected {IMAGE_SIZE}x{IMAGE_SIZE}, "
            f"found {dims[1]}x{dims[2]}"
        )
    _check_data_size(path, dims)
    return dims, header_size


def _check_idx_file_size(path, dims_text, header_size, data_size, file_size):
    """A plain IDX file must be exactly header + data bytes long (checked before reading)."""
    found = file_size - header_size
    if found < data_size:
        raise DataError(
            f"{path}: truncated payload: the header dimensions {dims_text} need "
            f"{data_size} data bytes, found only {found}"
        )
    if found > data_size:
        raise DataError(
            f"{path}: header dimensions disagree with the file size: {dims_text} "
            f"needs {data_size} data bytes, found {found} "
            f"({found - data_size} extra trailing bytes)"
        )


def _read_up_to(f, size):
    """Read up to `size` bytes from the open file f, 1 MiB at a time.

    Returns (array, count): a new uint8 array of `size` bytes, of which the
    first `count` were read (count < size when the file ends early).
    """
    array = np.empty(size, dtype=np.uint8)
    view = memoryview(array)
    count = 0
    while count < size:
        chunk = f.read(min(CHUNK_BYTES, size - count))
        if not chunk:
            break
        view[count:count + len(chunk)] = chunk
        count += len(chunk)
    return array, count


def _read_npy_member(archive, member, kind, source):
    """Read the .npy array `member` of the open zip archive, checking its header first.

    kind: "images" (must be uint8 (N, 28, 28)) or "labels" (integer (N,)).
    Neither may hold more than MAX_DATA_BYTES; nothing is unpickled.
    source: the name used in error messages.
    """
    # The header is small (NumPy refuses one of more than 10,000 bytes): read that
    # much and parse it from memory, so that a lying header cannot make us read more.
    with archive.open(member) as f:
        start = io.BytesIO(f.read(NPY_HEADER_MAX_BYTES))
    try:
        version = np.lib.format.read_magic(start)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(start)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(start)
        else:
            raise DataError(f"{source}: unsupported .npy format version {version}")
    except ValueError as err:
        raise DataError(f"{source}: not a valid .npy array ({_one_line(err)})") from err

    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise DataError(f"{source}: not a plain numeric array (dtype {dtype})")
    if any(size < 0 for size in shape):
        raise DataError(f"{source}: not a valid .npy array (negative size in shape {shape})")
    if kind == "images":
        _check_image_format(dtype, shape, source)
    else:
        _check_label_format(dtype, shape, source)
    _check_data_size(source, shape, dtype.itemsize)

    with archive.open(member) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


# ---------------------------------------------------------------------------
# CIFAR-10: pickles, read without running anything they name
# ---------------------------------------------------------------------------


class PickledArray:
    """A NumPy array as a pickle describes it, recorded and not built.

    A pickled array is rebuilt in two steps: numpy's _reconstruct(numpy.ndarray, (0,), b"b") makes an
    empty array, then its __setstate__((version, shape, dtype, fortran_order, data)) sets the rest.
    NumPy's own __setstate__ trusts that state (a forged shape makes it allocate gigabytes, or crash),
    so here both steps only record it; `_array_from_pickle` checks it and builds the array.
    """

    def __init__(self, *arguments):
        self.state = None

    def __setstate__(self, state):
        self.state = state


class PickledDtype:
    """A NumPy dtype as a pickle describes it, numpy.dtype("u1", False, True), recorded and not built."""

    def __init__(self, *arguments):
        self.arguments = arguments

    def __setstate__(self, state):
        pass  # (3, "|", None, ...): the byte order and the like, which a uint8 array does not need


class CifarUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch and refuses everything else, with a DataError naming `source`.

    A pickle names the functions that rebuild its objects (a module and a name) and unpickling calls
    them: a hostile file could name os.system. A CIFAR-10 batch holds only bytes, numbers, lists, a
    dict and one NumPy array, and the array needs only the three names of `PICKLED_NAMES`, each
    answered by a class that records what the pickle says (`PickledArray`, `PickledDtype`).
    """

    def __init__(self, file, source):
        super().__init__(file, encoding="bytes")  # the batches were pickled by Python 2, whose str is bytes
        self.source = source

    def find_class(self, module, name):
        if (module, name) not in PICKLED_NAMES:
            raise DataError(f"{self.source}: refused to unpickle {_printable(f'{module}.{name}')}: a CIFAR-10 batch holds a NumPy "
                            f"array and plain values only, and unpickling another name could run any code")
        return PICKLED_NAMES[module, name]


# The names a pickled NumPy array uses, in NumPy 1's spelling (the published batches) and NumPy 2's.
PICKLED_NAMES = {
    ("numpy.core.multiarray", "_reconstruct"): PickledArray,
    ("numpy._core.multiarray", "_reconstruct"): PickledArray,
    ("numpy", "ndarray"): PickledArray,
    ("numpy", "dtype"): PickledDtype,
}


def read_cifar_batch(path):
    """Read one CIFAR-10 batch file, e.g. data_batch_1: images uint8 (N, 32, 32, 3), labels int64 (N,)."""
    path = Path(path)
    _check_file_not_too_large(path, _regular_file_size(path))
    try:
        with open(path, "rb") as f:
            content = f.read(MAX_DATA_BYTES + 1)
    except OSError as err:
        raise DataError(f"{path}: cannot read file ({_one_line(err)})") from err
    return _parse_cifar_batch(content, str(path))


def read_cifar_archive(path):
    """Read the six batches of Keras' cifar-10-python.tar.gz without unpacking it to disk.

    Returns {batch name: (images, labels)}, as `read_cifar_batch`. The archive is read as a stream
    (`_tar_members`), not with `tarfile`, so that every size is checked before it is read: the archive
    and its unpacked bytes are at most MAX_ARCHIVE_BYTES, each batch at most MAX_DATA_BYTES, each
    extended header (a long name) at most MAX_TAR_HEADER_BYTES.
    """
    path = Path(path)
    size = _regular_file_size(path)
    if size > MAX_ARCHIVE_BYTES:
        raise DataError(f"{path}: too large: {size:,} bytes, more than the {MAX_ARCHIVE_BYTES:,} bytes "
                        f"(MAX_ARCHIVE_BYTES) this loader accepts for {CIFAR_ARCHIVE}")
    wanted = {f"{CIFAR_FOLDER}/{name}": name for name in CIFAR_BATCHES}
    batches = {}
    try:
        with open(path, "rb") as file, gzip.GzipFile(fileobj=file) as stream:
            for name, kind, member_size, read in _tar_members(_CappedStream(stream, path), path):
                if name not in wanted:
                    continue
                source = f"{path} [{name}]"
                if kind not in TAR_REGULAR:
                    raise DataError(f"{source}: is not a regular file in the archive")
                if member_size > MAX_DATA_BYTES:
                    raise DataError(f"{source}: too large: {member_size:,} bytes, more than the "
                                    f"{MAX_DATA_BYTES:,} bytes (MAX_DATA_BYTES) this loader accepts")
                content = read()
                if len(content) < member_size:
                    raise DataError(f"{source}: truncated: {member_size:,} bytes announced, {len(content):,} found")
                batches[wanted[name]] = _parse_cifar_batch(content, source)
                if len(batches) == len(wanted):
                    break
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as err:  # gzip and zlib raise these for a damaged stream
        raise DataError(f"{path}: unreadable tar.gz archive ({_one_line(err)})") from err
    missing = [member for member, name in wanted.items() if name not in batches]
    if missing:
        raise DataError(f"{path}: missing member(s) {', '.join(missing)}")
    return batches


# A tar archive is a list of members, each a 512-byte header, then its data padded to a multiple of 512 bytes;
# two blocks of zeros end it. A header's fields (POSIX ustar): the name in bytes 0..99, the size in 124..135 (octal
# digits, or base-256 if its first byte has the high bit set), the checksum in 148..155, the type in 156, "ustar"
# in 257..262, and a name prefix in 345..499. A name longer than 100 bytes, or a size past 8 GB, comes in an
# extended header before the member: a pax header (type "x", records "LENGTH key=value\n"), or GNU's long name
# ("L") or long link ("K"). Python's tarfile reads those whole, however long, before any check here could apply,
# and parses a pax header's numbers in quadratic time (CVE-2024-6232), so the archive is parsed here instead.
TAR_BLOCK = 512
TAR_REGULAR = (b"0", b"\0", b"7")  # a regular file (7: "contiguous", also a regular file)
TAR_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")  # links, devices, a folder, a FIFO: their size means nothing
TAR_EXTENDED = (b"x", b"g", b"L", b"K")  # pax (for the next member), pax global, GNU long name, GNU long link
MAX_TAR_HEADER_BYTES = 65_536  # the largest extended header accepted; a long name needs a few hundred bytes
MAX_TAR_NUMBER_DIGITS = 20  # a size in a pax header: 20 digits reach past 10^19 bytes


class _CappedStream:
    """The decompressed bytes of an archive, read through `read_exactly`, at most MAX_ARCHIVE_BYTES in all."""

    def __init__(self, stream, path):
        self.stream, self.path, self.position = stream, path, 0

    def read_exactly(self, size, what):
        """The next `size` bytes (fewer only at the end of the stream); DataError past MAX_ARCHIVE_BYTES.
        `what` names, in that message, what is being read."""
        return b"".join(self._chunks(size, what))

    def skip(self, size, what):
        """Read past the next `size` bytes, 1 MiB at a time, keeping none."""
        for _ in self._chunks(size, what):
            pass

    def _chunks(self, size, what):
        if self.position + size > MAX_ARCHIVE_BYTES:
            raise DataError(f"{self.path} [{_printable(what)}]: too large: the archive's members reach past "
                            f"{MAX_ARCHIVE_BYTES:,} bytes (MAX_ARCHIVE_BYTES) unpacked")
        left = size
        while left > 0:
            chunk = self.stream.read(min(left, CHUNK_BYTES))
            if not chunk:
                return
            self.position += len(chunk)
            left -= len(chunk)
            yield chunk


def _tar_members(stream, path):
    """Yield (name, type, size, read) for each member of the tar archive in the `_CappedStream` stream.

    name: the member's full name (str); type: its one-byte type flag; size: its data's bytes; read(): its
    data, which must be read before the next member is asked for, or is skipped. DataError for a damaged
    header or an extended header larger than MAX_TAR_HEADER_BYTES, naming the archive `path`.
    """
    extended = {}  # what the extended headers before this member say: {"path": ..., "size": ...}
    while True:
        offset = stream.position
        header = stream.read_exactly(TAR_BLOCK, "a member's header")
        if len(header) < TAR_BLOCK:
            raise DataError(f"{path}: unreadable tar.gz archive (it ends inside a header, at byte {offset:,} "
                            f"unpacked)")
        if header == bytes(TAR_BLOCK):
            return  # the end of the archive
        _check_tar_checksum(header, offset, path)
        kind = header[156:157]
        size = _tar_size(header, offset, path)
        padded = -(-size // TAR_BLOCK) * TAR_BLOCK
        if kind in TAR_EXTENDED:
            if size > MAX_TAR_HEADER_BYTES:
                raise DataError(f"{path}: refused: an extended tar header (type {kind.decode('latin-1')!r}, a long "
                                f"name or pax header) of {size:,} bytes at byte {offset:,} unpacked, more than the "
                                f"{MAX_TAR_HEADER_BYTES:,} bytes (MAX_TAR_HEADER_BYTES) this loader accepts")
            data = stream.read_exactly(padded, "an extended header")[:size]
            if len(data) < size:
                raise DataError(f"{path}: unreadable tar.gz archive (it ends inside an extended header)")
            if kind == b"x":
                extended.update(_pax_records(data, offset, path))
            elif kind == b"L":
                extended["path"] = data.split(b"\0", 1)[0].decode("utf-8", "replace")
            continue  # "g" (global) and "K" (a link's target) say nothing this loader needs
        name = extended.get("path")
        if name is None:
            name = _tar_text(header[0:100])
            if header[257:263] == b"ustar\0" and header[345:500].strip(b"\0"):
                name = _tar_text(header[345:500]) + "/" + name
        size = 0 if kind in TAR_NO_DATA else extended.get("size", size)
        extended = {}
        start = stream.position
        yield name, kind, size, lambda: stream.read_exactly(size, name)
        end = start + -(-size // TAR_BLOCK) * TAR_BLOCK  # the data, padded to whole blocks
        stream.skip(end - stream.position, name)  # what the caller did not read


def _check_tar_checksum(header, offset, path):
    """A tar header's checksum: the sum of its bytes, with its own 8 bytes counted as spaces."""
    expected = _tar_octal(header[148:156])
    found = sum(header[:148]) + 8 * 32 + sum(header[156:])
    signed = found - 256 * sum(byte >= 128 for byte in header[:148] + header[156:])  # some old tars sum signed bytes
    if expected not in (found, signed):
        raise DataError(f"{path}: unreadable tar.gz archive (no valid tar header at byte {offset:,} unpacked: "
                        f"its checksum does not match)")


def _tar_size(header, offset, path):
    """The size field of a tar header (octal digits, or base-256 if its first byte has the high bit set)."""
    field = header[124:136]
    if field[0] & 0x80:
        return int.from_bytes(field[1:], "big")  # at most 11 bytes: bounded
    size = _tar_octal(field)
    if size is None:
        raise DataError(f"{path}: unreadable tar.gz archive (a header at byte {offset:,} unpacked has no valid size)")
    return size


def _tar_octal(field):
    """The number in a header field of octal digits, ended by NUL or space; None if it is not one."""
    digits = field.split(b"\0", 1)[0].strip(b" ")
    if not digits or any(digit not in b"01234567" for digit in digits):
        return None if digits else 0
    return int(digits, 8)


def _tar_text(field):
    """A NUL-ended text field of a tar header, as str."""
    return field.split(b"\0", 1)[0].decode("utf-8", "replace")


def _pax_records(data, offset, path):
    """{"path": ..., "size": ...} from the records "LENGTH key=value\n" of a pax header (at most
    MAX_TAR_HEADER_BYTES long); other keys are ignored. A number is read only if it has at most
    MAX_TAR_NUMBER_DIGITS digits, so that no long run of digits is ever converted."""
    records, position = {}, 0
    where = f"{path}: unreadable tar.gz archive (the pax header at byte {offset:,} unpacked"
    data = data.rstrip(b"\0")  # NUL padding after the last record is ignored, as tarfile does
    while position < len(data):
        space = data.find(b" ", position, position + MAX_TAR_NUMBER_DIGITS + 1)
        length_digits = data[position:space]
        if space < 0 or not length_digits.isdigit():
            raise DataError(f"{where} has a record without a valid length)")
        length = int(length_digits)
        record = data[space + 1:position + length]
        if length <= len(length_digits) + 1 or position + length > len(data) or not record.endswith(b"\n"):
            raise DataError(f"{where} has a record whose length is wrong)")
        key, equals, value = record[:-1].partition(b"=")
        if not equals:
            raise DataError(f"{where} has a record without '=')")
        if key == b"path":
            records["path"] = value.decode("utf-8", "replace")
        elif key == b"size":
            if not value.isdigit() or len(value) > MAX_TAR_NUMBER_DIGITS:
                raise DataError(f"{where} gives a size of {len(value):,} characters, not a number of at most "
                                f"{MAX_TAR_NUMBER_DIGITS} digits)")
            records["size"] = int(value)
        position += length
    return records


def _parse_cifar_batch(content, source):
    """The pickled batch in `content` (bytes): images uint8 (N, 32, 32, 3), labels int64 (N,), checked."""
    file = io.BytesIO(content)
    try:
        batch = CifarUnpickler(file, source).load()
    except DataError:
        raise
    except Exception as err:  # UnpicklingError, EOFError (truncated), and others for garbage
        raise DataError(f"{source}: not a valid pickle ({_one_line(err)})") from err
    if file.tell() != len(content):
        raise DataError(f"{source}: {len(content) - file.tell():,} extra bytes after the pickle")
    if not isinstance(batch, dict):
        raise DataError(f"{source}: not a CIFAR-10 batch: the pickle holds a {type(batch).__name__}, not a dict")
    keys = {key.decode("latin-1") if isinstance(key, bytes) else key: key for key in batch}
    missing = [f"b'{key}'" for key in ("data", "labels") if key not in keys]
    if missing:
        raise DataError(f"{source}: missing key(s) {', '.join(missing)} of a CIFAR-10 batch")
    data = _array_from_pickle(batch[keys["data"]], f"{source} [b'data']")
    labels = batch[keys["labels"]]
    if not isinstance(labels, list) or not all(type(label) is int for label in labels):
        raise DataError(f"{source} [b'labels']: not a list of integers")
    try:
        labels = np.array(labels, dtype=np.int64)
    except OverflowError as err:
        raise DataError(f"{source} [b'labels']: label values out of range 0..{NUM_CLASSES - 1}") from err
    _check_labels(labels, f"{source} [b'labels']")
    if len(labels) != len(data):
        raise DataError(f"{source}: image and label counts disagree: {len(data)} images, {len(labels)} labels")
    # Rows of 3 × 32 × 32 (channel, row, column) → images of 32 × 32 × 3, as the model takes them.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _array_from_pickle(value, source):
    """The uint8 (N, 3072) array a `PickledArray` describes, after checking its dtype, shape and bytes."""
    if not isinstance(value, PickledArray) or not isinstance(value.state, tuple) or len(value.state) != 5:
        raise DataError(f"{source}: not a pickled NumPy array")
    _, shape, dtype, fortran_order, data = value.state
    name = dtype.arguments[0] if isinstance(dtype, PickledDtype) and dtype.arguments else dtype
    name = name.decode("latin-1") if isinstance(name, bytes) else name
    if name not in ("u1", "|u1", "uint8"):
        raise DataError(f"{source}: wrong dtype: expected uint8 pixels (u1), found {_brief(name)}")
    if (not isinstance(shape, tuple) or len(shape) != 2 or not all(type(size) is int for size in shape)
            or shape[0] < 1 or shape[1] != CIFAR_VALUES):
        raise DataError(f"{source}: wrong shape: expected (N, {CIFAR_VALUES}) with N ≥ 1, found {_brief(shape)}")
    if not isinstance(data, bytes):
        raise DataError(f"{source}: the array's data is a {type(data).__name__}, not bytes")
    if len(data) != shape[0] * shape[1]:
        raise DataError(f"{source}: truncated or padded: shape {_brief(shape)} needs {_count(shape[0] * shape[1])} bytes, "
                        f"the pickle holds {len(data):,}")
    return np.frombuffer(data, np.uint8).reshape(shape, order="F" if fortran_order else "C")


def _load_cifar10_from_folder(data_dir):
    """CIFAR-10 from the folder data_dir: its batch files (data_dir or a sub-folder), else its archive.

    Returns (train, test, train_sources, test_sources) as `_load_from_folder`.
    """
    folders = [data_dir] + [data_dir / sub for sub in SUBFOLDERS["cifar10"]]
    partial = None
    for folder in folders:
        present = [name for name in CIFAR_BATCHES if os.path.lexists(folder / name)]
        if len(present) == len(CIFAR_BATCHES):
            batches = {name: read_cifar_batch(folder / name) for name in CIFAR_BATCHES}
            return _join_cifar_batches(batches, lambda name: str(folder / name))
        if present and partial is None:
            partial = folder
    for archive in [data_dir / CIFAR_ARCHIVE, data_dir / "cifar10" / CIFAR_ARCHIVE]:
        if os.path.lexists(archive):
            return _join_cifar_batches(read_cifar_archive(archive), lambda name: f"{archive} [{CIFAR_FOLDER}/{name}]")
    if partial is not None:
        missing = [str(partial / name) for name in CIFAR_BATCHES if not os.path.lexists(partial / name)]
        raise DataError(f"missing file(s) in {partial}: {', '.join(missing)} (the other CIFAR-10 batches are there)")
    raise DataError(
        f"no cifar10 files found in data folder {data_dir}: looked for {', '.join(CIFAR_BATCHES)} in "
        f"{', '.join(str(f) for f in folders)}, and for {CIFAR_ARCHIVE} in {data_dir} and {data_dir / 'cifar10'}"
    )


def _join_cifar_batches(batches, file_of):
    """(train, test, train_sources, test_sources) from {batch name: (images, labels)}, the five training
    batches joined in order; file_of(batch name) names a batch's file in messages."""
    train = tuple(np.concatenate([batches[name][part] for name in CIFAR_TRAIN_BATCHES]) for part in (0, 1))
    train_source, test_source = file_of("data_batch_1..5"), file_of(CIFAR_TEST_BATCH)
    return train, batches[CIFAR_TEST_BATCH], (train_source,) * 2, (test_source,) * 2


# ---------------------------------------------------------------------------
# Checking the arrays
# ---------------------------------------------------------------------------


def _check_image_format(dtype, shape, source, image_shape=(IMAGE_SIZE, IMAGE_SIZE)):
    """Images must be uint8 with shape (N, *image_shape): (N, 28, 28) unless told otherwise."""
    if dtype != np.uint8:
        raise DataError(f"{source}: wrong dtype: expected uint8 images, found {dtype}")
    if len(shape) != 1 + len(image_shape):
        raise DataError(
            f"{source}: wrong shape: expected (N, {', '.join(map(str, image_shape))}), found {shape}"
        )
    if tuple(shape[1:]) != tuple(image_shape):
        raise DataError(
            f"{source}: wrong image size: expected {'x'.join(map(str, image_shape))}, "
            f"found {'x'.join(map(str, shape[1:]))}"
        )


def _check_label_format(dtype, shape, source):
    """Labels must be integers with shape (N,)."""
    if not np.issubdtype(dtype, np.integer):
        raise DataError(f"{source}: wrong dtype: expected integer labels, found {dtype}")
    if len(shape) != 1:
        raise DataError(f"{source}: wrong shape: expected (N,), found {shape}")


def _check_images(images, source, image_shape=(IMAGE_SIZE, IMAGE_SIZE)):
    """Images must be a non-empty uint8 array of shape (N, *image_shape)."""
    _check_image_format(images.dtype, images.shape, source, image_shape)
    if images.shape[0] == 0:
        raise DataError(f"{source}: holds no images (0 images)")


def _check_labels(labels, source):
    """Labels must be a 1-D integer array with values 0..9 (all one class is allowed)."""
    _check_label_format(labels.dtype, labels.shape, source)
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if bad.size > 0:
        raise DataError(
            f"{source}: label values out of range 0..{NUM_CLASSES - 1}: "
            f"{bad.size} bad, e.g. {labels[bad[0]]} at index {bad[0]}"
        )


def _stored_shape(name):
    """One image's shape as the files hold it: (28, 28) for the grey-scale sets, (32, 32, 3) for CIFAR-10."""
    height, width, channels = IMAGE_SHAPES[name]
    return (height, width) if channels == 1 else (height, width, channels)


def _check_pair(images, labels, images_source, labels_source, image_shape=(IMAGE_SIZE, IMAGE_SIZE)):
    """Images and labels must be valid and equally many."""
    _check_images(images, images_source, image_shape)
    _check_labels(labels, labels_source)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"image and label counts disagree: {images_source} has {images.shape[0]} "
            f"images, {labels_source} has {labels.shape[0]} labels"
        )


def _to_float(images):
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]; colour (N, 32, 32, 3) keeps its shape."""
    x = images.astype(np.float32)
    x /= 255.0
    return x[..., np.newaxis] if x.ndim == 3 else x


def _to_int(labels):
    """Integer labels (N,) -> int32 (N,)."""
    return labels.astype(np.int32)


def _brief(value, depth=2):
    """A short text (about 100 characters at most) for a value read from an untrusted file.

    It never converts a long or deep value: Python refuses to write an integer of more than 4,300
    digits, and repr of a 100,000-deep tuple overflows. A long text is cut; a huge integer, a long or
    deep tuple or list, and any other object are described by their type and size.
    """
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() <= 128:  # at most 39 digits
            return repr(value)
        return f"an integer of about {int(value.bit_length() * math.log10(2)):,} digits"
    if isinstance(value, (str, bytes)):
        text = repr(value[:40])
        return text if len(value) <= 40 else f"{text}... ({len(value):,} {'bytes' if isinstance(value, bytes) else 'characters'})"
    if isinstance(value, (tuple, list)):
        if depth > 0 and len(value) <= 4:
            items = ", ".join(_brief(item, depth - 1) for item in value)
            return f"({items}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{items}]"
        return f"a {type(value).__name__} of {len(value):,} item{'s' if len(value) != 1 else ''}"
    return f"a {type(value).__name__}"


def _count(number):
    """An integer with thousands separators, or "about 10^N" if it is too long to write."""
    return f"{number:,}" if number.bit_length() <= 128 else f"about 10^{int(number.bit_length() * math.log10(2))}"


def _printable(text, length=100):
    """`text` cut to `length` characters, its line breaks and other control characters escaped."""
    return repr(text[:length])[1:-1] + ("..." if len(text) > length else "")


def _one_line(err):
    """'TypeName: first line of the message' for an exception."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {_printable(lines[0], 200)}" if lines else type(err).__name__
