"""Benchmark (not a test): the papers' own networks on dynamically binarized MNIST, reproduced.

    python benchmarks/reproduction.py                     # every row, 3 seeds each; resumes where it stopped
    python benchmarks/reproduction.py --rows davidson-2 --seeds 1 --max-epochs 3   # a short try
    python benchmarks/reproduction.py --summarize-only    # rewrite benchmarks/reproduction.json from the runs

benchmarks/literature.py sets the tutorial's network (784-512-256) beside published numbers; this script
trains the published networks themselves, with their training as the papers state it, so that a
difference from a paper says something about our pipeline rather than about network size:

- davidson-K (K = 2, 5, 10, 20, 40): Davidson et al. 2018's Gaussian VAE ("N-VAE", their Table 1). Encoder
  784-256-128 and decoder 128-256-784, ReLU; Adam at 1e-3, batches of 64; the KL's weight warmed up from 0
  over the first 100 epochs; at most 500 epochs, stopped when the validation −ELBO has not improved for 50
  epochs (the "look-ahead"), the best epoch's weights kept; ln p(x) with 500 importance samples. The
  validation set is the last 10,000 training images (binarized once, seed 1); training uses the first 50,000.
- burda-50: Burda et al. 2016's one-stochastic-layer VAE (their Table 1, k = 1). Encoder 784-200-200-50 and
  decoder 50-200-200-784, tanh; Adam with ε = 1e-4, batches of 20, the learning rate 1e-3·10^(−i/7) for 3^i
  epochs, i = 0…7 (3,280 epochs), on all 60,000 training images; ln p(x) with 5,000 importance samples.

Both papers' test set: the 10,000 test images binarized once (seed 0, vae/data.py); training images drawn
afresh as Bernoulli(pixel) at every step (the chapters' `--binarize dynamic`). The model is the 2-D
chapter's `VAE` (code/vae_2d.py) with these networks in place of its own.

Each run (row, seed) lives in runs/reproduction/<row>/seed<N>/: after every epoch its weights, optimizer and
history are written there in one step, so a run stopped at any moment (Ctrl-C, a kill, the machine's time
running out) resumes after its last whole epoch when the same command is run again (with the weights and the
optimizer's state of that epoch; the random draws after it differ from an uninterrupted run's); a finished run
keeps its result.json and is not trained again. benchmarks/reproduction.json, which the page shows, is rewritten
from those folders after every run and holds, per row, each seed's numbers or how far it got. Beside the
importance-weighted ln p(x) each run records the exact value for k = 2 (by quadrature) and the estimate written
as the authors' TensorFlow example writes it (`one_decode_estimate`), to compare the published numbers with.
"""

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from vae.config import Config  # noqa: E402
from vae.data import TEST_BINARIZATION_SEED, binarize, load_mnist  # noqa: E402
from vae.experiment import device_name  # noqa: E402
from vae.evaluation import encode  # noqa: E402
from vae.inspection import QUADRATURE_LIMIT, posteriors_beyond_grid  # noqa: E402
from vae.likelihood import (LOG_2PI, decoder_log_likelihoods, evidence_lower_bound,  # noqa: E402
                            importance_weighted_log_likelihood, log_likelihood_by_quadrature)
from vae.priors import GaussianPrior  # noqa: E402
from vae.saving import save_json  # noqa: E402
from vae.schedules import KLWarmUp  # noqa: E402
from vae.spread import over_seeds  # noqa: E402
from vae.training import train  # noqa: E402
from vae.variants import build  # noqa: E402
from vae_2d import VAE, Sampling  # noqa: E402  the 2-D chapter's model

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
RUNS = REPO_ROOT / "runs" / "reproduction"
RESULTS = HERE / "reproduction.json"
VALIDATION_IMAGES = 10_000  # the last training images, held out for Davidson et al.'s stopping rule
VALIDATION_SEED = TEST_BINARIZATION_SEED + 1
TOLERANCE = 1.0  # nats: a row reproduces its paper when its mean −ln p(x) and −ELBO are this close
DAVIDSON = {"source": "Davidson et al. 2018, Table 1 (N-VAE)", "hidden": (256, 128), "activation": "relu",
            "batch_size": 64, "warmup_epochs": 100, "max_epochs": 500, "look_ahead": 50, "validation": True,
            "iw_samples": 500}
