"""A run's training progress on disk, so that a killed run resumes from its last finished epoch.

The progress of run NAME lives in models/.interrupted_NAME/ while the run is under way:

    settings.json      the hyperparameters (a resume needs the same ones; the epoch count may grow)
    epoch-0007/        the checkpoint after epoch 7: the model's and Adam's weights, and the
                       history of epochs 1..7 (loss terms in nats per image, seconds per epoch)

Each checkpoint is written into a temporary folder and renamed when complete, so a kill at any
moment leaves the previous checkpoint whole; the last two are kept. Before a resume the progress
is checked as a whole (settings, history, weights). Progress of other hyperparameters (another
seed, say) is set aside, never deleted: it moves to models/.interrupted_NAME.set-aside/<key>/,
one folder per set of hyperparameters (<key> is a hash of them), and a later run with those
hyperparameters takes it back and resumes. Progress that cannot be resumed (damaged, unreadable)
is set aside as damaged-<time>/. The SET_ASIDE_KEPT most recent set-asides are kept; each one
dropped, to respect that bound or because the disk is full, is named in a line before it goes.
The run's own folder is removed only once the run's outputs are saved, so a crash after
training resumes at evaluation.

Hyperparameters compare as the run reads them: the paths `out` and `data_dir` resolved (so
`--out O/` and `--out ./O` are one run), and data_dir None the same as the folder $VAE_DATA_DIR
names (vae/data.py reads that folder when no --data-dir is given).
"""

import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import h5py
import keras

from vae.data import ENV_VAR
from vae.saving import ensure_free_space, save_json, weights_bytes

CHECKPOINTS_KEPT = 2
SET_ASIDE_KEPT = 3


def normalized(settings):
    """`settings` as JSON values, with "out" and "data_dir" (if there) as absolute paths, data_dir None
    replaced by the folder $VAE_DATA_DIR names when it is set (the folder the data is then read from)."""
    settings = json.loads(json.dumps(settings))
    if "data_dir" in settings and settings["data_dir"] is None:
        settings["data_dir"] = os.environ.get(ENV_VAR) or None
    for key in ("out", "data_dir"):
        if settings.get(key) is not None:
            settings[key] = str(Path(os.path.expanduser(settings[key])).resolve())
    return settings


