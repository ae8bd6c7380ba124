"""Benchmark (not a test): the tutorial's VAE on dynamically binarized MNIST, beside published numbers.

    python benchmarks/literature.py --save                        # latent sizes 2, 5, 20, 50
    python benchmarks/literature.py --latent-dims 20 --epochs 5   # one short row, to try it

For each latent size it trains the tutorial's model as the chapters build it (code/vae_2d.py, with --binarize
dynamic: a 784-512-256 MLP encoder and its mirror decoder, a Bernoulli likelihood, the N(0, I) prior; Adam at
1e-3, batches of 128, the fused training path) on dynamically binarized MNIST: every training image
drawn afresh as Bernoulli(pixel) at every step, the 10,000 test images drawn once with seed 0
(vae/data.py), the protocol of the papers below. On those test images it reports

  - the ELBO (one posterior sample per image, as training computes it),
  - the importance-weighted ln p(x) with K = 5,000 samples per image (Burda et al. 2016),
  - for two latent dimensions, the exact ln p(x) by quadrature (vae/likelihood.py),
  - the learning curve: every --curve-every epochs, the K = 100 estimate on the first 1,000 test images,

beside the published figures for a Gaussian VAE with an MLP. With --save it writes
benchmarks/literature.json and assets/literature_curves.png, which the README and the page show: each
row as soon as it is done, merged with the rows already there (under a lock, so that two --save runs
at once both keep theirs). Rows of another protocol (another number of test images, say) are never
dropped without --fresh. It is not run by the tests; its recorded times are at the end of --help.
"""

import argparse
import contextlib
import fcntl
import json
import os
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vae.config import Config  # noqa: E402
from vae.data import BINARIZATION_PROTOCOL, TEST_BINARIZATION_SEED, binarize, load_mnist  # noqa: E402
from vae.experiment import device_name  # noqa: E402
from vae.figures import COLUMN_WIDTH, save_png  # noqa: E402
from vae.likelihood import (decoder_log_likelihoods, evidence_lower_bound,  # noqa: E402
                            importance_weighted_log_likelihood, log_likelihood_by_quadrature)
from vae.priors import GaussianPrior  # noqa: E402
from vae.saving import save_json  # noqa: E402
from vae.training import train  # noqa: E402
from vae.variants import build  # noqa: E402
from vae_2d import VAE, build_decoder, build_encoder  # noqa: E402  the 2-D chapter's model

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
# −ln p(x) and −ELBO in nats on dynamically binarized MNIST's test set, Gaussian VAEs with MLPs.
PUBLISHED = {
    2: {"nll": 135.73, "nelbo": 137.08, "source": "Davidson et al. 2018, Table 1 (N-VAE, MLP 256-128)"},
    5: {"nll": 110.21, "nelbo": 112.98, "source": "Davidson et al. 2018, Table 1 (N-VAE, MLP 256-128)"},
    20: {"nll": 88.90, "nelbo": 94.79, "source": "Davidson et al. 2018, Table 1 (N-VAE, MLP 256-128)"},
    50: {"nll": 86.76, "nelbo": None, "source": "Burda et al. 2016, Table 1 (VAE, k = 1, one stochastic layer)"},
}
FINAL_SAMPLES = 5000
CURVE_SAMPLES, CURVE_IMAGES = 100, 1000
EVALUATION_CHUNK = 1000  # test images per step of the final estimate, each step reported
RESULTS = HERE / "literature.json"


def recorded_times(path):
    """What `path` records of the benchmark's times, in words, for --help."""
    try:
        recorded = json.loads(Path(path).read_text())
        rows = [(row["latent_dim"], row["epochs"], row["seconds_training"], row["seconds_evaluating"])
                for row in recorded["rows"]]
    except (OSError, ValueError, KeyError, TypeError):
        return f"No times are recorded yet ({Path(path).name} holds them once written)."
    if not rows:
        return f"No times are recorded yet ({Path(path).name} holds no row)."
    each = "; ".join(f"latent {dim}, {epochs} epochs: {train:,.0f} s training, {evaluate:,.0f} s evaluating"
                     for dim, epochs, train, evaluate in rows)
    total = sum(train + evaluate for _, _, train, evaluate in rows)
    return (f"Times recorded in {Path(path).name} ({recorded.get('device', 'device not recorded')}, "
            f"{recorded.get('cores', '?')} cores): {each}; {total:,.0f} s in all.")


