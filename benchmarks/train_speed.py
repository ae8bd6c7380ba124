"""Benchmark (not a test): how fast does the 2-D VAE train, against the machine's limit?

    python benchmarks/train_speed.py                  # the project's training vs a textbook baseline
    python benchmarks/train_speed.py --levers         # also each speed lever on its own
    python benchmarks/train_speed.py --levers --scripts --explorers --save   # everything (README)

Measures in one run
  (a) the machine's fp32 matrix-multiply peak, from a large tf.matmul;
  (b) the steady-state epoch time of the project's training (vae.training.train), on Keras' plain
      path (one XLA call per step) and on the fused path (64 steps per XLA call, vae/fused.py);
      the faster is the project's number;
  (c) the same for a textbook Keras baseline of the same model: sigmoid output with
      binary cross-entropy on probabilities, default compile() settings (no XLA on a CPU,
      one step per call), NumPy arrays passed to fit();
  (d) where the project's epoch goes: its train steps, the validation pass, and, measured apart,
      the same steps in one compiled loop over batches already in memory, their matrix products
      alone, and the time the products would take at the measured peak;
  (e) Keras' 64-step call and the fused one timed in alternation, milliseconds per step, a
      comparison that holds even while other processes share the machine;
and prints one JSON line with epoch_s, baseline_epoch_s, speedup, images per second,
achieved GFLOP/s from an analytic FLOP count, and the fraction of the measured peak.
Epoch times include the pass over the 10,000 validation images, as in the scripts.

--scripts also runs each chapter script end to end (imports, data, 30 epochs, evaluation, figures,
saving; into a temporary --out folder) and prints one JSON line each; without it, those lines come
from the committed models/metrics_*.json. --explorers times the page's latent explorers decoding
in Chromium (benchmarks/explorer_speed.py). With --save each result goes to its JSON file here.
No GPU was available when these were written: the output says so (gpu: null) when none is seen.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from vae.data import load_mnist  # noqa: E402
from vae.experiment import device_name  # noqa: E402
from vae.fused import FusedTrainFunction, fuse_steps  # noqa: E402
from vae.saving import save_json  # noqa: E402
from vae.training import EpochTimer, batched, compile_vae, train  # noqa: E402
from vae_2d import VAE, build_decoder, build_encoder  # noqa: E402  the 2-D chapter's model

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
PLAIN_SETTINGS = "XLA, 64 steps per call"  # Keras' own loop: vae.training.train(..., fused_steps=None)
FUSED_SETTINGS = "XLA, 64 steps fused in one XLA call"  # vae.training.train's default, what the scripts use
FUSED_STEPS = 64
TARGET_FRACTION = 0.70  # issue 15: the steady 2-D epoch, validation included, at 70% of the fp32 peak
SCRIPTS = {"2d": "vae_2d.py", "3d": "vae_3d.py", "correlated": "vae_correlated.py"}
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
        """(reconstruction, kl) of each image, each (batch,) nats, as the chapter's VAE returns them."""
        z_mean, z_log_var, z = self.encoder(images, training=training)
        pixels = self.decoder(z, training=training)
        reconstruction = ops.sum(keras.losses.binary_crossentropy(images, pixels), axis=(1, 2))
        return reconstruction, self.kl_divergence(z_mean, z_log_var)


def steady_epoch_seconds(seconds):
    """Median epoch time after the first (which compiles)."""
    return float(np.median(seconds[1:]))


class PhaseTimer(keras.callbacks.Callback):
    """Splits every epoch into its training part (from the epoch's start to the start of the
    validation pass) and its validation pass, in seconds, one value per epoch in each list."""

    def __init__(self):
        super().__init__()
        self.train_s, self.validation_s = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        self._validation_start = time.perf_counter()
        self.train_s.append(self._validation_start - self._start)

    def on_test_end(self, logs=None):
        self.validation_s.append(time.perf_counter() - self._validation_start)


def run_project(x_train, x_test, epochs, **levers):
    """Train as the scripts do (vae.training.train, `levers` as its keyword arguments); returns the
    steady epoch's seconds (validation included), its training and validation parts, the first
    epoch's seconds (XLA compiles in it), the last val_loss, and whether the fused path ran."""
    keras.utils.set_random_seed(0)
    vae = VAE(build_encoder(2), build_decoder(2))
    phases = PhaseTimer()
    history = train(vae, x_train, x_test, epochs, 128, 1e-3, seed=0, verbose=0, callbacks=[phases], **levers)
    return {
        "epoch_s": steady_epoch_seconds(history["seconds"]),
        "train_s": steady_epoch_seconds(phases.train_s),
        "validation_s": steady_epoch_seconds(phases.validation_s),
        "first_epoch_s": history["seconds"][0],
        "val_loss": history["val_loss"][-1],
        "fused": isinstance(vae.train_function, FusedTrainFunction),
    }


