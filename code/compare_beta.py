"""The KL's weight β, and posterior collapse: the 2-D model for five values of β, and a 32-D model with
and without two remedies for dimensions that collapse to the prior.

    python code/compare_beta.py                    # both studies, 8 settings × 3 seeds, 30 epochs each
    python code/compare_beta.py --study beta       # only the β sweep (5 settings × 3 seeds)
    python code/compare_beta.py --epochs 2 --train-size 2000 --seeds 2 --runs /tmp/beta   # a quick look

Each setting is trained with seeds 0, 1 and 2 (--seeds N: 0 … N − 1; the chapter's --seed, 0 its default), as
`python code/vae_2d.py ... --seed S --out RUNS/2d/<setting>/seed<S>`, so that every number comes with its
spread between runs (vae/spread.py): the summaries hold each seed's values, their mean, sample standard
deviation, minimum and maximum, and which settings rank above which beyond that spread.

Study "beta": the 2-D chapter trained with β = 0, 0.5, 1, 4 and 16 (`--beta B`). Below 1, β buys better
reconstructions with more nats of KL (the rate); above 1 it pulls the codes towards the prior until a
dimension carries nothing (Higgins et al. 2017; Alemi et al. 2018). Writes

    assets/beta_sweep.png        per β: the test images' codes, and digits decoded from prior samples (seed 0)
    assets/rate_distortion.png   per β: the KL (rate) against the reconstruction term (distortion), each seed
    assets/beta_spread.png       β = 0.5, 1 and 4 close up: each seed's −ELBO and −ln p(x), and mean ± sd
    models/beta_sweep.json       per β: the loss terms, the ELBO, ln p(x), active units, the KL per dimension;
                                 seed 0's run, and every seed's values with their spread; the rankings

Study "collapse": the chapter's model with 32 latent dimensions and β = 1, where many dimensions collapse to
the prior: plain, with a KL warm-up over 10 epochs (Bowman et al. 2016; --kl-warmup-epochs) and with free bits
of 0.25 nats per dimension (Kingma et al. 2016; --free-bits), each by `python code/vae_2d.py --latent-dim 32
...`. Writes

    assets/collapse_32.png       each setting's KL per dimension, sorted, one line per seed
    models/collapse_32.json      per setting: active units, the KL per dimension, the ELBO; seed 0's run, and
                                 every seed's values with their spread; the rankings

Every number is in nats per image, on the test set. A setting whose run has finished is not trained again if
it is what this comparison asks for: its metrics_2d.json names the same settings, seed, epochs and training
images, ln p(x) estimated with the chapter's K on all the test images, and its model files are those the metrics list
(SHA-256). An interrupted run resumes after its last finished epoch (or at its evaluation), as any chapter run
does. The chapter's own run (the repository's models/, seed 0 with the default settings) is copied into
RUNS/2d/default/seed0 rather than trained again, when it is the run asked for. A run serves every comparison
that asks for it (β = 1 is the default run, as are code/compare_likelihoods.py's Bernoulli and
code/compare_priors.py's standard prior). Killing this script (Ctrl-C, or any signal) stops the run it
started too.
"""

import argparse
import json
import textwrap
from pathlib import Path

# run_step runs one chapter command (dying with this script; one line if it fails or is interrupted), and
# trained_run_problem says whether a run can be reused.
from compare_likelihoods import (CHAPTER_DEFAULTS, add_seeds_option, check_run_size, copy_committed_run, run_folder,
                                 run_step, trained_run_problem)
from vae.data import DATASET_SIZES
from vae.inspection import SCRIPT_SAMPLES

