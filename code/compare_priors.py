"""The correlated prior against the standard one, and two latent dimensions against three: the chapters'
default models, each with several seeds.

    python code/compare_priors.py                   # 3 models × 3 seeds, 30 epochs each
    python code/compare_priors.py --epochs 2 --train-size 2000 --seeds 2 --runs /tmp/priors   # a quick look

The page argues that a fixed prior N(0, Σ) changes the geometry of the codes and not the quality of the
model: the decoder's first layer absorbs the map z = L ε. Whether the two models' losses agree is a matter
of run-to-run spread, so each is trained with seeds 0, 1 and 2 (--seeds N: 0 … N − 1; the chapters' --seed,
0 their default):

  standard    python code/vae_2d.py --seed S --out RUNS/2d/default/seed<S>
  correlated  python code/vae_correlated.py --prior-cov "1,0.4;0.4,0.5" --seed S --out RUNS/correlated/default/seed<S>
  3d          python code/vae_3d.py --seed S --out RUNS/3d/default/seed<S>

The 3-D chapter's model is the 2-D one with a third latent dimension: the page ranks the two by their loss,
which it may only do beyond the same spread.

The standard runs are the 2-D chapter's default runs, shared with code/compare_beta.py (β = 1) and
code/compare_likelihoods.py (the Bernoulli). Seed 0 of each is the chapter's own run: copied from the
repository's models/ when it is the run asked for, not trained again. A finished run is reused if its
metrics name the same settings, seed, epochs and training images and its model files are those its metrics
list (SHA-256); an interrupted one resumes after its last finished epoch. Killing this script (Ctrl-C, or
any signal) stops the run it started too. Writes

    assets/priors_2d.png      each seed's test loss (−ELBO), KL and ln p(x) for the three models, with mean ± sd
    models/priors_2d.json     per prior: seed 0's numbers, every seed's with their spread (vae/spread.py),
                              and which differences are beyond the spread

Every number is in nats per image, on the test set.
"""

import argparse
import json
import textwrap
from pathlib import Path

from compare_likelihoods import (CHAPTER_DEFAULTS, add_seeds_option, check_run_size, copy_committed_run, run_folder,
                                 run_step, trained_run_problem)
from vae.data import DATASET_SIZES
from vae.inspection import SCRIPT_SAMPLES

REPO_ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 30  # the chapters'
PRIOR_COV = [[1.0, 0.4], [0.4, 0.5]]  # the correlated chapter's Σ, passed as --prior-cov: its metrics are checked
PRIORS = {  # name: (chapter script, its run's name, flags beyond the chapter's defaults)
    "standard": ("code/vae_2d.py", "2d", {}),
    "correlated": ("code/vae_correlated.py", "correlated", {"prior_cov": PRIOR_COV}),
    "3d": ("code/vae_3d.py", "3d", {"latent_dim": 3}),  # the standard prior in three dimensions (its default)
}
TICKS = {"standard": "N(0, I)", "correlated": "N(0, Σ)", "3d": "N(0, I), 3-D"}  # the figure's names of the priors
SUMMARY = REPO_ROOT / "models" / "priors_2d.json"
# The numbers whose spread over seeds the summary gives, and those it ranks (True where higher is better).
SPREAD_METRICS = ("test_loss", "test_reconstruction", "test_kl", "test_elbo", "iw_log_likelihood", "active_units",
                  "mutual_information_test", "marginal_kl_test", "prior_mass_in_holes_test", "seconds_training")
RANKED = {"test_loss": False, "test_elbo": True, "iw_log_likelihood": True, "test_reconstruction": False,
          "test_kl": False}


