"""Can the likelihood flag odd inputs? The exact ln p(x) of two 2-D models on their own and each other's images.

    python code/compare_datasets.py                 # 4 × 10,000 exact ln p(x); trains the Fashion model if needed
    python code/compare_datasets.py --images 1000   # the first 1,000 test images of each set (into --runs)

Nalisnick et al. 2019 found that deep generative models trained on Fashion-MNIST give MNIST's digits a
higher likelihood than their own test images. With a 2-D latent space ln p(x) is exact, so this asks it
without an estimator's doubt. The two models are the 2-D chapter's MLP:

  mnist          the committed model (models/encoder_2d.h5, decoder_2d.h5, as models/metrics_2d.json lists them)
  fashion_mnist  the same chapter on Fashion-MNIST, `python code/vae_2d.py --dataset fashion_mnist --out
                 RUNS/fashion_mnist` with its defaults (30 epochs, seed 0): run by this script when RUNS holds
                 no finished run of it, and resumed as any chapter run is when it was interrupted

Each model's ln p(x) of each test set, image by image, is the quadrature of code/explore.py (the midpoint
rule over a 500 × 500 grid of ε ∈ [−5, 5]², grayscale pixels under the decoder's Bernoulli likelihood), kept
in RUNS/exact/<model>_on_<data>.npz with the decoder's SHA-256: a rerun, or one after Ctrl-C, reuses the
finished pairs and computes the rest. Then, for each model, the share of the other set's images rated above
its own test set's median ln p(x), how well ln p(x) tells the two sets apart (AUROC), and what ranks the
images instead, measured (Spearman's ρ of ln p(x) with each image's share of zero pixels, its number of
pixels above 1/2, its zlib-compressed size, and the Bernoulli likelihood's own ceiling Σ [x ln x + (1−x)
ln(1−x)], the most any decoder could give it), and whether ln p(x) flags the other set once the images'
complexity is taken out (Serrà et al. 2020's ln p(x) + zlib bits·ln 2; and the residual of ln p(x) from a
line in the compressed size fitted to half the model's own test images). Writes

    models/out_of_distribution.json   those numbers, in nats per image
    assets/out_of_distribution.png    the four histograms, and ln p(x) against the compressed size

into the repository (a default run), else under --out (default: --runs).
"""

import argparse
import json
import math
import os
import sys
import time
import zlib
from pathlib import Path

# Why a folder cannot be written into, as explore.py refuses its --out (no TensorFlow loaded).
from explore import unwritable

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("mnist", "fashion_mnist")
TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
EPOCHS = 30  # the 2-D chapter's default
QUADRATURE_LIMIT, QUADRATURE_SPACING = 5.0, 0.02  # code/explore.py's grid (vae/inspection.py)
TEST_IMAGES = 10_000
ON_PIXEL = 0.5  # a pixel counts as "on" above this value