BURDA = {"source": "Burda et al. 2016, Table 1 (VAE, k = 1, one stochastic layer)", "hidden": (200, 200),
         "activation": "tanh", "batch_size": 20, "warmup_epochs": 0, "max_epochs": 3280, "look_ahead": None,
         "validation": False, "iw_samples": 5000}
# −ln p(x) and −ELBO in nats per test image, as published (Burda et al. give no −ELBO for this model).
ROWS = {
    "davidson-2": {**DAVIDSON, "latent_dim": 2, "nll": 135.73, "nelbo": 137.08},
    "davidson-5": {**DAVIDSON, "latent_dim": 5, "nll": 110.21, "nelbo": 112.98},
    "davidson-10": {**DAVIDSON, "latent_dim": 10, "nll": 93.84, "nelbo": 98.36},
    "davidson-20": {**DAVIDSON, "latent_dim": 20, "nll": 88.90, "nelbo": 94.79},
    "davidson-40": {**DAVIDSON, "latent_dim": 40, "nll": 88.93, "nelbo": 94.91},
    "burda-50": {**BURDA, "latent_dim": 50, "nll": 86.76, "nelbo": None},
}


def paper_encoder(latent_dim, hidden, activation, seed):
    """image (batch, 28, 28, 1) → 784 → hidden… → [z_mean, z_log_var, z], each (batch, latent_dim)."""
    images = keras.Input(shape=(28, 28, 1), name="image")
    x = layers.Flatten()(images)
    for units in hidden:
        x = layers.Dense(units, activation=activation)(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling(seed=seed, name="z")([z_mean, z_log_var])
    return keras.Model(images, [z_mean, z_log_var, z], name="encoder")


def paper_decoder(latent_dim, hidden, activation):
    """z (batch, latent_dim) → reversed(hidden)… → 784 logits → pixel means (batch, 28, 28, 1)."""
    z = keras.Input(shape=(latent_dim,), name="z")
    x = z
    for units in reversed(hidden):
        x = layers.Dense(units, activation=activation)(x)
    logits = layers.Dense(784, name="logits")(x)
    pixels = layers.Activation("sigmoid", name="pixel_means")(logits)
    return keras.Model(z, layers.Reshape((28, 28, 1), name="image")(pixels), name="decoder")


def optimizer_for(row, steps_per_epoch):
    """Adam at 1e-3; for Burda et al., ε = 1e-4 and the rate 1e-3·10^(−i/7) for 3^i epochs, i = 0…7."""
    if row["activation"] != "tanh":
        return keras.optimizers.Adam(1e-3)
    boundaries = list(np.cumsum([3 ** i * steps_per_epoch for i in range(7)]))
    rates = [1e-3 * 10 ** (-i / 7) for i in range(8)]
    return keras.optimizers.Adam(keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, rates), epsilon=1e-4)


def build_model(row, seed, steps_per_epoch):
    config = Config(latent_dim=row["latent_dim"], epochs=row["max_epochs"], binarize="dynamic", seed=seed,
                    kl_warmup_epochs=row["warmup_epochs"]).check()
    vae = build(VAE, paper_encoder(row["latent_dim"], row["hidden"], row["activation"], seed),
                paper_decoder(row["latent_dim"], row["hidden"], row["activation"]), config)
    vae.compile(optimizer=optimizer_for(row, steps_per_epoch))
    vae.optimizer.build(vae.trainable_variables)  # so that a checkpoint's optimizer state can be loaded into it
    return vae


