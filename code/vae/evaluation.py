"""Evaluation: the test-set loss, and the encoder and decoder applied in large batches."""

import keras
import numpy as np

from vae.training import EVAL_BATCH_SIZE, batched


def evaluate(vae, images):
    """The loss, reconstruction and KL on `images`, in nats per image, as a dict of floats."""
    results = vae.evaluate(batched(images, EVAL_BATCH_SIZE), verbose=0, return_dict=True)
    return {name: float(value) for name, value in results.items()}


def encode(encoder, images, batch_size=EVAL_BATCH_SIZE):
    """The posterior means and log-variances of `images`: two (N, latent_dim) NumPy arrays.

    `encoder` outputs (z_mean, z_log_var, z) in training, (z_mean, z_log_var) as saved.
    """
    outputs = [encoder(images[i : i + batch_size], training=False) for i in range(0, len(images), batch_size)]
    z_mean = np.concatenate([keras.ops.convert_to_numpy(output[0]) for output in outputs])
    z_log_var = np.concatenate([keras.ops.convert_to_numpy(output[1]) for output in outputs])
    return z_mean, z_log_var


def decode(decoder, z):
    """The decoded images of latent points `z` (N, latent_dim) in one batched call: (N, 28, 28)."""
    images = decoder(np.asarray(z, dtype="float32"), training=False)
    return keras.ops.convert_to_numpy(images)[..., 0]


def latent_usage(z_mean, z_log_var):
    """Per latent dimension, two (latent_dim,) arrays: the variance of z_mean over the images
    (how far the code moves between them) and the mean posterior variance exp(z_log_var)
    (how unsure each code is). A dimension in use has the first ≫ the second."""
    return z_mean.var(axis=0), np.exp(z_log_var).mean(axis=0)
