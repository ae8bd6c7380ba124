"""One script's run from start to finish: check the hyperparameters, load the data, train,
then evaluate, draw the common figures, save the models and metrics, and print a summary.

The chapter scripts build their own models and draw their own figures in between.
"""

import dataclasses
import errno
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

import keras
import numpy as np
import tensorflow as tf

from vae import start, stopping
from vae.data import (BINARIZATION_PROTOCOL, DATASET_TITLES, NUM_CLASSES, TEST_BINARIZATION_SEED, DataError, binarize,
                      data_source, load_dataset)
from vae.images import folder_tag, load_image_folder
from vae.distribute import is_chief, setup
from vae.evaluation import evaluate
from vae.figures import plot_history, plot_reconstructions
from vae.progress import CheckpointError, EpochBackup, Progress
from vae.saving import OutputSet, OutputSetError, RunLock, save_encodings, save_json, save_model
from vae.schedules import KLWarmUp
from vae.timeline import Timeline, choose_images, plot_timeline
from vae.timeline import summary as timeline_summary
from vae.training import StopOnNaN, train
from vae.variants import build


class Experiment:
    """A training run named `name` ("2d", "3d", "correlated"), writing under config.out.

    Creating one checks `config` (before any data is loaded), takes the run lock of this
    script and output folder, finishes saving an earlier run's outputs if a kill interrupted
    that, and seeds every random number generator with config.seed.

    Outputs (`asset`, `finish`) are written to a staging folder and moved into assets/ and
    models/ together at the end (vae/saving.py); training progress is kept for a resume
    (vae/progress.py). Ctrl-C, a full disk and a diverged training each end the run with one
    message saying what happened and what to do, and leave the earlier outputs whole.
    """

    latest = None  # the Experiment this process started last

    def __init__(self, config, name, min_latent_dim=1):
        self.config = config.check(min_latent_dim)
        self.name = name
        # A reader's experiment writes beside the tutorial's results, never over them: with another data set
        # or architecture every output's name ends in them (`output`), e.g. Clusters2D_fashion_mnist_conv.png.
        # A folder of images adds its own name: Clusters2D_images-<folder name>.png.
        dataset = folder_tag(config.data_dir) if config.dataset == "images" else config.dataset
        self.suffix = "".join(f"_{value}" for value, tutorials in [(dataset, "mnist"), (config.architecture, "mlp")]
                              if value != tutorials)
        run = name + self.suffix  # this run's lock, staging folder and saved progress: apart from the tutorial's
        self.strategy = setup(config)  # before any model is built (vae/distribute.py)
        if config.distribute != "none":
            strategy = {"mirrored": "MirroredStrategy", "multi_worker": "MultiWorkerMirroredStrategy"}[config.distribute]
            print(f"Training on {self.strategy.num_replicas_in_sync} replicas with {strategy} "
                  f"(each step splits {config.batch_size} images among them)")
        if config.precision != "float32":
            print(f"Precision {config.precision}: the layers compute in 16 bits; the weights, ln σ² and the losses "
                  f"stay float32")
        self.out = Path(config.out)
        self.chief = config.distribute != "multi_worker" or is_chief()
        if not self.chief:
            # Only the chief writes assets/ and models/. Every other worker runs the same steps (they
            # take part in every collective), writing into a folder of its own in the temporary
            # directory: kept while the run is unfinished, so that it resumes, and removed at the end.
            tag = hashlib.sha256(str(self.out.resolve()).encode()).hexdigest()[:8]
            self.out = Path(tempfile.gettempdir()) / f"vae-{run}-{_task_name()}-{tag}"
        self.models_dir = self.out / "models"
        # Fail now, not after training, if the results cannot be written.
        for folder in [self.out / "assets", self.models_dir]:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise SystemExit(f"error: out: cannot create {folder}: {error.strerror}") from None
            if not os.access(folder, os.W_OK):
                raise SystemExit(f"error: out: {folder} is not writable")
        # Where a run writes a file (a figure, a model, the metrics), a folder of that name would stop the outputs
        # from moving into place after all the work: refuse it now.
        in_the_way = sorted(str(path) for folder in [self.out / "assets", self.models_dir] for path in folder.iterdir()
                            if path.is_dir() and path.suffix in OUTPUT_SUFFIXES)
        lock_path = self.models_dir / f".{run}.lock"
        if lock_path.is_dir():
            in_the_way.append(f"{lock_path} (the run lock, a file)")
        if in_the_way:
            raise SystemExit(f"error: out: folders stand where this run writes files: {', '.join(in_the_way[:5])}. "
                             f"Move them away, then run again.")
        # In a notebook the kernel outlives a run that stopped with an error or an interrupt: that run's lock is
        # let go here, as a script's exit lets it go, so that the next run in the kernel can start (and resume).
        if Experiment.latest is not None:
            Experiment.latest.lock.release()
        Experiment.latest = self
        self.lock = RunLock(lock_path)
        holder = self.lock.acquire()
        if holder is not None:
            raise SystemExit(f"error: another run of this script (process {holder}) is writing to {self.out}. "
                             f"Wait for it to finish, or give this run another folder with --out DIR.")
        self.outputs = OutputSet(self.out, self.models_dir / f".staging_{run}")
        try:
            if self.outputs.recover():
                print("Finished saving the outputs of an earlier run that was interrupted while moving them into place")
        except OutputSetError as error:
            raise SystemExit(f"error: out: {error}. Move it away, then run again.") from None
        settings = {**dataclasses.asdict(self.config), "epochs": None, "name": name}
        self.progress = Progress(self.models_dir / f".interrupted_{run}", settings)
        self.backup = None
        self.stage = "starting"
        self.metrics = {}
        self.num_classes = NUM_CLASSES  # a folder of images: its own number of classes (load_data)
        self.data_info = {}  # a folder of images: where it is, its classes, counts and split, for the metrics
        self.test_labels = None  # the test set's classes (load_data), for the timeline's choice of images
        self.timeline = None  # the runs of TIMELINE_RUNS: the codes of a fixed set of test images, every epoch
        sys.excepthook = self._report_and_exit
        stopping.install()  # Ctrl-C from now on stops the run at its next step (vae/stopping.py)
        keras.utils.set_random_seed(config.seed)

    def load_data(self, needs_classes=False):
        """The data set, config.dataset, as ((x_train, y_train), (x_test, y_test)), the training set cut to
        config.train_size. Images are (N, 28, 28, 1), CIFAR-10's (N, 32, 32, 3), in [0, 1] (vae/data.py);
        a folder of images' (N, image_size, image_size, 1 or 3), its test set held out (vae/images.py), which
        must have two classes or more when `needs_classes`.

        With config.binarize "dynamic" the test images are binarized once (vae.data.binarize, the same
        draw in every run); the training images stay grayscale, drawn afresh at every step by the VAE.
        """
        self.stage = "loading the data"
        try:
            dataset, config = self.config.dataset, self.config
            if dataset == "images":
                (x_train, y_train), (x_test, y_test), self.data_info = load_image_folder(
                    config.data_dir, config.image_size, config.color, needs_classes)
                self.num_classes = max(1, len(self.data_info["classes"]))
                classes = self.data_info["classes"]
                print(f"Images of {config.data_dir}: {len(x_train):,} for training, {len(x_test):,} held out for "
                      f"testing, {config.image_size}×{config.image_size} {config.color}, "
                      + (f"{len(classes)} classes ({', '.join(classes)})" if classes else "no classes (no sub-folders)"))
            else:
                print(f"{DATASET_TITLES[dataset]} from {data_source(dataset, config.data_dir)}")
                (x_train, y_train), (x_test, y_test) = load_dataset(dataset, config.data_dir)
        except DataError as error:
            raise SystemExit(f"error: {error}") from None
        fewest = MIN_TEST_IMAGES_BY_LABEL if needs_classes else MIN_TEST_IMAGES
        if len(x_test) < fewest:
            why = ("a 10-nearest-neighbour vote over half of them reads the class off the codes" if needs_classes
                   else "the walks go between two test images")
            raise SystemExit(f"error: data: the test set has {len(x_test):,} images; the figures and measurements "
                             f"after training need at least {fewest} ({why})")
        size = self.config.train_size
        if size is not None and size > len(x_train):
            raise SystemExit(f"error: train_size is {size}, but the training set has only {len(x_train)} images")
        if dataset == "images" and len(x_train[:size]) < config.batch_size:
            raise SystemExit(f"error: batch_size is {config.batch_size}, but the folder's training set has only "
                             f"{len(x_train[:size])} images: give --batch-size {len(x_train[:size])} or less, or add images")
        if self.config.binarize == "dynamic":
            print(f"Binarized {DATASET_TITLES[self.config.dataset]}: {BINARIZATION_PROTOCOL}")
            x_test = binarize(x_test, TEST_BINARIZATION_SEED)
        self.test_labels = np.asarray(y_test)
        return (x_train[:size], y_train[:size]), (x_test, y_test)

    def model(self, vae_class, encoder, decoder, **kwargs):
        """The chapter's `vae_class(encoder, decoder, **kwargs)`, extended as the flags ask (--architecture,
        --likelihood, --binarize, --free-bits, --kl-warmup-epochs, --distribute, --precision: vae/variants.py).
        With the tutorial's defaults it is exactly that. Its networks are `vae.encoder` and `vae.decoder`."""
        return build(vae_class, encoder, decoder, self.config, **kwargs)

    def fit(self, vae, x_train, x_test):
        """Fit `vae`, compiled with its optimizer, on x_train (the images, or a conditional VAE's (images, labels);
        x_test, the same, is the validation data of every epoch); returns the history dict,
        one list per metric with one value per epoch, earlier epochs of a resumed run included
        (nats per image).

        Every finished epoch is checkpointed in models/.interrupted_<name>/: if the run is killed,
        the next run with the same hyperparameters resumes after the last finished epoch.
        Training that diverges (a loss that is NaN or infinite) stops at once, saving nothing.
        """
        config = self.config
        self.stage = "training"
        resume_from = self.progress.start(config.epochs)
        self.backup = EpochBackup(self.progress.folder, resume_from)
        stop_on_nan = StopOnNaN()
        self.resumed_after = self.backup.epoch
        train_images, test_images = (len(tf.nest.flatten(data)[0]) for data in (x_train, x_test))
        print(f"Training on {train_images:,} images; after each epoch, val_loss, val_reconstruction and val_kl "
              f"are the {test_images:,} test images' (nats per image).")
        warmup = []
        if config.kl_warmup_epochs:  # the KL's weight rises from 0 to β over the first epochs (vae/schedules.py)
            n = config.kl_warmup_epochs
            print(f"KL warm-up: the KL's weight (kl_weight, β) is {config.beta:g}·(e−1)/{n} in epoch e ≤ {n}, "
                  f"then {config.beta:g} from epoch {n + 1} on")
            warmup = [KLWarmUp(n)]
        if config.free_bits:
            print(f"Free bits: a latent dimension whose KL (batch mean) is below {config.free_bits:g} nats gets no KL gradient; "
                  f"kl and val_kl are the true KL")
        timeline = []
        if self.name in TIMELINE_RUNS and self.test_labels is not None and len(self.test_labels) == len(x_test):
            # Before the checkpoint: every epoch's record is on disk before the checkpoint a resume starts from.
            indices = choose_images(self.test_labels)
            self.timeline = Timeline(x_test[indices], self.test_labels[indices], indices, self.progress.folder,
                                     resumed_after=self.resumed_after)
            timeline = [self.timeline]
        try:
            train(vae, x_train, x_test, config.epochs, config.batch_size, seed=config.seed,
                  callbacks=[*warmup, stop_on_nan, *timeline, self.backup, stopping.StopOnRequest()],
                  initial_epoch=self.resumed_after, jit_compile=config.xla)
        except CheckpointError as error:
            self.progress.set_aside(f"its checkpoint does not load: {error}")
            raise SystemExit("error: the saved progress could not be resumed, so it was set aside (above); "
                             f"the earlier results in {self.out} are unchanged. Run the same command again to "
                             f"start over.") from None
        if stop_on_nan.diverged_in is not None:
            self.progress.remove()
            raise SystemExit(self._diverged_message(stop_on_nan.diverged_in))
        history = dict(self.backup.history)
        self.seconds_per_epoch = history.pop("seconds")
        self.train_images = train_images
        self.stage = "drawing the figures"
        return history

    def _diverged_message(self, epoch):
        c = self.config
        hints = []
        if c.learning_rate > 1e-3:
            hints.append(f"a lower --learning-rate (this run: {c.learning_rate:g}; the tutorial's 0.001 trains stably)")
        if c.beta > 1:
            hints.append(f"a smaller --beta (this run: {c.beta:g})")
        if c.prior_cov is not None:
            hints.append("a better-conditioned --prior-cov")
        hints = hints or [f"a lower --learning-rate (this run: {c.learning_rate:g})"]
        return (f"error: training diverged in epoch {epoch} of {c.epochs}: the loss became NaN or infinite, "
                f"so training stopped. Nothing was saved; the earlier results in {self.out} are unchanged. "
                f"Try {' or '.join(hints)}.")

    def output(self, name):
        """The path to write output `name` to, e.g. "models/metrics_2d.json"; it appears under config.out when
        the run's outputs are saved, its file name ending in the run's suffix (metrics_2d_cifar10_conv.json)."""
        stopping.check()  # a Ctrl-C since the last output stops the run before this one
        path = PurePosixPath(name)
        return self.outputs.path(str(path.with_stem(path.stem + self.suffix)))

    def asset(self, filename):
        """The path to write figure `filename` to; it appears in assets/ when the run's outputs are saved."""
        return self.output(f"assets/{filename}")

    def finish(self, vae, history, x_test, y_test, z_mean, **extra_metrics):
        """Evaluate on x_test, draw reconstructions and history, save the models, the test
        encodings (z_mean, labels y_test) and the metrics, move all outputs into place together,
        and print a summary. A conditional VAE is also given the labels: x_test is the test images either way.

        `extra_metrics` (JSON-serializable) are added to models/metrics_<name>.json.
        """
        name, config = self.name, self.config
        stopping.check()
        self.stage = "evaluating"
        test_data = (x_test, y_test) if len(vae.decoder.inputs) == 2 else x_test  # a conditional VAE's: with labels
        test = evaluate(vae, test_data)
        if not all(math.isfinite(value) for value in test.values()):
            self.progress.remove()
            raise SystemExit(f"error: the test loss is not finite ({test}): the model is broken, so nothing was "
                             f"saved; the earlier results in {self.out} are unchanged. Try a lower --learning-rate.")
        self.stage = "saving"
        first_ten = tf.nest.map_structure(lambda array: array[:10], test_data)
        reconstructions = keras.ops.convert_to_numpy(vae(first_ten))
        plot_reconstructions(x_test[:10], reconstructions, self.asset(f"reconstructions_{name}.png"))
        plot_history(history, self.asset(f"history_{name}.png"))
        if self.timeline is not None:  # the codes of a fixed set of test images after every epoch (vae/timeline.py)
            self.timeline.save(self.output(f"models/timeline_{name}.npz"))
            plot_timeline(self.timeline.arrays(), self.asset(f"timeline_{name}.png"))
            extra_metrics = {**extra_metrics, "timeline": timeline_summary(self.timeline.arrays())}
        # The encoder is saved without its Sampling layer, image → (z_mean, z_log_var), so that it
        # loads with plain Keras; draw z = z_mean + exp(z_log_var / 2) · ε yourself, or with the chapter's Sampling layer.
        encoder = keras.Model(vae.encoder.input, vae.encoder.outputs[:2], name="encoder")
        save_model(encoder, self.output(f"models/encoder_{name}.h5"))
        save_model(vae.decoder, self.output(f"models/decoder_{name}.h5"))
        save_encodings(z_mean, y_test, self.output(f"models/test_encodings_{name}.npz"))

        self.metrics = {
            "model": name,
            "test_loss": test["loss"],
            "test_reconstruction": test["reconstruction"],
            "test_kl": test["kl"],
            # The ELBO, −(reconstruction + KL), whatever β or free bits the loss used: comparable between runs.
            "test_elbo": -(test["reconstruction"] + test["kl"]),
            "train_loss": history["loss"][-1],
            "val_loss": history["val_loss"][-1],  # the test set's, evaluated after the last epoch
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "latent_dim": config.latent_dim,
            "learning_rate": config.learning_rate,
            "beta": config.beta,
            "kl_warmup_epochs": config.kl_warmup_epochs,
            "free_bits": config.free_bits,
            "dataset": config.dataset,
            **self.data_info,  # a folder of images: data_folder, classes, folder_images, split, image_size, color
            "architecture": config.architecture,
            "likelihood": config.likelihood,
            "binarize": config.binarize,
            **({"test_binarization_seed": TEST_BINARIZATION_SEED, "binarization": BINARIZATION_PROTOCOL}
               if config.binarize == "dynamic" else {}),
            "seed": config.seed,
            "train_images": self.train_images,
            "test_images": len(x_test),
            "seconds_per_epoch": self.seconds_per_epoch,
            "seconds_training": sum(self.seconds_per_epoch),  # every epoch, those of an interrupted run included
            "resumed_after_epoch": self.resumed_after,  # 0: the run was not interrupted
            "seconds_training_this_run": sum(self.seconds_per_epoch[self.resumed_after:]),
            "seconds_total": time.perf_counter() - start.started,  # this process: imports, training, figures, saving
            "history": history,
            "device": device_name(),
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "numpy_version": np.__version__,
            **extra_metrics,
            "files": self.outputs.checksums(),  # SHA-256 of every other output of this run
        }
        save_json(self.metrics, self.output(f"models/metrics_{name}.json"))
        stopping.check()  # the last point a Ctrl-C stops the run: from here the outputs replace the earlier ones
        self.stage = "moving the outputs into place"
        try:
            written = self.outputs.commit()
        except OutputSetError as error:
            raise SystemExit(f"error: out: {error}; nothing was moved, the earlier results in {self.out} are "
                             f"unchanged. Move it away, then {self._resume_hint('run').lower()}") from None
        self.progress.remove()
        self.lock.release()
        stopping.uninstall()
        self.stage = "done"
        if not self.chief:
            shutil.rmtree(self.out, ignore_errors=True)
            print(f"{_task_name()} done; the chief writes the results")
            return self.metrics
        self.print_summary(written)
        return self.metrics

    def print_summary(self, written):
        m = self.metrics
        per_epoch = np.median(m["seconds_per_epoch"])
        epochs = f"{m['epochs']} epoch{'s' if m['epochs'] != 1 else ''}"
        earlier = m["resumed_after_epoch"]
        resumed = (f"; epochs 1–{earlier} ran in an earlier, interrupted run" if earlier > 1 else
                   "; epoch 1 ran in an earlier, interrupted run" if earlier == 1 else "")
        outside = m["seconds_total"] - m["seconds_training_this_run"]
        kl = f"KL {m['test_kl']:.2f}"
        elbo = ("" if m["beta"] == 1 else
                f"ELBO {m['test_elbo']:.2f} = −(reconstruction + KL), the loss without β, "
                f"comparable between runs\n")
        print(
            f"\nTest set ({m['test_images']:,} images), nats per image: loss {m['test_loss']:.2f} "
            f"= reconstruction {m['test_reconstruction']:.2f} + {m['beta']:g} × {kl}\n"
            f"{elbo}"
            f"Training: {epochs} on {m['train_images']:,} images in {m['seconds_training']:.1f} s "
            f"(median {per_epoch:.2f} s per epoch, {m['device']}){resumed}\n"
            f"This run took {m['seconds_total']:.1f} s, of which {outside:.1f} s outside training "
            f"(imports, data, evaluation, figures, saving)\n"
            f"Wrote {len(written)} files:"
        )
        for path in written:
            print(f"  {path}")

    def _report_and_exit(self, kind, error, traceback):
        """sys.excepthook while the run is alive: Ctrl-C and disk errors get one message, not a traceback.

        The earlier outputs are untouched (this run's are still in its staging folder, discarded
        here), and the training progress is kept for a resume. Python then exits: after Ctrl-C by
        SIGINT, as the shell expects (exit status 130); else with status 1.
        """
        self.outputs.discard()
        if issubclass(kind, KeyboardInterrupt):
            print(f"\n{self._interrupted_message()}", file=sys.stderr)
        elif issubclass(kind, OSError) and error.errno in DISK_ERRORS:
            path = error.filename or "a file"
            earlier = (f"{self.out} holds a mix of this run's and the earlier results until the same command runs again"
                       if self.outputs.pending() else f"The earlier results in {self.out} are unchanged")
            print(f"\nerror: cannot write {path}: {error.strerror} (while {self.stage}). {earlier}. "
                  f"{self._resume_hint('Free some space, then run')}", file=sys.stderr)
        else:
            sys.__excepthook__(kind, error, traceback)

    @property
    def epochs_saved(self):
        """The epochs whose checkpoint is on disk: what a rerun of the same command starts from."""
        return self.backup.epoch if self.backup else 0

    def _interrupted_message(self):
        if self.outputs.pending():  # stopped while the outputs moved into place: say what moved
            return (f"Interrupted while moving the outputs into place ({self.outputs.moved_so_far()} of "
                    f"{len(self.outputs.names)} moved); {self.out} holds a mix of this run's and the earlier results "
                    f"until you run the same command again, which first finishes the moves.")
        where = f"after epoch {self.epochs_saved} of {self.config.epochs}" if self.stage == "training" else f"while {self.stage}"
        return f"Interrupted {where}; the earlier results in {self.out} are unchanged. " + self._resume_hint("Run")

    def _resume_hint(self, verb):
        done = self.epochs_saved
        if done == 0:
            return f"{verb} the same command again to start over."
        if done == self.config.epochs:
            return f"{verb} the same command again to evaluate and save the trained model (no epoch is repeated)."
        return f"{verb} the same command again to resume after epoch {done}."


# The runs that record a timeline (vae/timeline.py): the 2-D chapter's, whose plane the page plays back.
TIMELINE_RUNS = {"2d"}

# The endings of the files a run writes into assets/ and models/.
OUTPUT_SUFFIXES = {".png", ".h5", ".json", ".npz"}

# The fewest test images a run accepts: the figures walk between two test images, and the conditional chapter
# (a run that needs classes) reads the class off the codes by a 10-nearest-neighbour vote over half of them.
MIN_TEST_IMAGES = 2
MIN_TEST_IMAGES_BY_LABEL = 20

# OSError numbers that mean "this file cannot be written": disk full, quota, read-only, too large, I/O error.
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO}


def _task_name():
    """This process's task in TF_CONFIG, such as "worker-1"."""
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    return f"{task.get('type', 'worker')}-{task.get('index', 0)}"


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