class RunFolder:
    """runs/reproduction/<row>/seed<N>/: state/ (latest.weights.h5 with the optimizer, best.weights.h5 and
    state.json: the epochs done, their validation −ELBO and seconds, the best epoch), replaced in one step
    after every epoch; result.json once the run is finished and measured."""

    def __init__(self, name, seed):
        self.folder = RUNS / name / f"seed{seed}"
        self.state, self.result = self.folder / "state", self.folder / "result.json"

    def load_state(self):
        """state.json's contents, or None if there is no whole state yet (a swap cut short is completed)."""
        old = self.folder / "state.old"
        if not self.state.exists() and old.exists():
            os.replace(old, self.state)  # killed between the two renames of `save`
        try:
            return json.loads((self.state / "state.json").read_text())
        except (OSError, ValueError):
            return None

    def save(self, vae, state):
        partial = self.folder / "state.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        vae.save_weights(partial / "latest.weights.h5")
        if state["best_epoch"] == state["epoch"]:
            shutil.copyfile(partial / "latest.weights.h5", partial / "best.weights.h5")
        else:
            os.link(self.state / "best.weights.h5", partial / "best.weights.h5")
        save_json(state, partial / "state.json")
        old = self.folder / "state.old"
        shutil.rmtree(old, ignore_errors=True)
        if self.state.exists():
            os.replace(self.state, old)
        os.replace(partial, self.state)
        shutil.rmtree(old, ignore_errors=True)


class Checkpoint(keras.callbacks.Callback):
    """After every epoch: the validation −ELBO (β = 1, whatever the warm-up's weight), the best epoch, the
    state written in one step, one line of progress; stops training when the look-ahead runs out."""

    def __init__(self, run, state, row, what):
        super().__init__()
        self.run, self.state, self.row, self.what = run, state, row, what
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        state = self.state
        state["epoch"] = epoch + 1
        state["seconds"].append(round(time.perf_counter() - self.started, 2))
        if self.row["validation"]:
            value = logs["val_reconstruction"] + logs["val_kl"]
            state["val_nelbo"].append(round(float(value), 3))
            if state["best_epoch"] == 0 or value < state["val_nelbo"][state["best_epoch"] - 1]:
                state["best_epoch"] = epoch + 1
        else:
            state["best_epoch"] = epoch + 1  # no validation: the last epoch is the model
        self.run.save(self.model, state)
        line = f"{self.what}: epoch {epoch + 1} of at most {self.row['max_epochs']} ({state['seconds'][-1]:.1f} s)"
        if self.row["validation"]:
            line += (f", validation −ELBO {state['val_nelbo'][-1]:.2f}, best {min(state['val_nelbo']):.2f} "
                     f"at epoch {state['best_epoch']}")
        print(line, flush=True)
        if stopped_early(state, self.row):
            self.model.stop_training = True


def stopped_early(state, row):
    """Whether the look-ahead ran out: past the warm-up, `look_ahead` epochs without a better validation −ELBO."""
    return (row["look_ahead"] is not None and state["epoch"] >= row["warmup_epochs"] + row["look_ahead"]
            and state["epoch"] - state["best_epoch"] >= row["look_ahead"])


def finished(state, row, max_epochs):
    return state is not None and (state["epoch"] >= max_epochs or stopped_early(state, row))


