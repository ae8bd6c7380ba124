"""The README's results are generated from models/metrics_*.json and are up to date."""

import json

from conftest import REPO_ROOT, run_python
from update_readme import load_metrics, render, results_section


def test_readme_is_up_to_date_with_the_metrics():
    result = run_python("import runpy, sys; sys.argv = ['update_readme.py', '--check']; "
                        "runpy.run_path('code/update_readme.py', run_name='__main__')")
    assert result.returncode == 0, result.stderr + result.stdout


def test_results_table_shows_each_models_metrics():
    metrics = load_metrics()
    table = results_section(metrics)
    for name, m in metrics.items():
        row = next(line for line in table.splitlines() if f"vae_{name}.py" in line)
        assert f"**{m['test_loss']:.2f}**" in row and f"{m['test_kl']:.2f}" in row
    assert f"{metrics['correlated']['prior_correlation']:.3f}" in table


def test_render_replaces_only_between_markers():
    text = "a\n<!-- results:start -->\nold\n<!-- results:end -->\nb"
    assert render(text, {"results": "new"}) == "a\n<!-- results:start -->\nnew\n<!-- results:end -->\nb"


def test_committed_metrics_meet_the_quality_bars():
    """The committed default runs reach the issues' bars (nats per image on the test set)."""
    bars = {"2d": 142.0, "3d": 132.0, "correlated": 143.0}
    for name, bar in bars.items():
        metrics = json.loads((REPO_ROOT / "models" / f"metrics_{name}.json").read_text())
        assert metrics["epochs"] == 30 and metrics["train_images"] == 60000
        assert metrics["test_loss"] <= bar, (name, metrics["test_loss"])
