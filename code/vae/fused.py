"""The fused training path: K optimizer steps inside ONE XLA-compiled call.

Keras' `fit`, compiled with steps_per_execution=K, calls `model.train_function(iterator)` once per
K steps. Keras' own train function is a TensorFlow while loop that, for each step, pulls a batch of
images from tf.data and launches the XLA-compiled `train_step` on it: K launches per call, and a
batch of pixels gathered by tf.data between them. The fused train function here, given the same
iterator, instead

  1. pulls the next K batches' image *indices* from tf.data (B numbers per batch, no pixels), and
  2. runs the K steps in one XLA program: a while loop whose body gathers the batch's images from
     the training set, held in memory as one tensor, and calls the model's own `train_step`.

So the chapter's readable one-step `train_step` (code/vae_2d.py) is the step that runs, unchanged;
this module only decides how many of them one compiled call runs. Everything else stays Keras':
the epochs, validation, callbacks, the progress bar's step count, `initial_epoch`.

The last batch of an epoch is smaller when the batch size does not divide the training set
(60,000 images = 468 × 128 + 96): it runs alone, through `train_step` compiled for its size, so its
loss is the mean over its own 96 images, as on the plain path, and the epoch's values stay exact
per-image means (the model's trackers weight each step by its batch size).
"""

import keras
import tensorflow as tf


def why_not_fused(model):
    """None if the fused path can train `model` here; else the reason it cannot, in words.

    The plain Keras path (one XLA launch per step) is used instead wherever this says no.
    """
    if not model.jit_compile:
        # Without XLA there is no compiled program to put the K steps in (--no-xla is for short runs).
        return "XLA is off (jit_compile=False)"
    if tf.distribute.has_strategy() or model.distribute_strategy is not tf.distribute.get_strategy():
        # Under tf.distribute (vae/distribute.py) each step must go through strategy.run, which splits
        # a batch among the replicas and sums their gradients; Keras' own train function does that,
        # this one does not. (A model built in a strategy's scope keeps that strategy: second test.)
        return "a tf.distribute strategy is in use"
    if any(isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)) for layer in _all_layers(model)):
        # Measured on the project's CPU: a convolutional step inside the fused XLA loop ran 25-40 times slower
        # than the same step without XLA (XLA's CPU convolutions; the MLP's matrix products do not suffer).
        return "the model has convolutions, which XLA runs slowly on a CPU"
    if tf.config.list_logical_devices("GPU"):
        # On a GPU, Keras' launches overlap with the GPU's work and the while loop's condition would
        # cost a device-to-host copy per step; we have not measured it there, so we keep Keras' path.
        return "a GPU is in use (the fused path is measured on CPUs only)"
    return None


def _all_layers(model):
    """Every layer of `model` and of the models inside it (a VAE's encoder and decoder), depth first."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def gather(data, indices):
    """The rows `indices` of the training data: of the images, or of (images, labels)."""
    return tf.nest.map_structure(lambda array: tf.gather(array, indices), data)


def index_batches(size, batch_size, seed=None):
    """A tf.data pipeline of (batch_size,) int64 batches of the indices 0..size-1, shuffled each
    epoch anew; the last batch is smaller when batch_size does not divide size.

    The same shuffle, with the same seed, as vae.training.batched, which gathers the images of these
    very indices: both paths see the same batches in the same order.
    """
    indices = tf.data.Dataset.range(size).shuffle(size, seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.autotune.enabled = False  # as in vae.training.batched: no helper threads on few cores
    options.experimental_optimization.apply_default_optimizations = False
    return indices.batch(batch_size).with_options(options)


class FusedTrainFunction:
    """`model.train_function` for `fit`: each call runs up to `steps` train steps in one XLA program.

    `data` is the whole training set, images (N, 28, 28, 1) float32, or (images, labels) for a conditional
    VAE; `fit` must be given `index_batches(N, batch_size, seed)` as its data, and the model compiled with
    steps_per_execution = `steps`.
    """

    def __init__(self, model, data, batch_size, steps):
        self.model = model
        self.data = tf.nest.map_structure(tf.convert_to_tensor, data)
        self.batch_size = batch_size
        self.steps = steps
        # Adam's moments must exist before they are used inside a compiled loop (a variable cannot
        # be created inside a loop); building twice is harmless, so a resume's load works as before.
        model.optimizer.build(model.trainable_variables)
        self.run_full_batches = tf.function(self._run_full_batches, jit_compile=True)
        self.run_one_batch = tf.function(self._run_one_batch, jit_compile=True)

    def _run_full_batches(self, indices, count):
        """Train on the first `count` rows of `indices`, (steps, batch_size) int64: one step per
        row, each on the images of that row. Returns the model's metrics after the last step."""

        def one_step(step):
            self.model.train_step(gather(self.data, indices[step]))
            return step + 1

        tf.while_loop(lambda step: step < count, one_step, [tf.constant(0, count.dtype)])
        return {metric.name: metric.result() for metric in self.model.metrics}

    def _run_one_batch(self, indices):
        """One train step on the images of `indices`, (b,) int64, any b: the epoch's smaller last batch."""
        return self.model.train_step(gather(self.data, indices))

    def __call__(self, iterator):
        """Pull up to `steps` index batches from `iterator` and train on them; returns the logs
        (loss, reconstruction, kl: the epoch's running means, nats per image)."""
        full, last = [], None
        for _ in range(self.steps):
            try:
                indices = next(iterator)  # (batch_size,) int64, or fewer at the end of an epoch
            except StopIteration:  # the epoch's batches have run out
                break
            if indices.shape[0] == self.batch_size:
                full.append(indices)
            else:
                last = indices  # the epoch's smaller last batch: the iterator ends after it
                break
        if not full and last is None:
            raise StopIteration  # as Keras' own train function does when the data has run out
        logs = None
        if full:
            # A fixed (steps, batch_size) shape, so that XLA compiles one program for every call:
            # a call with fewer batches (the end of an epoch) pads the stack and trains on `count` rows.
            stack = tf.stack(full + [full[0]] * (self.steps - len(full)))
            logs = self.run_full_batches(stack, tf.constant(len(full), tf.int32))
        if last is not None:
            logs = self.run_one_batch(last)
        return logs


def fuse_steps(model, data, train_data, batch_size, steps, seed=None):
    """Set up the fused path on a compiled `model` and return the data to pass to `fit`:
    `index_batches` of `data` (the training set: images, or (images, labels)) if the path applies, else
    `train_data` unchanged, for the plain Keras path (`why_not_fused` says why).

    `steps` (K) train steps then run per XLA call; the number of steps per epoch caps it.
    """
    if why_not_fused(model) is not None:
        return train_data
    size = len(tf.nest.flatten(data)[0])
    steps = min(steps, -(-size // batch_size))
    model.steps_per_execution = steps  # Keras' fit calls the train function once per `steps` steps
    model.train_function = FusedTrainFunction(model, data, batch_size, steps)
    return index_batches(size, batch_size, seed)