def measure(vae, row, x_test, what):
    """The test set's mean ELBO (one posterior sample per image) and importance-weighted ln p(x), nats."""
    prior = GaussianPrior.standard(row["latent_dim"])
    elbo = evidence_lower_bound(vae.encoder, vae.decoder, prior, x_test)
    started = time.perf_counter()

    def progress(done, total):
        print(f"{what}: ln p(x) with K = {row['iw_samples']:,}: {done:,} of {total:,} test images "
              f"({time.perf_counter() - started:.0f} s)", flush=True)

    estimate = importance_weighted_log_likelihood(vae.encoder, vae.decoder, prior, x_test, row["iw_samples"],
                                                  seed=1, progress=progress if len(x_test) > 2000 else None)
    measured = {"test_elbo": round(float(elbo.mean()), 3), "iw_log_likelihood": round(float(estimate.mean()), 3),
                "iw_standard_error": round(float(estimate.std() / math.sqrt(len(estimate))), 3),
                "iw_one_decode": round(float(one_decode_estimate(vae, prior, x_test, row["iw_samples"]).mean()), 3)}
    if row["latent_dim"] == 2:  # the exact value, by quadrature (vae/likelihood.py), and whether the grid holds it
        pixels = x_test.reshape(len(x_test), -1)
        exact = log_likelihood_by_quadrature(decoder_log_likelihoods(vae.decoder), prior.cholesky, pixels)
        z_mean, z_log_var = encode(vae.encoder, x_test)
        measured["exact_log_likelihood"] = round(float(np.mean(exact)), 3)
        measured["posteriors_beyond_grid"] = posteriors_beyond_grid(z_mean, z_log_var, prior.cholesky,
                                                                    QUADRATURE_LIMIT)
    return {**measured, "seconds_evaluating": round(time.perf_counter() - started, 1)}


def one_decode_estimate(vae, prior, images, samples, seed=2):
    """The K-sample estimate written as in the authors' TensorFlow example (github.com/nicola-decao/s-vae-tf,
    examples/mnist.py): K draws z_i ~ q(z|x) enter p(z_i) and q(z_i|x), but the decoder's term ln p(x|z₀) is
    that of one more draw z₀, the same for all K. (N,) nats. Not an estimate of ln p(x): kept only to compare
    with published numbers that may have been computed so."""
    z_mean, z_log_var = (values.astype(np.float64) for values in encode(vae.encoder, images))
    rng = np.random.default_rng(seed)
    sigma = np.exp(0.5 * z_log_var)
    z0 = (z_mean + sigma * rng.standard_normal(z_mean.shape)).astype(np.float32)
    log_likelihoods = decoder_log_likelihoods(vae.decoder)
    pixels = images.reshape(len(images), -1).astype(np.float32)
    decoded = np.concatenate([np.diagonal(log_likelihoods(pixels[i:i + 500], z0[i:i + 500]).numpy())
                              for i in range(0, len(images), 500)])
    estimates = np.empty(len(images))
    for start in range(0, len(images), 500):
        mean, log_var = z_mean[start:start + 500], z_log_var[start:start + 500]
        epsilon = rng.standard_normal((len(mean), samples, mean.shape[1]))
        z = mean[:, None, :] + np.exp(0.5 * log_var)[:, None, :] * epsilon
        log_prior = prior.log_density(z.reshape(-1, z.shape[-1])).reshape(z.shape[:2])
        log_posterior = -0.5 * (LOG_2PI * mean.shape[1] + log_var.sum(axis=1)[:, None]
                                + (epsilon ** 2).sum(axis=-1))
        ratio = log_prior - log_posterior
        top = ratio.max(axis=1)
        estimates[start:start + len(mean)] = top + np.log(np.mean(np.exp(ratio - top[:, None]), axis=1))
    return decoded + estimates


