"""The README's results are generated from the committed models/metrics_*.json and are up to date.

Checked against the committed results (the `committed_root` fixture of conftest.py), so that a
reader's own run of a script, which rewrites models/, does not make these tests fail.
"""

import importlib.util
import json

from conftest import REPO_ROOT

_spec = importlib.util.spec_from_file_location("update_readme", REPO_ROOT / "tools" / "update_readme.py")
update_readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(update_readme)


def test_readme_is_up_to_date_with_the_committed_metrics(committed_root, capsys):
    assert update_readme.main(["--check", "--root", str(committed_root)]) is None, capsys.readouterr()
    assert "README.md is up to date" in capsys.readouterr().out


def test_check_fails_on_a_stale_readme(committed_root, tmp_path):
    (tmp_path / "models").symlink_to(committed_root / "models")
    readme = (REPO_ROOT / "README.md").read_text()
    (tmp_path / "README.md").write_text(readme.replace("<!-- results:start -->", "<!-- results:start -->\nstale"))
    try:
        update_readme.main(["--check", "--root", str(tmp_path)])
    except SystemExit as stop:
        assert "out of date" in str(stop.code)
    else:
        raise AssertionError("--check passed a stale README")


def test_results_table_shows_each_models_metrics(committed_root):
    metrics = update_readme.load_metrics(committed_root)
    table = update_readme.results_section(metrics)
    for name, m in metrics.items():
        row = next(line for line in table.splitlines() if f"vae_{name}.py" in line)
        assert f"**{m['test_loss']:.2f}**" in row and f"{m['test_kl']:.2f}" in row
    assert f"{metrics['correlated']['prior_correlation']:.3f}" in table


def test_more_vaes_section_quotes_the_committed_comparisons(committed_root):
    section = update_readme.more_vaes_section(committed_root)
    sweep = json.loads((committed_root / "models" / "beta_sweep.json").read_text())["betas"]
    for beta, r in sweep.items():
        assert f"| {beta} | {r['test_loss']:.2f} | {r['test_reconstruction']:.2f} | {r['test_kl']:.2f} | " in section
    collapse = json.loads((committed_root / "models" / "collapse_32.json").read_text())["settings"]
    for r in collapse.values():
        assert f"| {r['active_units']} of 32 | {r['test_kl']:.2f} | {r['test_elbo']:.2f} |" in section
    conditional = json.loads((committed_root / "models" / "metrics_conditional.json").read_text())
    assert f"reads {100 * conditional['samples_of_asked_class']:.1f}% of" in section
    assert f"test loss {conditional['test_loss']:.2f}" in section
    fashion = json.loads((committed_root / "models" / "metrics_2d_fashion_mnist_conv.json").read_text())
    assert f"test loss {fashion['test_loss']:.2f}" in section and fashion["architecture"] == "conv"


def test_render_replaces_only_between_markers():
    text = "a\n<!-- results:start -->\nold\n<!-- results:end -->\nb"
    assert update_readme.render(text, {"results": "new"}) == "a\n<!-- results:start -->\nnew\n<!-- results:end -->\nb"


def test_committed_metrics_meet_the_quality_bars(committed_root):
    """The committed default runs reach the issues' bars (nats per image on the test set)."""
    bars = {"2d": 142.0, "3d": 132.0, "correlated": 143.0}
    for name, bar in bars.items():
        metrics = json.loads((committed_root / "models" / f"metrics_{name}.json").read_text())
        assert metrics["epochs"] == 30 and metrics["train_images"] == 60000
        assert metrics["test_loss"] <= bar, (name, metrics["test_loss"])
