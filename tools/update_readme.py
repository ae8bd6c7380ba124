"""Fill README.md's results and performance sections from models/metrics_*.json,
models/likelihood_*.json (written by code/explore.py) and benchmarks/train_speed.json, so that no
number in the README is typed by hand.

    python tools/update_readme.py                # rewrite the generated sections
    python tools/update_readme.py --check        # exit 1 if README.md is out of date
    python tools/update_readme.py --root DIR     # README.md, models/ and benchmarks/ under DIR
"""

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# The seed tutorial's reported numbers (Maroua Oukrid, "Variational Autoencoder (VAE) Tutorial —
# Understanding Latent Space", 2024: its "Summary Table" and its code guide's "Expected Results").
SEED_RESULTS = {
    "2d": {"loss": "~165", "reconstruction": "~161", "kl": "~3.9", "time": "10-15 min (CPU)"},
    "3d": {"loss": "~164", "reconstruction": "~160", "kl": "~4.2", "time": "10-15 min (CPU)"},
    "correlated": {"loss": "~166", "reconstruction": "~162", "kl": "~4.1", "time": "10-15 min (CPU)"},
}
MODELS = {"2d": "2-D latent, N(0, I)", "3d": "3-D latent, N(0, I)", "correlated": "2-D latent, N(0, Σ)"}


def load_metrics(root=REPO_ROOT):
    """{name: metrics dict} for every model; raises FileNotFoundError naming a missing file."""
    metrics = {}
    for name in MODELS:
        path = root / "models" / f"metrics_{name}.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run code/vae_{name}.py first")
        metrics[name] = json.loads(path.read_text())
        inside = root / "models" / f"likelihood_{name}.json"
        if not inside.exists():
            raise FileNotFoundError(f"{inside} is missing: run python code/explore.py --model {name} first")
        metrics[name]["inside"] = json.loads(inside.read_text())
    return metrics


def results_section(metrics):
    lines = [
        "Test set, 10,000 images, nats per image (lower is better); one posterior sample per image.",
        "",
        "| model | test loss | reconstruction | KL | epochs | training time | seed tutorial's loss / recon. / KL |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, label in MODELS.items():
        m, seed = metrics[name], SEED_RESULTS[name]
        lines.append(
            f"| `vae_{name}.py`: {label} | **{m['test_loss']:.2f}** | {m['test_reconstruction']:.2f} | "
            f"{m['test_kl']:.2f} | {m['epochs']} | {m['seconds_training']:.0f} s | "
            f"{seed['loss']} / {seed['reconstruction']} / {seed['kl']}, {seed['time']} |"
        )
    correlated = metrics["correlated"]
    devices = sorted({m["device"] for m in metrics.values()})
    lines += [
        "",
        f"Correlated prior: Σ = {correlated['prior_covariance']}, a correlation of "
        f"{correlated['prior_correlation']:.3f}; the encoded test means have correlation "
        f"{correlated['encoded_correlation']:.3f}.",
        f"Trained with TensorFlow {metrics['2d']['tensorflow_version']} and Keras "
        f"{metrics['2d']['keras_version']} on {', '.join(devices)}.",
        "",
        *likelihood_lines(metrics),
    ]
    return "\n".join(lines)


def likelihood_lines(metrics):
    """The table of ln p(x) beyond the ELBO, from models/likelihood_*.json (code/explore.py)."""
    two = metrics["2d"]["inside"]
    lines = [
        f"Beyond the ELBO (`python code/explore.py --model NAME`, `models/likelihood_NAME.json`): −ln p(x) in nats "
        f"per image over the {two['likelihood_images']:,} test images, with {two['data_convention'].split(', in nats')[0]}.",
        "",
        "| model | −ELBO | importance-weighted | exact (quadrature) | active units | median posterior σ | prior mass in holes |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for name, label in MODELS.items():
        m = metrics[name]["inside"]
        exact = f"{-m['quadrature_log_likelihood']:.2f}" if "quadrature_log_likelihood" in m else "—"
        sigma = ", ".join(f"{value:.3f}" for value in m["posterior_sigma_median"])
        lines.append(f"| `vae_{name}.py` | {-m['elbo']:.2f} | {-m['iw_log_likelihood']:.2f} (K = {m['iw_samples']:,}) | "
                     f"{exact} | {m['active_units']} of {m['latent_dim']} | {sigma} | "
                     f"{100 * m['prior_mass_in_holes']:.1f}% |")
    lines += [
        "",
        f"The exact value sums p(x|z) p(z) over a grid of {two['quadrature_grid']['points']:,} codes (2-D models only; "
        f"{two['quadrature_seconds']:.0f} s for the 2-D model's test set). The importance-weighted estimate ran at "
        f"{two['iw_samples_per_second']:,.0f} decoded samples per second. Holes: where the codes' aggregate posterior "
        f"q(z) is below {two['hole_ratio']:g} p(z), in the (z₀, z₁) plane.",
    ]
    return lines


def performance_section(root=REPO_ROOT):
    path = root / "benchmarks" / "train_speed.json"
    if not path.exists():
        return "Run `python benchmarks/train_speed.py --save` to measure this machine."
    b = json.loads(path.read_text())
    return "\n".join([
        f"Measured by `python benchmarks/train_speed.py` on {b['device']}, {b['cores']} cores, "
        f"TensorFlow {b['tensorflow']} (steady-state epochs of the 2-D model, validation included):",
        "",
        "| | seconds per epoch | images per second |",
        "|---|---:|---:|",
        f"| textbook Keras baseline | {b['baseline_epoch_s']:.2f} | {b['baseline_images_per_s']:,} |",
        f"| this project | **{b['epoch_s']:.2f}** | {b['images_per_s']:,} |",
        "",
        f"A speed-up of {b['speedup']:.2f}×. One epoch is {b['gflop_per_epoch']:.0f} GFLOP of dense layers, "
        f"so the project runs at {b['achieved_gflops']:.0f} GFLOP/s, {100 * b['fraction_of_peak']:.0f}% of "
        f"this machine's measured fp32 matrix-multiply peak of {b['peak_gflops']:.0f} GFLOP/s.",
        "",
        "Each lever on its own (`--levers`; same model, seed and data; seconds per steady-state epoch):",
        "",
        "| configuration | seconds per epoch |",
        "|---|---:|",
        *[f"| {lever['lever']} | {lever['epoch_s']:.2f} |" for lever in b.get("levers", [])],
    ])


def render(readme, sections):
    """Replace the text between each `<!-- NAME:start -->` and `<!-- NAME:end -->` marker pair."""
    for name, body in sections.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start not in readme or end not in readme:
            raise ValueError(f"README.md lacks the markers {start} … {end}")
        head, rest = readme.split(start, 1)
        _, tail = rest.split(end, 1)
        readme = f"{head}{start}\n{body}\n{end}{tail}"
    return readme


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    parser.add_argument("--root", default=str(REPO_ROOT), metavar="DIR",
                        help="the folder holding README.md, models/ and benchmarks/ (default: the repository)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    path = root / "README.md"
    current = path.read_text()
    try:
        updated = render(current, {"results": results_section(load_metrics(root)),
                                   "performance": performance_section(root)})
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    if args.check:
        if updated != current:
            sys.exit("README.md is out of date with models/metrics_*.json: run python tools/update_readme.py")
        print("README.md is up to date")
    elif updated != current:
        path.write_text(updated)
        print(f"updated {path}")


if __name__ == "__main__":
    main()