def recorded_times():
    """What the committed summary records of this comparison's times, in words, for --help."""
    try:
        priors = json.loads(SUMMARY.read_text())["priors"]
        seconds = sum(sum(result["over_seeds"]["values"]["seconds_training"]) for result in priors.values())
        runs = sum(len(result["over_seeds"]["seeds"]) for result in priors.values())
    except (OSError, ValueError, KeyError, TypeError):
        return "No times are recorded yet (models/priors_2d.json holds them once written)."
    return f"Times recorded in models/priors_2d.json: its {runs} runs trained for {seconds:,.0f} s in all."


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, epilog=textwrap.fill(recorded_times(), 100),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="epochs of each run (default: the chapters', %(default)s)")
    parser.add_argument("--train-size", type=int, metavar="N", help="train on the first N images (default: all)")
    add_seeds_option(parser)
    parser.add_argument("--runs", default=str(REPO_ROOT / "runs"), metavar="DIR",
                        help="where the runs keep their models, in 2d/default/seed<N>/ and correlated/default/seed<N>/ "
                             "(default: runs/, not committed)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write assets/ and models/ under DIR (default: the repository for a default run, "
                             "else --runs)")
    parser.add_argument("--data-dir", metavar="DIR", help="a folder holding MNIST (default: as the chapters)")
    parser.add_argument("--summarize-only", action="store_true",
                        help="train nothing: write the summary and figure from the runs finished so far")
    args = parser.parse_args(argv)
    check_run_size(parser, args, EPOCHS)
    return args


def expected_metrics(prior, args, seed):
    """What a finished run's metrics must say to be prior `prior`'s run with this seed: the chapter's
    defaults, this seed, epochs and training images, ln p(x) with the chapter's K on all the test images."""
    _, _, flags = PRIORS[prior]
    expected = {**CHAPTER_DEFAULTS, "seed": seed, "epochs": args.epochs,
                "train_images": args.train_size or DATASET_SIZES["mnist"][0], "iw_samples": SCRIPT_SAMPLES}
    if "prior_cov" in flags:
        expected["prior_covariance"] = flags["prior_cov"]
    if "latent_dim" in flags:  # the 3-D chapter's own default, so no flag is passed
        expected["latent_dim"] = flags["latent_dim"]
    return expected


def folder_of(prior, args, seed):
    """Where prior `prior`'s run with this seed is kept: RUNS/<chapter>/default/seed<N>."""
    _, name, _ = PRIORS[prior]
    return run_folder(args.runs, name, {}, seed)


def reuse_problem(prior, args, seed):
    """None if the run of `prior` with this seed has finished as asked (expected_metrics, with its ln p(x)
    over all its test images); else what is not so, in words."""
    _, name, _ = PRIORS[prior]
    folder = folder_of(prior, args, seed)
    problem = trained_run_problem(folder, expected_metrics(prior, args, seed), name)
    if problem is not None:
        return problem
    metrics = json.loads((folder / "models" / f"metrics_{name}.json").read_text())
    if metrics.get("likelihood_images") != metrics.get("test_images"):
        return (f"its ln p(x) is over {metrics.get('likelihood_images')} images, not all its "
                f"{metrics.get('test_images')} test images")
    return None


def train_all(args):
    """Train every prior × seed not finished yet: seed 0 of both, then seed 1 of both, ..."""
    runs = [(prior, seed) for seed in range(args.seeds) for prior in PRIORS]
    for number, (prior, seed) in enumerate(runs, 1):
        script, name, flags = PRIORS[prior]
        folder = folder_of(prior, args, seed)
        step = f"run {number} of {len(runs)}: the {TICKS[prior]} prior, seed {seed}"
        if copy_committed_run(folder, expected_metrics(prior, args, seed), name):
            print(f"\n== {step}: the chapter's own run, copied from {REPO_ROOT / 'models'} into {folder}")
        problem = reuse_problem(prior, args, seed)
        if problem is None:
            print(f"\n== {step}: finished earlier in {folder}, kept")
            continue
        if problem != "no finished run":
            print(f"\n== {step}: not reusing the run in {folder}: {problem}")
        command = [script, "--epochs", args.epochs, "--seed", seed, "--out", folder]
        if "prior_cov" in flags:
            command += ["--prior-cov", ";".join(",".join(f"{value:g}" for value in row) for row in flags["prior_cov"])]
        if args.train_size:
            command += ["--train-size", args.train_size]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        run_step(command, f"{step}, training and evaluating ({args.epochs} epoch{'s' if args.epochs != 1 else ''})")


