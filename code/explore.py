"""Look inside a trained VAE from its saved files: figures, and ln p(x) beyond the ELBO.

    python code/explore.py --model 2d                  # models/encoder_2d.h5 and decoder_2d.h5
    python code/explore.py --model 3d --figures traversal,samples --no-evaluate
    python code/explore.py --encoder E.h5 --decoder D.h5 --prior-cov "1.0,0.4;0.4,0.5" --out /tmp/look

Loads an encoder saved as image → (z_mean, z_log_var) and a decoder saved as z → pixel means
(a Dense layer named "logits", then its layer "pixel_means": a sigmoid for the Bernoulli likelihood,
the mean for the continuous Bernoulli), as the chapter scripts save them, for any latent size, with
the prior N(0, I) or N(0, Σ), dense or convolutional, for the image shape the encoder takes. With --model
NAME the files are the repository's models/encoder_NAME.h5 and models/decoder_NAME.h5, and Σ, --binarize
and --dataset are read from models/metrics_NAME.json.

Writes, under --out (default: the repository):
- assets/<figure>_<name>.png for each figure asked for (default: every one that fits the latent
  size; see vae/inspection.py): samples, interpolation, posterior_widths, aggregate_posterior
  (holes_<name>.png), traversal (latent_dim ≥ 3), embeddings (latent_dim > 3);
- models/likelihood_<name>.json, the evaluation on the test images: the ELBO, the importance-
  weighted ln p(x) with K samples per image (default 1000), active units, KL and median σ per
  dimension, the holes of the aggregate posterior and, for a 2-D latent space, the exact ln p(x)
  by quadrature over a 500 × 500 grid. Nats per image, under the decoder's own likelihood (told by
  its layer "pixel_means"), on the grayscale test images or, with --binarize dynamic, on the test
  set binarized once as a run with --binarize dynamic does.
"""

import argparse
import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_NAMES = ("2d", "3d", "correlated")


def parse_arguments(argv=None):
    from vae.config import BINARIZE, DATASETS, parse_covariance  # no TensorFlow here either
    from vae.inspection import FIGURES  # no TensorFlow: this module only names the figures lazily

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", metavar="NAME",
                        help=f"a model in the repository's models/: {', '.join(MODEL_NAMES)}, or a run of your own "
                             f"such as 2d_fashion_mnist_conv")
    parser.add_argument("--encoder", metavar="FILE", help="the encoder .h5 (image → z_mean, z_log_var)")
    parser.add_argument("--decoder", metavar="FILE", help="the decoder .h5 (z → pixel means)")
    parser.add_argument("--name", help="the name in the output files (default: --model, else the decoder's file name)")
    parser.add_argument("--prior-cov", metavar="'A,B;C,D'",
                        help="the prior's covariance Σ, rows separated by ';' (default: N(0, I), or --model's)")
    parser.add_argument("--binarize", choices=BINARIZE, default=None,
                        help="dynamic: evaluate and draw with the test set binarized once, as a run with --binarize "
                             "dynamic does (default: --model's setting, else off)")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="the data set the model was trained on, whose test images it is shown (default: "
                             "--model's, else mnist)")
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
                        help="skip the exact 2-D ln p(x) by quadrature (about a minute for 10,000 images)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the posterior samples (default: 0)")
    parser.add_argument("--data-dir", metavar="DIR", help="a folder holding the data set (default: as the scripts)")
    parser.add_argument("--out", default=str(REPO_ROOT), metavar="DIR",
                        help="write assets/ and models/ under DIR (default: the repository)")
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
    if args.samples < 1:
        parser.error(f"--samples must be at least 1, got {args.samples}")
    if args.images is not None and args.images < 2:
        parser.error(f"--images must be at least 2, got {args.images}")
    if args.figures in ("all", "none"):
        args.figure_list = args.figures
    else:
        args.figure_list = [name.strip() for name in args.figures.split(",") if name.strip()]
        unknown = [name for name in args.figure_list if name not in FIGURES]
        if unknown or not args.figure_list:
            parser.error(f"--figures: unknown figure {', '.join(map(repr, unknown)) or repr(args.figures)}; "
                         f"choose from {', '.join(FIGURES)}, 'all' or 'none'")
    # With --model, its run's settings fill in what is not given: the prior's Σ, the test set's binarization.
    metrics = REPO_ROOT / "models" / f"metrics_{args.model}.json"
    run_settings = json.loads(metrics.read_text()) if args.model and metrics.is_file() else {}
    args.binarize = args.binarize or run_settings.get("binarize", "off")
    args.dataset = args.dataset or run_settings.get("dataset", "mnist")
    if args.dataset not in DATASETS:  # "images": a reader's folder, which explore.py does not read (yet)
        parser.error(f"{args.model} was trained on a folder of images; explore.py looks inside models of "
                     f"{', '.join(DATASETS)} only: the chapter's own run drew its figures")
    if args.prior_cov is not None:
        try:
            args.prior_cov = parse_covariance(args.prior_cov)
        except (ValueError, argparse.ArgumentTypeError) as error:
            parser.error(f"--prior-cov: {error}")
    else:
        args.prior_cov = run_settings.get("prior_covariance")
    return parser, args


