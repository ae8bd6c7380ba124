"""The reconstruction term three ways: the 2-D model trained with each pixel likelihood, side by side.

    python code/compare_likelihoods.py               # three 2-D runs and their ln p(x): about 8 minutes on 2 cores
    python code/compare_likelihoods.py --epochs 3    # short runs, for a quick look (into --runs, not models/)

The three settings (vae/pixels.py has the formulas):

  bernoulli             grayscale pixels as the targets of a Bernoulli likelihood: the tutorial's default.
                        Not a normalized density for targets strictly between 0 and 1.
  continuous_bernoulli  grayscale pixels under the continuous Bernoulli (Loaiza-Ganem & Cunningham 2019):
                        the Bernoulli's formula plus its normalizing constant, a true density on [0, 1].
  binarized             the Bernoulli on dynamically binarized MNIST: each training image drawn afresh as
                        Bernoulli(pixel) at every step, the test set drawn once (the literature's protocol).

Each model is trained by the 2-D chapter itself, `python code/vae_2d.py --likelihood L --binarize B
--out RUNS/NAME`, so that a killed or interrupted comparison resumes where it stopped, as any chapter run
does; a setting whose run has finished is not trained again. Each is then evaluated by
`python code/explore.py` (ln p(x) with K = 1000 importance samples, and exactly by quadrature). This
script then writes, from those files,

    assets/likelihoods_2d.png    prior samples of the three models, decoded from the same codes
    models/likelihoods_2d.json   each model's loss terms and ln p(x) estimates, in nats per image
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {  # name: (likelihood, binarize)
    "bernoulli": ("bernoulli", "off"),
    "continuous_bernoulli": ("continuous_bernoulli", "off"),
    "binarized": ("bernoulli", "dynamic"),
}
TITLES = {
    "bernoulli": "Bernoulli on grayscale pixels (the default)",
    "continuous_bernoulli": "continuous Bernoulli on grayscale pixels (its mean)",
    "binarized": "Bernoulli on binarized pixels",
}
IMPORTANCE_SAMPLES = 1000


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of each run (default: the 2-D chapter's, 30); other values write no "
                             "committed file unless --out says where")
    parser.add_argument("--runs", default=str(REPO_ROOT / "runs" / "likelihoods"), metavar="DIR",
                        help="where the three runs keep their models (default: runs/likelihoods/, not committed)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write assets/likelihoods_2d.png and models/likelihoods_2d.json under DIR "
                             "(default: the repository for a default run, else --runs)")
    parser.add_argument("--data-dir", metavar="DIR", help="a folder holding MNIST (default: as the scripts)")
    args = parser.parse_args(argv)
    if args.epochs is not None and not 1 <= args.epochs <= 10_000:
        parser.error(f"--epochs must be from 1 to 10,000, got {args.epochs}")
    if args.out is None:
        args.out = str(REPO_ROOT) if args.epochs is None else args.runs
    return args


def run_step(command, what):
    """Run one chapter or explore.py command; stop this script (the one running: code/compare_beta.py uses
    this too) with one line if it fails or is interrupted."""
    print(f"\n== {what}: {' '.join(map(str, command))}", flush=True)
    try:
        status = subprocess.call([sys.executable, *map(str, command)], cwd=REPO_ROOT)
    except KeyboardInterrupt:
        raise SystemExit(f"\nInterrupted during {what}. Run the same command again: the finished runs are kept, "
                         "and an interrupted one resumes after its last finished epoch.") from None
    if status != 0:
        raise SystemExit(f"{Path(sys.argv[0]).stem}: {what} stopped (exit {status}); its message is above. "
                         "Run this script again once it is fixed: the finished runs are kept.")


def finished(folder, likelihood, binarize, epochs):
    """True if `folder` holds a finished 2-D run with these settings (and its likelihood file)."""
    try:
        metrics = json.loads((folder / "models" / "metrics_2d.json").read_text())
        json.loads((folder / "models" / "likelihood_2d.json").read_text())
    except (OSError, ValueError):
        return False
    return (metrics.get("likelihood", "bernoulli"), metrics.get("binarize", "off")) == (likelihood, binarize) \
        and (epochs is None or metrics["epochs"] == epochs)


def main(argv=None):
    args = parse_arguments(argv)
    runs = Path(args.runs)
    for name, (likelihood, binarize) in SETTINGS.items():
        folder = runs / name
        if finished(folder, likelihood, binarize, args.epochs):
            print(f"== {name}: finished earlier in {folder}, kept")
            continue
        train = ["code/vae_2d.py", "--likelihood", likelihood, "--binarize", binarize, "--out", folder]
        if args.epochs is not None:
            train += ["--epochs", args.epochs]
        if args.data_dir:
            train += ["--data-dir", args.data_dir]
        run_step(train, f"training the {name} model")
        explore = ["code/explore.py", "--encoder", folder / "models" / "encoder_2d.h5",
                   "--decoder", folder / "models" / "decoder_2d.h5", "--name", "2d", "--binarize", binarize,
                   "--figures", "none", "--samples", IMPORTANCE_SAMPLES, "--out", folder]
        if args.data_dir:
            explore += ["--data-dir", args.data_dir]
        run_step(explore, f"ln p(x) of the {name} model")
    write_comparison(runs, Path(args.out))


def write_comparison(runs, out):
    """models/likelihoods_2d.json and assets/likelihoods_2d.png under `out`, from the three runs in `runs`."""
    from vae.figures import plot_samples_compared
    from vae.saving import load_model_safely, save_json

    results, decoders, titles = {}, [], []
    for name, (likelihood, binarize) in SETTINGS.items():
        models = runs / name / "models"
        metrics = json.loads((models / "metrics_2d.json").read_text())
        inside = json.loads((models / "likelihood_2d.json").read_text())
        results[name] = {
            "likelihood": likelihood,
            "binarize": binarize,
            "epochs": metrics["epochs"],
            "test_loss": metrics["test_loss"],
            "test_reconstruction": metrics["test_reconstruction"],
            "test_kl": metrics["test_kl"],
            "elbo": inside["elbo"],
            "iw_samples": inside["iw_samples"],
            "iw_log_likelihood": inside["iw_log_likelihood"],
            "iw_log_likelihood_standard_error": inside["iw_log_likelihood_standard_error"],
            "quadrature_log_likelihood": inside.get("quadrature_log_likelihood"),
            "quadrature_skipped": inside.get("quadrature_skipped"),  # why there is no exact value, if none
            "data_convention": inside["data_convention"],
            "seconds_training": metrics["seconds_training"],
        }
        decoders.append(load_model_safely(models / "decoder_2d.h5"))
        titles.append(TITLES[name])  # the numbers, not comparable across the three, are the page's table
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(parents=True, exist_ok=True)
    plot_samples_compared(decoders, titles, out / "assets" / "likelihoods_2d.png")
    save_json({"model": "2d", "settings": results}, out / "models" / "likelihoods_2d.json")
    print(f"\nWrote {out / 'assets' / 'likelihoods_2d.png'} and {out / 'models' / 'likelihoods_2d.json'}")
    for name, result in results.items():
        exact = result["quadrature_log_likelihood"]
        exact = f"−ln p(x) exact {-exact:8.2f}" if exact is not None else "no exact −ln p(x)      "
        print(f"  {name:21s} test loss {result['test_loss']:8.2f}   {exact}   ({result['data_convention']})")


if __name__ == "__main__":
    main()
