"""The reconstruction term three ways: the 2-D model trained with each pixel likelihood, side by side.

    python code/compare_likelihoods.py               # three 2-D settings × 3 seeds, 30 epochs, and their ln p(x)
    python code/compare_likelihoods.py --epochs 3 --seeds 1   # short runs, for a quick look (into --runs)

The three settings (vae/pixels.py has the formulas):

  bernoulli             grayscale pixels as the targets of a Bernoulli likelihood: the tutorial's default.
                        Not a normalized density for targets strictly between 0 and 1.
  continuous_bernoulli  grayscale pixels under the continuous Bernoulli (Loaiza-Ganem & Cunningham 2019):
                        the Bernoulli's formula plus its normalizing constant, a true density on [0, 1].
  binarized             the Bernoulli on dynamically binarized MNIST: each training image drawn afresh as
                        Bernoulli(pixel) at every step, the test set drawn once (the literature's protocol).

Each model is trained by the 2-D chapter itself, with seeds 0, 1 and 2 (--seeds N: 0 … N − 1; the chapter's
--seed, 0 its default), `python code/vae_2d.py --likelihood L --binarize B --seed S --out
RUNS/2d/<setting>/seed<S>` (the Bernoulli's runs are the chapter's default runs, shared with
code/compare_beta.py and code/compare_priors.py; its seed 0 is the repository's own run, copied rather than
trained again), so that a killed or interrupted comparison resumes where it stopped, as any chapter run
does. Each is then evaluated by `python code/explore.py` (ln p(x) with K = 1000 importance samples on
the 10,000 test images, and exactly by quadrature). A run is reused only if it is what this comparison asks
for: its metrics_2d.json names the same likelihood, binarization, seed, epochs and training images, and its model
files are those the metrics list (SHA-256); its evaluation, only if it used K = 1000 on all 10,000 test
images after that model was saved. So a run stopped while it was being evaluated is evaluated again, not
trained again. Killing this script (Ctrl-C, or any signal) stops the run it started too. This script then
writes, from those files,

    assets/likelihoods_2d.png    prior samples of the three models (seed 0's), decoded from the same codes
    models/likelihoods_2d.json   each model's loss terms and ln p(x) estimates, in nats per image: seed 0's, and
                                 every seed's with their spread (vae/spread.py); the rankings beyond the spread
"""

import argparse
import ctypes
import functools
import json
import os
import shutil
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
        spreads = [result["over_seeds"] for result in settings.values()]
        training = sum(sum(spread["values"]["seconds_training"]) for spread in spreads)
        runs = sum(len(spread["seeds"]) for spread in spreads)
    except (OSError, ValueError, KeyError, TypeError):
        return "No times are recorded yet (models/likelihoods_2d.json holds them once written)."
    evaluating = [spread["values"].get("iw_seconds") for spread in spreads]
    evaluation = (f", and {sum(map(sum, evaluating)):,.0f} s of ln p(x) estimates" if None not in evaluating else
                  "; the time of the ln p(x) estimates is not recorded there")
    return (f"Times recorded in models/likelihoods_2d.json: its {runs} runs trained for {training:,.0f} s in all "
            f"({', '.join(str(result['epochs']) for result in settings.values())} epochs){evaluation}.")


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, epilog=textwrap.fill(recorded_times(), 100),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs of each run (default: the 2-D chapter's, {EPOCHS}); other values write no "
                             "committed file unless --out says where")
    add_seeds_option(parser)
    parser.add_argument("--runs", default=str(REPO_ROOT / "runs"), metavar="DIR",
                        help="where the runs keep their models, in 2d/<setting>/seed<N>/ (default: runs/, not "
                             "committed)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write assets/likelihoods_2d.png and models/likelihoods_2d.json under DIR "
                             "(default: the repository for a default run, else --runs)")
    parser.add_argument("--data-dir", metavar="DIR", help="a folder holding MNIST (default: as the scripts)")
    parser.add_argument("--summarize-only", action="store_true",
                        help="train and evaluate nothing: write the summary and figure from the runs finished so far")
    args = parser.parse_args(argv)
    if args.epochs is not None and not 1 <= args.epochs <= 10_000:
        parser.error(f"--epochs must be from 1 to 10,000, got {args.epochs}")
    if args.out is None:
        args.out = str(REPO_ROOT) if (args.epochs, args.seeds) == (None, SEEDS) else args.runs
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
SEEDS = 3  # each setting is trained with seeds 0, 1, 2 (0 is the chapters' default seed)