def load_model(parser, flag, path):
    import keras

    import vae.model  # noqa: F401  (registers Sampling, in older encoders, and ContinuousBernoulliMean)

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # h5py and Keras raise many kinds for a file that is not a model
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        parser.error(f"{flag}: {path} is not a saved Keras model ({first_line})")


def shown_path(path):
    """A path as the metrics record it: relative to the repository when it is inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def main(argv=None):
    parser, args = parse_arguments(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from vae import inspection
    from vae.data import IMAGE_SHAPES, TEST_BINARIZATION_SEED, DataError, binarize, load_dataset
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

    try:
        _, (x_test, y_test) = load_dataset(args.dataset, args.data_dir)
    except DataError as error:
        raise SystemExit(f"error: {error}") from None
    if args.binarize == "dynamic":
        x_test = binarize(x_test, TEST_BINARIZATION_SEED)  # the very draw a run with --binarize dynamic tests on
    x_test, y_test = x_test[:args.images], y_test[:args.images]
    z_mean, z_log_var = encode(encoder, x_test)
    out = Path(args.out)
    for folder in (out / "assets", out / "models"):
        folder.mkdir(parents=True, exist_ok=True)
    for figure in names:
        path = out / "assets" / inspection.figure_filename(figure, args.name)
        inspection.draw(figure, path, decoder, prior, x_test, y_test, z_mean, z_log_var,
                        interpolation=args.interpolation)
        print(f"wrote {path}")
    if args.evaluate:
        quadrature = args.quadrature and latent_dim == 2
        result = {"model": args.name, "encoder": shown_path(args.encoder), "decoder": shown_path(args.decoder),
                  "dataset": args.dataset, "latent_dim": latent_dim, "prior_covariance": prior.covariance.tolist(),
                  "likelihood": likelihood, "binarize": args.binarize,
                  **inspection.evaluate_model(encoder, decoder, prior, x_test, z_mean, z_log_var,
                                              samples=args.samples, quadrature=quadrature, seed=args.seed,
                                              binarize=args.binarize, dataset=args.dataset)}
        path = out / "models" / f"likelihood_{args.name}.json"
        save_json(result, path)
        lines = [f"ELBO {result['elbo']:.2f}", f"IW K={args.samples} {result['iw_log_likelihood']:.2f}"]
        if "quadrature_log_likelihood" in result:
            lines.append(f"exact (quadrature) {result['quadrature_log_likelihood']:.2f}")
        elif "quadrature_skipped" in result:
            lines.append(f"no exact value: {result['quadrature_skipped']}")
        print(f"ln p(x), nats per image over {len(x_test):,} test images: {', '.join(lines)}; "
              f"active units {result['active_units']} of {latent_dim}")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
