"""Writing results to disk so that no kill, crash or full disk leaves a half-written or mixed set of files.

Three layers of safety:
- every file is written under a temporary name unique to this process, then renamed over the
  old one in one step (`os.replace`): a file on disk is always complete;
- a run's outputs are written into a staging folder first and moved into place together only
  when all are complete (`OutputSet`): a run that dies before that leaves the earlier set whole;
  the moves are listed in a journal first, so a kill in the middle of them is finished by the next run;
- one run per script and output folder at a time (`RunLock`), released by the system when a
  process dies, so it never stays stuck.
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
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


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
    journal. `recover` (called at the start of the next run) finishes the moves of a journal
    that a kill interrupted, and throws away a staging folder that never got one.
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

    def commit(self):
        """Move every staged file to its place. Returns the final paths."""
        missing = [name for name in self.names if not (self.staging / name).is_file()]
        if missing:
            raise FileNotFoundError(errno.ENOENT, f"outputs were never written: {', '.join(missing)}")
        save_json({"root": str(self.root), "staging": str(self.staging), "names": self.names}, self.journal)
        _apply_journal(self.journal)
        return [self.final_path(name) for name in self.names]

    def discard(self):
        """Throw away what was staged (a failed run's outputs)."""
        shutil.rmtree(self.staging, ignore_errors=True)

    def recover(self):
        """Finish the moves of an interrupted commit, or discard staged files no journal names.
        Returns the names of the outputs moved into place, if any."""
        moved = _apply_journal(self.journal) if self.journal.exists() else []
        self.discard()
        return moved


def _apply_journal(journal):
    """Make the moves a journal lists (skipping those already made), then delete it and the staging folder."""
    try:
        plan = json.loads(Path(journal).read_text())
        root, staging, names = Path(plan["root"]), Path(plan["staging"]), list(plan["names"])
    except (OSError, ValueError, KeyError, TypeError):
        # Only a journal torn mid-write is unreadable, and then no move had started: the earlier set is whole.
        Path(journal).unlink(missing_ok=True)
        return []
    moved = []
    for name in names:
        staged = staging / name
        if staged.exists():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, root / name)
            moved.append(name)
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
