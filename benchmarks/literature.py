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
benchmarks/literature.json and assets/literature_curves.png, which the README and the page show.
Its runs take about 30 minutes on 2 cores (most of it the K = 5,000 estimates); it is not run by the tests.
"""

import argparse
import json
import os
import sys
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
            encoder, decoder = self.model.encoder, self.model.decoder
            estimate = importance_weighted_log_likelihood(encoder, decoder, self.prior, self.images, CURVE_SAMPLES)
            elbo = evidence_lower_bound(encoder, decoder, self.prior, self.images)
            self.points.append({"epoch": done, "iw_log_likelihood": round(float(estimate.mean()), 3),
                                "elbo": round(float(elbo.mean()), 3)})
            print(json.dumps({"latent_dim": int(self.prior.covariance.shape[0]), **self.points[-1]}), flush=True)


def run(latent_dim, x_train, x_test, epochs, curve_every, seed=0):
    """Train one model and measure it; returns its row of the results."""
    keras.utils.set_random_seed(seed)
    prior = GaussianPrior.standard(latent_dim)
    # The chapter's VAE as `--binarize dynamic` extends it: each training step sees a fresh binary draw.
    config = Config(latent_dim=latent_dim, epochs=epochs, binarize="dynamic", seed=seed).check()
    vae = build(VAE, build_encoder(latent_dim, seed=seed), build_decoder(latent_dim), config)
    curve = LikelihoodCurve(x_test[:CURVE_IMAGES], prior, curve_every, epochs)
    history = train(vae, x_train, x_test, epochs, 128, 1e-3, seed=seed, verbose=0, callbacks=[curve])
    seconds_training = sum(history["seconds"])  # the epochs alone, validation included, not the curve's estimates
    started = time.perf_counter()
    elbo = evidence_lower_bound(vae.encoder, vae.decoder, prior, x_test)
    estimate = importance_weighted_log_likelihood(vae.encoder, vae.decoder, prior, x_test, FINAL_SAMPLES)
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latent-dims", default="2,5,20,50", help="comma-separated (default: 2,5,20,50)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs per model (default: 100)")
    parser.add_argument("--curve-every", type=int, default=10, help="epochs between learning-curve points")
    parser.add_argument("--test-images", type=int, default=10_000,
                        help="evaluate on the first N binarized test images (default: all 10,000)")
    parser.add_argument("--data-dir", help="MNIST folder (default: as the scripts)")
    parser.add_argument("--save", action="store_true",
                        help="write benchmarks/literature.json (after each latent size) and assets/literature_curves.png")
    parser.add_argument("--fresh", action="store_true", help="with --save: do not keep the rows already written")
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
        plot_curves(json.loads((HERE / "literature.json").read_text())["rows"], REPO_ROOT / "assets" / "literature_curves.png")
        return
    load_before = os.getloadavg()[0]
    (x_train, _), (x_test, _) = load_mnist(args.data_dir)
    x_test = binarize(x_test, TEST_BINARIZATION_SEED)[:args.test_images]
    result = {
        "benchmark": "literature",
        "protocol": f"dynamically binarized MNIST: {BINARIZATION_PROTOCOL}; ln p(x) in nats per image over the "
                    f"{len(x_test):,} test images",
        "model": "the tutorial's MLP (784-512-256, mirrored), Bernoulli likelihood, N(0, I) prior, Adam 1e-3, batch 128",
        "rows": [],
        "device": device_name(),
        "cores": os.cpu_count(),
    }
    # A row takes minutes: with --save each is written as soon as it is done, and a rerun with the same
    # protocol keeps the rows already written, each with its own epochs (--fresh starts over).
    path = HERE / "literature.json"
    if args.save and not args.fresh and path.exists():
        earlier = json.loads(path.read_text())
        if earlier.get("protocol") == result["protocol"]:
            result["rows"] = earlier["rows"]  # each row names its own epochs
    for latent_dim in latent_dims:
        if any(row["latent_dim"] == latent_dim for row in result["rows"]):
            print(f"latent {latent_dim}: kept from {path}")
            continue
        result["rows"].append(run(latent_dim, x_train, x_test, args.epochs, args.curve_every))
        result["rows"].sort(key=lambda row: row["latent_dim"])
        result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        if args.save:
            save_json(result, path)
    if args.save:
        plot_curves(result["rows"], REPO_ROOT / "assets" / "literature_curves.png")
        print(f"wrote {path} and {REPO_ROOT / 'assets' / 'literature_curves.png'}")


if __name__ == "__main__":
    main()
