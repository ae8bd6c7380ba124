"""Fill the generated sections of README.md and docs/ from the committed results, so that no number
in them is typed by hand:

    README.md             results      models/metrics_*.json, models/likelihood_*.json (code/explore.py)
    docs/performance.md   performance  benchmarks/*.json (train_speed, likelihood_speed, explorer_speed)
                                       and models/metrics_*.json
    docs/flags.md         flags        vae.config.flags_markdown(), the scripts' own flags

Each section lies between `<!-- NAME:start -->` and `<!-- NAME:end -->` in its file.

    python tools/update_readme.py                # rewrite the generated sections
    python tools/update_readme.py --check        # exit 1 if a file is out of date
    python tools/update_readme.py --root DIR     # README.md, docs/, models/ and benchmarks/ under DIR
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

MODELS = ["2d", "3d", "correlated"]  # the chapters with an explore.py look inside (models/likelihood_*.json)
CHAPTERS = [*MODELS, "conditional"]


def read_json(root, relative, command):
    """The JSON file root/relative; a missing one stops with the command that writes it."""
    path = root / relative
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run {command} first")
    return json.loads(path.read_text())


def load_metrics(root=REPO_ROOT):
    """{name: metrics dict} for every chapter, with "inside" (models/likelihood_NAME.json) where there is one."""
    metrics = {}
    for name in CHAPTERS:
        metrics[name] = read_json(root, f"models/metrics_{name}.json", f"python code/vae_{name}.py")
        if name in MODELS:
            metrics[name]["inside"] = read_json(root, f"models/likelihood_{name}.json",
                                                f"python code/explore.py --model {name}")
    return metrics


def results_section(metrics, root=REPO_ROOT):
    """README.md's results at a glance: each chapter's test loss, its terms, ln p(x) and its whole run."""
    samples = sorted({m["inside"]["iw_samples"] for m in metrics.values() if "inside" in m})
    lines = [
        "Test set, 10,000 images, nats per image (lower is better); −ln p(x) from "
        f"{' or '.join(f'{k:,}' for k in samples)} importance samples per image (`code/explore.py`); a whole run is "
        "the script's default block end to end.",
        "",
        "| script | test loss | reconstruction | KL | −ln p(x), importance-weighted | whole run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in CHAPTERS:
        m = metrics[name]
        nll = f"{-m['inside']['iw_log_likelihood']:.2f}" if "inside" in m else "—"
        lines.append(f"| `vae_{name}.py` | **{m['test_loss']:.2f}** | {m['test_reconstruction']:.2f} | "
                     f"{m['test_kl']:.2f} | {nll} | {m['seconds_total']:.0f} s |")
    conditional = metrics["conditional"]
    devices = sorted({m["device"] for m in metrics.values()})
    lines += [
        "",
        "The conditional VAE's loss bounds −ln p(x|y), the images given their labels; a separate classifier reads "
        f"{100 * conditional['samples_of_asked_class']:.1f}% of its drawings as the class asked for.",
        f"Trained with TensorFlow {metrics['2d']['tensorflow_version']} and Keras "
        f"{metrics['2d']['keras_version']} on {', '.join(devices)}.",
    ]
    if (reproduction := reproduction_line(root)) is not None:
        lines += ["", reproduction]
    return "\n".join(lines)


def reproduction_line(root=REPO_ROOT):
    """One line on the papers' own networks, reproduced (benchmarks/reproduction.py), or None before it has run."""
    path = root / "benchmarks" / "reproduction.json"
    if not path.exists():
        return None
    rows = json.loads(path.read_text())["rows"]
    reproduced = [f"k = {r['latent_dim']}" for r in rows if r["reproduced"]]
    others = []
    for r in rows:
        if r["reproduced"]:
            continue
        if r["seeds"]:
            others.append(f"k = {r['latent_dim']} ({len(r['seeds'])} seed{'s' if len(r['seeds']) > 1 else ''} "
                          f"finished, −ln p(x) {r['nll']['mean']:.2f} against {r['published_nll']:.2f})")
        else:
            others.append(f"k = {r['latent_dim']} (not finished: {', '.join(str(u['epochs']) for u in r['unfinished'])} "
                          f"epochs)")
    return ("The papers' own networks on dynamically binarized MNIST (`python benchmarks/reproduction.py`, seeds 0–2): "
            f"within a nat of the published −ln p(x) and −ELBO at {', '.join(reproduced) or 'no latent size yet'}; "
            f"not (yet) at {'; '.join(others)}." if others else
            "The papers' own networks on dynamically binarized MNIST (`python benchmarks/reproduction.py`, seeds 0–2): "
            f"within a nat of the published −ln p(x) and −ELBO at {', '.join(reproduced)}.")


def flags_section():
    """docs/flags.md's table of every flag, from the scripts' own configuration (no TensorFlow needed)."""
    sys.path.insert(0, str(REPO_ROOT / "code"))
    from vae import config

    if not hasattr(config, "flags_markdown"):
        raise ValueError("code/vae/config.py has no flags_markdown(), which docs/flags.md's table is made from")
    return config.flags_markdown().strip()


def performance_section(root=REPO_ROOT):
    """docs/performance.md's measurements, from benchmarks/*.json and models/metrics_*.json."""
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
            "[benchmarks/README.md](../benchmarks/README.md) says what each lever gave.")
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


def render(text, sections, name="README.md"):
    """Replace the text between each `<!-- NAME:start -->` and `<!-- NAME:end -->` marker pair of `text`."""
    for section, body in sections.items():
        start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
        if start not in text or end not in text:
            raise ValueError(f"{name} lacks the markers {start} … {end}")
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{start}\n{body}\n{end}{tail}"
    return text


def generated_sections(root):
    """{file, relative to root: {section: its generated text}}."""
    return {
        "README.md": {"results": results_section(load_metrics(root), root)},
        "docs/performance.md": {"performance": performance_section(root)},
        "docs/flags.md": {"flags": flags_section()},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    parser.add_argument("--root", default=str(REPO_ROOT), metavar="DIR",
                        help="the folder holding README.md, docs/, models/ and benchmarks/ (default: the repository)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    stale = []
    try:
        for relative, sections in generated_sections(root).items():
            path = root / relative
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing")
            current = path.read_text()
            updated = render(current, sections, relative)
            if updated == current:
                continue
            stale.append(relative)
            if not args.check:
                path.write_text(updated)
                print(f"updated {path}")
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    if args.check:
        if stale:
            sys.exit(f"{', '.join(stale)} out of date with models/ and benchmarks/: run python tools/update_readme.py")
        print("README.md and docs/ are up to date")


if __name__ == "__main__":
    main()
