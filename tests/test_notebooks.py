"""The chapters as notebooks (tools/notebooks.py): each is up to date with its script, and one runs in a
Jupyter kernel (nbclient, ipykernel) from notebooks/, training for an epoch and showing its figures inline."""

import json
import re
import shutil
import subprocess
import sys

import nbformat
import pytest
from conftest import REPO_ROOT, write_mnist
from nbclient import NotebookClient

TOOL = REPO_ROOT / "tools" / "notebooks.py"
CHAPTERS = ["vae_2d", "vae_3d", "vae_correlated", "vae_conditional"]


def check(root):
    return subprocess.run([sys.executable, str(TOOL), "--check", "--root", str(root)], capture_output=True, text=True)


def test_every_notebook_is_up_to_date_with_its_script():
    result = check(REPO_ROOT)
    assert result.returncode == 0, result.stderr


def test_the_check_fails_when_a_script_changed(tmp_path):
    for folder in ["code", "notebooks"]:
        (tmp_path / folder).mkdir()
    for chapter in CHAPTERS:
        shutil.copy(REPO_ROOT / "code" / f"{chapter}.py", tmp_path / "code")
        shutil.copy(REPO_ROOT / "notebooks" / f"{chapter}.ipynb", tmp_path / "notebooks")
    assert check(tmp_path).returncode == 0
    script = tmp_path / "code" / "vae_3d.py"
    script.write_text(script.read_text().replace("epochs=30", "epochs=31"))
    result = check(tmp_path)
    assert result.returncode == 1 and "vae_3d.ipynb" in result.stderr and "python tools/notebooks.py" in result.stderr


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_notebook_is_its_script_with_the_hyperparameters_first(chapter):
    cells = json.loads((REPO_ROOT / "notebooks" / f"{chapter}.ipynb").read_text())["cells"]
    code = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    assert "os.chdir" in code[0]  # the set-up, then the hyperparameters: the first cell a reader edits
    assert "hyperparameters = Config(" in code[1] and 'out="runs/notebook"' in code[1]
    assert not any("start(__file__)" in text or "parse_flags(hyperparameters" in text for text in code)
    assert re.fullmatch(r"import time\n\nrun_started = time.time\(\)\nmain\(hyperparameters.check\(min_latent_dim=\d\)\)",
                        code[-2])
    headings = [cell["source"][0] for cell in cells if cell["cell_type"] == "markdown"]
    script = (REPO_ROOT / "code" / f"{chapter}.py").read_text()
    assert all(f"# {heading}" in script for heading in headings if heading.startswith("## ")
               and heading not in ("## The hyperparameters\n", "## Train, draw the figures, save"))


def test_the_2d_notebook_trains_and_shows_its_figures(tmp_path):
    data = write_mnist(tmp_path / "mnist", train=500, test=200)
    out = tmp_path / "out"
    notebook = nbformat.read(REPO_ROOT / "notebooks" / "vae_2d.ipynb", as_version=4)
    first = next(cell for cell in notebook.cells if "hyperparameters = Config(" in cell.source)
    first.source = (first.source.replace("epochs=30", "epochs=1").replace("grid_size=20", "grid_size=4")
                    .replace("train_size=None", "train_size=500")
                    .replace('out="runs/notebook"', f"out={str(out)!r}, data_dir={str(data)!r}"))
    assert "epochs=1," in first.source and "train_size=500" in first.source
    # From notebooks/, as a reader opens it: the set-up cell moves to the repository's root.
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}}).execute()
    metrics = json.loads((out / "models" / "metrics_2d.json").read_text())
    assert metrics["epochs"] == 1 and metrics["train_images"] == 500 and metrics["test_images"] == 200
    shown = notebook.cells[-1].outputs
    images = [output for output in shown if "image/png" in output.get("data", {})]
    assert len(images) == len(list((out / "assets").glob("*.png"))) >= 8
    assert any("Clusters2D.png" in output.get("text", "") for output in shown)


def test_a_kernel_can_start_a_run_again_after_one_stopped(tmp_path):
    """A notebook's kernel outlives a run stopped by an error or the interrupt button: the next run in the same
    process takes the run lock instead of reporting the earlier one as another process's run."""
    from vae.config import Config
    from vae.experiment import Experiment

    Experiment(Config(epochs=1, out=tmp_path), name="2d")  # stopped before it finished: its lock is still held
    second = Experiment(Config(epochs=1, out=tmp_path), name="2d")
    assert second.lock.file is not None
    second.lock.release()
