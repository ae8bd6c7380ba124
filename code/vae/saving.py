"""Writing results to disk so that no kill, crash or full disk leaves a half-written or mixed set of files.

Three layers of safety:
- every file is written under a temporary name unique to this process, flushed to the disk (fsync),
  then renamed over the old one in one step (`os.replace`), and the rename is flushed too: a file on
  disk is always complete, even after a power cut;
- a run's outputs are written into a staging folder first and moved into place together only
  when all are complete (`OutputSet`): a run that dies before that leaves the earlier set whole;
  the moves are listed in a journal first, so a kill in the middle of them is finished by the next run;
- one run per script and output folder at a time (`RunLock`), released by the system when a
  process dies, so it never stays stuck.

And one rule for reading: a model file is loaded only by `load_model_safely`, which refuses a file
naming any layer the project does not make (a Lambda layer's saved code would run while loading).
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix); on success, rename it to `path`.

    The temporary name holds this process's id and a random part, so that two processes
    writing the same file never rename each other's half-written file into place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial.{os.getpid()}.{secrets.token_hex(4)}{path.suffix}")
    try:
        yield temporary
        fsync(temporary)  # its bytes on the disk before its name: a power cut cannot leave an empty file
        os.replace(temporary, path)
        fsync(path.parent)  # the rename itself
    finally:
        temporary.unlink(missing_ok=True)


def fsync(path):
    """Flush a file's bytes, or a folder's list of names, from the system's cache to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def ensure_free_space(folder, needed_bytes):
    """Raise OSError(ENOSPC) naming `folder` unless its disk has `needed_bytes` free.

    HDF5 (under Keras' .h5 saving) crashes the whole process when the disk fills up mid-write,
    so the space for a model is checked before it is written.
    """
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise OSError(errno.ENOSPC, f"No space left on device (about {needed_bytes / 1e6:.1f} MB needed, "
                                    f"{free / 1e6:.1f} MB free)", str(folder))


def weights_bytes(model):
    """About how many bytes saving `model`'s variables (its optimizer's included) takes, with headroom."""
    optimizer = getattr(model, "optimizer", None)  # a compiled model saves its optimizer's state too
    variables = list(model.variables) + (list(optimizer.variables) if optimizer is not None else [])
    return int(1.1 * sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)) + 1_000_000


def save_model(model, path):
    """Save a functional Keras model to `path` (.h5), atomically.

    Keras 3 calls HDF5 "legacy" and logs a warning for it; the tutorial keeps .h5 on purpose
    (one file, readable by h5py and older Keras), so that warning is silenced here.
    """
    ensure_free_space(Path(path).parent, weights_bytes(model))
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        with atomic_path(path) as temporary:
            model.save(temporary)
    finally:
        absl_logger.setLevel(level)


class UnsafeModelError(ValueError):
    """A model file names a layer or object the project does not make: it is not loaded."""


# What the project's .h5 models may name (their saved config's "class_name"s): Keras' own layers, models and
# the objects inside their configs, and the project's one saved layer of its own, the continuous Bernoulli's
# mean (vae/pixels.py; a saved encoder ends before its Sampling layer). A model with another layer must add it here. Lambda is never allowed: Keras saves a
# Lambda layer's Python code in the file and runs it when loading (CVE-2025-9905 in Keras < 3.11.3).
KERAS_CLASSES = {
    "InputLayer", "Dense", "Activation", "Flatten", "Reshape", "Conv2D", "Conv2DTranspose", "Cropping2D",
    "Concatenate", "CategoryEncoding",  # layers
    "Functional", "Model", "Sequential",  # models
    "DTypePolicy", "GlorotUniform", "Zeros",  # the dtype and initializers inside a layer's config
    "__keras_tensor__",  # not a class: a reference to another layer's output
}
PROJECT_CLASSES = {"vae>ContinuousBernoulliMean"}
MODEL_SUFFIXES = (".h5", ".hdf5")  # the only format read (Keras chooses its reader by the suffix)


def load_model_safely(path):
    """The keras.Model saved in the .h5 file `path` (compile=False, safe_mode=True), after checking,
    without running anything, that its saved config names only KERAS_CLASSES and PROJECT_CLASSES.

    Raises UnsafeModelError (a ValueError) naming the file and the first class refused, or ValueError
    with one line naming the file if it is missing, not HDF5, truncated, or holds no model.
    """
    path = Path(path)
    if path.suffix not in MODEL_SUFFIXES:
        raise ValueError(f"{path}: not a .h5 model file (only {' and '.join(MODEL_SUFFIXES)} files are loaded)")
    refused = _refused_class(_model_config(path))
    if refused is not None:
        raise UnsafeModelError(f"{path}: refused to load: it names {refused}, which this project's models "
                               f"never hold (loading it could run code the file carries)")
    import keras

    import vae.pixels  # noqa: F401  (registers the project's layer, PROJECT_CLASSES)

    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # h5py, Keras and TensorFlow raise many types for a damaged file
        raise ValueError(f"{path}: cannot load the model ({_one_line(err)})") from err