class LikelihoodCurve(keras.callbacks.Callback):
    """Every `every` epochs (and after the last), the K-sample estimate of ln p(x) on `images`:
    `points` gets (epoch, mean ln p(x) in nats, the ELBO's mean), one per measurement."""

    def __init__(self, images, prior, every, epochs):
        super().__init__()
        self.images, self.prior, self.every, self.epochs = images, prior, every, epochs
        self.points = []

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.every == 0 or done == self.epochs:
            print(f"  learning curve after epoch {done}: ln p(x) with K = {CURVE_SAMPLES} on {len(self.images):,} "
                  f"test images", flush=True)
            encoder, decoder = self.model.encoder, self.model.decoder
            estimate = importance_weighted_log_likelihood(encoder, decoder, self.prior, self.images, CURVE_SAMPLES)
            elbo = evidence_lower_bound(encoder, decoder, self.prior, self.images)
            self.points.append({"epoch": done, "iw_log_likelihood": round(float(estimate.mean()), 3),
                                "elbo": round(float(elbo.mean()), 3)})
            print(json.dumps({"latent_dim": int(self.prior.covariance.shape[0]), **self.points[-1]}), flush=True)


class EpochLine(keras.callbacks.Callback):
    """After each epoch, one line: "<what>: epoch 3 of 100, val_loss 98.21 (4.1 s)"."""

    def __init__(self, what, epochs):
        super().__init__()
        self.what, self.epochs = what, epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        print(f"{self.what}: epoch {epoch + 1} of {self.epochs}, val_loss {logs['val_loss']:.2f} "
              f"({time.perf_counter() - self.started:.1f} s)", flush=True)


def estimate_in_steps(vae, prior, images, what):
    """The K = FINAL_SAMPLES estimate of ln p(x) per image, (N,), EVALUATION_CHUNK images at a time, with a
    line after each step; step i draws its samples with seed i."""
    estimates = []
    for step, start in enumerate(range(0, len(images), EVALUATION_CHUNK)):
        chunk = images[start:start + EVALUATION_CHUNK]
        estimates.append(importance_weighted_log_likelihood(vae.encoder, vae.decoder, prior, chunk, FINAL_SAMPLES,
                                                            seed=step))
        print(f"{what}: evaluating ln p(x) (K = {FINAL_SAMPLES:,}): {start + len(chunk):,} of {len(images):,} "
              f"images", flush=True)
    return np.concatenate(estimates)


def run(latent_dim, x_train, x_test, epochs, curve_every, seed=0, what=None):
    """Train one model and measure it, saying how far along it is in lines that start with `what`;
    returns its row of the results."""
    what = what or f"latent {latent_dim}"
    keras.utils.set_random_seed(seed)
    prior = GaussianPrior.standard(latent_dim)
    # The chapter's VAE as `--binarize dynamic` extends it: each training step sees a fresh binary draw.
    config = Config(latent_dim=latent_dim, epochs=epochs, binarize="dynamic", seed=seed).check()
    vae = build(VAE, build_encoder(latent_dim, seed=seed), build_decoder(latent_dim), config)
    curve = LikelihoodCurve(x_test[:CURVE_IMAGES], prior, curve_every, epochs)
    print(f"{what}: training {epochs} epochs on {len(x_train):,} images", flush=True)
    history = train(vae, x_train, x_test, epochs, 128, 1e-3, seed=seed, verbose=0,
                    callbacks=[EpochLine(what, epochs), curve])
    seconds_training = sum(history["seconds"])  # the epochs alone, validation included, not the curve's estimates
    started = time.perf_counter()
    elbo = evidence_lower_bound(vae.encoder, vae.decoder, prior, x_test)
    estimate = estimate_in_steps(vae, prior, x_test, what)
    row = {
        "latent_dim": latent_dim,
        "epochs": epochs,
        "seconds_training": round(seconds_training, 1),
        "median_epoch_s": round(float(np.median(history["seconds"])), 3),
        "test_elbo": round(float(elbo.mean()), 3),
        "iw_samples": FINAL_SAMPLES,
        "iw_log_likelihood": round(float(estimate.mean()), 3),
        "iw_standard_error": round(float(estimate.std() / np.sqrt(len(estimate))), 3),
        "seconds_evaluating": round(time.perf_counter() - started, 1),
        "final_val_loss": round(history["val_loss"][-1], 3),
        "curve": curve.points,
        "published_nll": PUBLISHED[latent_dim]["nll"],
        "published_nelbo": PUBLISHED[latent_dim]["nelbo"],
        "published_source": PUBLISHED[latent_dim]["source"],
    }
    if latent_dim == 2:
        pixels = x_test.reshape(len(x_test), -1)
        print(f"{what}: the exact ln p(x) by quadrature", flush=True)
        exact = log_likelihood_by_quadrature(decoder_log_likelihoods(vae.decoder), prior.cholesky, pixels)
        row["exact_log_likelihood"] = round(float(np.mean(exact)), 3)
    row["gap_to_published_nll"] = round(-row["iw_log_likelihood"] - row["published_nll"], 3)
    print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
    return row


