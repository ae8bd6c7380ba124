"""One script's run from start to finish: check the hyperparameters, load the data, train,
then evaluate, draw the common figures, save the models and metrics, and print a summary.

The chapter scripts build their own models and draw their own figures in between.
"""

import csv
import dataclasses
import json
import os
import platform
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from vae import STARTED
from vae.data import DataError, load_mnist
from vae.evaluation import evaluate
from vae.figures import plot_history, plot_reconstructions
from vae.saving import save_encodings, save_json, save_model
from vae.training import train


class Experiment:
    """A training run named `name` ("2d", "3d", "correlated"), writing under config.out.

    Creating one checks `config` (before any data is loaded) and seeds every random
    number generator with config.seed.
    """

    def __init__(self, config, name, min_latent_dim=1):
        self.config = config.check(min_latent_dim)
        self.name = name
        self.assets_dir = Path(config.out) / "assets"
        self.models_dir = Path(config.out) / "models"
        # Fail now, not after training, if the results cannot be written.
        for folder in [self.assets_dir, self.models_dir]:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise SystemExit(f"error: out: cannot create {folder}: {error.strerror}") from None
            if not os.access(folder, os.W_OK):
                raise SystemExit(f"error: out: {folder} is not writable")
        self.written = []
        self.metrics = {}
        keras.utils.set_random_seed(config.seed)

    def load_data(self):
        """MNIST as ((x_train, y_train), (x_test, y_test)), the training set cut to config.train_size."""
        try:
            (x_train, y_train), test = load_mnist(self.config.data_dir)
        except DataError as error:
            raise SystemExit(f"error: {error}") from None
        size = self.config.train_size
        if size is not None and size > len(x_train):
            raise SystemExit(f"error: train_size is {size}, but the training set has only {len(x_train)} images")
        return (x_train[:size], y_train[:size]), test

    def train(self, vae, x_train, x_test):
        """Fit `vae` (x_test is the validation data of every epoch); returns the history dict,
        one list per metric with one value per epoch (nats per image; "seconds" per epoch).

        Every finished epoch is backed up (Keras' BackupAndRestore) and logged (CSVLogger) in
        models/.interrupted_<name>/. If the run is killed, the next run with the same
        hyperparameters resumes from the last finished epoch; a finished run removes the folder.
        """
        config = self.config
        progress = self.models_dir / f".interrupted_{self.name}"
        self._resume_or_start_over(progress)
        log = progress / "epochs.csv"
        callbacks = [  # the log first: an epoch logged but not backed up is simply run again
            keras.callbacks.CSVLogger(log, append=True),
            # double_checkpoint keeps the previous epoch's backup too, for a run killed mid-write.
            keras.callbacks.BackupAndRestore(progress / "backup", double_checkpoint=True),
        ]
        train(vae, x_train, x_test, config.epochs, config.batch_size, config.learning_rate,
              seed=config.seed, callbacks=callbacks)
        history = _read_epoch_log(log)
        shutil.rmtree(progress)
        self.seconds_per_epoch = history.pop("seconds")
        self.train_images = len(x_train)
        return history

    def _resume_or_start_over(self, progress):
        """Keep an interrupted run's backup only if it had the same hyperparameters and fewer
        finished epochs than this run asks for (the number of epochs may be raised)."""
        settings = {**dataclasses.asdict(self.config), "epochs": None, "name": self.name}
        saved = progress / "config.json"
        if progress.exists():
            log = progress / "epochs.csv"
            finished = len(_read_epoch_log(log)["loss"]) if log.exists() else 0
            same = saved.exists() and json.loads(saved.read_text()) == json.loads(json.dumps(settings))
            if same and finished < self.config.epochs:
                print(f"Resuming an interrupted run after its epoch {finished} (backup in {progress})")
                return
            print(f"Starting over: the interrupted run in {progress} had other hyperparameters or more epochs")
            shutil.rmtree(progress)
        progress.mkdir(parents=True)
        save_json(settings, saved)

    def asset(self, filename):
        """The path of figure `filename` under assets/, remembered for the summary."""
        return self._remember(self.assets_dir / filename)

    def _remember(self, path):
        self.written.append(path)
        return path

    def finish(self, vae, history, x_test, y_test, z_mean, **extra_metrics):
        """Evaluate on x_test, draw reconstructions and history, save the models, the test
        encodings (z_mean, labels) and the metrics, and print a summary.

        `extra_metrics` (JSON-serializable) are added to models/metrics_<name>.json.
        """
        name = self.name
        test = evaluate(vae, x_test)
        reconstructions = keras.ops.convert_to_numpy(vae(x_test[:10]))
        plot_reconstructions(x_test[:10], reconstructions, self.asset(f"reconstructions_{name}.png"))
        plot_history(history, self.asset(f"history_{name}.png"))
        save_model(vae.encoder, self._remember(self.models_dir / f"encoder_{name}.h5"))
        save_model(vae.decoder, self._remember(self.models_dir / f"decoder_{name}.h5"))
        save_encodings(z_mean, y_test, self._remember(self.models_dir / f"test_encodings_{name}.npz"))

        config = self.config
        self.metrics = {
            "model": name,
            "test_loss": test["loss"],
            "test_reconstruction": test["reconstruction"],
            "test_kl": test["kl"],
            "train_loss": history["loss"][-1],
            "val_loss": history["val_loss"][-1],
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "latent_dim": config.latent_dim,
            "learning_rate": config.learning_rate,
            "beta": config.beta,
            "seed": config.seed,
            "train_images": self.train_images,
            "test_images": len(x_test),
            "seconds_per_epoch": self.seconds_per_epoch,
            "seconds_training": sum(self.seconds_per_epoch),
            "seconds_total": time.perf_counter() - STARTED,  # the whole script, imports included
            "history": history,
            "device": device_name(),
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "numpy_version": np.__version__,
            **extra_metrics,
        }
        save_json(self.metrics, self._remember(self.models_dir / f"metrics_{name}.json"))
        self.print_summary()
        return self.metrics

    def print_summary(self):
        m = self.metrics
        per_epoch = np.median(m["seconds_per_epoch"])
        print(
            f"\nTest set ({m['test_images']:,} images), nats per image: loss {m['test_loss']:.2f} "
            f"= reconstruction {m['test_reconstruction']:.2f} + {m['beta']:g} × KL {m['test_kl']:.2f}\n"
            f"Training: {m['epochs']} epochs on {m['train_images']:,} images in {m['seconds_training']:.1f} s "
            f"(median {per_epoch:.2f} s per epoch, {m['device']})\n"
            f"Whole run {m['seconds_total']:.1f} s, of which {m['seconds_total'] - m['seconds_training']:.1f} s "
            f"outside training (imports, data, evaluation, figures, saving)\n"
            f"Wrote {len(self.written)} files:"
        )
        for path in self.written:
            print(f"  {path}")


def _read_epoch_log(path):
    """The CSVLogger file as {column: [value per epoch]}, keeping the last row of an epoch run twice."""
    rows = {}
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            rows[int(row.pop("epoch"))] = row
    columns = next(iter(rows.values())).keys() if rows else []
    return {column: [float(rows[epoch][column]) for epoch in sorted(rows)] for column in columns}


def device_name():
    """'GPU: <name>' when TensorFlow sees a GPU, else 'CPU: <processor>'."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    return f"CPU: {platform.processor() or platform.machine()} ({_cpu_model()})"


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()