def _model_config(path):
    """The model config (parsed JSON) of the Keras .h5 file `path`, read with h5py; ValueError if none."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            config = file.attrs.get("model_config")
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except (OSError, RuntimeError) as err:  # not HDF5, truncated, a folder, unreadable
        raise ValueError(f"{path}: not a readable HDF5 model file ({_one_line(err)})") from None
    if config is None:
        raise ValueError(f"{path}: holds no model (no model_config attribute: a weights-only file?)")
    try:
        return json.loads(config.decode("utf-8") if isinstance(config, bytes) else str(config))
    except (ValueError, RecursionError) as err:
        raise ValueError(f"{path}: its model_config is not readable JSON ({_one_line(err)})") from None


def _refused_class(config):
    """The first object in `config` (as a short text) whose class is not allowed, or None if all are.

    Every dict with a "class_name" is an object Keras would build; its "registered_name" and "module",
    where given, must agree: a Keras class from Keras' own modules, a project class from package vae.
    """
    stack = [config]
    while stack:  # walked without recursion: a deep config cannot overflow the stack
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value)
            continue
        if not isinstance(value, dict):
            continue
        stack.extend(value.values())
        if "class_name" not in value:
            continue
        name, module, registered = value["class_name"], value.get("module"), value.get("registered_name")
        if not isinstance(name, str):
            allowed = False
        elif name in KERAS_CLASSES:
            allowed = registered in (None, name) and (module in (None, "keras") or
                                                      isinstance(module, str) and module.startswith("keras."))
        else:
            allowed = name in PROJECT_CLASSES and registered in (None, name) and module in (None, "vae")
        if not allowed:
            text = f"the class {_short(name)}"
            if module not in (None, "keras", "vae"):
                text += f" of module {_short(module)}"
            if registered not in (None, name):
                text += f" registered as {_short(registered)}"
            return text
    return None


def _short(value):
    """A bounded one-line description of a value read from an untrusted file: a text cut to 80
    characters (quoted, with its control characters escaped), else just its type."""
    if isinstance(value, str):
        return repr(value[:80]) + ("..." if len(value) > 80 else "")
    return f"(a {type(value).__name__})"


def _one_line(err):
    """'TypeName: first line of the message' for an exception."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def save_figure(figure, path, dpi=100):
    """Save a Matplotlib figure to `path` (.png), atomically, and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(figure)


def save_json(data, path):
    """Write `data` as indented JSON to `path`, atomically. NaN and infinity are refused (ValueError):
    they are not JSON, and no metrics file should hold them."""
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def save_encodings(z_mean, labels, path):
    """Save the test images' posterior means (N, latent_dim) float32 and labels (N,) uint8 as .npz."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as file:
            np.savez_compressed(file, z_mean=np.asarray(z_mean, "float32"), labels=np.asarray(labels, "uint8"))


