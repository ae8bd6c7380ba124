"""The reconstruction term three ways: the 2-D model trained with each pixel likelihood, side by side.

    python code/compare_likelihoods.py               # three 2-D runs of 30 epochs and their ln p(x)
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
does. Each is then evaluated by `python code/explore.py` (ln p(x) with K = 1000 importance samples on
the 10,000 test images, and exactly by quadrature). A run is reused only if it is what this comparison asks
for: its metrics_2d.json names the same likelihood, binarization, epochs and training images, and its model
files are those the metrics list (SHA-256); its evaluation, only if it used K = 1000 on all 10,000 test
images after that model was saved. So a run stopped while it was being evaluated is evaluated again, not
trained again. Killing this script (Ctrl-C, or any signal) stops the run it started too. This script then
writes, from those files,

    assets/likelihoods_2d.png    prior samples of the three models, decoded from the same codes
    models/likelihoods_2d.json   each model's loss terms and ln p(x) estimates, in nats per image
"""

import argparse
import ctypes
import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from vae.data import DATASET_SIZES
from vae.saving import pending_journals, sha256

REPO_ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 30  # the 2-D chapter's
TRAIN_IMAGES, TEST_IMAGES = DATASET_SIZES["mnist"]  # these runs train, test and evaluate on all of MNIST
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
SUMMARY = REPO_ROOT / "models" / "likelihoods_2d.json"