REPO_ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("beta", "collapse", "all")
EPOCHS = 30  # the 2-D chapter's
BETAS = (0.0, 0.5, 1.0, 4.0, 16.0)
COLLAPSE_LATENT_DIM = 32
WARMUP_EPOCHS = 10  # the KL's weight rises from 0 over epochs 1-10, full from epoch 11 (vae/schedules.py)
FREE_BITS = 0.25  # nats per latent dimension
CLOSE_UP = ("0.5", "1", "4")  # the β whose ELBO and ln p(x) lie within a few nats: assets/beta_spread.png
SUMMARIES = {"beta": REPO_ROOT / "models" / "beta_sweep.json", "collapse": REPO_ROOT / "models" / "collapse_32.json"}


def recorded_times():
    """What the committed summaries record of the studies' times, in words, for --help."""
    lines = []
    for study, path in SUMMARIES.items():
        try:
            results = json.loads(path.read_text())["betas" if study == "beta" else "settings"]
            seconds = sum(sum(result["over_seeds"]["values"]["seconds_training"]) for result in results.values())
            runs = sum(len(result["over_seeds"]["seeds"]) for result in results.values())
            epochs = sorted({result["epochs"] for result in results.values()})
        except (OSError, ValueError, KeyError, TypeError):
            lines.append(f"study {study}: no time recorded yet")
            continue
        lines.append(f"study {study}: {runs} runs of {'/'.join(map(str, epochs))} epochs trained for "
                     f"{seconds:,.0f} s in all ({path.relative_to(REPO_ROOT)}; evaluation and figures not timed)")
    return "Times recorded: " + "; ".join(lines) + "."


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, epilog=textwrap.fill(recorded_times(), 100),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", choices=STUDIES, default="all", help="which comparison (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="epochs of each run (default: the 2-D chapter's, %(default)s); with fewer than 11 the "
                             "warm-up is shortened to epochs − 1")
    parser.add_argument("--train-size", type=int, metavar="N", help="train on the first N images (default: all)")
    add_seeds_option(parser)
    parser.add_argument("--runs", default=str(REPO_ROOT / "runs"), metavar="DIR",
                        help="where the runs keep their models, in 2d/<setting>/seed<N>/ (default: runs/, not "
                             "committed)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write assets/ and models/ under DIR (default: the repository for a default run, "
                             "else --runs)")
    parser.add_argument("--data-dir", metavar="DIR", help="a folder holding MNIST (default: as the chapters)")
    parser.add_argument("--summarize-only", action="store_true",
                        help="train nothing: write the summaries and figures from the runs finished so far")
    args = parser.parse_args(argv)
    check_run_size(parser, args, EPOCHS)
    return args


def beta_settings():
    """The β sweep: {name: the vae_2d.py settings that differ from the chapter's}."""
    return {f"{beta:g}": {"beta": beta} for beta in BETAS}


def collapse_settings(epochs):
    """The collapse study: {name: settings}, all at latent size 32. The warm-up must end before the last
    epoch (vae/config.py), so a run of fewer than 11 epochs warms up over epochs − 1."""
    warmup = min(WARMUP_EPOCHS, epochs - 1)
    settings = {"plain": {}, "warmup": {"kl_warmup_epochs": warmup}, "free_bits": {"free_bits": FREE_BITS}}
    return {name: {"latent_dim": COLLAPSE_LATENT_DIM, **flags} for name, flags in settings.items()}


def expected_metrics(settings, epochs, train_size, seed):
    """What a finished run's metrics_2d.json must say to be the run of `settings` with this seed."""
    return {**CHAPTER_DEFAULTS, **settings, "seed": seed, "epochs": epochs,
            "train_images": train_size or DATASET_SIZES["mnist"][0], "iw_samples": SCRIPT_SAMPLES}


def reuse_problem(folder, settings, epochs, train_size, seed=0):
    """None if `folder` holds a finished 2-D chapter run with these settings, seed, epochs and training images,
    its ln p(x) estimated with the chapter's K on all its test images, its model files those its metrics list;
    else what is not so, in words."""
    problem = trained_run_problem(folder, expected_metrics(settings, epochs, train_size, seed))
    if problem is not None:
        return problem
    metrics = json.loads((folder / "models" / "metrics_2d.json").read_text())
    if metrics.get("likelihood_images") != metrics.get("test_images"):
        return (f"its ln p(x) is over {metrics.get('likelihood_images')} images, not all its "
                f"{metrics.get('test_images')} test images")
    return None