def parse_arguments(argv=None):
    """The checked arguments; a bad flag ends the program with one message before any work."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=str(REPO_ROOT / "runs" / "out_of_distribution"), metavar="DIR",
                        help="where the Fashion-MNIST run and the per-image ln p(x) are kept (default: "
                             "runs/out_of_distribution/, not committed)")
    parser.add_argument("--images", type=int, default=None, metavar="N",
                        help=f"the first N test images of each set, 2 to {TEST_IMAGES:,} (default: all); then "
                             f"nothing is written into the repository unless --out says so")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write models/out_of_distribution.json and assets/out_of_distribution.png under DIR "
                             "(default: the repository for a run over all test images, else --runs)")
    parser.add_argument("--data-dir", metavar="DIR", help="a folder holding MNIST and Fashion-MNIST (default: "
                                                          "as the scripts, e.g. $VAE_DATA_DIR)")
    args = parser.parse_args(argv)
    if args.images is not None and not 2 <= args.images <= TEST_IMAGES:
        parser.error(f"--images must be from 2 to {TEST_IMAGES:,}, got {args.images}")
    args.runs = Path(args.runs)
    args.out = Path(args.out) if args.out else REPO_ROOT if args.images is None else args.runs
    for flag, folder in [("--runs", args.runs), ("--out", args.out / "models"), ("--out", args.out / "assets")]:
        problem = unwritable(folder)
        if problem:
            parser.error(f"{flag}: cannot write {folder}: {problem}")
    for name in ("encoder_2d.h5", "decoder_2d.h5", "metrics_2d.json"):
        if not (REPO_ROOT / "models" / name).is_file():
            parser.error(f"the committed MNIST model is missing models/{name}: restore it from git")
    return args


def fashion_run_problem(folder):
    """None if `folder` holds a finished default 2-D chapter run on Fashion-MNIST whose model files are those
    its metrics list (SHA-256); else what is not so, in words."""
    from compare_likelihoods import CHAPTER_DEFAULTS
    from vae.saving import pending_journals, sha256

    if pending_journals(folder / "models"):
        return "its outputs were still moving into place when it was interrupted"
    try:
        metrics = json.loads((folder / "models" / "metrics_2d_fashion_mnist.json").read_text())
    except (OSError, ValueError):
        return "no finished run"
    expected = {**CHAPTER_DEFAULTS, "dataset": "fashion_mnist", "epochs": EPOCHS, "seed": 0}
    differing = [f"{key} {metrics.get(key)!r} (not {value!r})" for key, value in expected.items()
                 if metrics.get(key) != value]
    if differing:
        return f"its run has {', '.join(differing)}"
    listed = metrics.get("files") or {}
    for name in ("models/encoder_2d_fashion_mnist.h5", "models/decoder_2d_fashion_mnist.h5"):
        path = folder / name
        if not path.is_file() or sha256(path) != listed.get(name):
            return f"its {name} is not the file its metrics list (SHA-256)"
    return None


def model_files(args):
    """{model: (encoder, decoder, metrics)} paths of the two models."""
    fashion = args.runs / "fashion_mnist" / "models"
    return {"mnist": tuple(REPO_ROOT / "models" / f"{kind}_2d.{ext}" for kind, ext in
                           [("encoder", "h5"), ("decoder", "h5"), ("metrics", "json")]),
            "fashion_mnist": tuple(fashion / f"{kind}_2d_fashion_mnist.{ext}" for kind, ext in
                                   [("encoder", "h5"), ("decoder", "h5"), ("metrics", "json")])}


def exact_log_likelihoods(model, data, encoder, decoder, images, cache):
    """ln p(x) of each image (N,) float64 under (encoder, decoder), from `cache` (an .npz) when it holds this
    decoder's values for these images, else by quadrature, then kept there. Also the number of posteriors
    q(z|x) that reach beyond the grid (whose ln p(x) the grid may underrate), and the seconds it took."""
    import numpy as np

    from explore import Progress
    from vae.evaluation import encode
    from vae.inspection import posteriors_beyond_grid
    from vae.likelihood import decoder_log_likelihoods, log_likelihood_by_quadrature
    from vae.saving import atomic_path, sha256

    digest = sha256(decoder)
    if cache.is_file():
        with np.load(cache) as kept:
            if str(kept["decoder_sha256"]) == digest and len(kept["log_likelihood"]) >= len(images):
                print(f"== {TITLES[model]} model on {TITLES[data]}: computed earlier, kept ({cache})", flush=True)
                return kept["log_likelihood"][:len(images)], int(kept["beyond_grid"]), float(kept["seconds"])
    from vae.saving import load_model_safely

    print(f"== {TITLES[model]} model on {TITLES[data]}'s {len(images):,} test images: exact ln p(x) by quadrature "
          f"(250,000 grid points per image)", flush=True)
    started = time.perf_counter()
    encoder_model, decoder_model = load_model_safely(encoder), load_model_safely(decoder)
    z_mean, z_log_var = encode(encoder_model, images)
    beyond = posteriors_beyond_grid(z_mean, z_log_var, np.eye(2), QUADRATURE_LIMIT)
    values = log_likelihood_by_quadrature(decoder_log_likelihoods(decoder_model), np.eye(2),
                                          images.reshape(len(images), -1), limit=QUADRATURE_LIMIT,
                                          spacing=QUADRATURE_SPACING, progress=Progress("quadrature", "grid points"))
    with atomic_path(cache) as temporary:
        with open(temporary, "wb") as file:
            np.savez(file, log_likelihood=values, decoder_sha256=digest, beyond_grid=beyond,
                     seconds=time.perf_counter() - started)
    return values, beyond, time.perf_counter() - started


def image_measures(images):
    """What might rank images by ln p(x) instead of their being in or out of the training set, per image (N,):
    the share of zero pixels, the number of pixels above ON_PIXEL, the zlib-compressed size (level 9) of the
    28 × 28 uint8 image in bytes, and the Bernoulli likelihood's ceiling Σ [x ln x + (1−x) ln(1−x)] (nats:
    ln p(x|z) of a decoder that drew each pixel's own value, the most any decoder gives a grayscale image)."""
    import numpy as np

    flat = images.reshape(len(images), -1).astype(np.float64)
    x = np.clip(flat, 1e-12, 1 - 1e-12)
    ceiling = np.where((flat > 0) & (flat < 1), x * np.log(x) + (1 - x) * np.log(1 - x), 0.0).sum(axis=1)
    raw = np.round(flat * 255).astype(np.uint8)
    return {
        "zero_pixel_share": (flat == 0).mean(axis=1),
        "on_pixels": (flat > ON_PIXEL).sum(axis=1).astype(np.float64),
        "compressed_bytes": np.array([len(zlib.compress(row.tobytes(), 9)) for row in raw], dtype=np.float64),
        "bernoulli_ceiling": ceiling,
    }


