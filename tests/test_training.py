"""Training's callbacks on their own: the progress bar's count and the NaN guard's epoch."""

import keras
import numpy as np

from vae.training import ProgressBar, StopOnNaN


def test_the_progress_bar_counts_to_the_true_number_of_steps():
    """469 steps at 64 per call: Keras reports the last call as ending at step 512; the bar stops at 469."""
    bar = ProgressBar()
    bar.set_params({"verbose": 1, "epochs": 1, "steps": 469})
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    bar.on_train_batch_end(447, {"loss": 150.0})
    assert bar.seen == 448
    bar.on_train_batch_end(511, {"loss": 149.0})
    assert bar.seen == 469 and bar.progbar.target == 469


def test_the_nan_guard_stops_training_and_remembers_the_epoch():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    guard = StopOnNaN()
    guard.set_model(model)
    model.stop_training = False
    for epoch, loss in [(0, 10.0), (1, 9.0), (2, float("nan"))]:
        guard.on_epoch_begin(epoch)
        guard.on_batch_end(0, {"loss": np.float32(loss)})
        if epoch < 2:
            assert not model.stop_training and guard.diverged_in is None
    assert model.stop_training and guard.diverged_in == 3


def test_the_nan_guard_also_watches_the_validation_loss():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    guard = StopOnNaN()
    guard.set_model(model)
    model.stop_training = False
    guard.on_epoch_begin(0)
    guard.on_batch_end(0, {"loss": 10.0})
    guard.on_epoch_end(0, {"loss": 10.0, "val_loss": float("inf")})
    assert model.stop_training and guard.diverged_in == 1
