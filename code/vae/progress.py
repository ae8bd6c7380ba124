"""A run's training progress on disk, so that a killed run resumes from its last finished epoch.

The progress of run NAME lives in models/.interrupted_NAME/ while the run is under way:

    settings.json      the hyperparameters (a resume needs the same ones; the epoch count may grow)
    epoch-0007/        the checkpoint after epoch 7: the model's and Adam's weights, and the
                       history of epochs 1..7 (loss terms in nats per image, seconds per epoch)

Each checkpoint is written into a temporary folder and renamed when complete, so a kill at any
moment leaves the previous checkpoint whole; the last two are kept. Before a resume the progress
is checked as a whole (settings, history, weights); anything inconsistent or unreadable is set
aside, with one line saying so, and the run starts over. The folder is removed only once the
run's outputs are saved, so a crash after training resumes at evaluation.
"""

import json
import math
import os
import shutil
from pathlib import Path

import h5py
import keras

from vae.saving import ensure_free_space, save_json, weights_bytes

CHECKPOINTS_KEPT = 2


class Progress:
    """The progress folder of one run; `settings` are its hyperparameters as JSON-able values."""

    def __init__(self, folder, settings):
        self.folder = Path(folder)
        self.settings = json.loads(json.dumps(settings))  # as they read back from settings.json
        self.set_aside_folder = self.folder.with_name(self.folder.name + ".set-aside")

    def start(self, epochs):
        """Return the checkpoint to resume from (a `Checkpoint`) or None to start over,
        after setting aside any progress that cannot be resumed to train `epochs` epochs."""
        if self.folder.exists():
            checkpoint, problem = self._check(epochs)
            if problem is None:
                for partial in self.folder.glob("epoch-*.partial.*"):  # a checkpoint a kill cut short
                    shutil.rmtree(partial, ignore_errors=True)
                if checkpoint is not None:
                    print(f"Resuming an interrupted run after its epoch {checkpoint.epoch} (progress in {self.folder})")
                return checkpoint
            self.set_aside(problem)
        self.folder.mkdir(parents=True)
        save_json(self.settings, self.folder / "settings.json")
        return None

    def _check(self, epochs):
        """(the newest valid checkpoint or None, None), or (None, why the progress cannot be resumed)."""
        try:
            saved = json.loads((self.folder / "settings.json").read_text())
        except (OSError, ValueError) as error:
            return None, f"its settings.json is unreadable ({type(error).__name__})"
        if saved != self.settings:
            changed = sorted(key for key in set(saved) | set(self.settings) if saved.get(key) != self.settings.get(key))
            return None, f"it had other hyperparameters ({', '.join(changed)})"
        problems = []
        for folder in sorted(self.folder.glob("epoch-[0-9][0-9][0-9][0-9]"), reverse=True):
            checkpoint = Checkpoint(folder)
            problem = checkpoint.problem()
            if problem is None:
                if checkpoint.epoch > epochs:
                    return None, f"it had already trained {checkpoint.epoch} epochs, more than the {epochs} asked for"
                for skipped in problems:
                    print(f"Skipping a damaged checkpoint: {skipped}")
                return checkpoint, None
            problems.append(f"{folder.name}: {problem}")
        if problems:
            return None, "no checkpoint in it is readable (" + "; ".join(problems) + ")"
        return None, None  # killed before its first epoch ended: nothing to resume, nothing to set aside

    def set_aside(self, reason):
        """Move the progress folder to <folder>.set-aside (replacing an older one) and say why."""
        shutil.rmtree(self.set_aside_folder, ignore_errors=True)
        os.replace(self.folder, self.set_aside_folder)
        print(f"Starting over: set aside the progress of an earlier interrupted run, as {reason}; "
              f"it is in {self.set_aside_folder}")

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)


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
            self.model.load_weights(self.resume_from.weights)

    def on_epoch_end(self, epoch, logs=None):
        values = {name: float(value) for name, value in logs.items()}
        if not all(math.isfinite(value) for value in values.values()):
            return  # a diverged epoch is not worth resuming from
        history = {name: self.history.get(name, []) + [value] for name, value in values.items()}
        final = self.folder / f"epoch-{epoch + 1:04d}"
        ensure_free_space(self.folder, weights_bytes(self.model))
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
