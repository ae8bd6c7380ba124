"""Training: compile a `VAE` for speed and fit it, timing every epoch.

What makes it fast (measured in benchmarks/train_speed.py, see benchmarks/README.md):
XLA compilation of the train step, 64 steps inside each compiled call (vae/fused.py), and the
data kept as one tensor and batched by index, with tf.data's autotuning threads off.
"""

import math
import time

import keras
import tensorflow as tf

from vae.evaluation import EVAL_BATCH_SIZE
from vae.fused import fuse_steps, gather

STEPS_PER_EXECUTION = 64  # gradient steps per call from Python into the compiled graph


def compile_vae(vae, learning_rate=None, jit_compile=True, steps_per_execution=STEPS_PER_EXECUTION):
    """Compile `vae` for speed: XLA and `steps_per_execution` run its train step fast. Its optimizer is
    Adam at `learning_rate`, or with None the one the chapter compiled it with."""
    vae.compile(
        optimizer=vae.optimizer if learning_rate is None else keras.optimizers.Adam(learning_rate),
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return vae


def batched(data, batch_size, shuffle=False, seed=None, autotune=False):
    """A tf.data pipeline of (batch, 28, 28, 1) batches of `data`, the images, gathered by index; for a
    conditional VAE `data` is (images, labels), and so is every batch.

    The data stay in memory as tensors; only the indices are shuffled, each epoch anew.
    tf.data's autotuning is off by default: on a machine with few cores its helper threads
    compete with the training step for them (benchmarks/README.md has the numbers).
    """
    data = tf.nest.map_structure(tf.convert_to_tensor, data)
    size = tf.nest.flatten(data)[0].shape[0]
    indices = tf.data.Dataset.range(size)
    if shuffle:
        indices = indices.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    batches = indices.batch(batch_size).map(lambda index: gather(data, index))
    if autotune:
        return batches.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.apply_default_optimizations = False
    return batches.with_options(options)


class ProgressBar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, counting to the true number of steps.

    With several steps per execution Keras reports the last call of an epoch as ending at the
    next multiple of that number (469 steps at 64 per call: "512/469"); the count is capped here.
    """

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch if self.target is None else min(batch, self.target - 1), logs)


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras' TerminateOnNaN (training stops at the first loss that is NaN or infinite), also
    watching the validation loss, and remembering the epoch (1, 2, ...) it stopped in as `diverged_in`."""

    diverged_in = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        if self.model.stop_training and self.diverged_in is None:
            self.diverged_in = self.epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged_in is None and not math.isfinite(logs.get("val_loss", 0.0)):
            self.model.stop_training = True
            self.diverged_in = self.epoch


class EpochTimer(keras.callbacks.Callback):
    """Adds the wall-clock seconds of every epoch (training and validation) to its logs, as
    "seconds", so that the history and the callbacks after this one (CSVLogger) record it."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["seconds"] = time.perf_counter() - self._start


def train(vae, x_train, x_val, epochs, batch_size, learning_rate=None, seed=None, verbose="auto", callbacks=(),
          jit_compile=True, steps_per_execution=STEPS_PER_EXECUTION, autotune=False, initial_epoch=0,
          fused_steps=STEPS_PER_EXECUTION):
    """Compile (with Adam at `learning_rate`, or with None the optimizer `vae` was compiled with) and fit
    `vae` on `x_train`, validating on `x_val` after every epoch, from epoch
    `initial_epoch` (the number already done, for a resumed run) up to `epochs`. Each is the images, or
    (images, labels) for a conditional VAE.

    Returns the history: "loss", "reconstruction", "kl" and their "val_" twins (the validation
    data's), in nats per image, and "seconds", each a list with one value per epoch run.

    `fused_steps` K (default 64) runs K train steps inside each XLA call (vae/fused.py says how, and
    where it falls back to Keras' own loop: without XLA, under tf.distribute, on a GPU); None: Keras'
    own loop, `steps_per_execution` steps per call from Python but one XLA call per step.
    """
    train_images = tf.nest.flatten(x_train)[0]
    steps_per_epoch = -(-len(train_images) // batch_size)
    if tf.distribute.has_strategy():  # several devices or machines (vae/distribute.py)
        # XLA cannot compile a step that reads the other replicas' weights ("Trying to access resource ...
        # located in device CPU:1 from device CPU:0"): Keras itself turns XLA off under tf.distribute
        # (keras/src/trainers/trainer.py, _resolve_auto_jit_compile). Several steps per call fail under
        # MirroredStrategy ("You must feed a value for placeholder tensor", keras-team/keras#19246).
        jit_compile, steps_per_execution = False, 1
    compile_vae(vae, learning_rate, jit_compile, min(steps_per_execution, steps_per_epoch))
    train_data = batched(x_train, batch_size, shuffle=True, seed=seed, autotune=autotune)
    if fused_steps:
        train_data = fuse_steps(vae, x_train, train_data, batch_size, fused_steps, seed)
    history = vae.fit(
        train_data,
        validation_data=batched(x_val, EVAL_BATCH_SIZE),
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,  # the pipeline shuffles
        callbacks=[EpochTimer(), *callbacks, ProgressBar()],
        verbose=verbose,
    )
    return {name: [float(v) for v in values] for name, values in history.history.items()}