def median_seconds(function, repeats):
    """Median wall-clock seconds of `function()` over `repeats` calls, after one call that compiles."""
    function()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def steps_alone_seconds_per_step(x_train, steps=FUSED_STEPS, repeats=7):
    """Seconds per train step of the fused path's compiled program alone: `steps` steps of 128
    images in one XLA call, on batches already chosen, with no tf.data, Keras or Python between them."""
    keras.utils.set_random_seed(0)
    vae = VAE(build_encoder(2), build_decoder(2))
    compile_vae(vae, 1e-3, steps_per_execution=steps)
    fused = FusedTrainFunction(vae, x_train, 128, steps)
    order = np.random.default_rng(0).permutation(len(x_train))[:steps * 128]
    indices, count = tf.constant(order.reshape(steps, 128)), tf.constant(steps)
    return median_seconds(lambda: fused.run_full_batches(indices, count)["loss"].numpy(), repeats) / steps


def matmuls_alone_seconds_per_step(batch=128, layers=LAYERS_2D, steps=FUSED_STEPS, repeats=7):
    """Seconds per train step of the step's matrix products alone, at their shapes, `steps` steps in
    one XLA loop. Per layer (fan_in, fan_out): the forward product (batch × fan_in)·(fan_in × fan_out),
    the weight gradient's (fan_in × batch)·(batch × fan_out) and, except for the first layer, the
    input gradient's (batch × fan_out)·(fan_out × fan_in): exactly the FLOPs that
    training_gflop_per_epoch counts."""
    rng = np.random.default_rng(0)
    kernels = [tf.constant(rng.standard_normal((i, o), dtype=np.float32)) for i, o in layers]
    inputs = [tf.constant(rng.standard_normal((batch, i), dtype=np.float32)) for i, _ in layers]
    grads = [tf.constant(rng.standard_normal((batch, o), dtype=np.float32)) for _, o in layers]

    def products_of(inputs, grads):
        products = []
        for k, kernel in enumerate(kernels):
            products.append(tf.matmul(inputs[k], kernel))
            products.append(tf.matmul(inputs[k], grads[k], transpose_a=True))
            if k > 0:
                products.append(tf.matmul(grads[k], kernel, transpose_b=True))
        return products

    @tf.function(jit_compile=True)
    def loop(inputs, grads):
        def body(step, inputs, grads, products):
            products = products_of(inputs, grads)
            # The products are the loop's outputs, and one number from them flows into the next
            # step's operands, so that XLA can neither drop nor hoist any product out of the loop.
            trace = 1e-30 * tf.add_n([product[0, 0] for product in products])
            return step + 1, [x + trace for x in inputs], [g + trace for g in grads], products

        products = [tf.zeros_like(product) for product in products_of(inputs, grads)]
        *_, products = tf.while_loop(lambda step, *_: step < steps, body, (0, inputs, grads, products))
        return tf.add_n([product[0, 0] for product in products])

    return median_seconds(lambda: loop(inputs, grads).numpy(), repeats) / steps


def interleaved_ms_per_step(x_train, rounds=40, steps=FUSED_STEPS):
    """Milliseconds per train step of Keras' 64-step call ("plain") and of the fused one ("fused"),
    timed in alternation in one process so that both meet the same load: the best, first quartile
    and median of `rounds` calls each. The steps of a call are counted from Adam's iteration
    counter (a fused call ends early at an epoch's smaller last batch). No validation here."""
    paths = {}
    for name, fused_steps in [("plain", None), ("fused", steps)]:
        keras.utils.set_random_seed(0)
        vae = VAE(build_encoder(2), build_decoder(2))
        compile_vae(vae, 1e-3, steps_per_execution=steps)
        data = batched(x_train, 128, shuffle=True, seed=0)
        if fused_steps:
            data = fuse_steps(vae, x_train, data, 128, fused_steps, seed=0)
        vae.make_train_function()  # Keras' own, unless fuse_steps has set the fused one
        paths[name] = (vae, iter(data.repeat()), [])
    for _ in range(rounds + 2):  # the first two rounds compile and warm up: dropped
        for vae, iterator, milliseconds in paths.values():
            before = int(vae.optimizer.iterations.numpy())
            start = time.perf_counter()
            float(vae.train_function(iterator)["loss"])
            seconds = time.perf_counter() - start
            milliseconds.append(1e3 * seconds / (int(vae.optimizer.iterations.numpy()) - before))
    return {name: {"best": round(min(ms[2:]), 2), "quartile": round(float(np.percentile(ms[2:], 25)), 2),
                   "median": round(float(np.median(ms[2:])), 2)}
            for name, (_, _, ms) in paths.items()}