def model_files(name="2d"):
    """The model files of a run of chapter `name` ("2d", "correlated"), relative to its --out folder."""
    return (f"models/encoder_{name}.h5", f"models/decoder_{name}.h5", f"models/test_encodings_{name}.npz")


MODEL_FILES = model_files("2d")


def seeds_argument(value):
    """--seeds N: how many seeds, 1 to 100 (argparse type)."""
    try:
        seeds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}") from None
    if not 1 <= seeds <= 100:
        raise argparse.ArgumentTypeError(f"must be from 1 to 100, got {seeds}")
    return seeds


def add_seeds_option(parser):
    """The comparisons' --seeds N: train each setting with seeds 0 ... N − 1."""
    parser.add_argument("--seeds", type=seeds_argument, default=SEEDS, metavar="N",
                        help="train each setting with seeds 0 … N−1 (the chapters' --seed; 0 is their default), to "
                             "see the spread between runs (default: %(default)s)")


def check_run_size(parser, args, epochs):
    """Refuse an --epochs or --train-size out of bounds (one line, before any work), and send a run's summary
    to the repository only when it is the default run (`epochs` epochs, all the images, SEEDS seeds):
    --out defaults to --runs otherwise. For code/compare_beta.py and code/compare_priors.py."""
    if not 1 <= args.epochs <= 10_000:
        parser.error(f"--epochs must be from 1 to 10,000, got {args.epochs}")
    if args.train_size is not None and not 1 <= args.train_size <= DATASET_SIZES["mnist"][0]:
        parser.error(f"--train-size must be from 1 to {DATASET_SIZES['mnist'][0]:,}, got {args.train_size}")
    if args.out is None:
        args.out = str(REPO_ROOT) if (args.epochs, args.train_size, args.seeds) == (epochs, None, SEEDS) else args.runs


def run_folder(runs, chapter, flags, seed):
    """Where a comparison keeps the run of chapter `chapter` ("2d", "correlated") with the flags `flags` and
    seed `seed`: RUNS/<chapter>/<the flags that differ from the chapter's defaults, or "default">/seed<N>.
    One run serves every comparison that asks for it (the 2-D default is β = 1 of the β sweep, the
    Bernoulli of the likelihoods and the standard prior of the priors)."""
    differing = [(key, value) for key, value in flags.items() if CHAPTER_DEFAULTS.get(key) != value]
    setting = "_".join(f"{key}_{value:g}" if isinstance(value, (int, float)) else f"{key}_{value}"
                       for key, value in differing) or "default"
    return Path(runs) / chapter / setting / f"seed{seed}"


def trained_run_problem(folder, expected, name="2d"):
    """None if `folder` holds a finished run of chapter `name` whose models/metrics_<name>.json has each value
    of `expected` ({key: value}) and whose model files are those the metrics list (SHA-256); else what is not
    so, in words (code/compare_beta.py and code/compare_priors.py use this too)."""
    if pending_journals(folder / "models"):  # its rerun first finishes the moves, and trains nothing again
        return "its outputs were still moving into place when it was interrupted"
    try:
        metrics = json.loads((folder / "models" / f"metrics_{name}.json").read_text())
    except (OSError, ValueError):
        return "no finished run"
    differing = [f"{key} {metrics.get(key)!r} (not {value!r})" for key, value in expected.items()
                 if metrics.get(key) != value]
    if differing:
        return f"its run has {', '.join(differing)}"
    listed = metrics.get("files") or {}
    for file in model_files(name):
        path = folder / file
        if file not in listed or not path.is_file() or sha256(path) != listed[file]:
            return f"its {file} is not the file its metrics_{name}.json lists (SHA-256)"
    return None