def auroc(higher, lower):
    """The probability that a random value of `higher` exceeds one of `lower` (ties count half): the area
    under the ROC curve of telling the two apart by the value."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(higher, lower).statistic / (len(higher) * len(lower)))


def rank_correlation(a, b):
    """Spearman's ρ of two arrays (N,), or None where either is constant (ρ is then undefined)."""
    import numpy as np
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def summarize(log_likelihoods, measures, beyond):
    """The json's numbers from {(model, data): ln p(x) (N,)}, {data: image_measures}, {(model, data): count}."""
    import numpy as np

    result = {}
    for model in DATASETS:
        other = next(data for data in DATASETS if data != model)
        own, odd = log_likelihoods[model, model], log_likelihoods[model, other]
        median = float(np.median(own))
        pooled = np.concatenate([own, odd])
        correlations = {}
        for name in measures[model]:
            values = np.concatenate([measures[model][name], measures[other][name]])
            correlations[name] = {"pooled": rank_correlation(pooled, values),
                                  "own": rank_correlation(own, measures[model][name]),
                                  "other": rank_correlation(odd, measures[other][name])}
        # Serrà et al. 2020: subtract the image's complexity, its compressed length in nats, from −ln p(x).
        corrected = {data: log_likelihoods[model, data] + measures[data]["compressed_bytes"] * 8 * math.log(2)
                     for data in (model, other)}
        # Or measure ln p(x) against what images of that complexity get: a line ln p(x) ≈ a + b·bytes fitted to the
        # first half of the model's own test images, and the residuals of the second half against the other set's.
        half = len(own) // 2
        slope, intercept = np.polyfit(measures[model]["compressed_bytes"][:half], own[:half], 1)
        residual = {data: log_likelihoods[model, data] - (intercept + slope * measures[data]["compressed_bytes"])
                    for data in (model, other)}
        result[model] = {
            "in_distribution": model, "out_of_distribution": other,
            "log_likelihood_mean": {data: float(log_likelihoods[model, data].mean()) for data in (model, other)},
            "log_likelihood_median": {data: float(np.median(log_likelihoods[model, data])) for data in (model, other)},
            "posteriors_beyond_grid": {data: beyond[model, data] for data in (model, other)},
            "out_above_in_median": float(np.mean(odd > median)),
            "auroc_in_above_out": auroc(own, odd),
            "spearman_with_log_likelihood": correlations,
            "serra_zlib_auroc": auroc(corrected[model], corrected[other]),
            "complexity_alone_auroc": auroc(measures[model]["compressed_bytes"], measures[other]["compressed_bytes"]),
            "complexity_line": {"slope_nats_per_byte": float(slope), "intercept": float(intercept),
                                "fitted_images": half},
            "complexity_residual_auroc": auroc(residual[model][half:], residual[other]),
        }
    return result