def run_summary(folder, name):
    """A finished run's test-set numbers from its models/metrics_<name>.json, nats per image: the loss terms,
    ln p(x) (importance-weighted, the chapter's K), and the KL's two parts and the holes on the test codes."""
    metrics = json.loads((folder / "models" / f"metrics_{name}.json").read_text())
    split, holes = metrics.get("kl_split", {}).get("test", {}), metrics.get("holes", {}).get("test", {})
    return {
        "model": metrics["model"],
        "seed": metrics.get("seed", 0),
        "epochs": metrics["epochs"],
        "train_images": metrics["train_images"],
        "prior_covariance": metrics.get("prior_covariance", [[1.0, 0.0], [0.0, 1.0]]),
        "test_loss": metrics["test_loss"],
        "test_reconstruction": metrics["test_reconstruction"],
        "test_kl": metrics["test_kl"],
        "test_elbo": metrics["test_elbo"],
        "iw_samples": metrics["iw_samples"],
        "iw_log_likelihood": metrics["iw_log_likelihood"],
        "active_units": metrics["active_units"],
        "mutual_information_test": split.get("mutual_information"),  # I(n; z) of the test codes
        "marginal_kl_test": split.get("marginal_kl"),  # KL(q(z) ‖ p(z)) of the test codes
        "prior_mass_in_holes_test": holes.get("prior_mass_in_holes"),
        "seconds_training": metrics["seconds_training"],
    }


def write_summary(done, out):
    """models/priors_2d.json and assets/priors_2d.png under `out`, from the finished runs `done`
    ({prior: {seed: folder}})."""
    from vae.figures import plot_seed_spread
    from vae.saving import save_json
    from vae.spread import RULE, mean_sd, over_seeds, ranking

    print("\n== priors: drawing the figure and writing the summary", flush=True)
    results = {}
    for prior, seeds in done.items():
        runs = {seed: run_summary(folder, PRIORS[prior][1]) for seed, folder in sorted(seeds.items())}
        results[prior] = {**runs[min(runs)], "over_seeds": over_seeds(runs, SPREAD_METRICS)}
    spreads = {prior: result["over_seeds"] for prior, result in results.items()}
    rankings = {metric: ranking(spreads, metric, higher) for metric, higher in RANKED.items()}
    paths = [out / "assets" / "priors_2d.png", out / "models" / "priors_2d.json"]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    plot_seed_spread({f"{prior}\n{TICKS[prior]}": spread for prior, spread in spreads.items()},
                     [("test loss = −ELBO", "test_loss"), ("KL", "test_kl"),
                      (f"−ln p(x), K = {SCRIPT_SAMPLES}", "iw_log_likelihood")],
                     paths[0], negate={"iw_log_likelihood"})
    save_json({"model": "2d", "spread": RULE, "priors": results, "rankings": rankings}, paths[1])
    print(f"\nWrote {', '.join(map(str, paths))}")
    for prior, spread in spreads.items():
        print(f"  {prior:10s} seeds {','.join(map(str, spread['seeds']))}: "
              + "  ".join(f"{label} {mean_sd(spread, metric)}" for label, metric in
                          [("loss", "test_loss"), ("reconstruction", "test_reconstruction"), ("KL", "test_kl"),
                           ("ELBO", "test_elbo"), ("ln p(x)", "iw_log_likelihood")]))
    for metric, verdict in rankings.items():
        pair = verdict["pairs"][0] if verdict["pairs"] else None
        if pair:
            print(f"  {metric}: {pair['better']} by {pair['difference']:.2f} nats, "
                  f"{'beyond' if pair['beyond_spread'] else 'within'} the spread")


def main(argv=None):
    args = parse_arguments(argv)
    if not args.summarize_only:
        train_all(args)
    done = {}
    for seed in range(args.seeds):
        for prior in PRIORS:
            if reuse_problem(prior, args, seed) is None:
                done.setdefault(prior, {})[seed] = folder_of(prior, args, seed)
    missing = [f"{prior} seed {seed}" for seed in range(args.seeds) for prior in PRIORS
               if seed not in done.get(prior, {})]
    if missing:
        print(f"\n== not finished yet, so left out of the summary: {', '.join(missing)}")
    if not done:
        print("\n== no finished run to summarize yet")
        return
    write_summary(done, Path(args.out))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # while writing the summary (run_step reports one inside a run)
        raise SystemExit("\nInterrupted. Run the same command again: the finished runs are kept.") from None