COMMITTED_RUNS = REPO_ROOT  # the chapters' own runs: the repository's models/


def copy_committed_run(folder, expected, name="2d"):
    """If `folder` holds no finished run and the chapter's own run of `name` (the repository's committed
    models/, COMMITTED_RUNS) is the one asked for (`expected`, as trained_run_problem), copy that run's model
    files and metrics into `folder`, with explore.py's evaluation of it (models/likelihood_<name>.json) if
    there is one: the chapter's default run is then not trained again. True if it copied."""
    repository = COMMITTED_RUNS
    if trained_run_problem(folder, expected, name) != "no finished run" or \
            trained_run_problem(repository, expected, name) is not None:
        return False
    (folder / "models").mkdir(parents=True, exist_ok=True)
    # The model files first, the metrics after them (a run is finished once its metrics are there), the
    # evaluation last (it must not be older than the model).
    for file in [*model_files(name), f"models/metrics_{name}.json", f"models/likelihood_{name}.json"]:
        if (repository / file).is_file():
            shutil.copyfile(repository / file, folder / file)
    return True


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


def setting_flags(name):
    """The vae_2d.py flags of setting `name`: {"likelihood": ..., "binarize": ...}."""
    likelihood, binarize = SETTINGS[name]
    return {"likelihood": likelihood, "binarize": binarize}


def expected_metrics(name, epochs, seed):
    """What a finished run's metrics_2d.json must say to be setting `name`'s run with this seed."""
    return {**CHAPTER_DEFAULTS, **setting_flags(name), "seed": seed, "epochs": epochs, "train_images": TRAIN_IMAGES,
            "test_images": TEST_IMAGES}


def main(argv=None):
    args = parse_arguments(argv)
    epochs = args.epochs or EPOCHS
    runs = [(name, seed) for seed in range(args.seeds) for name in SETTINGS]  # seed 0 of each, then seed 1, ...
    for number, (name, seed) in enumerate([] if args.summarize_only else runs, 1):
        likelihood, binarize = SETTINGS[name]
        folder = run_folder(args.runs, "2d", setting_flags(name), seed)
        step = f"run {number} of {len(runs)}: {name}, seed {seed}"
        expected = expected_metrics(name, epochs, seed)
        if copy_committed_run(folder, expected):
            print(f"\n== {step}: the chapter's own run, copied from {REPO_ROOT / 'models'} into {folder}")
        problem = trained_run_problem(folder, expected)
        if problem is None:
            print(f"\n== {step}: trained earlier in {folder}, kept")
        else:
            if problem != "no finished run":
                print(f"\n== {step}: not reusing the run in {folder}: {problem}")
            (folder / "models" / "likelihood_2d.json").unlink(missing_ok=True)  # an older model's, if any
            train = ["code/vae_2d.py", "--likelihood", likelihood, "--binarize", binarize, "--seed", seed,
                     "--out", folder, "--epochs", epochs]
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
    done = {}
    for name, seed in runs:
        folder = run_folder(args.runs, "2d", setting_flags(name), seed)
        if (trained_run_problem(folder, expected_metrics(name, epochs, seed)) is None
                and evaluation_problem(folder, *SETTINGS[name]) is None):
            done.setdefault(name, {})[seed] = folder
    missing = [f"{name} seed {seed}" for name, seed in runs if seed not in done.get(name, {})]
    if missing:
        print(f"\n== not finished yet, so left out of the summary: {', '.join(missing)}")
    if not done:
        print("\n== no finished run to summarize yet")
        return
    write_comparison(done, Path(args.out))


# The numbers whose spread over seeds the summary gives.
SPREAD_METRICS = ("test_loss", "test_reconstruction", "test_kl", "elbo", "iw_log_likelihood",
                  "quadrature_log_likelihood", "seconds_training", "iw_seconds",
                  "mutual_information_train", "marginal_kl_train", "prior_mass_in_holes_train")
