"""Damaged or wrong-kind entries in a run's folder, and data too small for the figures: one message each, before
any work, and nothing of the earlier results touched."""

import json
import sys

import pytest

from conftest import write_mnist
from vae.config import Config
from vae.saving import OutputSet, OutputSetError


@pytest.fixture
def start_run(tmp_path, monkeypatch):
    """start_run() → an Experiment on tmp_path/out (its excepthook restored, its lock released afterwards)."""
    from vae.experiment import Experiment

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    runs = []

    def start(**fields):
        run = Experiment(Config(epochs=1, out=str(tmp_path / "out"), **fields), name="2d", min_latent_dim=2)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.lock.release()


def models(tmp_path):
    folder = tmp_path / "out" / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("make, message", [
    (lambda m: (m / ".staging_2d").write_text("not a folder"), r"\.staging_2d should be a folder"),
    (lambda m: (m / ".staging_2d.journal.json").mkdir(), r"\.staging_2d\.journal\.json"),
    (lambda m: (m / ".2d.lock").mkdir(), r"\.2d\.lock \(the run lock, a file\)"),
    (lambda m: (m / "metrics_2d.json").mkdir(), r"metrics_2d\.json"),
    (lambda m: (m.parent / "assets" / "Clusters2D.png").mkdir(parents=True), r"Clusters2D\.png"),
])
def test_an_entry_of_the_wrong_kind_is_refused_by_name(tmp_path, start_run, make, message):
    make(models(tmp_path))
    with pytest.raises(SystemExit, match=r"^error: out: .*" + message):
        start_run()


def test_a_journal_naming_another_folder_moves_nothing(tmp_path, start_run):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "staged").mkdir(parents=True)
    (elsewhere / "staged" / "precious.txt").write_text("keep me")
    folder = models(tmp_path)
    journal = {"root": str(tmp_path / "victim"), "staging": str(elsewhere / "staged"), "names": ["precious.txt"]}
    (folder / ".staging_2d.journal.json").write_text(json.dumps(journal))
    with pytest.raises(SystemExit, match="names moves that are not this output set's"):
        start_run()
    assert (elsewhere / "staged" / "precious.txt").read_text() == "keep me"
    assert not (tmp_path / "victim").exists()


def test_a_journal_naming_a_file_outside_the_folder_moves_nothing(tmp_path):
    root = tmp_path / "out"
    outputs = OutputSet(root, root / "models" / ".staging_2d")
    (root / "models" / ".staging_2d").mkdir(parents=True)
    outputs.journal.write_text(json.dumps({"root": str(root), "staging": str(outputs.staging),
                                           "names": ["../outside.txt"]}))
    with pytest.raises(OutputSetError, match="not this output set's"):
        outputs.recover()


def test_a_folder_made_where_an_output_goes_stops_the_commit_before_anything_moves(tmp_path):
    root = tmp_path / "out"
    (root / "assets").mkdir(parents=True)
    (root / "assets" / "a.png").write_bytes(b"earlier")
    outputs = OutputSet(root, root / "models" / ".staging_2d")
    for name in ["assets/a.png", "models/b.json"]:
        path = outputs.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"new")
    (root / "models" / "b.json").mkdir(parents=True)
    with pytest.raises(OutputSetError, match=r"b\.json is a folder where this run writes a file"):
        outputs.commit()
    assert (root / "assets" / "a.png").read_bytes() == b"earlier" and not outputs.pending()


def test_a_test_set_too_small_for_the_figures_is_refused_before_training(tmp_path, start_run):
    data = write_mnist(tmp_path / "data", train=200, test=5)
    run = start_run(data_dir=str(data))
    with pytest.raises(SystemExit, match="the test set has 5 images; the figures and measurements after training "
                                         "need at least 20"):
        run.load_data()