def train_all(settings, args, first=1, total=None):
    """Train every setting × seed not finished yet, one chapter run each: seed 0 of every setting, then seed 1
    of every setting, ...; they are runs `first`... of `total` (default: these alone), for the lines saying
    how far along the comparison is. The chapter's own run, when it is one of them, is copied from the
    repository's models/ (copy_committed_run)."""
    total = total or len(settings) * args.seeds
    runs = [(name, flags, seed) for seed in range(args.seeds) for name, flags in settings.items()]
    for number, (name, flags, seed) in enumerate(runs, first):
        folder = run_folder(args.runs, "2d", flags, seed)
        step = f"run {number} of {total}: {name} ({describe(flags)}), seed {seed}"
        if copy_committed_run(folder, expected_metrics(flags, args.epochs, args.train_size, seed)):
            print(f"\n== {step}: the chapter's own run, copied from {REPO_ROOT / 'models'} into {folder}")
        problem = reuse_problem(folder, flags, args.epochs, args.train_size, seed)
        if problem is None:
            print(f"\n== {step}: finished earlier in {folder}, kept")
            continue
        if problem != "no finished run":
            print(f"\n== {step}: not reusing the run in {folder}: {problem}")
        command = ["code/vae_2d.py", "--epochs", args.epochs, "--seed", seed, "--out", folder]
        for field, value in flags.items():
            command += [f"--{field.replace('_', '-')}", value]
        if args.train_size:
            command += ["--train-size", args.train_size]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        run_step(command, f"{step}, training and evaluating ({args.epochs} epoch{'s' if args.epochs != 1 else ''})")


def describe(flags):
    """A setting's flags in words: "β = 0.5", "latent 32, free bits 0.25"."""
    names = {"beta": "β =", "latent_dim": "latent", "kl_warmup_epochs": "KL warm-up epochs", "free_bits": "free bits"}
    return ", ".join(f"{names[key]} {value:g}" for key, value in flags.items()) or "the chapter's defaults"


def run_summary(folder):
    """A finished run's test-set numbers from its models/metrics_2d.json (nats per image), with the
    dimensions that collapsed: those whose posterior mean hardly moves between images (not active units)."""
    metrics = json.loads((folder / "models" / "metrics_2d.json").read_text())
    activity = metrics["latent_activity"]
    return {
        "beta": metrics["beta"],
        "latent_dim": metrics["latent_dim"],
        "kl_warmup_epochs": metrics["kl_warmup_epochs"],
        "free_bits": metrics["free_bits"],
        "seed": metrics.get("seed", 0),
        "epochs": metrics["epochs"],
        "train_images": metrics["train_images"],
        "test_loss": metrics["test_loss"],  # the objective: reconstruction + β·KL (free bits: each KLᵢ ≥ λ)
        "test_reconstruction": metrics["test_reconstruction"],
        "test_kl": metrics["test_kl"],
        "test_elbo": metrics["test_elbo"],  # −(reconstruction + KL), whatever the objective
        "iw_log_likelihood": metrics["iw_log_likelihood"],
        "active_units": metrics["active_units"],
        "latent_activity": activity,
        "kl_per_dimension": metrics["kl_per_dimension"],
        "collapsed_dimensions": [i for i, value in enumerate(activity) if value <= metrics["active_unit_threshold"]],
        "seconds_training": metrics["seconds_training"],
    }


# The numbers whose spread over seeds the summaries give, and how the settings are ranked on them: True where
# higher is better. The ELBO and ln p(x) compare models whatever their β; the reconstruction and the KL
# are what β trades against each other.
SPREAD_METRICS = ("test_loss", "test_reconstruction", "test_kl", "test_elbo", "iw_log_likelihood", "active_units",
                  "seconds_training")
