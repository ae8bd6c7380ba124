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
        run = Experiment(Config(**{"epochs": 1, "out": str(tmp_path / "out"), **fields}), name="2d", min_latent_dim=2)
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
    run = start_run(data_dir=str(write_mnist(tmp_path / "one", train=200, test=1)))
    with pytest.raises(SystemExit, match="the test set has 1 images; .* need at least 2 .the walks go between two"):
        run.load_data()
    run.lock.release()
    run = start_run(data_dir=str(write_mnist(tmp_path / "five", train=200, test=5)))
    with pytest.raises(SystemExit, match="the test set has 5 images; .* need at least 20 .a 10-nearest-neighbour"):
        run.load_data(needs_classes=True)  # as the conditional chapter asks
    assert len(run.load_data()[1][0]) == 5  # enough for the other chapters


def test_a_checkpoint_holding_another_models_weights_is_set_aside_with_one_message(tmp_path, start_run, monkeypatch):
    import keras

    from vae.progress import EpochBackup
    from vae_2d import VAE, build_decoder, build_encoder

    data = write_mnist(tmp_path / "data", train=256, test=40)
    original = EpochBackup.on_epoch_end

    def stop_after_the_first_checkpoint(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt  # as a Ctrl-C after epoch 1 would

    def fitted(run):
        (x_train, _), (x_test, _) = run.load_data()
        vae = run.model(VAE, build_encoder(2, seed=0), build_decoder(2), beta=1.0)
        vae.compile(optimizer=keras.optimizers.Adam(1e-3))
        return run.fit(vae, x_train, x_test)

    monkeypatch.setattr(EpochBackup, "on_epoch_end", stop_after_the_first_checkpoint)
    first = start_run(epochs=2, data_dir=str(data), xla=False)
    with pytest.raises(KeyboardInterrupt):
        fitted(first)
    first.lock.release()  # as the interrupted process's end would
    monkeypatch.setattr(EpochBackup, "on_epoch_end", original)
    progress = tmp_path / "out" / "models" / ".interrupted_2d"
    (weights,) = progress.glob("epoch-0001/weights.weights.h5")
    other = VAE(build_encoder(3), build_decoder(3))  # another model's weights, in the checkpoint's place
    other.built = True
    other.save_weights(weights)

    with pytest.raises(SystemExit, match="could not be resumed, so it was set aside"):
        fitted(start_run(epochs=2, data_dir=str(data), xla=False))
    assert not progress.exists() and list((tmp_path / "out" / "models").glob(".interrupted_2d.set-aside/damaged-*"))


def test_the_page_builder_and_the_comparisons_refuse_outputs_half_moved_into_place(tmp_path):
    """A kill while a run moved its outputs into place leaves its journal: the page builder refuses that folder,
    and a comparison does not reuse the run (its rerun finishes the moves)."""
    import importlib.util

    import compare_likelihoods
    from conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location("build_page", REPO_ROOT / "page" / "build.py")
    build_page = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_page)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / ".staging_3d.journal.json").write_text("{}")
    with pytest.raises(build_page.BuildError, match=r"run python code/vae_3d\.py again to finish the move"):
        build_page.build(tmp_path)
    assert "still moving into place" in compare_likelihoods.trained_run_problem(tmp_path, {})
