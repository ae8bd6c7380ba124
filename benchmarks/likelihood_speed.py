"""Benchmark (not a test): how fast ln p(x) is evaluated beyond the ELBO, against the machine's limit.

    python benchmarks/likelihood_speed.py           # prints one JSON line
    python benchmarks/likelihood_speed.py --save    # and writes benchmarks/likelihood_speed.json

On the committed 2-D model (models/encoder_2d.h5, decoder_2d.h5) and the first --images test images:

- the importance-weighted estimate (vae.likelihood.importance_weighted_log_likelihood) with K samples
  per image: test images × samples per second, and GFLOP/s of its decoder passes (each sample is one
  decode, 2·W FLOP for the decoder's W weights, 1.07 MFLOP);
- the exact 2-D value by quadrature (vae.likelihood.log_likelihood_by_quadrature) over the scripts'
  500 × 500 grid: seconds, and GFLOP/s of its one large product (N images × 250,000 grid points × 784
  pixels × 2 FLOP) plus the grid's decode;

each against the fp32 matrix-multiply peak measured here (the best of ten 4096 × 4096 tf.matmul).
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "code"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from vae.data import load_mnist  # noqa: E402
from vae.likelihood import (bernoulli_log_likelihoods, importance_weighted_log_likelihood,  # noqa: E402
                            log_likelihood_by_quadrature)
from vae.priors import GaussianPrior  # noqa: E402
from vae.saving import load_model_safely, save_json  # noqa: E402

DECODER_WEIGHTS_2D = 2 * 256 + 256 * 512 + 512 * 784  # multiply-adds of one decode


def matmul_peak_gflops(size=4096, repeats=10):
    a = tf.random.normal((size, size))
    tf.matmul(a, a).numpy()
    best = min(_timed(lambda: tf.matmul(a, a).numpy()) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="test images (default: 1000)")
    parser.add_argument("--samples", type=int, default=1000, help="K for the importance-weighted estimate")
    parser.add_argument("--save", action="store_true", help="write benchmarks/likelihood_speed.json")
    args = parser.parse_args(argv)

    encoder = load_model_safely(HERE.parent / "models" / "encoder_2d.h5")
    decoder = load_model_safely(HERE.parent / "models" / "decoder_2d.h5")
    _, (x_test, _) = load_mnist()
    images, prior = x_test[:args.images], GaussianPrior.standard(2)
    peak = matmul_peak_gflops()

    importance_weighted_log_likelihood(encoder, decoder, prior, images[:20], samples=args.samples)  # compile
    seconds_iw = _timed(lambda: importance_weighted_log_likelihood(encoder, decoder, prior, images,
                                                                   samples=args.samples))
    decodes = args.images * args.samples
    iw_gflops = decodes * 2 * DECODER_WEIGHTS_2D / seconds_iw / 1e9

    pixels = images.reshape(len(images), -1)
    log_likelihoods = bernoulli_log_likelihoods(decoder)
    log_likelihood_by_quadrature(log_likelihoods, prior.cholesky, pixels[:10])  # compile
    seconds_quadrature = _timed(lambda: log_likelihood_by_quadrature(log_likelihoods, prior.cholesky, pixels))
    grid = 500 * 500
    quadrature_flop = 2 * len(pixels) * grid * 784 + grid * 2 * DECODER_WEIGHTS_2D
    result = {
        "benchmark": "likelihood_speed",
        "model": "2d",
        "test_images": args.images,
        "samples": args.samples,
        "iw_seconds": seconds_iw,
        "iw_images_x_samples_per_s": decodes / seconds_iw,
        "iw_gflops": iw_gflops,
        "quadrature_grid": grid,
        "quadrature_seconds": seconds_quadrature,
        "quadrature_seconds_per_10000_images": seconds_quadrature * 10_000 / args.images,
        "quadrature_gflops": quadrature_flop / seconds_quadrature / 1e9,
        "peak_gflops": peak,
        "iw_fraction_of_peak": iw_gflops / peak,
        "quadrature_fraction_of_peak": quadrature_flop / seconds_quadrature / 1e9 / peak,
        "load_average": os.getloadavg()[0],
        "cores": os.cpu_count(),
        "device": "GPU" if tf.config.list_physical_devices("GPU") else f"CPU: {platform.machine()}",
        "tensorflow_version": tf.__version__,
    }
    print(json.dumps(result))
    if args.save:
        save_json(result, HERE / "likelihood_speed.json")


if __name__ == "__main__":
    main()