def breakdown(project, images, gflop, peak, step_s, matmul_s):
    """Where the project's steady epoch goes, in seconds: its own phases, and the train steps
    (`step_s` per step of 128 images) and their matrix products (`matmul_s`) measured alone,
    scaled to the epoch's images."""
    steps_alone = step_s * images / 128
    matmuls_alone = matmul_s * images / 128
    at_peak = gflop / peak
    return {
        "epoch_s": round(project["epoch_s"], 3),
        "train_steps_s": round(project["train_s"], 3),
        "validation_s": round(project["validation_s"], 3),
        "callbacks_s": round(project["epoch_s"] - project["train_s"] - project["validation_s"], 3),
        "steps_alone_s": round(steps_alone, 3),
        "matmuls_alone_s": round(matmuls_alone, 3),
        "matmuls_at_peak_s": round(at_peak, 3),
        # what separates each measurement from the next:
        "per_call_overhead_s": round(project["train_s"] - steps_alone, 3),  # tf.data, Python, launches, last batch
        "elementwise_and_adam_s": round(steps_alone - matmuls_alone, 3),  # sampling, KL, BCE, Adam, gather
        "matmul_shortfall_s": round(matmuls_alone - at_peak, 3),  # small products vs the 4096² peak
        "fraction_without_validation": round(gflop / project["train_s"] / peak, 3),
        "fraction_steps_alone": round(gflop / steps_alone / peak, 3),
        "fraction_matmuls_alone": round(gflop / matmuls_alone / peak, 3),
    }


def run_baseline(x_train, x_test, epochs):
    keras.utils.set_random_seed(0)
    vae = TextbookVAE(build_encoder(2), build_decoder(2))
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = vae.fit(x_train, epochs=epochs, batch_size=128, validation_data=(x_test,), verbose=0,
                      callbacks=[EpochTimer()]).history
    return steady_epoch_seconds(history["seconds"]), float(history["val_loss"][-1])


def script_results(run):
    """One dict per chapter script: its end-to-end seconds (imports, data, 30 epochs, evaluation,
    figures, saving: `seconds_total` of its metrics). With `run`, each script runs now, into a
    temporary --out folder; else the numbers come from the committed models/metrics_*.json."""
    results = []
    for name, script in SCRIPTS.items():
        if run:
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                subprocess.run([sys.executable, str(REPO_ROOT / "code" / script), "--out", out],
                               check=True, stdout=subprocess.DEVNULL)
                wall = time.perf_counter() - start
                metrics = json.loads((Path(out) / "models" / f"metrics_{name}.json").read_text())
            source = "run by this benchmark"
        else:
            metrics = json.loads((REPO_ROOT / "models" / f"metrics_{name}.json").read_text())
            wall, source = None, f"models/metrics_{name}.json"
        results.append({
            "benchmark": "script_end_to_end",
            "script": f"code/{script}",
            "seconds_total": round(metrics["seconds_total"], 1),
            "seconds_training": round(metrics["seconds_training"], 1),
            # (older metrics files lack seconds_training_this_run: their runs were never resumed)
            "seconds_outside_training": round(metrics["seconds_total"] - metrics.get(
                "seconds_training_this_run", metrics["seconds_training"]), 1),
            "median_epoch_s": round(float(np.median(metrics["seconds_per_epoch"])), 2),
            "epochs": metrics["epochs"],
            "test_loss": round(metrics["test_loss"], 2),
            "process_wall_s": None if wall is None else round(wall, 1),
            "device": metrics.get("device"),
            "source": source,
        })
    return results