RANKED = {"beta": {"test_elbo": True, "iw_log_likelihood": True, "test_reconstruction": False, "test_kl": False},
          "collapse": {"test_elbo": True, "iw_log_likelihood": True, "active_units": True, "test_kl": False}}


def finished_seeds(settings, args):
    """{name: {seed: folder}} of the runs of `settings` that have finished (reuse_problem), seeds 0 … N − 1."""
    done = {}
    for name, flags in settings.items():
        for seed in range(args.seeds):
            folder = run_folder(args.runs, "2d", flags, seed)
            if reuse_problem(folder, flags, args.epochs, args.train_size, seed) is None:
                done.setdefault(name, {})[seed] = folder
    return done


def summarize(done, study):
    """{"settings": {name: seed 0's run_summary (else the first seed's), with "over_seeds": the spread of
    SPREAD_METRICS over the finished seeds (vae/spread.py)}, "rankings": {metric: ranking}} from `done`
    ({name: {seed: folder}})."""
    from vae.spread import over_seeds, ranking

    results = {}
    for name, seeds in done.items():
        runs = {seed: run_summary(folder) for seed, folder in sorted(seeds.items())}
        spread = over_seeds(runs, SPREAD_METRICS)
        spread["kl_per_dimension"] = [run["kl_per_dimension"] for run in runs.values()]  # one list per seed
        results[name] = {**runs[min(runs)], "over_seeds": spread}
    spreads = {name: result["over_seeds"] for name, result in results.items()}
    rankings = {metric: ranking(spreads, metric, higher) for metric, higher in RANKED[study].items()}
    return results, rankings


def write_beta_sweep(done, out):
    """models/beta_sweep.json, assets/beta_sweep.png and assets/rate_distortion.png under `out`, from the
    finished runs `done` ({β name: {seed: folder}}): the figure's panels are seed 0's."""
    import numpy as np

    from vae.evaluation import ACTIVE_UNIT_THRESHOLD
    from vae.figures import plot_beta_sweep, plot_rate_distortion, plot_seed_spread
    from vae.saving import load_model_safely, save_json
    from vae.spread import RULE, mean_sd

    print("\n== β sweep: drawing the figures and writing the summary", flush=True)
    results, rankings = summarize(done, "beta")
    panels = []
    for name, result in results.items():
        folder = done[name][result["seed"]]
        encodings = np.load(folder / "models" / "test_encodings_2d.npz")
        decoder = load_model_safely(folder / "models" / "decoder_2d.h5")
        title = f"β = {name}: ELBO {mean_sd(result['over_seeds'], 'test_elbo', 1)}"  # the codes: seed 0's
        panels.append((title, encodings["z_mean"], encodings["labels"], decoder))
    paths = [out / "assets" / "beta_sweep.png", out / "assets" / "rate_distortion.png",
             out / "assets" / "beta_spread.png", out / "models" / "beta_sweep.json"]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    plot_beta_sweep(panels, paths[0])
    plot_rate_distortion([(f"β = {name}", r["over_seeds"]["values"]["test_kl"],
                           r["over_seeds"]["values"]["test_reconstruction"]) for name, r in results.items()], paths[1])
    # Close up, the β whose ELBO is near the best (β = 0 and 16 lie tens of nats away): each seed, and mean ± sd.
    plot_seed_spread({f"β = {name}": results[name]["over_seeds"] for name in CLOSE_UP if name in results},
                     [("−ELBO", "test_elbo"), (f"−ln p(x), K = {SCRIPT_SAMPLES}", "iw_log_likelihood")], paths[2],
                     negate={"test_elbo", "iw_log_likelihood"})
    save_json({"model": "2d", "active_unit_threshold": ACTIVE_UNIT_THRESHOLD, "spread": RULE, "betas": results,
               "rankings": rankings}, paths[3])
    print(f"\nWrote {', '.join(map(str, paths))}")
    print_spread(results, rankings, "β = ")