def sha256(path):
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class OutputSet:
    """The outputs of one run, staged under `staging` and moved to their places under `root` together.

        outputs = OutputSet(root, staging)
        path = outputs.path("assets/Clusters2D.png")   # write the file here (it is in the staging folder)
        outputs.commit()                                 # now every staged file is at root/<its name>

    `commit` first writes a journal naming every move, then makes the moves, then deletes the
    journal. Once the journal exists the moves must be finished, never undone: a commit cut short
    (Ctrl-C, a kill, a power cut) leaves the journal and the staging folder, `pending()` says so, and
    `recover` (called at the start of the next run) finishes the moves. A staging folder that never
    got a journal is a failed run's and is thrown away.
    """

    def __init__(self, root, staging):
        self.root = Path(root)
        self.staging = Path(staging)
        self.journal = self.staging.with_name(self.staging.name + ".journal.json")
        self.names = []  # relative names, in the order they were asked for

    def path(self, name):
        """The staging path where the output `name` (relative to root, e.g. "models/x.h5") is written."""
        if name not in self.names:
            self.names.append(name)
        path = self.staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def final_path(self, name):
        return self.root / name

    def checksums(self, names=None):
        """{name: SHA-256} of the staged files named (default: all written so far)."""
        return {name: sha256(self.staging / name) for name in (names or self.names) if (self.staging / name).exists()}

    def problems(self):
        """What stops this set from being staged and committed, in words: bookkeeping entries of the wrong
        kind (a file where its staging folder goes, a folder where its journal goes) and folders where one of
        its outputs goes. [] when there is none; nothing is changed."""
        found = [f"{path} should be a {kind}, and is not" for path, kind in
                 [(self.staging, "folder"), (self.journal, "file")]
                 if os.path.lexists(path) and (path.is_dir() if kind == "file" else not path.is_dir())
                 or os.path.islink(path)]
        return found + [f"{self.final_path(name)} is a folder where this run writes a file" for name in self.names
                        if self.final_path(name).is_dir()]

    def commit(self):
        """Move every staged file to its place. Returns the final paths."""
        missing = [name for name in self.names if not (self.staging / name).is_file()]
        if missing:
            raise FileNotFoundError(errno.ENOENT, f"outputs were never written: {', '.join(missing)}")
        if self.problems():  # before the journal: nothing has moved, the earlier set is whole
            raise OutputSetError("; ".join(self.problems()))
        save_json({"root": str(self.root), "staging": str(self.staging), "names": self.names}, self.journal)
        _apply_journal(self.journal, self.root, self.staging)
        return [self.final_path(name) for name in self.names]

    def pending(self):
        """True while a journal waits to be applied: some outputs under root may be this run's and some
        an earlier run's, until the next run's `recover` finishes the moves."""
        return self.journal.exists()

    def moved_so_far(self):
        """How many of the outputs asked for with `path` are already in their place: none before `commit`,
        all after it, some while a commit cut short is `pending()` (read from the disk, so it is exact)."""
        return sum(not (self.staging / name).exists() for name in self.names)

    def discard(self):
        """Throw away what was staged (a failed run's outputs), unless a journal names it: then the moves
        have begun, and the staging folder holds the rest of the set, which the next run moves into place."""
        if not self.pending():
            shutil.rmtree(self.staging, ignore_errors=True)

    def recover(self):
        """Finish the moves of an interrupted commit, or discard staged files no journal names.
        Returns the names of the outputs moved into place, if any."""
        if self.problems():
            raise OutputSetError("; ".join(self.problems()))
        moved = _apply_journal(self.journal, self.root, self.staging) if self.pending() else []
        self.discard()
        return moved


def pending_journals(models_dir):
    """The journals of outputs that an interrupted run was still moving into place beside `models_dir`
    (`OutputSet` writes models/.staging_<run>.journal.json before its moves and deletes it after the last)."""
    return sorted(Path(models_dir).glob(".staging_*.journal.json"))


def chapter_script(journal):
    """The chapter script whose run left `journal` (.staging_2d_fashion_mnist_conv.journal.json → vae_2d.py)."""
    run = journal.name.removeprefix(".staging_").removesuffix(".journal.json")
    return f"vae_{run.split('_')[0]}.py"


class OutputSetError(Exception):
    """An output set's folder holds what stops it from being committed; the message says what, nothing moved."""


def _apply_journal(journal, root, staging):
    """Make the moves a journal lists (skipping those already made), then delete it and the staging folder.
    Returns the names moved. A journal that names another root or staging folder, or a name outside root,
    is not this set's: OutputSetError, and nothing moves."""
    try:
        plan = json.loads(Path(journal).read_text())
        named_root, named_staging, names = Path(plan["root"]), Path(plan["staging"]), list(plan["names"])
        if not all(isinstance(name, str) for name in names):
            raise TypeError("a name that is not text")
    except (OSError, ValueError, KeyError, TypeError):
        # Only a journal torn mid-write is unreadable, and then no move had started: the earlier set is whole.
        Path(journal).unlink(missing_ok=True)
        return []
    outside = [name for name in names if Path(name).is_absolute() or ".." in Path(name).parts]
    if named_root != Path(root) or named_staging != Path(staging) or outside:
        raise OutputSetError(f"{journal} names moves that are not this output set's (another folder, or a name "
                             f"outside it): remove it, then run again")
    moved = []
    for name in names:
        staged = staging / name
        if staged.exists():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, root / name)
            moved.append(name)
    # Every move on the disk (an earlier, killed process's too) before the journal goes: the folders moved
    # into, and those above them up to root (which may have been created for them).
    folders = {folder for name in names for folder in (root / name).parents if folder == root or root in folder.parents}
    for folder in sorted(folder for folder in folders if folder.is_dir()):
        fsync(folder)
    Path(journal).unlink()
    shutil.rmtree(staging, ignore_errors=True)
    return moved


class RunLock:
    """An exclusive lock on `path` for this process, or a clear refusal: one run per script and --out.

    Uses an advisory lock (flock), which the system releases when the process ends in any way,
    so a killed run never leaves it stuck. The lock file stays; it holds the owner's process id.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.file = None

    def acquire(self):
        """Take the lock; return None, or the other holder's process id (as text) if it is taken."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "unknown"
            file.close()
            return holder
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        self.file = file
        return None

    def release(self):
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None