def gpu_note():
    """None-valued GPU figure, and why: no GPU figure exists unless this run saw one."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return {"gpu": device_name(), "gpu_note": "measured on this GPU (the fused path falls back to Keras' there)"}
    return {"gpu": None, "gpu_note": "no GPU was available to this benchmark: no GPU figure exists"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per measurement (the first is dropped)")
    parser.add_argument("--levers", action="store_true", help="also time each lever separately")
    parser.add_argument("--scripts", action="store_true",
                        help="also run the three chapter scripts end to end (about 5 minutes on 2 cores)")
    parser.add_argument("--explorers", action="store_true",
                        help="also time the page's explorers in Chromium (benchmarks/explorer_speed.py)")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: $VAE_DATA_DIR)")
    parser.add_argument("--save", action="store_true",
                        help="also write the results to benchmarks/*.json (quoted by the README)")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be ≥ 2: the first epoch compiles and is not counted")

    load_before = os.getloadavg()[0]
    (x_train, _), (x_test, _) = load_mnist(args.data_dir)
    peak_at_start = matmul_peak_gflops()
    gflop = training_gflop_per_epoch(len(x_train))

    levers = []
    runs = {}
    settings = [
        ("no XLA, 1 step per call", dict(jit_compile=False, steps_per_execution=1, fused_steps=None)),
        ("no XLA, 64 steps per call", dict(jit_compile=False, steps_per_execution=64, fused_steps=None)),
        ("XLA, 1 step per call", dict(jit_compile=True, steps_per_execution=1, fused_steps=None)),
        ("XLA, 64 steps per call, tf.data autotuning on", dict(steps_per_execution=64, autotune=True, fused_steps=None)),
        (PLAIN_SETTINGS, dict(fused_steps=None)),  # Keras' own loop
        ("XLA, a whole epoch per call", dict(jit_compile=True, steps_per_execution=10_000, fused_steps=None)),
        (FUSED_SETTINGS, {}),  # train()'s defaults: what the scripts use (vae/fused.py)
        ("XLA, a whole epoch fused in one XLA call", dict(fused_steps=10_000)),
    ]
    for name, options in settings:
        if not args.levers and name not in (PLAIN_SETTINGS, FUSED_SETTINGS):
            continue
        runs[name] = run_project(x_train, x_test, args.epochs, **options)
        run = runs[name]
        levers.append({"lever": name, "epoch_s": round(run["epoch_s"], 3), "train_s": round(run["train_s"], 3),
                       "validation_s": round(run["validation_s"], 3), "first_epoch_s": round(run["first_epoch_s"], 1),
                       "val_loss": round(run["val_loss"], 2)})
        print(json.dumps(levers[-1]), flush=True)

    # The project's number: the faster of Keras' plain path and the fused path (if it ran: not on a GPU).
    plain, fused = runs[PLAIN_SETTINGS], runs[FUSED_SETTINGS]
    project_name = FUSED_SETTINGS if fused["fused"] and fused["epoch_s"] < plain["epoch_s"] else PLAIN_SETTINGS
    project = runs[project_name]
    baseline_s, baseline_val_loss = run_baseline(x_train, x_test, args.epochs)
    step_s = steps_alone_seconds_per_step(x_train)
    matmul_s = matmuls_alone_seconds_per_step()
    interleaved = interleaved_ms_per_step(x_train)
    # The 4096² product's speed varies from one measurement to the next on a shared machine (220 to 408
    # GFLOP/s have been seen here): measured at the start and again at the end, the higher is the peak,
    # so that the fraction of it is never flattered by one slow measurement.
    peaks = [peak_at_start, matmul_peak_gflops()]
    peak = max(peaks)
    epoch_s = project["epoch_s"]
    result = {
        "benchmark": "train_speed",
        "epoch_s": round(epoch_s, 3),
        "project_path": project_name,
        "plain_epoch_s": round(plain["epoch_s"], 3),
        "fused_epoch_s": round(fused["epoch_s"], 3) if fused["fused"] else None,
        "fused_note": None if fused["fused"] else "the fused path fell back to Keras' here (vae.fused.why_not_fused)",
        "baseline_epoch_s": round(baseline_s, 3),
        "speedup": round(baseline_s / epoch_s, 2),
        "images_per_s": round(len(x_train) / epoch_s),
        "baseline_images_per_s": round(len(x_train) / baseline_s),
        "steps_per_s": round(-(-len(x_train) // 128) / epoch_s, 1),
        "gflop_per_epoch": round(gflop, 1),
        "achieved_gflops": round(gflop / epoch_s, 1),
        "peak_gflops": round(peak, 1),
        "peak_gflops_measured": [round(value, 1) for value in peaks],  # at the start, at the end
        "fraction_of_peak": round(gflop / epoch_s / peak, 3),
        "target_fraction": TARGET_FRACTION,
        "breakdown": breakdown(project, len(x_train), gflop, peak, step_s, matmul_s),
        # Keras' and the fused 64-step calls alternated in one process: robust to another process's load
        "interleaved_ms_per_step": interleaved,
        "val_loss_after": {"epochs": args.epochs, "project": round(project["val_loss"], 2),
                           "plain": round(plain["val_loss"], 2), "fused": round(fused["val_loss"], 2),
                           "baseline": round(baseline_val_loss, 2)},
        "device": device_name(),
        "cores": os.cpu_count(),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # 1-minute; above `cores`: shared
        **gpu_note(),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "levers": levers,
    }
    print(json.dumps(result), flush=True)
    if args.save:
        save_json(result, HERE / "train_speed.json")

    scripts = script_results(run=args.scripts)
    for line in scripts:
        print(json.dumps(line), flush=True)
    if args.save and args.scripts:
        save_json({"benchmark": "script_end_to_end", "scripts": scripts}, HERE / "scripts_end_to_end.json")

    if args.explorers:
        from explorer_speed import measure_explorers  # beside this file

        explorers = measure_explorers()
        print(json.dumps(explorers), flush=True)
        if args.save:
            save_json(explorers, HERE / "explorer_speed.json")


if __name__ == "__main__":
    main()