def settings_key(settings):
    """A short name for a set of (normalized) hyperparameters: 16 hex digits of their SHA-256."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class Progress:
    """The progress folder of one run; `settings` are its hyperparameters as JSON-able values."""

    def __init__(self, folder, settings):
        self.folder = Path(folder)
        self.settings = normalized(settings)  # as they read back from settings.json
        self.set_aside_folder = set_aside_folder(self.folder)

    def start(self, epochs):
        """Return the checkpoint to resume from (a `Checkpoint`) or None to start over, after setting
        aside any progress in the folder that cannot be resumed to train `epochs` epochs, and taking
        back progress of these hyperparameters set aside earlier."""
        adopt_old_set_aside(self.folder)
        set_aside_now = False
        if self.folder.exists():
            checkpoint, problem, saved = self._check(self.folder, epochs)
            if problem is None:
                for partial in self.folder.glob("epoch-*.partial.*"):  # a checkpoint a kill cut short
                    shutil.rmtree(partial, ignore_errors=True)
                if checkpoint is not None:
                    print(f"Resuming an interrupted run after its epoch {checkpoint.epoch} (progress in {self.folder})")
                    return checkpoint
                shutil.rmtree(self.folder)  # killed before its first epoch ended: nothing in it to keep
            elif saved is not None and not any(self.folder.glob("epoch-*")):
                shutil.rmtree(self.folder)  # another run's, killed before its first epoch ended: nothing to keep
            else:
                self.set_aside(problem, saved)
                set_aside_now = saved == self.settings  # too far along: not to be taken back at once
        checkpoint = self._take_back(epochs, quiet=set_aside_now)
        if checkpoint is not None:
            return checkpoint
        self.folder.mkdir(parents=True)
        save_json(self.settings, self.folder / "settings.json")
        return None

    def _check(self, folder, epochs):
        """(the newest valid checkpoint in `folder` or None, None, its settings), or (None, why the progress
        cannot be resumed, its settings or None if unreadable)."""
        try:
            saved = normalized(json.loads((folder / "settings.json").read_text()))
        except (OSError, ValueError, TypeError, AttributeError) as error:
            return None, f"its settings.json is unreadable ({type(error).__name__})", None
        if saved != self.settings:
            changed = sorted(key for key in set(saved) | set(self.settings) if saved.get(key) != self.settings.get(key))
            return None, f"it had other hyperparameters ({', '.join(changed)})", saved
        problems = []
        for checkpoint_folder in sorted(folder.glob("epoch-[0-9][0-9][0-9][0-9]"), reverse=True):
            checkpoint = Checkpoint(checkpoint_folder)
            problem = checkpoint.problem()
            if problem is None:
                if checkpoint.epoch > epochs:
                    return (None, f"it had already trained {checkpoint.epoch} epochs, more than the {epochs} asked for",
                            saved)
                for skipped in problems:
                    print(f"Skipping a damaged checkpoint: {skipped}")
                return checkpoint, None, saved
            problems.append(f"{checkpoint_folder.name}: {problem}")
        if problems:
            return None, "no checkpoint in it is readable (" + "; ".join(problems) + ")", None
        return None, None, saved  # killed before its first epoch ended: nothing to resume

    def set_aside(self, reason, saved_settings=None):
        """Move the progress folder into <folder>.set-aside/: to <key of its settings>/ if they are
        `saved_settings` (readable, its checkpoints whole), else to damaged-<time>/; say why and where."""
        self.set_aside_folder.mkdir(parents=True, exist_ok=True)
        if saved_settings is not None:
            target = self.set_aside_folder / settings_key(saved_settings)
        else:
            target = self.set_aside_folder / f"damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        if target.exists():  # progress of the same hyperparameters set aside before, and not taken back
            print(f"Dropping the progress set aside earlier in {target} ({describe(target)}): the progress set "
                  f"aside now has the same hyperparameters and replaces it")
            shutil.rmtree(target)
        os.replace(self.folder, target)
        os.utime(target)  # its time of setting aside: the most recent are kept
        print(f"Starting over: set aside the progress of an earlier interrupted run, as {reason}; it is in {target}")
        self._drop_beyond(SET_ASIDE_KEPT)

    def _take_back(self, epochs, quiet=False):
        """The checkpoint of progress with these settings set aside earlier, moved back into the folder;
        None if there is none, or if it cannot be resumed (then it stays where it is, with a line saying why
        unless `quiet`)."""
        earlier = self.set_aside_folder / settings_key(self.settings)
        if not earlier.is_dir():
            return None
        checkpoint, problem, _ = self._check(earlier, epochs)
        if problem is not None or checkpoint is None:
            if not quiet:
                print(f"Not resuming the progress of these hyperparameters set aside in {earlier}, as "
                      f"{problem or 'it holds no checkpoint'}; it stays there")
            return None
        os.replace(earlier, self.folder)
        for partial in self.folder.glob("epoch-*.partial.*"):
            shutil.rmtree(partial, ignore_errors=True)
        print(f"Resuming an interrupted run after its epoch {checkpoint.epoch}: its progress, set aside earlier "
              f"by a run with other hyperparameters, is back in {self.folder}")
        moved = Checkpoint(self.folder / checkpoint.folder.name)
        moved.history = checkpoint.history
        return moved

    def _drop_beyond(self, kept):
        for old in set_asides(self.folder)[kept:]:
            print(f"Dropping the oldest set-aside progress, {old} ({describe(old)}): only the {kept} most recent "
                  f"are kept")
            shutil.rmtree(old, ignore_errors=True)

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)


def set_aside_folder(folder):
    """Where the progress folder `folder` sets aside progress it cannot resume: <folder>.set-aside/."""
    return Path(folder).with_name(Path(folder).name + ".set-aside")


def adopt_old_set_aside(folder):
    """Progress set aside before each set-aside had a folder of its own lies in <folder>.set-aside/ itself:
    move it into a folder of its own there, named as `Progress.set_aside` names it."""
    parent = set_aside_folder(folder)
    if not ((parent / "settings.json").exists() or any(parent.glob("epoch-[0-9][0-9][0-9][0-9]"))):
        return
    try:
        name = settings_key(normalized(json.loads((parent / "settings.json").read_text())))
    except (OSError, ValueError, TypeError, AttributeError):
        name = f"damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    moving = parent.with_name(parent.name + f".moving.{os.getpid()}")
    os.replace(parent, moving)
    parent.mkdir()
    os.replace(moving, parent / name)


def set_asides(folder):
    """The progress set aside beside the progress folder `folder`, the most recently set aside first."""
    parent = set_aside_folder(folder)
    if not parent.is_dir():
        return []
    return sorted((path for path in parent.iterdir() if path.is_dir()), key=lambda path: path.stat().st_mtime,
                  reverse=True)


def make_room(folder, needed_bytes):
    """Ensure the disk of the progress folder `folder` has `needed_bytes` free, dropping its set-aside
    progress, the oldest first, each after a line saying so, while it has not; else OSError(ENOSPC)."""
    for old in reversed(set_asides(folder)):
        if shutil.disk_usage(folder).free >= needed_bytes:
            break
        print(f"The disk is too full for the next checkpoint: dropping the set-aside progress {old} "
              f"({describe(old)}) to make room", flush=True)
        shutil.rmtree(old, ignore_errors=True)
    ensure_free_space(folder, needed_bytes)


def describe(folder):
    """A progress folder's newest checkpoint in words, for a line about it: "3 epochs trained"."""
    epochs = [int(path.name.split("-")[1]) for path in Path(folder).glob("epoch-[0-9][0-9][0-9][0-9]")]
    if not epochs:
        return "no finished epoch"
    return f"{max(epochs)} epoch{'s' if max(epochs) != 1 else ''} trained"