def plot_curves(rows, path):
    """−ln p(x) (K = 100, first 1,000 test images) against epochs, one line per latent size, with the
    published −ln p(x) as a dashed line of the same color."""
    figure, ax = plt.subplots(figsize=(COLUMN_WIDTH, 4.2))
    for row, color in zip(rows, plt.get_cmap("tab10").colors):
        epochs = [point["epoch"] for point in row["curve"]]
        ax.plot(epochs, [-point["iw_log_likelihood"] for point in row["curve"]], "o-", color=color,
                label=f"latent {row['latent_dim']}")
        ax.axhline(row["published_nll"], color=color, linestyle="--", linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("−ln p(x), nats per image")
    ax.set_title("Ours (solid; K = 100, 1,000 test images) against the published (dashed)", fontsize=12)
    ax.legend(ncols=2, fontsize=11, loc="center right")  # where the curves leave room, between 2 and 5
    ax.grid(alpha=0.3)
    save_png(figure, path)


class OtherProtocol(Exception):
    """The results file holds rows measured under another protocol, which a merge would drop."""


def merged(earlier, result, keep_earlier=True):
    """`result` (this run's: its protocol, rows and machine) with the rows of `earlier` (the file's, or None)
    that it has no row for, sorted by latent size. Rows of another protocol raise OtherProtocol, unless
    `keep_earlier` is False: then `earlier` is dropped whole."""
    if earlier is None or not keep_earlier:
        return {**result, "rows": sorted(result["rows"], key=lambda row: row["latent_dim"])}
    if earlier.get("protocol") != result["protocol"]:
        raise OtherProtocol(f"{len(earlier.get('rows', []))} rows measured with another protocol "
                            f"({earlier.get('protocol')!r})")
    mine = {row["latent_dim"] for row in result["rows"]}
    rows = [row for row in earlier["rows"] if row["latent_dim"] not in mine] + result["rows"]
    return {**result, "rows": sorted(rows, key=lambda row: row["latent_dim"])}


@contextlib.contextmanager
def locked(folder):
    """Hold an exclusive lock on `folder` (fcntl.flock on the folder itself, so no lock file is left
    behind): one --save at a time reads, merges and writes the results file in it."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def save_merged(result, path, keep_earlier=True):
    """Merge `result` into the results file `path` (see `merged`) and write it, under the lock of its
    folder; returns what was written. OtherProtocol if the file holds rows of another protocol."""
    with locked(Path(path).parent):
        earlier = json.loads(Path(path).read_text()) if Path(path).exists() else None
        written = merged(earlier, result, keep_earlier)
        save_json(written, path)
    return written


def read_results(path):
    """The results file's contents, or None if there is none; SystemExit naming the file if unreadable."""
    try:
        return json.loads(Path(path).read_text()) if Path(path).exists() else None
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: {path} is unreadable ({error}); move it away, or give --fresh to replace it")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, epilog=textwrap.fill(recorded_times(RESULTS), 100),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latent-dims", default="2,5,20,50", help="comma-separated (default: 2,5,20,50)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs per model (default: 100)")
    parser.add_argument("--curve-every", type=int, default=10, help="epochs between learning-curve points")
    parser.add_argument("--test-images", type=int, default=10_000,
                        help="evaluate on the first N binarized test images (default: all 10,000)")
    parser.add_argument("--data-dir", help="MNIST folder (default: as the scripts)")
    parser.add_argument("--save", action="store_true",
                        help="write benchmarks/literature.json (after each latent size) and assets/literature_curves.png")
    parser.add_argument("--fresh", action="store_true",
                        help="with --save: do not keep the rows already written (needed to replace rows of "
                             "another protocol)")
    parser.add_argument("--plot", action="store_true",
                        help="only redraw assets/literature_curves.png from benchmarks/literature.json")
    args = parser.parse_args(argv)
    try:
        latent_dims = [int(value) for value in args.latent_dims.split(",")]
    except ValueError:
        parser.error(f"--latent-dims must be whole numbers separated by commas, got {args.latent_dims!r}")
    if unknown := [d for d in latent_dims if d not in PUBLISHED]:
        parser.error(f"--latent-dims: no published figure for {unknown}; choose from {sorted(PUBLISHED)}")
    if args.epochs < 1 or args.curve_every < 1 or not 1 <= args.test_images <= 10_000:
        parser.error("--epochs and --curve-every must be at least 1, --test-images from 1 to 10,000")

    if args.plot:
        plot_curves(json.loads(RESULTS.read_text())["rows"], REPO_ROOT / "assets" / "literature_curves.png")
        return
    protocol = (f"dynamically binarized MNIST: {BINARIZATION_PROTOCOL}; ln p(x) in nats per image over the "
                f"{args.test_images:,} test images")
    earlier = read_results(RESULTS) if args.save and not args.fresh else None
    if earlier is not None and earlier.get("protocol") != protocol:  # said now, not after an hour of training
        parser.error(f"--save would drop the {len(earlier.get('rows', []))} rows of {RESULTS}, measured with "
                     f"another protocol ({earlier.get('protocol')!r}); give --fresh to replace them")
    load_before = os.getloadavg()[0]
    (x_train, _), (x_test, _) = load_mnist(args.data_dir)
    x_test = binarize(x_test, TEST_BINARIZATION_SEED)[:args.test_images]
    result = {
        "benchmark": "literature",
        "protocol": protocol,
        "model": "the tutorial's MLP (784-512-256, mirrored), Bernoulli likelihood, N(0, I) prior, Adam 1e-3, batch 128",
        "rows": [],
        "device": device_name(),
        "cores": os.cpu_count(),
    }
    # A row takes minutes: with --save each is written as soon as it is done, merged with the rows in the
    # file, and a rerun with the same protocol keeps the rows already written, each with its own epochs
    # (--fresh starts over).
    kept = {row["latent_dim"] for row in earlier["rows"]} if earlier is not None else set()
    to_run = [latent_dim for latent_dim in latent_dims if latent_dim not in kept]
    for latent_dim in sorted(kept & set(latent_dims)):
        print(f"latent {latent_dim}: kept from {RESULTS}")
    written = None
    for number, latent_dim in enumerate(to_run, 1):
        what = f"model {number} of {len(to_run)} (latent {latent_dim})"
        result["rows"].append(run(latent_dim, x_train, x_test, args.epochs, args.curve_every, what=what))
        result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        if args.save:
            try:  # --fresh drops the file's earlier rows at the first save; later saves keep what is there
                written = save_merged(result, RESULTS, keep_earlier=not args.fresh or number > 1)
            except OtherProtocol as error:  # written by another run since this one started
                raise SystemExit(f"error: {RESULTS} now holds {error}; this run's rows are not saved: "
                                 f"give --fresh to replace them") from None
    if args.save:
        rows = (written or read_results(RESULTS) or {"rows": []})["rows"]
        plot_curves(rows, REPO_ROOT / "assets" / "literature_curves.png")
        print(f"wrote {RESULTS} and {REPO_ROOT / 'assets' / 'literature_curves.png'}")


if __name__ == "__main__":
    main()