# What the summary ranks, and among which settings, True where higher is better. The three models' ln p(x) are
# of different data (grayscale under two likelihoods, a log-density for the continuous Bernoulli; binary
# images): only the Bernoulli's and the binarized model's are comparable in kind, as the page reads them.
RANKED = {"test_kl": (False, ("bernoulli", "continuous_bernoulli", "binarized")),
          "quadrature_log_likelihood": (True, ("bernoulli", "binarized")),
          "iw_log_likelihood": (True, ("bernoulli", "binarized"))}


def run_result(folder, name):
    """One run's numbers (nats per image): its metrics_2d.json and explore.py's likelihood_2d.json."""
    likelihood, binarize = SETTINGS[name]
    models = folder / "models"
    metrics = json.loads((models / "metrics_2d.json").read_text())
    inside = json.loads((models / "likelihood_2d.json").read_text())
    return {
        "likelihood": likelihood,
        "binarize": binarize,
        "seed": metrics.get("seed", 0),
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
        # The KL's two parts and the holes on the training codes (vae/evaluation.py, as the chapters measure
        # them): where a likelihood's KL goes, telling the images apart or moving the codes off the prior.
        "mutual_information_train": metrics.get("kl_split", {}).get("train", {}).get("mutual_information"),
        "marginal_kl_train": metrics.get("kl_split", {}).get("train", {}).get("marginal_kl"),
        "prior_mass_in_holes_train": metrics.get("holes", {}).get("train", {}).get("prior_mass_in_holes"),
    }


def write_comparison(done, out):
    """models/likelihoods_2d.json and assets/likelihoods_2d.png under `out`, from the finished runs `done`
    ({setting name: {seed: folder}}); the figure draws each setting's seed 0 (else its first seed)."""
    from vae.figures import plot_samples_compared
    from vae.saving import load_model_safely, save_json
    from vae.spread import RULE, mean_sd, over_seeds, ranking

    results, decoders, titles = {}, [], []
    for name in SETTINGS:
        if name not in done:
            continue
        runs = {seed: run_result(folder, name) for seed, folder in sorted(done[name].items())}
        first = min(runs)
        results[name] = {**runs[first], "over_seeds": over_seeds(runs, SPREAD_METRICS)}
        if any(run["quadrature_skipped"] for run in runs.values()):  # why some seed has no exact value
            results[name]["over_seeds"]["quadrature_skipped"] = {
                seed: run["quadrature_skipped"] for seed, run in runs.items() if run["quadrature_skipped"]}
        decoders.append(load_model_safely(done[name][first] / "models" / "decoder_2d.h5"))
        titles.append(TITLES[name])  # the numbers, not comparable across the three, are the page's table
    rankings = {}
    for metric, (higher, names) in RANKED.items():
        spreads = {name: results[name]["over_seeds"] for name in names if name in results}
        rankings[metric] = ranking(spreads, metric, higher)
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(parents=True, exist_ok=True)
    print("\n== drawing the figure and writing the summary", flush=True)
    plot_samples_compared(decoders, titles, out / "assets" / "likelihoods_2d.png")
    save_json({"model": "2d", "spread": RULE, "settings": results, "rankings": rankings},
              out / "models" / "likelihoods_2d.json")
    print(f"\nWrote {out / 'assets' / 'likelihoods_2d.png'} and {out / 'models' / 'likelihoods_2d.json'}")
    for name, result in results.items():
        spread = result["over_seeds"]
        exact = (f"ln p(x) exact {mean_sd(spread, 'quadrature_log_likelihood')}"
                 if "quadrature_log_likelihood" in spread["mean"] else "no exact ln p(x) for every seed")
        print(f"  {name:21s} seeds {','.join(map(str, spread['seeds']))}: test loss {mean_sd(spread, 'test_loss')}  "
              f"KL {mean_sd(spread, 'test_kl')}  {exact}   ({result['data_convention']})")
    for metric, verdict in rankings.items():
        beyond = [f"{pair['better']} > {pair['worse']}" for pair in verdict["pairs"] if pair["beyond_spread"]]
        print(f"  {metric} ({verdict['better']} is better), by mean: {', '.join(verdict['order'])}; "
              f"beyond the spread: {', '.join(beyond) or 'none'}")


if __name__ == "__main__":
    main()