def write_collapse(done, out):
    """models/collapse_32.json and assets/collapse_32.png under `out`, from the finished runs `done`
    ({setting name: {seed: folder}})."""
    from vae.evaluation import ACTIVE_UNIT_THRESHOLD
    from vae.figures import plot_kl_per_dimension
    from vae.saving import save_json
    from vae.spread import RULE, mean_sd

    print("\n== collapse study: drawing the figure and writing the summary", flush=True)
    results, rankings = summarize(done, "collapse")
    paths = [out / "assets" / "collapse_32.png", out / "models" / "collapse_32.json"]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, r in results.items():
        how = (f"warm-up over {r['kl_warmup_epochs']} epoch{'s' if r['kl_warmup_epochs'] > 1 else ''}"
               if r["kl_warmup_epochs"] else
               f"free bits, {r['free_bits']:g} nats" if r["free_bits"] else "plain")
        spread = r["over_seeds"]
        units = spread["values"]["active_units"]
        units = f"{min(units):.0f}–{max(units):.0f}" if min(units) != max(units) else f"{units[0]:.0f}"
        lines.append((f"{how}: {units} active units, ELBO {mean_sd(spread, 'test_elbo', 1)}",
                      spread["kl_per_dimension"]))
    plot_kl_per_dimension(lines, paths[0], free_bits=max(r["free_bits"] for r in results.values()) or None)
    save_json({"model": "2d", "latent_dim": COLLAPSE_LATENT_DIM, "active_unit_threshold": ACTIVE_UNIT_THRESHOLD,
               "spread": RULE, "settings": results, "rankings": rankings}, paths[1])
    print(f"\nWrote {', '.join(map(str, paths))}")
    print_spread(results, rankings, "")


def print_spread(results, rankings, prefix):
    """Each setting's mean ± sd over its seeds, and which rankings hold beyond the spread."""
    from vae.spread import mean_sd

    for name, r in results.items():
        spread = r["over_seeds"]
        print(f"  {prefix}{name:9s} seeds {','.join(map(str, spread['seeds']))}: "
              + "  ".join(f"{label} {mean_sd(spread, metric)}" for label, metric in
                          [("loss", "test_loss"), ("reconstruction", "test_reconstruction"), ("KL", "test_kl"),
                           ("ELBO", "test_elbo"), ("ln p(x)", "iw_log_likelihood"), ("active units", "active_units")]))
    for metric, verdict in rankings.items():
        beyond = [f"{pair['better']} > {pair['worse']}" for pair in verdict["pairs"] if pair["beyond_spread"]]
        print(f"  {metric} ({verdict['better']} is better), best first by mean: {', '.join(verdict['order'])}; "
              f"best beyond the spread: {verdict['best']}; beyond the spread: {', '.join(beyond) or 'none'}")


def main(argv=None):
    args = parse_arguments(argv)
    out = Path(args.out)
    studies = {"beta": (beta_settings(), write_beta_sweep),
               "collapse": (collapse_settings(args.epochs), write_collapse)}
    chosen = [study for study in studies if args.study in (study, "all")]
    total, first = sum(len(studies[study][0]) for study in chosen) * args.seeds, 1
    for study in chosen:
        settings, write = studies[study]
        if not args.summarize_only:
            train_all(settings, args, first, total)
        first += len(settings) * args.seeds
        done = finished_seeds(settings, args)
        if not done:
            print(f"\n== {study}: no finished run to summarize yet")
            continue
        missing = [f"{name} seed {seed}" for name in settings for seed in range(args.seeds)
                   if seed not in done.get(name, {})]
        if missing:
            print(f"\n== {study}: not finished yet, so left out of the summary: {', '.join(missing)}")
        write(done, out)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # while writing the summaries (run_step reports one inside a run)
        raise SystemExit("\nInterrupted. Run the same command again: the finished runs are kept.") from None