def recorded_times():
    """What the committed summary records of this comparison's times, in words, for --help."""
    try:
        settings = json.loads(SUMMARY.read_text())["settings"]
        training = sum(result["seconds_training"] for result in settings.values())
    except (OSError, ValueError, KeyError, TypeError):
        return "No times are recorded yet (models/likelihoods_2d.json holds them once written)."
    evaluating = [result.get("iw_seconds") for result in settings.values()]
    evaluation = (f", and {sum(evaluating):,.0f} s of ln p(x) estimates" if None not in evaluating else
                  "; the time of the ln p(x) estimates is not recorded there")
    return (f"Times recorded in models/likelihoods_2d.json: its {len(settings)} runs trained for {training:,.0f} s "
            f"in all "
            f"({', '.join(str(result['epochs']) for result in settings.values())} epochs){evaluation}.")


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, epilog=textwrap.fill(recorded_times(), 100),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs of each run (default: the 2-D chapter's, {EPOCHS}); other values write no "
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


def die_with_parent(parent):
    """In a child process of process `parent` (this script), before it runs: put it in a process group of its
    own, so that Ctrl-C in a terminal reaches this script alone, which passes it on once (`stop`); and on
    Linux ask for SIGTERM when its parent dies, however it dies, SIGKILL included (if the parent died
    already, end now)."""
    os.setpgid(0, 0)
    if not sys.platform.startswith("linux"):
        return
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def run_step(command, what):
    """Run one chapter or explore.py command; stop this script (the one running: code/compare_beta.py uses
    this too) with one line if it fails or is interrupted. The command dies with this script."""
    print(f"\n== {what}: {' '.join(map(str, command))}", flush=True)
    child = None
    try:
        child = subprocess.Popen([sys.executable, *map(str, command)], cwd=REPO_ROOT,
                                 preexec_fn=functools.partial(die_with_parent, os.getpid()))
        status = child.wait()
    except KeyboardInterrupt:
        if child is not None:  # else it was still starting: it dies with this script
            stop(child)
        raise SystemExit(f"\nInterrupted during {what}. Run the same command again: the finished runs are kept, "
                         "and an interrupted one resumes where it stopped.") from None
    if status != 0:
        raise SystemExit(f"{Path(sys.argv[0]).stem}: {what} stopped (exit {status}); its message is above. "
                         "Run this script again once it is fixed: the finished runs are kept.")


def stop(child, seconds=30):
    """After Ctrl-C: pass it on to `child`, which stops as after its own Ctrl-C, saying where it stopped;
    kill it if it has not within `seconds`, or at a second Ctrl-C."""
    try:
        child.send_signal(signal.SIGINT)
        child.wait(seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
        child.kill()
        child.wait()


# What a run of `python code/vae_2d.py` has unless a flag says otherwise, among what the comparisons vary.
CHAPTER_DEFAULTS = {"dataset": "mnist", "architecture": "mlp", "latent_dim": 2, "beta": 1.0, "kl_warmup_epochs": 0,
                    "free_bits": 0.0, "likelihood": "bernoulli", "binarize": "off"}
MODEL_FILES = ("models/encoder_2d.h5", "models/decoder_2d.h5", "models/test_encodings_2d.npz")


def trained_run_problem(folder, expected):
    """None if `folder` holds a finished 2-D chapter run whose models/metrics_2d.json has each value of
    `expected` ({key: value}) and whose model files are those the metrics list (SHA-256); else what is not
    so, in words (code/compare_beta.py uses this too)."""
    if pending_journals(folder / "models"):  # its rerun first finishes the moves, and trains nothing again
        return "its outputs were still moving into place when it was interrupted"
    try:
        metrics = json.loads((folder / "models" / "metrics_2d.json").read_text())
    except (OSError, ValueError):
        return "no finished run"
    differing = [f"{key} {metrics.get(key)!r} (not {value!r})" for key, value in expected.items()
                 if metrics.get(key) != value]
    if differing:
        return f"its run has {', '.join(differing)}"
    listed = metrics.get("files") or {}
    for name in MODEL_FILES:
        path = folder / name
        if name not in listed or not path.is_file() or sha256(path) != listed[name]:
            return f"its {name} is not the file its metrics_2d.json lists (SHA-256)"
    return None


def evaluation_problem(folder, likelihood, binarize):
    """None if `folder`'s models/likelihood_2d.json is explore.py's evaluation of its saved model as this
    comparison asks (K = IMPORTANCE_SAMPLES on all TEST_IMAGES test images); else what is not so."""
    path = folder / "models" / "likelihood_2d.json"
    try:
        evaluation = json.loads(path.read_text())
    except (OSError, ValueError):
        return "no evaluation"
    expected = {"iw_samples": IMPORTANCE_SAMPLES, "likelihood_images": TEST_IMAGES, "likelihood": likelihood,
                "binarize": binarize}
    differing = [f"{key} {evaluation.get(key)!r} (not {value!r})" for key, value in expected.items()
                 if evaluation.get(key) != value]
    if differing:
        return f"its evaluation has {', '.join(differing)}"
    if path.stat().st_mtime < (folder / "models" / "decoder_2d.h5").stat().st_mtime:
        return "its evaluation is older than its model"
    return None


def main(argv=None):
    args = parse_arguments(argv)
    runs = Path(args.runs)
    epochs = args.epochs or EPOCHS
    for number, (name, (likelihood, binarize)) in enumerate(SETTINGS.items(), 1):
        folder = runs / name
        step = f"run {number} of {len(SETTINGS)}: {name}"
        expected = {**CHAPTER_DEFAULTS, "likelihood": likelihood, "binarize": binarize, "epochs": epochs,
                    "train_images": TRAIN_IMAGES, "test_images": TEST_IMAGES}
        problem = trained_run_problem(folder, expected)
        if problem is None:
            print(f"\n== {step}: trained earlier in {folder}, kept")
        else:
            if problem != "no finished run":
                print(f"\n== {step}: not reusing the run in {folder}: {problem}")
            (folder / "models" / "likelihood_2d.json").unlink(missing_ok=True)  # an older model's, if any
            train = ["code/vae_2d.py", "--likelihood", likelihood, "--binarize", binarize, "--out", folder,
                     "--epochs", epochs]
            if args.data_dir:
                train += ["--data-dir", args.data_dir]
            run_step(train, f"{step}, training ({epochs} epoch{'s' if epochs != 1 else ''})")
        problem = evaluation_problem(folder, likelihood, binarize)
        if problem is None:
            print(f"== {step}: ln p(x) evaluated earlier, kept")
            continue
        explore = ["code/explore.py", "--encoder", folder / "models" / "encoder_2d.h5",
                   "--decoder", folder / "models" / "decoder_2d.h5", "--name", "2d", "--binarize", binarize,
                   "--figures", "none", "--samples", IMPORTANCE_SAMPLES, "--out", folder]
        if args.data_dir:
            explore += ["--data-dir", args.data_dir]
        run_step(explore, f"{step}, evaluating ln p(x) (K = {IMPORTANCE_SAMPLES:,} on {TEST_IMAGES:,} test images)")
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
            "iw_seconds": inside.get("iw_seconds"),  # the time of the ln p(x) estimate
            "data_convention": inside["data_convention"],
            "seconds_training": metrics["seconds_training"],
        }
        decoders.append(load_model_safely(models / "decoder_2d.h5"))
        titles.append(TITLES[name])  # the numbers, not comparable across the three, are the page's table
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(parents=True, exist_ok=True)
    print("\n== drawing the figure and writing the summary", flush=True)
    plot_samples_compared(decoders, titles, out / "assets" / "likelihoods_2d.png")
    save_json({"model": "2d", "settings": results}, out / "models" / "likelihoods_2d.json")
    print(f"\nWrote {out / 'assets' / 'likelihoods_2d.png'} and {out / 'models' / 'likelihoods_2d.json'}")
    for name, result in results.items():
        exact = result["quadrature_log_likelihood"]
        exact = f"−ln p(x) exact {-exact:8.2f}" if exact is not None else "no exact −ln p(x)      "
        print(f"  {name:21s} test loss {result['test_loss']:8.2f}   {exact}   ({result['data_convention']})")


if __name__ == "__main__":
    main()
