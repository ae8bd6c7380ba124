"""The fused training path (vae/fused.py) against the plain one: same weights, same logs, same callbacks.

Small random images (600 of them: 4 batches of 128 and a last one of 88) and 3 steps per fused call,
so that one call trains 3 full batches and the next trains 1 full batch and then the smaller last
one. The speed of the fused path is measured in benchmarks/train_speed.py, not here.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae.conv import build_conv_decoder, build_conv_encoder
from vae.fused import FusedTrainFunction, fuse_steps, index_batches, why_not_fused
from vae.training import StopOnNaN, batched, compile_vae, train
from vae_2d import VAE, Sampling, build_decoder, build_encoder
from vae_correlated import CorrelatedVAE

TRAIN_IMAGES, BATCH_SIZE, FUSED_STEPS = 600, 128, 3  # 5 steps per epoch, the last on 88 images
WEIGHT_TOLERANCE = 1e-5  # largest difference of any weight after 10 steps (float32 rounding)


def images(count, seed):
    return np.random.default_rng(seed).uniform(0, 1, size=(count, 28, 28, 1)).astype("float32")


class Recorder(keras.callbacks.Callback):
    """Records the step numbers Keras reports to callbacks, and each epoch's logs."""

    def __init__(self):
        super().__init__()
        self.steps, self.epochs = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(batch)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((epoch, dict(logs)))


def trained(fused_steps, epochs=2, learning_rate=1e-3, x=None, callbacks=(), initial_epoch=0):
    """A 2-D VAE trained by vae.training.train on the test's images with seed 0, 3 steps per call:
    on Keras' plain path (one XLA launch per step) when fused_steps is None, else on the fused path.
    Returns the model, its history and a Recorder of what the callbacks saw."""
    keras.utils.set_random_seed(0)
    vae = VAE(build_encoder(2, seed=1), build_decoder(2))
    recorder = Recorder()
    x = images(TRAIN_IMAGES, 0) if x is None else x
    history = train(vae, x, images(200, 1), epochs, BATCH_SIZE, learning_rate, seed=0, verbose=0,
                    steps_per_execution=FUSED_STEPS, fused_steps=fused_steps, callbacks=[recorder, *callbacks],
                    initial_epoch=initial_epoch)
    return vae, history, recorder


@pytest.fixture(scope="module")
def plain_and_fused():
    """The same 2-epoch training (10 steps) on the plain path and on the fused path."""
    return trained(None), trained(FUSED_STEPS)


def test_the_fused_path_gives_the_plain_paths_weights(plain_and_fused):
    (plain, _, _), (fused, _, _) = plain_and_fused
    assert isinstance(fused.train_function, FusedTrainFunction)  # the fused path ran, not the fallback
    assert int(fused.optimizer.iterations.numpy()) == int(plain.optimizer.iterations.numpy()) == 10
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(plain.get_weights(), fused.get_weights()))
    assert difference <= WEIGHT_TOLERANCE


def test_the_fused_path_logs_the_plain_paths_losses(plain_and_fused):
    (_, plain_history, _), (_, fused_history, _) = plain_and_fused
    assert plain_history.keys() == fused_history.keys()
    for name in ["loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl"]:
        np.testing.assert_allclose(fused_history[name], plain_history[name], rtol=1e-5, err_msg=name)


def test_callbacks_see_the_same_steps_and_epochs(plain_and_fused):
    """Keras reports steps 2 and 4 to the callbacks (the progress bar among them) on both paths:
    a call of 3 steps, then one of 2 (the fused call trains a full batch, then the last 88 images)."""
    (_, _, plain), (_, _, fused) = plain_and_fused
    assert fused.steps == plain.steps == [2, 5, 2, 5]  # Keras' count: the last call "ends" at step 5
    assert [epoch for epoch, _ in fused.epochs] == [0, 1]
    assert fused.epochs[0][1].keys() == plain.epochs[0][1].keys() >= {"loss", "val_loss", "seconds"}