def main(argv=None):
    args = parse_arguments(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO_ROOT / "code"))
    from vae.data import DataError, load_dataset

    try:
        tests = {data: load_dataset(data, args.data_dir)[1][0][:args.images] for data in DATASETS}
    except DataError as error:
        raise SystemExit(f"error: {error}") from None
    folder = args.runs / "fashion_mnist"
    problem = fashion_run_problem(folder)
    if problem is None:
        print(f"== the Fashion-MNIST model: trained earlier in {folder}, kept", flush=True)
    else:
        from compare_likelihoods import run_step

        if problem != "no finished run":
            print(f"== not reusing the Fashion-MNIST run in {folder}: {problem}")
        command = ["code/vae_2d.py", "--dataset", "fashion_mnist", "--out", folder]
        run_step(command + (["--data-dir", args.data_dir] if args.data_dir else []),
                 f"training the 2-D model on Fashion-MNIST ({EPOCHS} epochs)")
    files = model_files(args)
    log_likelihoods, beyond, seconds = {}, {}, {}
    try:
        for model in DATASETS:
            encoder, decoder, _ = files[model]
            for data in DATASETS:
                cache = args.runs / "exact" / f"{model}_on_{data}.npz"
                log_likelihoods[model, data], beyond[model, data], seconds[model, data] = exact_log_likelihoods(
                    model, data, encoder, decoder, tests[data], cache)
    except KeyboardInterrupt:
        raise SystemExit(f"\nInterrupted. The finished pairs are kept in {args.runs / 'exact'}: run the same "
                         f"command again to compute the rest.") from None
    measures = {data: image_measures(images) for data, images in tests.items()}
    summary = summarize(log_likelihoods, measures, beyond)
    fashion_metrics = json.loads(files["fashion_mnist"][2].read_text())
    from vae.figures import plot_out_of_distribution
    from vae.saving import save_json

    result = {
        "models": {model: {"encoder": shown_path(files[model][0]), "decoder": shown_path(files[model][1])}
                   for model in DATASETS},
        "fashion_mnist_run": {key: fashion_metrics[key] for key in
                              ("epochs", "seed", "test_loss", "test_reconstruction", "test_kl", "seconds_training")},
        "images": {data: len(images) for data, images in tests.items()},
        "data_convention": ("grayscale pixels in [0, 1] as the targets of one Bernoulli likelihood per pixel (not "
                            "binarized), in nats per image, on each model's own test set and the other's"),
        "quadrature_grid": {"limit": QUADRATURE_LIMIT, "spacing": QUADRATURE_SPACING,
                            "points": round(2 * QUADRATURE_LIMIT / QUADRATURE_SPACING) ** 2},
        "on_pixel": ON_PIXEL,
        "measure_means": {data: {name: float(values.mean()) for name, values in measures[data].items()}
                          for data in DATASETS},
        **summary,
        "quadrature_seconds": {f"{model}_on_{data}": seconds[model, data] for model, data in seconds},
    }
    json_path, figure_path = args.out / "models" / "out_of_distribution.json", args.out / "assets" / "out_of_distribution.png"
    plot_out_of_distribution(log_likelihoods, measures, summary, TITLES, figure_path)
    save_json(result, json_path)
    for model in DATASETS:
        numbers = summary[model]
        other = numbers["out_of_distribution"]
        print(f"{TITLES[model]} model: mean ln p(x) {numbers['log_likelihood_mean'][model]:.1f} on its own test set, "
              f"{numbers['log_likelihood_mean'][other]:.1f} on {TITLES[other]}'s; "
              f"{100 * numbers['out_above_in_median']:.1f}% of {TITLES[other]} above its own median; AUROC "
              f"{numbers['auroc_in_above_out']:.3f}; Spearman ρ with the zero-pixel share "
              f"{numbers['spearman_with_log_likelihood']['zero_pixel_share']['pooled']:.2f}")
    print(f"wrote {json_path} and {figure_path}")
    return 0


def shown_path(path):
    """A path relative to the repository when it is inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
