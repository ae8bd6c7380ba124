"""Look inside a trained VAE from its saved files: figures, and ln p(x) beyond the ELBO.

    python code/explore.py --model 2d                  # models/encoder_2d.h5 and decoder_2d.h5
    python code/explore.py --model 3d --figures traversal,samples --no-evaluate
    python code/explore.py --encoder E.h5 --decoder D.h5 --unmatched --prior-cov "1.0,0.4;0.4,0.5"

Loads an encoder saved as image → (z_mean, z_log_var) and a decoder saved as z → pixel means
(a Dense layer named "logits", then its layer "pixel_means": a sigmoid for the Bernoulli likelihood,
the mean for the continuous Bernoulli), as the chapter scripts save them, for any latent size, with
the prior N(0, I) or N(0, Σ), dense or convolutional, for the image shape the encoder takes. With
--model NAME the files are the repository's models/encoder_NAME.h5 and models/decoder_NAME.h5.

The run's metrics (models/metrics_NAME.json beside decoder_NAME.h5, or --metrics FILE) must list the
encoder and the decoder together (the SHA-256 of each file is among its "files"); they then give the
data set, the binarization and the prior's Σ, unless --dataset, --binarize or --prior-cov say
otherwise. A pair the metrics do not list is refused unless --unmatched, and then the data set is
MNIST, the prior N(0, I) and the pixels grayscale unless those flags say otherwise. A folder that an
interrupted chapter run left half-moved is refused until that script is run again to finish it.

Writes, under --out DIR (default: runs/explore/<name>/ in the repository, which git ignores):
- DIR/assets/<figure>_<name>.png for each figure asked for (default: every one that fits the latent
  size; see vae/inspection.py): samples, interpolation, posterior_widths, aggregate_posterior
  (holes_<name>.png), traversal (latent_dim ≥ 3), embeddings (latent_dim > 3);
- DIR/models/likelihood_<name>.json, the evaluation on the test images: the ELBO, the importance-
  weighted ln p(x) with K samples per image (default 1000), active units, KL and median σ per
  dimension, the holes of the aggregate posterior and, for a 2-D latent space, the exact ln p(x)
  by quadrature over a 500 × 500 grid, with the exact posterior p(z|x) beside q(z|x) for three test
  images (under "true_posterior": see vae/inspection.py's true_posteriors). Nats per image, under the decoder's own likelihood (told by
  its layer "pixel_means"), on the grayscale test images or, with --binarize dynamic, on the test
  set binarized once as a run with --binarize dynamic does. With --update-results it goes to the
  repository's models/likelihood_<name>.json instead, the committed result the page quotes;
- DIR/assets/true_posterior_<name>.png, for a 2-D latent space with the quadrature: those three images'
  exact posteriors beside q(z|x); with --update-results the repository's assets/true_posterior_<name>.png.
It never writes into the repository's assets/ or models/ otherwise, nor over a file that a chapter
run's metrics list among its outputs. The importance-weighted estimate decodes N × (K + 1) latent
points and the quadrature 250,000 per image: the slow parts, whose progress is printed as they go.
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_NAMES = ("2d", "3d", "correlated")
COMMITTED = (REPO_ROOT / "assets", REPO_ROOT / "models")  # the repository's committed results
SHA256_DIGITS = set("0123456789abcdef")


def parse_arguments(argv=None):
    """The parser and the checked arguments: every flag, file and folder is checked here, before any model
    is loaded, and a bad one ends the program with one message (parser.error, exit status 2)."""
    from vae.config import BINARIZE, DATASETS, parse_covariance  # no TensorFlow here either
    from vae.inspection import FIGURES  # no TensorFlow: this module only names the figures lazily

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", metavar="NAME",
                        help=f"a model in the repository's models/: {', '.join(MODEL_NAMES)}, or a run of your own "
                             f"such as 2d_fashion_mnist_conv")
    parser.add_argument("--encoder", metavar="FILE", help="the encoder .h5 (image → z_mean, z_log_var)")
    parser.add_argument("--decoder", metavar="FILE", help="the decoder .h5 (z → pixel means)")
    parser.add_argument("--metrics", metavar="FILE",
                        help="the run's metrics_<name>.json that lists the encoder and decoder (default: the one "
                             "beside the decoder: decoder_X.h5 → metrics_X.json)")
    parser.add_argument("--unmatched", action="store_true",
                        help="look inside an encoder and decoder that no metrics list together; the settings are "
                             "then only those given by flags (default: MNIST, grayscale, N(0, I))")
    parser.add_argument("--name", help="the name in the output files (default: --model, else the decoder's file name)")
    parser.add_argument("--prior-cov", metavar="'A,B;C,D'",
                        help="the prior's covariance Σ, rows separated by ';' (default: the metrics', else N(0, I))")
    parser.add_argument("--binarize", choices=BINARIZE, default=None,
                        help="dynamic: evaluate and draw with the test set binarized once, as a run with --binarize "
                             "dynamic does (default: the metrics' setting, else off)")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="the data set whose test images the model is shown (default: the metrics', else mnist)")
    parser.add_argument("--figures", default="all",
                        help=f"comma-separated figures to draw, 'all' or 'none' (default: all that fit): {', '.join(FIGURES)}")
    parser.add_argument("--interpolation", choices=("linear", "spherical"), default="linear",
                        help="the path of the interpolation figure (default: linear)")
    parser.add_argument("--samples", type=int, default=1000, metavar="K",
                        help="K, posterior samples per image of the importance-weighted ln p(x) (default: 1000)")
    parser.add_argument("--images", type=int, default=None, metavar="N",
                        help="evaluate and draw with the first N test images (default: all 10,000)")
    parser.add_argument("--no-evaluate", dest="evaluate", action="store_false",
                        help="draw the figures only; write no likelihood_<name>.json")
    parser.add_argument("--no-quadrature", dest="quadrature", action="store_false",
                        help="skip the exact 2-D ln p(x) by quadrature (250,000 grid points per image)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the posterior samples, ≥ 0 (default: 0)")
    parser.add_argument("--data-dir", metavar="DIR", help="a folder holding the data set (default: as the scripts)")
    parser.add_argument("--out", metavar="DIR",
                        help="write assets/ and models/ under DIR (default: runs/explore/<name>/ in the repository)")
    parser.add_argument("--update-results", action="store_true",
                        help="write likelihood_<name>.json to the repository's models/, the committed result the "
                             "page quotes (figures still go under --out); only for the repository's own models")
    args = parser.parse_args(argv)

    if args.model:
        args.encoder = args.encoder or str(REPO_ROOT / "models" / f"encoder_{args.model}.h5")
        args.decoder = args.decoder or str(REPO_ROOT / "models" / f"decoder_{args.model}.h5")
    if not args.encoder or not args.decoder:
        parser.error("give --model NAME, or both --encoder FILE and --decoder FILE")
    for flag, path in [("--encoder", args.encoder), ("--decoder", args.decoder)]:
        if not Path(path).is_file():
            parser.error(f"{flag}: no such file: {path}")
    args.name = args.name or args.model or Path(args.decoder).stem.removeprefix("decoder_")
    if not args.name or "/" in args.name or args.name.startswith("."):
        parser.error(f"--name: {args.name!r} cannot be part of a file name")
    if args.samples < 1:
        parser.error(f"--samples must be at least 1, got {args.samples}")
    if args.images is not None and args.images < 2:
        parser.error(f"--images must be at least 2, got {args.images}")
    if args.seed < 0:
        parser.error(f"--seed must be 0 or more, got {args.seed}")
    if args.figures in ("all", "none"):
        args.figure_list = args.figures
    else:
        args.figure_list = [name.strip() for name in args.figures.split(",") if name.strip()]
        unknown = [name for name in args.figure_list if name not in FIGURES]
        if unknown or not args.figure_list:
            parser.error(f"--figures: unknown figure {', '.join(map(repr, unknown)) or repr(args.figures)}; "
                         f"choose from {', '.join(FIGURES)}, 'all' or 'none'")
    if args.prior_cov is not None:
        try:
            args.prior_cov = parse_covariance(args.prior_cov)
        except (ValueError, argparse.ArgumentTypeError) as error:
            parser.error(f"--prior-cov: {error}")

    from vae.saving import chapter_script, pending_journals  # no TensorFlow

    for folder in {Path(args.encoder).parent, Path(args.decoder).parent}:
        journals = pending_journals(folder)
        if journals:
            parser.error(f"{shown_path(folder)} holds outputs that an interrupted chapter run was still moving into "
                         f"place ({journals[0].name}), so its files may be a mix of two runs. Run that chapter "
                         f"script again with the same --out (e.g. python code/{chapter_script(journals[0])}) to "
                         f"finish the move, then run explore.py again")
    check_against_metrics(parser, args)
    check_outputs(parser, args, FIGURES)
    return parser, args


def read_metrics(path):
    """A run's metrics_<name>.json, checked for what explore.py reads from it: dataset, likelihood,
    latent_dim, binarize (if any), prior_covariance (if any) and files ({output: SHA-256}). Raises
    ValueError with one message naming the file and what is wrong with it."""
    from vae.config import BINARIZE, DATASETS, LIKELIHOODS

    advice = "rerun the chapter script that wrote it, or restore it from git"
    try:
        metrics = json.loads(Path(path).read_text())
    except OSError as error:
        raise ValueError(f"cannot read {shown_path(path)}: {error.strerror}") from None
    except ValueError as error:  # not JSON, or not UTF-8
        raise ValueError(f"{shown_path(path)} is not valid JSON ({error}); {advice}") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{shown_path(path)} holds a JSON {type(metrics).__name__}, not an object; {advice}")
    if metrics.get("dataset") == "images":  # a reader's folder, which explore.py does not read (yet)
        raise ValueError(f"{shown_path(path)}: its model was trained on a folder of images; explore.py looks inside "
                         f"models of {', '.join(DATASETS)} only (the chapter's own run drew its figures)")
    problems = [f"no {key!r}" for key in ("dataset", "likelihood", "latent_dim", "files") if key not in metrics]
    for key, allowed in [("dataset", DATASETS), ("likelihood", LIKELIHOODS), ("binarize", BINARIZE)]:
        if key in metrics and metrics[key] not in allowed:
            problems.append(f"{key} {metrics[key]!r} is not one of {', '.join(allowed)}")
    latent_dim = metrics.get("latent_dim")
    if "latent_dim" in metrics and (type(latent_dim) is not int or latent_dim < 1):
        problems.append(f"latent_dim {latent_dim!r} is not a whole number ≥ 1")
    files = metrics.get("files")
    if "files" in metrics and not (isinstance(files, dict) and all(
            isinstance(digest, str) and len(digest) == 64 and set(digest) <= SHA256_DIGITS for digest in files.values())):
        problems.append("files is not an object of output: SHA-256 (64 hex digits)")
    covariance = metrics.get("prior_covariance")
    if covariance is not None and not (
            isinstance(covariance, list) and type(latent_dim) is int and len(covariance) == latent_dim and all(
                isinstance(row, list) and len(row) == latent_dim and all(
                    type(value) in (int, float) and math.isfinite(value) for value in row) for row in covariance)):
        problems.append("prior_covariance is not a latent_dim × latent_dim list of numbers")
    if problems:
        raise ValueError(f"{shown_path(path)}: {'; '.join(problems)}; {advice}")
    return metrics


def check_against_metrics(parser, args):
    """Find the run's metrics, check that they list the encoder and the decoder together, and fill in the
    settings they record (args.dataset, args.binarize, args.prior_cov) where no flag gave them. Sets
    args.metrics (a Path, or None when --unmatched goes on without) and args.run (the metrics, or {})."""
    from vae.saving import sha256

    decoder = Path(args.decoder)
    beside = decoder.with_name(f"metrics_{decoder.stem.removeprefix('decoder_')}.json")
    if args.metrics is not None:
        if not Path(args.metrics).is_file():
            parser.error(f"--metrics: no such file: {args.metrics}")
        args.metrics = Path(args.metrics)
    elif decoder.stem.startswith("decoder_") and beside.is_file():
        args.metrics = beside
    args.run = {}
    if args.metrics is not None:
        try:
            metrics = read_metrics(args.metrics)
        except ValueError as error:
            parser.error(str(error))
        listed = set(metrics["files"].values())
        unlisted = [flag for flag, path in [("--encoder", args.encoder), ("--decoder", args.decoder)]
                    if sha256(path) not in listed]
        if not unlisted:
            args.run = metrics
        elif not args.unmatched:
            names = " and ".join(f"{flag} {shown_path(getattr(args, flag[2:]))}" for flag in unlisted)
            parser.error(f"{names}: not among the outputs that {shown_path(args.metrics)} lists (no SHA-256 there "
                         f"matches), so the metrics do not describe this encoder and decoder together. Give the "
                         f"pair a run wrote, or pass --unmatched to look inside them anyway")
    elif not args.unmatched:
        parser.error(f"no metrics list {shown_path(args.encoder)} and {shown_path(args.decoder)} (looked for "
                     f"{shown_path(beside)}): name the run's metrics with --metrics FILE, or pass --unmatched to "
                     f"look inside them anyway")
    if not args.run:
        args.metrics = None
    # Each setting: the flag's, else the run's, else the default; and where it came from, for the first line printed.
    args.sources = {}
    for flag, key, attribute, default in [("--dataset", "dataset", "dataset", "mnist"),
                                          ("--binarize", "binarize", "binarize", "off"),
                                          ("--prior-cov", "prior_covariance", "prior_cov", None)]:
        given, recorded = getattr(args, attribute), args.run.get(key, default)
        if given is None:
            value, source = (recorded, "the metrics'") if args.run else (default, "default")
        else:
            value, source = given, flag if not args.run or given == recorded else f"{flag}; the run's: {recorded}"
        setattr(args, attribute, value)
        args.sources[attribute] = source
    if args.update_results:
        committed = REPO_ROOT / "models" / f"metrics_{args.name}.json"
        if args.metrics is None or args.metrics.resolve() != committed:
            parser.error(f"--update-results writes the repository's models/likelihood_{args.name}.json, so the "
                         f"encoder and decoder must be those that models/metrics_{args.name}.json lists")
        if not args.evaluate:
            parser.error("--update-results writes the evaluation, which --no-evaluate turns off")
        if args.images is not None:
            parser.error("--update-results writes the committed result, over the whole test set: leave out --images")


def check_outputs(parser, args, figures):
    """Choose args.out (default runs/explore/<name>/) and the output paths, args.figure_dir and
    args.likelihood_path, and refuse any that is not writable, lies in the repository's committed results
    or would replace a file that a run's metrics list among its outputs."""
    args.out = Path(args.out) if args.out else REPO_ROOT / "runs" / "explore" / args.name
    args.figure_dir = args.out / "assets"
    args.likelihood_path = (REPO_ROOT / "models" if args.update_results else args.out / "models") / \
        f"likelihood_{args.name}.json"
    args.posterior_path = (REPO_ROOT / "assets" if args.update_results else args.figure_dir) / \
        f"true_posterior_{args.name}.png"
    names = figures if args.figure_list == "all" else [] if args.figure_list == "none" else args.figure_list
    targets = [args.figure_dir / figures[name][0].format(name=args.name) for name in names]
    targets += [args.likelihood_path] if args.evaluate else []
    targets += [args.posterior_path] if args.evaluate and args.quadrature else []
    for folder in sorted({target.parent for target in targets}):
        problem = unwritable(folder)
        if problem:
            parser.error(f"--out: cannot write {folder}: {problem}")
    # The outputs of runs, as their metrics list them: the model's own run, and any run under --out.
    runs = [args.metrics] if args.metrics else []
    runs += sorted((args.out / "models").glob("metrics_*.json")) if (args.out / "models").is_dir() else []
    recorded = {}
    for path in runs:
        try:
            files = read_metrics(path)["files"]
        except ValueError as error:
            parser.error(f"--out: {error}")
        recorded.update({(path.parent.parent / name).resolve(): path for name in files})
    allowed = {REPO_ROOT / "models" / f"likelihood_{args.name}.json",
               REPO_ROOT / "assets" / f"true_posterior_{args.name}.png"} if args.update_results else set()
    for target in targets:
        resolved = target.resolve()
        if resolved in recorded:
            parser.error(f"--out: {target} is an output of the run that {shown_path(recorded[resolved])} records "
                         f"(with its SHA-256); replacing it would leave that record stale. Choose another --out "
                         f"(default: runs/explore/<name>/)")
        if resolved not in allowed and any(resolved.is_relative_to(folder) for folder in COMMITTED):
            parser.error(f"--out: {target} lies in the repository's committed results (assets/, models/). Choose "
                         f"another --out (default: runs/explore/<name>/); --update-results writes "
                         f"models/likelihood_<name>.json there")