class CheckpointError(Exception):
    """A checkpoint's weights that do not load into the model: another model's, or damaged."""


class Checkpoint:
    """A checkpoint folder epoch-NNNN/: weights.weights.h5 and state.json {"epoch", "history"}."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.weights = self.folder / "weights.weights.h5"
        self.epoch = int(self.folder.name.split("-")[1])
        self.history = None

    def problem(self):
        """None if the checkpoint is whole and consistent, else what is wrong with it."""
        try:
            state = json.loads((self.folder / "state.json").read_text())
            history = state["history"]
            if state["epoch"] != self.epoch:
                return f"its state says epoch {state['epoch']}"
            lengths = {len(values) for values in history.values()}
            if lengths != {self.epoch}:
                return f"its history has {sorted(lengths)} epochs instead of {self.epoch}"
            if not all(math.isfinite(value) for values in history.values() for value in values):
                return "its history holds a value that is not finite"
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            return f"its state.json is unreadable or incomplete ({type(error).__name__})"
        try:  # read every array: a torn HDF5 file fails here, not halfway through loading it
            with h5py.File(self.weights, "r") as file:
                arrays = []
                file.visititems(lambda name, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
            if not arrays:
                return "its weights file holds no weights"
        except Exception as error:  # h5py raises OSError, KeyError, RuntimeError... for damaged files
            return f"its weights file is unreadable ({type(error).__name__})"
        self.history = history
        return None


class EpochBackup(keras.callbacks.Callback):
    """After every epoch, write a checkpoint of the model (and its optimizer) to `progress`.

    Given `resume_from` (a valid `Checkpoint`), it loads that checkpoint when training begins;
    pass `initial_epoch=resume_from.epoch` to `fit`. `history` holds every finished epoch's
    logs, those before the resume included; `epoch` is the number of the last one.

    (Keras' own BackupAndRestore writes its weights and metadata in place, one after the other:
    killed mid-write, it left torn backups that blocked every later run.)
    """

    def __init__(self, progress_folder, resume_from=None):
        super().__init__()
        self.folder = Path(progress_folder)
        self.resume_from = resume_from
        self.history = dict(resume_from.history) if resume_from else {}
        self.epoch = resume_from.epoch if resume_from else 0

    def on_train_begin(self, logs=None):
        if self.resume_from is not None:
            self.model.optimizer.build(self.model.trainable_variables)
            try:
                self.model.load_weights(self.resume_from.weights)
            except Exception as error:  # h5py and Keras raise many types for weights that do not fit or are damaged
                raise CheckpointError(f"{self.resume_from.weights} does not fit this model "
                                      f"({type(error).__name__}: {str(error)[:200]})") from None

    def on_epoch_end(self, epoch, logs=None):
        values = {name: float(value) for name, value in logs.items()}
        if not all(math.isfinite(value) for value in values.values()):
            return  # a diverged epoch is not worth resuming from
        history = {name: self.history.get(name, []) + [value] for name, value in values.items()}
        final = self.folder / f"epoch-{epoch + 1:04d}"
        make_room(self.folder, weights_bytes(self.model))
        staging = final.with_name(f"{final.name}.partial.{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        self.model.save_weights(staging / "weights.weights.h5")
        save_json({"epoch": epoch + 1, "history": history}, staging / "state.json")
        shutil.rmtree(final, ignore_errors=True)  # only there if an earlier run was set back
        os.replace(staging, final)
        self.history, self.epoch = history, epoch + 1
        for old in sorted(self.folder.glob("epoch-[0-9][0-9][0-9][0-9]"))[:-CHECKPOINTS_KEPT]:
            shutil.rmtree(old, ignore_errors=True)