def run_one(name, seed, data, max_epochs, remeasure=False):
    """Train (or resume) and measure one run; returns its result, or None if it was already finished (with
    `remeasure`, a finished run is measured again from its kept weights instead)."""
    row, run = ROWS[name], RunFolder(name, seed)
    what = f"{name} seed {seed}"
    if run.result.exists() and not remeasure:
        print(f"{what}: finished earlier ({run.result})")
        return None
    x_train, x_val, x_test = data
    if not row["validation"]:
        x_train = np.concatenate([x_train, x_val])
    steps_per_epoch = -(-len(x_train) // row["batch_size"])
    keras.utils.set_random_seed(seed)
    vae = build_model(row, seed, steps_per_epoch)
    state = run.load_state()
    if state is None:
        state = {"epoch": 0, "best_epoch": 0, "val_nelbo": [], "seconds": []}
    else:
        vae.load_weights(run.state / "latest.weights.h5")
        print(f"{what}: resuming after epoch {state['epoch']} ({run.state})", flush=True)
    if not finished(state, row, max_epochs) and not run.result.exists():
        callbacks = [KLWarmUp(row["warmup_epochs"])] if row["warmup_epochs"] else []
        callbacks.append(Checkpoint(run, state, row, what))
        print(f"{what}: training on {len(x_train):,} images, batches of {row['batch_size']}", flush=True)
        train(vae, x_train, x_val if row["validation"] else x_test[:1000], max_epochs, row["batch_size"],
              learning_rate=None, seed=seed + 1000 * state["epoch"], verbose=0, callbacks=callbacks,
              initial_epoch=state["epoch"])
        state = run.load_state()
    if not finished(state, row, row["max_epochs"]):
        print(f"{what}: stopped after epoch {state['epoch']} of at most {row['max_epochs']} (--max-epochs); "
              f"run again without it to go on")
        return None
    vae.load_weights(run.state / "best.weights.h5")
    result = {"seed": seed, "epochs": state["epoch"], "best_epoch": state["best_epoch"],
              "median_epoch_s": float(np.median(state["seconds"])) if state["seconds"] else None,
              **measure(vae, row, x_test, what)}
    save_json(result, run.result)
    print(f"{what}: −ELBO {-result['test_elbo']:.2f}, −ln p(x) {-result['iw_log_likelihood']:.2f} "
          f"(published {row['nll']:.2f}) after {result['epochs']} epochs", flush=True)
    return result


def summarize(seeds):
    """benchmarks/reproduction.json from the run folders: per row the finished seeds' numbers, their mean
    and sample sd, the gaps to the published values, and how far each unfinished seed got."""
    rows = []
    for name, row in ROWS.items():
        finished_runs, unfinished = [], []
        for seed in range(seeds):
            run = RunFolder(name, seed)
            if run.result.exists():
                finished_runs.append(json.loads(run.result.read_text()))
                continue
            state = run.load_state()
            if state is not None:
                unfinished.append({"seed": seed, "epochs": state["epoch"], "best_epoch": state["best_epoch"],
                                   "best_val_nelbo": min(state["val_nelbo"]) if state["val_nelbo"] else None,
                                   "median_epoch_s": float(np.median(state["seconds"]))})
            else:
                unfinished.append({"seed": seed, "epochs": 0})
        entry = {"row": name, "latent_dim": row["latent_dim"], "source": row["source"],
                 "protocol": {"hidden": list(row["hidden"]), **{key: row[key] for key in (
                     "activation", "batch_size", "warmup_epochs", "max_epochs", "look_ahead")}},
                 "published_nll": row["nll"], "published_nelbo": row["nelbo"], "iw_samples": row["iw_samples"],
                 "seeds": finished_runs, "unfinished": unfinished, "nll": None, "nelbo": None, "nll_one_decode": None,
                 "nll_exact": None, "gap_nll": None, "gap_nelbo": None, "gap_nll_one_decode": None,
                 "above_elbo": None, "reproduced": False}
        if finished_runs:
            names = {"nll": "iw_log_likelihood", "nelbo": "test_elbo", "nll_one_decode": "iw_one_decode",
                     "nll_exact": "exact_log_likelihood"}
            spread = over_seeds({r["seed"]: {metric: -r[key] if r.get(key) is not None else None
                                             for metric, key in names.items()} for r in finished_runs}, list(names))
            for metric in names:  # {mean, sd, min, max} over the seeds, or None where a seed lacks the number
                entry[metric] = ({key: spread[key][metric] for key in ("mean", "sd", "min", "max")}
                                 if metric in spread["mean"] else None)
            entry["gap_nll"] = round(entry["nll"]["mean"] - row["nll"], 3)
            entry["gap_nelbo"] = round(entry["nelbo"]["mean"] - row["nelbo"], 3) if row["nelbo"] else None
            entry["gap_nll_one_decode"] = (round(entry["nll_one_decode"]["mean"] - row["nll"], 3)
                                           if entry["nll_one_decode"] else None)
            beyond = [r["posteriors_beyond_grid"] for r in finished_runs if "posteriors_beyond_grid" in r]
            entry["posteriors_beyond_grid"] = max(beyond) if beyond else None  # the most in one seed (k = 2)
            # How far each estimate of ln p(x) sits above the ELBO (ours: the seeds' means), and the published one.
            entry["above_elbo"] = {
                "iw": round(entry["nelbo"]["mean"] - entry["nll"]["mean"], 3),
                "one_decode": (round(entry["nelbo"]["mean"] - entry["nll_one_decode"]["mean"], 3)
                               if entry["nll_one_decode"] else None),
                "exact": round(entry["nelbo"]["mean"] - entry["nll_exact"]["mean"], 3) if entry["nll_exact"] else None,
                "published": round(row["nelbo"] - row["nll"], 3) if row["nelbo"] else None}
            entry["reproduced"] = (len(finished_runs) >= 3 and abs(entry["gap_nll"]) <= TOLERANCE
                                   and (entry["gap_nelbo"] is None or abs(entry["gap_nelbo"]) <= TOLERANCE))
        rows.append(entry)
    result = {"benchmark": "reproduction", "tolerance_nats": TOLERANCE, "seeds_asked": seeds, "rows": rows,
              "device": device_name(), "cores": os.cpu_count()}
    save_json(result, RESULTS)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {', '.join(ROWS)} (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 … N−1 of each row (default: 3)")
    parser.add_argument("--max-epochs", type=int, help="stop each run after this many epochs, to go on later "
                                                       "(default: the paper's)")
    parser.add_argument("--test-images", type=int, default=10_000, help="measure on the first N test images")
    parser.add_argument("--data-dir", help="MNIST folder (default: as the scripts)")
    parser.add_argument("--summarize-only", action="store_true", help="only rewrite benchmarks/reproduction.json")
    parser.add_argument("--remeasure", action="store_true",
                        help="measure the finished runs again from their kept weights (after a change to `measure`)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.rows.split(",") if name.strip()]
    if unknown := [name for name in names if name not in ROWS]:
        parser.error(f"--rows: unknown {unknown}; choose from {', '.join(ROWS)}")
    if args.seeds < 1 or (args.max_epochs is not None and args.max_epochs < 1) or not 1 <= args.test_images <= 10_000:
        parser.error("--seeds and --max-epochs must be at least 1, --test-images from 1 to 10,000")
    if not args.summarize_only:
        (x_train, _), (x_test, _) = load_mnist(args.data_dir)
        if len(x_train) <= VALIDATION_IMAGES:
            parser.error(f"the training set has {len(x_train):,} images; the last {VALIDATION_IMAGES:,} are held "
                         f"out for validation, so it needs more")
        data = (x_train[:-VALIDATION_IMAGES], binarize(x_train[-VALIDATION_IMAGES:], VALIDATION_SEED),
                binarize(x_test, TEST_BINARIZATION_SEED)[:args.test_images])
        try:
            for name in names:
                for seed in range(args.seeds):
                    max_epochs = min(args.max_epochs or ROWS[name]["max_epochs"], ROWS[name]["max_epochs"])
                    if run_one(name, seed, data, max_epochs, args.remeasure) is not None:
                        summarize(args.seeds)
        except KeyboardInterrupt:
            summarize(args.seeds)
            raise SystemExit(f"Interrupted. Every run resumes after its last whole epoch (kept in {RUNS}): run "
                             f"the same command again to go on; {RESULTS} holds what is finished.") from None
    written = summarize(args.seeds)
    for entry in written["rows"]:
        done = len(entry["seeds"])
        if done:
            print(f"{entry['row']}: {done} seeds, −ln p(x) {entry['nll']['mean']:.2f} ± {entry['nll']['sd'] or 0:.2f} "
                  f"(published {entry['published_nll']:.2f})")
        else:
            print(f"{entry['row']}: no seed finished yet")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
