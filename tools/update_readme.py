"""Fill README.md's results, likelihoods, more-VAEs and performance sections from models/metrics_*.json,
models/likelihood_*.json (written by code/explore.py) and benchmarks/*.json (train_speed,
likelihood_speed, explorer_speed), so that no number in the README is typed by hand.

    python tools/update_readme.py                # rewrite the generated sections
    python tools/update_readme.py --check        # exit 1 if README.md is out of date
    python tools/update_readme.py --root DIR     # README.md, models/ and benchmarks/ under DIR
"""

import argparse
import json
import statistics
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


def likelihoods_section(root=REPO_ROOT):
    """The 2-D model under three pixel likelihoods (models/likelihoods_2d.json, code/compare_likelihoods.py)
    and the binarized-MNIST comparison with the literature (benchmarks/literature.json)."""
    compared = json.loads((root / "models" / "likelihoods_2d.json").read_text())["settings"]
    lines = [
        "| 2-D model | test loss | reconstruction | KL | −ln p(x), importance-weighted | −ln p(x), exact |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, label in [("bernoulli", "Bernoulli, grayscale (the default)"),
                        ("continuous_bernoulli", "continuous Bernoulli, grayscale"),
                        ("binarized", "Bernoulli, binarized")]:
        r = compared[name]
        exact = f"{-r['quadrature_log_likelihood']:.2f}" if r["quadrature_log_likelihood"] is not None else "—"
        lines.append(f"| {label} | {r['test_loss']:.2f} | {r['test_reconstruction']:.2f} | {r['test_kl']:.2f} | "
                     f"{-r['iw_log_likelihood']:.2f} (K = {r['iw_samples']:,}) | {exact} |")
    lines += ["", "Nats per image, each on its own test images; the rows measure different things (a convention, "
              "a density on [0, 1]^784, a probability of binary images), so they compare by meaning, not by size.", ""]
    path = root / "benchmarks" / "literature.json"
    if not path.exists():
        return "\n".join(lines + ["Run `python benchmarks/literature.py --save` for the comparison with the literature."])
    literature = json.loads(path.read_text())
    lines += [
        f"Beside the literature ({literature['protocol']}):",
        "",
        "| latent | ours: −ELBO | ours: −ln p(x) | published −ELBO | published −ln p(x) | epochs | training | source |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in literature["rows"]:
        nelbo = f"{r['published_nelbo']:.2f}" if r["published_nelbo"] is not None else "—"
        ours = f"{-r['iw_log_likelihood']:.2f} (K = {r['iw_samples']:,})"
        lines.append(f"| {r['latent_dim']} | {-r['test_elbo']:.2f} | {ours} | {nelbo} | {r['published_nll']:.2f} | "
                     f"{r['epochs']} | {r['seconds_training'] / 60:.1f} min | {r['published_source']} |")
    lines += ["", f"Trained on {literature['device']}, {literature['cores']} cores, with other runs beside it (1-minute "
              f"load average {literature['load_average'][0]:g} at the start, {literature['load_average'][1]:g} at the "
              "end): the training times are a shared machine's. `assets/literature_curves.png` has the learning curves, "
              "still falling where ours trail the published value."]
    return "\n".join(lines)


def more_vaes_section(root=REPO_ROOT):
    """β and posterior collapse (models/beta_sweep.json, models/collapse_32.json: code/compare_beta.py), the
    conditional VAE (models/metrics_conditional.json) and the convolutional Fashion-MNIST run
    (models/metrics_2d_fashion_mnist_conv.json), each as committed."""
    sys.path.insert(0, str(REPO_ROOT / "code"))
    import numpy as np

    from vae.evaluation import class_from_code

    def read(relative):
        path = root / relative
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: see the README's section More VAEs for the command")
        return json.loads(path.read_text())

    sweep, collapse = read("models/beta_sweep.json")["betas"], read("models/collapse_32.json")["settings"]
    lines = [
        "`python code/compare_beta.py`: the 2-D model for five β, 30 epochs each (nats per image on the test set; "
        "the ELBO, −(reconstruction + KL), is comparable across β):",
        "",
        "| β | test loss | reconstruction | KL | ELBO | active units |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for beta, r in sweep.items():
        lines.append(f"| {beta} | {r['test_loss']:.2f} | {r['test_reconstruction']:.2f} | {r['test_kl']:.2f} | "
                     f"{r['test_elbo']:.2f} | {r['active_units']} of {r['latent_dim']} |")
    lines += ["", "The same script, 32 latent dimensions, three ways (a dimension is active when its posterior mean "
              "varies over the test images by more than 0.01):", "",
              "| 32-D model | active units | KL | ELBO | ln p(x), importance-weighted |",
              "|---|---:|---:|---:|---:|"]
    for name, label in [("plain", "plain"), ("warmup", "KL warm-up"), ("free_bits", "free bits")]:
        r = collapse[name]
        setting = {"plain": "", "warmup": f", {r['kl_warmup_epochs']} epochs", "free_bits": f", λ = {r['free_bits']:g} nats"}
        lines.append(f"| {label}{setting[name]} | {r['active_units']} of {r['latent_dim']} | {r['test_kl']:.2f} | "
                     f"{r['test_elbo']:.2f} | {r['iw_log_likelihood']:.2f} |")
    conditional = read("models/metrics_conditional.json")
    with np.load(root / "models" / "test_encodings_2d.npz") as encodings:
        two_d = class_from_code(encodings["z_mean"], encodings["labels"])
    lines += [
        "",
        f"`python code/vae_conditional.py`, the conditional VAE: test loss {conditional['test_loss']:.2f} "
        f"(a bound on −ln p(x|y), the images given their labels). A separate classifier "
        f"({100 * conditional['judge_test_accuracy']:.0f}% right on the test digits) reads "
        f"{100 * conditional['samples_of_asked_class']:.1f}% of {conditional['samples_judged']:,} drawings from prior "
        f"codes as the class asked for; a 10-nearest-neighbour vote reads the class off "
        f"{100 * conditional['class_from_code_accuracy']:.0f}% of its test codes, against {100 * two_d:.0f}% for the "
        f"2-D model's: given the label, the code holds the style.",
    ]
    fashion = read("models/metrics_2d_fashion_mnist_conv.json")
    lines += [
        "",
        f"`python code/vae_2d.py --dataset fashion_mnist --architecture conv` (Keras downloads Fashion-MNIST, or "
        f"`--data-dir DIR` names a local copy): the 2-D model with strided convolutions "
        f"on Fashion-MNIST, {fashion['epochs']} epochs in {fashion['seconds_training'] / 60:.0f} min: test loss "
        f"{fashion['test_loss']:.2f} = {fashion['test_reconstruction']:.2f} + {fashion['test_kl']:.2f} KL, "
        f"−ln p(x) {-fashion['iw_log_likelihood']:.2f} (K = {fashion['iw_samples']}), {fashion['active_units']} of "
        f"{fashion['latent_dim']} units active. Its figures are the 2-D chapter's, named `*_fashion_mnist_conv.png`.",
    ]
    return "\n".join(lines)


def performance_section(root=REPO_ROOT):
    """The README's Performance section, from benchmarks/*.json and models/metrics_*.json."""
    path = root / "benchmarks" / "train_speed.json"
    if not path.exists():
        return "Run `python benchmarks/train_speed.py --save` to measure this machine."
    b = json.loads(path.read_text())
    lines = [
        f"Measured by `python benchmarks/train_speed.py --levers --explorers --save` on {b['device']}, "
        f"{b['cores']} cores, TensorFlow {b['tensorflow']} (steady-state epochs of the 2-D model, validation "
        f"included; 1-minute load average {b['load_average'][0]:.1f} before, {b['load_average'][1]:.1f} after):",
        "",
        "| | seconds per epoch | images per second |",
        "|---|---:|---:|",
        f"| textbook Keras baseline | {b['baseline_epoch_s']:.2f} | {b['baseline_images_per_s']:,} |",
        f"| Keras' own loop (XLA, 64 steps per call, one XLA launch per step) | {b['plain_epoch_s']:.2f} | "
        f"{round(b['images_per_s'] * b['epoch_s'] / b['plain_epoch_s']):,} |",
        f"| this project: {b['project_path']} (`code/vae/fused.py`) | **{b['epoch_s']:.2f}** | {b['images_per_s']:,} |",
        "",
        f"A speed-up of {b['speedup']:.2f}× over the baseline. One epoch is {b['gflop_per_epoch']:.0f} GFLOP of "
        f"dense layers, so the project runs at {b['achieved_gflops']:.0f} GFLOP/s, "
        f"**{100 * b['fraction_of_peak']:.0f}%** of this machine's measured fp32 matrix-multiply peak of "
        f"{b['peak_gflops']:.0f} GFLOP/s{peak_measurements(b)}; the aim was {100 * b['target_fraction']:.0f}%.",
        "",
        *breakdown_lines(b),
        "",
        "Each lever on its own (`--levers`; same model, seed and data; seconds per steady-state epoch):",
        "",
        "| configuration | seconds per epoch |",
        "|---|---:|",
        *[f"| {lever['lever']} | {lever['epoch_s']:.2f} |" for lever in b.get("levers", [])],
        "",
        *script_lines(root),
        "",
        *likelihood_speed_lines(root),
        "",
        *explorer_lines(root),
        "",
        gpu_line(b),
    ]
    return "\n".join(lines)


def peak_measurements(b):
    """How the peak was measured: the best 4096² fp32 product, at the benchmark's start and end."""
    measured = b.get("peak_gflops_measured")
    if not measured:
        return ""
    return (f" (the higher of two measurements of the best 4096×4096 product, {measured[0]:.0f} at the start and "
            f"{measured[1]:.0f} at the end: on a shared machine it varies)")


def breakdown_lines(b):
    """Where the project's steady epoch goes (train_speed.json's `breakdown`)."""
    d = b["breakdown"]
    share = lambda seconds: f"{100 * seconds / d['epoch_s']:.0f}%"  # noqa: E731
    lines = [
        "Where the epoch goes (`breakdown`; the last four rows are measured apart, scaled to 60,000 images):",
        "",
        "| | seconds per epoch | share |",
        "|---|---:|---:|",
        f"| the epoch, validation included | {d['epoch_s']:.3f} | 100% |",
        f"| its train steps | {d['train_steps_s']:.3f} | {share(d['train_steps_s'])} |",
        f"| its validation pass (10,000 images) | {d['validation_s']:.3f} | {share(d['validation_s'])} |",
        f"| one XLA call per tf.data pull, Python and the smaller last batch (`per_call_overhead_s`) | "
        f"{d['per_call_overhead_s']:.3f} | {share(d['per_call_overhead_s'])} |",
        f"| element-wise work and Adam's update (`elementwise_and_adam_s`) | {d['elementwise_and_adam_s']:.3f} | "
        f"{share(d['elementwise_and_adam_s'])} |",
        f"| the 20 matrix products of the steps, alone in one XLA loop | {d['matmuls_alone_s']:.3f} | "
        f"{share(d['matmuls_alone_s'])} |",
        f"| the same FLOPs at the measured peak | {d['matmuls_at_peak_s']:.3f} | {share(d['matmuls_at_peak_s'])} |",
        "",
    ]
    if b["fraction_of_peak"] < b["target_fraction"]:
        lines.append(
            f"So the {100 * b['target_fraction']:.0f}% aim is not reached here. The products alone run at "
            f"{100 * d['fraction_matmuls_alone']:.0f}% of the peak and the fused steps alone, with nothing between "
            f"them, at {100 * d['fraction_steps_alone']:.0f}%. What keeps the epoch below that is the element-wise "
            f"work (sampling, the KL, the cross-entropy, Adam's update of 1.07 M weights at every step), which "
            f"moves memory rather than multiplying and is not counted as FLOPs, and the validation pass. "
            f"benchmarks/README.md says what each lever gave.")
    else:
        lines.append(f"The {100 * b['target_fraction']:.0f}% aim is met on this machine.")
    return lines


def script_lines(root):
    """Each chapter script end to end, from its own metrics file (`seconds_total`, as it measured it)."""
    lines = [
        "Each chapter script end to end with its default block (imports, data, 30 epochs, evaluation, every "
        "figure and file), as the script measured its own run (`seconds_total` in `models/metrics_NAME.json`; "
        "the aim for `vae_2d.py`: at most 80 s):",
        "",
        "| script | whole run | training | median epoch | outside training |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in [*MODELS, "conditional"]:
        m = json.loads((root / "models" / f"metrics_{name}.json").read_text())
        median = statistics.median(m["seconds_per_epoch"])
        lines.append(f"| `vae_{name}.py` | **{m['seconds_total']:.0f} s** | {m['seconds_training']:.0f} s | "
                     f"{median:.2f} s | {m['seconds_total'] - m['seconds_training']:.0f} s |")
    return lines


def likelihood_speed_lines(root):
    path = root / "benchmarks" / "likelihood_speed.json"
    if not path.exists():
        return ["Run `python benchmarks/likelihood_speed.py --save` to measure the ln p(x) evaluation."]
    s = json.loads(path.read_text())
    return [
        f"ln p(x) beyond the ELBO (`python benchmarks/likelihood_speed.py`, the 2-D model, {s['test_images']:,} test "
        f"images): the importance-weighted estimate with K = {s['samples']:,} decodes "
        f"{s['iw_images_x_samples_per_s']:,.0f} test images × samples per second, {s['iw_gflops']:.0f} GFLOP/s "
        f"({100 * s['iw_fraction_of_peak']:.0f}% of the {s['peak_gflops']:.0f} GFLOP/s measured beside it); the "
        f"exact value by quadrature over {s['quadrature_grid']:,} grid points takes "
        f"{s['quadrature_seconds_per_10000_images']:.0f} s per 10,000 test images, {s['quadrature_gflops']:.0f} "
        f"GFLOP/s ({100 * s['quadrature_fraction_of_peak']:.0f}%).",
    ]


def explorer_lines(root):
    path = root / "benchmarks" / "explorer_speed.json"
    if not path.exists():
        return ["Run `python benchmarks/explorer_speed.py --save` to time the page's explorers."]
    e = json.loads(path.read_text())
    lines = [
        f"The page's explorers in {e['browser']} (`benchmarks/explorer_speed.py`, {e['viewport']['width']}×"
        f"{e['viewport']['height']}): milliseconds per decoded digit, and per whole point update (decode, "
        "draw, readout), at full speed and with the CPU throttled 4×:",
        "",
        "| explorer | decode | update | decode, 4× throttled | update, 4× throttled |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in MODELS:
        fast, slow = e["desktop"][name], e["throttled_4x"][name]
        lines.append(f"| `{name}` | {fast['decode_ms']:.2f} ms | {fast['set_point_ms']:.1f} ms | "
                     f"{slow['decode_ms']:.2f} ms | {slow['set_point_ms']:.1f} ms |")
    return lines


def gpu_line(b):
    if b.get("gpu"):
        return f"GPU: {b['gpu']}."
    return ("No GPU figure exists: no GPU was available to these benchmarks (the code runs on one unchanged; "
            "the fused path is not used there, `code/vae/fused.py` says why).")


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
                                   "likelihoods": likelihoods_section(root),
                                   "more": more_vaes_section(root),
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