def unwritable(folder):
    """Why `folder` cannot be written into (made first if it is missing), or None if it can."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


class Progress:
    """Prints how far a slow step is each time another tenth of it is done, with the time since its first
    call (progress(0, total) as the step starts) and an estimate of the time left from the pace so far."""

    def __init__(self, what, unit):
        self.what, self.unit = what, unit
        self.started = None
        self.tenths = 0

    def __call__(self, done, total):
        if self.started is None:
            self.started = time.perf_counter()
        tenths = 10 * done // total
        if tenths > self.tenths:
            self.tenths = tenths
            seconds = time.perf_counter() - self.started
            left = f", about {seconds * (total - done) / done:.0f} s to go" if done < total else ""
            print(f"  {self.what}: {done:,} of {total:,} {self.unit} ({100 * done / total:.0f}%), {seconds:.0f} s"
                  f"{left}", flush=True)


def load_model(parser, flag, path):
    """The Keras model saved in `path`, loaded by vae.saving.load_model_safely (which refuses a file naming a
    class the project's models never hold); a file it refuses or cannot read ends the program with one line."""
    from vae.saving import load_model_safely

    try:
        return load_model_safely(path)
    except ValueError as error:  # UnsafeModelError too; each message names the file
        parser.error(f"{flag}: {error}")


def shown_path(path):
    """A path as the metrics record it: relative to the repository when it is inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def main(argv=None):
    parser, args = parse_arguments(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    checked = (f"listed together in {shown_path(args.metrics)}" if args.metrics else
               "not checked against any run's metrics (--unmatched)")
    print(f"Loading {shown_path(args.encoder)} and {shown_path(args.decoder)}, {checked}", flush=True)
    from vae import inspection
    from vae.data import DATASET_ITEMS, IMAGE_SHAPES, TEST_BINARIZATION_SEED, DataError, binarize, load_dataset
    from vae.evaluation import encode
    from vae.pixels import decoder_likelihood
    from vae.priors import GaussianPrior
    from vae.saving import save_json

    encoder = load_model(parser, "--encoder", args.encoder)
    decoder = load_model(parser, "--decoder", args.decoder)
    if len(encoder.inputs) == 2 or len(decoder.inputs) == 2:
        parser.error(f"{args.encoder if len(encoder.inputs) == 2 else args.decoder} is a conditional VAE's (it also "
                     f"takes the label); explore.py looks inside VAEs without labels, and python code/vae_conditional.py "
                     f"draws the conditional model's own figures")
    image_shape = tuple(encoder.input_shape[1:])  # (28, 28, 1) for MNIST
    if len(encoder.outputs) < 2 or len(image_shape) != 3:
        parser.error(f"--encoder: {args.encoder} is not an encoder image (height, width, channels) → (z_mean, "
                     f"z_log_var); it maps {encoder.input_shape} to {len(encoder.outputs)} output(s)")
    if len(decoder.inputs) != 1 or len(decoder.input_shape) != 2:
        parser.error(f"--decoder: {args.decoder} is not a decoder z → image; it takes {decoder.input_shape}")
    if tuple(decoder.output_shape[1:]) != image_shape:
        parser.error(f"the encoder takes images {image_shape} but the decoder draws {tuple(decoder.output_shape[1:])}: "
                     f"they are not from the same model")
    if IMAGE_SHAPES[args.dataset] != image_shape:
        parser.error(f"the model takes images {image_shape}, but {args.dataset}'s are {IMAGE_SHAPES[args.dataset]}: "
                     f"name the data set it was trained on with --dataset")
    if "logits" not in [layer.name for layer in decoder.layers]:
        parser.error(f"--decoder: {args.decoder} has no layer named 'logits' (the Dense layer before its pixel means)")
    try:
        likelihood = decoder_likelihood(decoder)  # the likelihood it was trained with, told by its last layers
    except ValueError as error:
        parser.error(f"--decoder: {args.decoder}: {error}")
    latent_dim = int(encoder.outputs[0].shape[-1])
    if int(decoder.input_shape[-1]) != latent_dim:
        parser.error(f"the encoder's latent size is {latent_dim} but the decoder's is {decoder.input_shape[-1]}: "
                     f"they are not from the same model")
    for key, value in [("latent_dim", latent_dim), ("likelihood", likelihood)]:
        if args.run and args.run[key] != value:
            parser.error(f"{shown_path(args.metrics)} records {key} {args.run[key]!r}, but the model's is {value!r}: "
                         f"the metrics do not describe this model")
    try:
        prior = GaussianPrior(args.prior_cov) if args.prior_cov is not None else GaussianPrior.standard(latent_dim)
    except ValueError as error:
        parser.error(f"--prior-cov: {error}")
    if prior.latent_dim != latent_dim:
        parser.error(f"--prior-cov is {prior.latent_dim}×{prior.latent_dim}, but the model's latent size is {latent_dim}")
    names = (inspection.figures_for(latent_dim) if args.figure_list == "all" else
             [] if args.figure_list == "none" else args.figure_list)
    for figure in names:
        if figure not in inspection.figures_for(latent_dim):
            parser.error(f"--figures: {figure} needs a larger latent space than {latent_dim}-D")
    prior_text = "N(0, I)" if args.prior_cov is None else f"N(0, {prior.covariance.tolist()})"
    print(f"A {latent_dim}-D {likelihood} model; test images: {args.dataset} ({args.sources['dataset']}), binarize "
          f"{args.binarize} ({args.sources['binarize']}); prior {prior_text} ({args.sources['prior_cov']})", flush=True)

    try:
        _, (x_test, y_test) = load_dataset(args.dataset, args.data_dir)
    except DataError as error:
        raise SystemExit(f"error: {error}") from None
    if args.binarize == "dynamic":
        x_test = binarize(x_test, TEST_BINARIZATION_SEED)  # the very draw a run with --binarize dynamic tests on
    x_test, y_test = x_test[:args.images], y_test[:args.images]
    print(f"Encoding {len(x_test):,} test images", flush=True)
    z_mean, z_log_var = encode(encoder, x_test)
    for number, figure in enumerate(names, 1):
        path = args.figure_dir / inspection.figure_filename(figure, args.name)
        print(f"Drawing figure {number} of {len(names)}: {figure}", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        inspection.draw(figure, path, decoder, prior, x_test, y_test, z_mean, z_log_var,
                        interpolation=args.interpolation, items=DATASET_ITEMS[args.dataset])
        print(f"wrote {path}", flush=True)
    if args.evaluate:
        quadrature = args.quadrature and latent_dim == 2
        print(f"Evaluating on {len(x_test):,} test images: the ELBO, then ln p(x) by importance sampling with K = "
              f"{args.samples:,} ({len(x_test) * (args.samples + 1):,} decoded latent points)"
              f"{', then exactly by quadrature (250,000 grid points per image)' if quadrature else ''}", flush=True)
        result = {"model": args.name, "encoder": shown_path(args.encoder), "decoder": shown_path(args.decoder),
                  "metrics": shown_path(args.metrics) if args.metrics else None,
                  "dataset": args.dataset, "latent_dim": latent_dim, "prior_covariance": prior.covariance.tolist(),
                  "likelihood": likelihood, "binarize": args.binarize,
                  **inspection.evaluate_model(encoder, decoder, prior, x_test, z_mean, z_log_var,
                                              samples=args.samples, quadrature=quadrature, seed=args.seed,
                                              binarize=args.binarize, dataset=args.dataset,
                                              iw_progress=Progress(f"ln p(x), K = {args.samples:,}", "images"),
                                              quadrature_progress=Progress("quadrature", "grid points"))}
        if "quadrature_log_likelihood" in result:
            print("The exact posterior beside q(z|x): each test image's posterior mass in each class's region, "
                  "by quadrature again (250,000 grid points per image)", flush=True)
            result["true_posterior"], drawing = inspection.true_posteriors(
                decoder, prior, x_test, y_test, z_mean, z_log_var, progress=Progress("posterior", "grid points"))
            args.posterior_path.parent.mkdir(parents=True, exist_ok=True)
            from vae.figures import plot_true_posteriors

            plot_true_posteriors(decoder, drawing, args.posterior_path)
            for role, digit in result["true_posterior"]["digits"].items():
                print(f"  {role}: test image {digit['index']:,}, a {digit['label']}; ln p(x) − ELBO "
                      f"{digit['gap_log_likelihood_minus_elbo']:.2f} ± {digit['elbo_standard_error']:.2f}, "
                      f"KL(q ‖ p(z|x)) on a grid {digit['gap_kl_on_grid']:.2f} nats", flush=True)
            print(f"wrote {args.posterior_path}", flush=True)
        args.likelihood_path.parent.mkdir(parents=True, exist_ok=True)
        save_json(result, args.likelihood_path)
        lines = [f"ELBO {result['elbo']:.2f}", f"IW K={args.samples} {result['iw_log_likelihood']:.2f}"]
        if "quadrature_log_likelihood" in result:
            lines.append(f"exact (quadrature) {result['quadrature_log_likelihood']:.2f}")
        elif "quadrature_skipped" in result:
            lines.append(f"no exact value: {result['quadrature_skipped']}")
        print(f"ln p(x), nats per image over {len(x_test):,} test images: {', '.join(lines)}; "
              f"active units {result['active_units']} of {latent_dim}")
        print(f"wrote {args.likelihood_path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