def test_an_epochs_loss_is_the_mean_over_its_images_with_any_prior_and_a_resumed_run():
    """With a correlated prior, resuming after epoch 1 of 2: only epoch 2 runs, and its logged loss
    is the per-image mean of its five steps' losses, weighted by their sizes (4 × 128 and 88).

    Each step's own loss comes from an eager replay of the same batches (the seed's first shuffle).
    For the replay to match, the weights stay put (learning rate 0) and the sampling noise is
    switched off (the ln σ² head's bias at −30: z = μ to float32 precision; eager TensorFlow and
    XLA draw the noise differently). The last batch holds blank images and the others white ones,
    and the decoder's logits start at +5, so that the last batch's loss (about 3,900 nats) stands
    apart from the others' (about 5 nats plus the KL) and the weighting shows."""
    order = [indices.numpy() for indices in index_batches(TRAIN_IMAGES, BATCH_SIZE, seed=0)]
    assert [len(indices) for indices in order] == [128, 128, 128, 128, 88]
    x = np.ones((TRAIN_IMAGES, 28, 28, 1), dtype="float32")
    x[order[-1]] = 0.0

    def noiseless_vae():
        keras.utils.set_random_seed(0)
        encoder = build_encoder(2, seed=1)
        log_var = encoder.get_layer("z_log_var")
        log_var.set_weights([np.zeros_like(log_var.kernel), np.full_like(log_var.bias, -30.0)])
        decoder = build_decoder(2)
        logits = decoder.get_layer("logits")
        logits.set_weights([logits.kernel.numpy(), np.full_like(logits.bias, 5.0)])
        return CorrelatedVAE(encoder, decoder, prior_cov=[[1.0, 0.4], [0.4, 0.5]])

    fused = noiseless_vae()
    history = train(fused, x, images(200, 1), 2, BATCH_SIZE, 0.0, seed=0, verbose=0, fused_steps=FUSED_STEPS,
                    steps_per_execution=FUSED_STEPS, initial_epoch=1)
    assert isinstance(fused.train_function, FusedTrainFunction)
    assert len(history["loss"]) == 1 and int(fused.optimizer.iterations.numpy()) == 5

    replay = noiseless_vae()
    replay.compile(optimizer=keras.optimizers.Adam(0.0))
    losses = []
    for indices in order:
        replay.loss_tracker.reset_state()
        losses.append(float(replay.train_step(tf.constant(x[indices]))["loss"]))
    per_image_mean = np.average(losses, weights=[len(indices) for indices in order])
    np.testing.assert_allclose(history["loss"][0], per_image_mean, rtol=1e-4)  # float32 sums, XLA vs eager
    assert abs(np.mean(losses) - per_image_mean) > 0.1 * per_image_mean  # not the steps' unweighted mean


def test_a_nan_loss_stops_the_fused_path_after_its_first_call():
    x = np.full((TRAIN_IMAGES, 28, 28, 1), np.nan, dtype="float32")  # every loss is NaN
    guard = StopOnNaN()
    fused, _, _ = trained(FUSED_STEPS, epochs=3, x=x, callbacks=[guard])
    assert isinstance(fused.train_function, FusedTrainFunction)
    assert guard.diverged_in == 1 and int(fused.optimizer.iterations.numpy()) == FUSED_STEPS


def test_it_falls_back_to_the_plain_path_without_xla_or_under_a_strategy():
    vae = VAE(build_encoder(2), build_decoder(2))
    compile_vae(vae, 1e-3, jit_compile=False)
    assert "XLA" in why_not_fused(vae)
    data = batched(images(10, 0), 4)
    assert fuse_steps(vae, images(10, 0), data, 4, FUSED_STEPS) is data and vae.train_function is None
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        distributed = VAE(build_encoder(2), build_decoder(2))
        compile_vae(distributed, 1e-3)
        assert "strategy" in why_not_fused(distributed)
    assert "strategy" in why_not_fused(distributed)  # outside the scope too: the model keeps its strategy


def test_a_convolutional_model_keeps_the_plain_path():
    """Convolutions inside the fused XLA loop ran 25-40 times slower on the project's CPU."""
    conv = VAE(build_conv_encoder(2, (28, 28, 1), Sampling), build_conv_decoder(2, (28, 28, 1)))
    compile_vae(conv, 1e-3)
    assert "convolutions" in why_not_fused(conv)
    mlp = VAE(build_encoder(2), build_decoder(2))
    compile_vae(mlp, 1e-3)
    assert why_not_fused(mlp) is None
