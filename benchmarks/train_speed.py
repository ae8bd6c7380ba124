"""Benchmark (not a test): how fast does the 2-D VAE train, against the machine's limit?

    python benchmarks/train_speed.py              # the project's training vs a textbook baseline
    python benchmarks/train_speed.py --levers     # also each speed lever on its own

Measures in one run
  (a) the machine's fp32 matrix-multiply peak, from a large tf.matmul;
  (b) the steady-state epoch time of the project's training (vae.training.train);
  (c) the same for a textbook Keras baseline of the same model: sigmoid output with
      binary cross-entropy on probabilities, default compile() settings (no XLA on a CPU,
      one step per call), NumPy arrays passed to fit();
and prints one JSON line with epoch_s, baseline_epoch_s, speedup, images per second,
achieved GFLOP/s from an analytic FLOP count, and the fraction of the measured peak.
Epoch times include the pass over the 10,000 validation images, as in the scripts.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from vae.data import load_mnist  # noqa: E402
from vae.experiment import device_name  # noqa: E402
from vae.model import VAE, build_decoder, build_encoder  # noqa: E402
from vae.saving import save_json  # noqa: E402
from vae.training import EpochTimer, train  # noqa: E402

SCRIPTS_SETTINGS = "XLA, 64 steps per call"  # the lever that vae.training.train uses by default
LAYERS_2D = [(784, 512), (512, 256), (256, 2), (256, 2), (2, 256), (256, 512), (512, 784)]


def training_gflop_per_epoch(images=60_000, layers=LAYERS_2D):
    """Multiply-adds of one epoch's dense layers, ×2 for FLOPs: forward 2·W, backward 4·W per
    layer (gradients of weights and of inputs), less the input gradient of the first layer."""
    weights = sum(fan_in * fan_out for fan_in, fan_out in layers)
    first = layers[0][0] * layers[0][1]
    return images * (6 * weights - 2 * first) / 1e9


def matmul_peak_gflops(n=4096, repeats=10, dtype=tf.float32):
    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    matmul = tf.function(tf.matmul)
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


class TextbookVAE(VAE):
    """The keras-io way: BCE on the decoder's sigmoid output (clipped probabilities), not on logits."""

    def compute_losses(self, images, training=False):
        z_mean, z_log_var, z = self.encoder(images, training=training)
        pixels = self.decoder(z, training=training)
        reconstruction = ops.mean(ops.sum(keras.losses.binary_crossentropy(images, pixels), axis=(1, 2)))
        kl = ops.mean(self.prior.kl_divergence(z_mean, z_log_var))
        return reconstruction + self.beta * kl, reconstruction, kl


def steady_epoch_seconds(seconds):
    """Median epoch time after the first (which compiles)."""
    return float(np.median(seconds[1:]))


def run_project(x_train, x_test, epochs, **levers):
    keras.utils.set_random_seed(0)
    vae = VAE(build_encoder(2), build_decoder(2))
    history = train(vae, x_train, x_test, epochs, 128, 1e-3, seed=0, verbose=0, **levers)
    return steady_epoch_seconds(history["seconds"]), history["val_loss"][-1]


def run_baseline(x_train, x_test, epochs):
    keras.utils.set_random_seed(0)
    vae = TextbookVAE(build_encoder(2), build_decoder(2))
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = vae.fit(x_train, epochs=epochs, batch_size=128, validation_data=(x_test,), verbose=0,
                      callbacks=[EpochTimer()]).history
    return steady_epoch_seconds(history["seconds"]), float(history["val_loss"][-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per measurement (the first is dropped)")
    parser.add_argument("--levers", action="store_true", help="also time each lever separately")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: $VAE_DATA_DIR)")
    parser.add_argument("--save", action="store_true",
                        help="also write the result to benchmarks/train_speed.json (quoted by the README)")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be ≥ 2: the first epoch compiles and is not counted")

    (x_train, _), (x_test, _) = load_mnist(args.data_dir)
    peak = matmul_peak_gflops()
    gflop = training_gflop_per_epoch(len(x_train))

    levers = []
    if args.levers:
        for name, settings in [
            ("no XLA, 1 step per call", dict(jit_compile=False, steps_per_execution=1)),
            ("no XLA, 64 steps per call", dict(jit_compile=False, steps_per_execution=64)),
            ("XLA, 1 step per call", dict(jit_compile=True, steps_per_execution=1)),
            ("XLA, 64 steps per call, tf.data autotuning on", dict(steps_per_execution=64, autotune=True)),
            (SCRIPTS_SETTINGS, {}),  # train()'s defaults: what the scripts use
            ("XLA, a whole epoch per call", dict(jit_compile=True, steps_per_execution=10_000)),
        ]:
            seconds, val_loss = run_project(x_train, x_test, args.epochs, **settings)
            levers.append({"lever": name, "epoch_s": round(seconds, 3), "val_loss": round(val_loss, 2)})
            print(json.dumps(levers[-1]), flush=True)

    # The project's number is the scripts' configuration: measured once, among the levers if they ran.
    scripts_lever = next((lever for lever in levers if lever["lever"] == SCRIPTS_SETTINGS), None)
    if scripts_lever:
        epoch_s, val_loss = scripts_lever["epoch_s"], scripts_lever["val_loss"]
    else:
        epoch_s, val_loss = run_project(x_train, x_test, args.epochs)
    baseline_s, baseline_val_loss = run_baseline(x_train, x_test, args.epochs)
    result = {
        "epoch_s": round(epoch_s, 3),
        "baseline_epoch_s": round(baseline_s, 3),
        "speedup": round(baseline_s / epoch_s, 2),
        "images_per_s": round(len(x_train) / epoch_s),
        "baseline_images_per_s": round(len(x_train) / baseline_s),
        "gflop_per_epoch": round(gflop, 1),
        "achieved_gflops": round(gflop / epoch_s, 1),
        "peak_gflops": round(peak, 1),
        "fraction_of_peak": round(gflop / epoch_s / peak, 3),
        "val_loss_after": {"epochs": args.epochs, "project": round(val_loss, 2), "baseline": round(baseline_val_loss, 2)},
        "device": device_name(),
        "cores": os.cpu_count(),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "levers": levers,
    }
    print(json.dumps(result))
    if args.save:
        save_json(result, Path(__file__).parent / "train_speed.json")


if __name__ == "__main__":
    main()
