"""README.md is a newcomer's page, and its numbers, and those of docs/, are generated and up to date.

The generated numbers are checked against the committed results (the `committed_root` fixture of
conftest.py), so that a reader's own run of a script, which rewrites models/, does not make these
tests fail.
"""

import importlib.util
import json
import re

import pytest

from conftest import REPO_ROOT

_spec = importlib.util.spec_from_file_location("update_readme", REPO_ROOT / "tools" / "update_readme.py")
update_readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(update_readme)

README = REPO_ROOT / "README.md"
PAGES = [README, *sorted((REPO_ROOT / "docs").glob("*.md")), REPO_ROOT / "benchmarks" / "README.md"]
SETUP_AND_TRAIN = ("python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt "
                   "&& python code/vae_2d.py")
RUN_THE_TESTS = "pip install -r requirements-test.txt && python -m pytest"


@pytest.fixture
def generated_root(committed_root, tmp_path):
    """The committed results (models/, benchmarks/) beside the working tree's README.md and docs/."""
    for name in ["models", "benchmarks"]:
        (tmp_path / name).symlink_to(committed_root / name)
    (tmp_path / "README.md").write_text(README.read_text())
    (tmp_path / "docs").mkdir()
    for path in (REPO_ROOT / "docs").glob("*.md"):
        (tmp_path / "docs" / path.name).write_text(path.read_text())
    return tmp_path


def test_readme_and_docs_are_up_to_date_with_the_committed_results(generated_root, capsys):
    assert update_readme.main(["--check", "--root", str(generated_root)]) is None, capsys.readouterr()
    assert "README.md and docs/ are up to date" in capsys.readouterr().out


@pytest.mark.parametrize("relative, section", [("README.md", "results"), ("docs/performance.md", "performance"),
                                               ("docs/flags.md", "flags")])
def test_check_fails_on_a_stale_file_and_names_it(generated_root, relative, section):
    path = generated_root / relative
    path.write_text(path.read_text().replace(f"<!-- {section}:start -->", f"<!-- {section}:start -->\nstale"))
    with pytest.raises(SystemExit) as stop:
        update_readme.main(["--check", "--root", str(generated_root)])
    assert "out of date" in str(stop.value.code) and relative in str(stop.value.code)
    assert "stale" in path.read_text()  # --check writes nothing


def test_results_table_shows_each_chapters_metrics(committed_root):
    metrics = update_readme.load_metrics(committed_root)
    table = update_readme.results_section(metrics)
    for name, m in metrics.items():
        row = next(line for line in table.splitlines() if f"`vae_{name}.py`" in line)
        assert f"**{m['test_loss']:.2f}**" in row and f"{m['test_kl']:.2f}" in row
        assert f"{m['seconds_total']:.0f} s" in row
        if name in update_readme.MODELS:
            assert f"{-m['inside']['iw_log_likelihood']:.2f}" in row
    assert f"{100 * metrics['conditional']['samples_of_asked_class']:.1f}%" in table


def test_performance_section_quotes_the_committed_benchmark(committed_root):
    section = update_readme.performance_section(committed_root)
    speed = json.loads((committed_root / "benchmarks" / "train_speed.json").read_text())
    assert f"**{speed['epoch_s']:.2f}**" in section and f"{speed['speedup']:.2f}×" in section


def test_flags_page_holds_the_scripts_own_flag_table():
    from vae import config

    table = config.flags_markdown().strip()
    text = (REPO_ROOT / "docs" / "flags.md").read_text()
    assert f"<!-- flags:start -->\n{table}\n<!-- flags:end -->" in text
    assert "--epochs" in table and "--out" in table


def test_render_replaces_only_between_markers():
    text = "a\n<!-- results:start -->\nold\n<!-- results:end -->\nb"
    assert update_readme.render(text, {"results": "new"}) == "a\n<!-- results:start -->\nnew\n<!-- results:end -->\nb"


def test_render_names_the_file_that_lacks_its_markers():
    with pytest.raises(ValueError, match="docs/flags.md lacks the markers <!-- flags:start -->"):
        update_readme.render("no markers", {"flags": "table"}, "docs/flags.md")


def test_committed_metrics_meet_the_quality_bars(committed_root):
    """The committed default runs reach the issues' bars (nats per image on the test set)."""
    bars = {"2d": 142.0, "3d": 132.0, "correlated": 143.0}
    for name, bar in bars.items():
        metrics = json.loads((committed_root / "models" / f"metrics_{name}.json").read_text())
        assert metrics["epochs"] == 30 and metrics["train_images"] == 60000
        assert metrics["test_loss"] <= bar, (name, metrics["test_loss"])


def test_readme_fits_a_newcomers_page():
    assert len(README.read_text().splitlines()) <= 150


def test_readme_gives_the_two_commands_and_ci_runs_the_second():
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    commands = [line.strip() for block in blocks for line in block.splitlines()]
    assert SETUP_AND_TRAIN in commands and RUN_THE_TESTS in commands
    assert RUN_THE_TESTS in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert 'python -m pytest -m "not slow"' in README.read_text()


def relative_links(path):
    """The targets of the markdown links and images of `path` that name a file, not a web address."""
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", path.read_text())
    return [target for target in targets if not re.match(r"[a-z]+:", target) and not target.startswith("#")]


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_points_to_an_existing_file(page):
    links = relative_links(page)
    assert links or page.name != "README.md"  # the README links into docs/ at least
    for target in links:
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve()
        assert linked.is_file(), f"{page.name} links to {target}, which does not exist"
        if anchor and linked.suffix == ".html":
            assert f'id="{anchor}"' in linked.read_text(), f"{page.name} links to {target}: no such anchor"


def test_relative_links_finds_links_and_images_but_not_web_addresses(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](docs/a.md) ![b](assets/b.png) [c](https://example.org) [d](#here) [e](index.html#top)")
    assert relative_links(page) == ["docs/a.md", "assets/b.png", "index.html#top"]


def test_readme_links_every_docs_page():
    linked = {target.partition("#")[0] for target in relative_links(README)}
    for path in (REPO_ROOT / "docs").glob("*.md"):
        assert f"docs/{path.name}" in linked, f"README.md does not link to docs/{path.name}"
