"""Saving and progress on disk, in isolation: unique temporary names, outputs moved into place as a
set (and a commit cut short finished later), and a progress folder checked as a whole before a resume."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import CODE_DIR
from vae.progress import Progress
from vae.saving import OutputSet, save_json

SETTINGS = {"latent_dim": 2, "learning_rate": 0.001, "epochs": None, "name": "2d"}


def test_two_processes_saving_one_file_never_leave_it_torn(tmp_path):
    """Each writer saves the same file 300 times, each time whole of its own letter; a reader
    meanwhile sees only whole files (a fixed temporary name let one rename the other's half-written file)."""
    target = tmp_path / "metrics.json"
    writer = ("import sys; from vae.saving import atomic_path\n"
              "for _ in range(300):\n"
              "    with atomic_path(sys.argv[1]) as temporary:\n"
              "        temporary.write_bytes(sys.argv[2].encode() * 200_000)\n")
    env = {**os.environ, "PYTHONPATH": str(CODE_DIR)}
    writers = [subprocess.Popen([sys.executable, "-c", writer, str(target), letter], env=env) for letter in "ab"]
    seen = set()
    while any(process.poll() is None for process in writers):
        if target.exists():
            data = target.read_bytes()
            assert data in (b"a" * 200_000, b"b" * 200_000), f"a torn file: {len(data)} bytes"
            seen.add(data[:1])
    assert all(process.returncode == 0 for process in writers)
    assert seen, "the reader never saw the file"
    assert not list(tmp_path.glob(".*partial*")), "temporary files left behind"


def stage(outputs, names):
    for name in names:
        outputs.path(name).write_text(f"new {name}")


def test_outputs_appear_together_on_commit(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "a.png").write_text("old a")
    outputs = OutputSet(tmp_path, tmp_path / "models" / ".staging_2d")
    stage(outputs, ["assets/a.png", "models/b.h5"])
    assert (tmp_path / "assets" / "a.png").read_text() == "old a"  # nothing visible before the commit
    assert outputs.commit() == [tmp_path / "assets" / "a.png", tmp_path / "models" / "b.h5"]
    assert (tmp_path / "assets" / "a.png").read_text() == "new assets/a.png"
    assert (tmp_path / "models" / "b.h5").read_text() == "new models/b.h5"
    assert not outputs.staging.exists() and not outputs.journal.exists()


def test_a_commit_cut_short_between_its_moves_is_finished_by_the_next_run(tmp_path):
    names = ["assets/a.png", "models/b.h5", "models/metrics.json"]
    outputs = OutputSet(tmp_path, tmp_path / "models" / ".staging_2d")
    stage(outputs, names)
    # What a kill after the journal and the first move leaves behind:
    save_json({"root": str(tmp_path), "staging": str(outputs.staging), "names": names}, outputs.journal)
    (tmp_path / "assets").mkdir()
    os.replace(outputs.staging / names[0], tmp_path / names[0])

    assert OutputSet(tmp_path, outputs.staging).recover() == names[1:]
    assert [(tmp_path / name).read_text() for name in names] == [f"new {name}" for name in names]
    assert not outputs.staging.exists() and not outputs.journal.exists()


def test_staged_outputs_without_a_journal_are_thrown_away(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "b.h5").write_text("old")
    outputs = OutputSet(tmp_path, tmp_path / "models" / ".staging_2d")
    stage(outputs, ["models/b.h5"])
    outputs.discard()  # a run that failed before its commit
    assert OutputSet(tmp_path, outputs.staging).recover() == []
    assert (tmp_path / "models" / "b.h5").read_text() == "old" and not outputs.staging.exists()


def test_a_commit_interrupted_during_its_moves_never_discards_the_staging_folder(tmp_path, monkeypatch):
    """Ctrl-C after the first move: the run's exception handler calls discard(), which must keep the staged
    rest of the set (the journal names it), so that the next run finishes the moves."""
    names = ["assets/a.png", "models/b.h5", "models/metrics.json"]
    outputs = OutputSet(tmp_path, tmp_path / "models" / ".staging_2d")
    stage(outputs, names)
    real_replace = os.replace

    def replace_then_interrupt(source, target):
        real_replace(source, target)
        if outputs.moved_so_far() == 0 and str(target).startswith(str(tmp_path / "assets")):
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        outputs.commit()
    monkeypatch.setattr(os, "replace", real_replace)
    assert outputs.pending() and outputs.moved_so_far() == 0  # the move happened, its count not yet
    outputs.discard()
    assert outputs.pending() and (outputs.staging / names[1]).read_text() == f"new {names[1]}"

    later = OutputSet(tmp_path, outputs.staging)
    assert later.recover() == names[1:] and later.moved_so_far() == 2 and not later.pending()
    assert [(tmp_path / name).read_text() for name in names] == [f"new {name}" for name in names]
    assert not outputs.staging.exists()


def test_moved_so_far_counts_the_moves_of_a_commit(tmp_path):
    outputs = OutputSet(tmp_path, tmp_path / ".staging")
    stage(outputs, ["assets/a.png", "models/b.h5"])
    assert not outputs.pending() and outputs.moved_so_far() == 0
    outputs.commit()
    assert outputs.moved_so_far() == 2 and not outputs.pending()


def fsynced_paths(monkeypatch):
    """Record the path of every file or folder os.fsync is called on (read from /proc/self/fd)."""
    paths = []
    real_fsync = os.fsync

    def recording_fsync(descriptor):
        paths.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return paths


def test_a_saved_file_and_its_rename_reach_the_disk(tmp_path, monkeypatch):
    """Before the rename, the temporary file is fsynced (its bytes); after it, the folder (its new name)."""
    paths = fsynced_paths(monkeypatch)
    save_json({"a": 1}, tmp_path / "metrics.json")
    assert len(paths) == 2
    assert paths[0].startswith(str(tmp_path / ".metrics.partial.")) and paths[1] == str(tmp_path)


def test_a_commit_fsyncs_its_journal_and_the_folders_it_moves_into(tmp_path, monkeypatch):
    outputs = OutputSet(tmp_path, tmp_path / "models" / ".staging_2d")
    stage(outputs, ["assets/a.png", "models/b.h5", "models/c.json"])
    paths = fsynced_paths(monkeypatch)
    outputs.commit()
    journal_file, journal_folder, *moved_into = paths
    assert journal_file.startswith(str(tmp_path / "models" / "..staging_2d.journal.partial."))  # "." + its name
    assert journal_folder == str(tmp_path / "models")
    assert sorted(moved_into) == [str(tmp_path), str(tmp_path / "assets"), str(tmp_path / "models")]


def test_a_commit_refuses_a_set_with_an_output_never_written(tmp_path):
    outputs = OutputSet(tmp_path, tmp_path / ".staging")
    outputs.path("models/never.h5")
    with pytest.raises(FileNotFoundError, match="outputs were never written: models/never.h5"):
        outputs.commit()


# ---------------------------------------------------------------------------------------------
# The progress folder


def write_checkpoint(progress, epoch, history_epochs=None, weights=True):
    """A checkpoint folder epoch-NNNN/ as EpochBackup writes it, with a stand-in weights file."""
    folder = progress / f"epoch-{epoch:04d}"
    folder.mkdir(parents=True)
    epochs = epoch if history_epochs is None else history_epochs
    save_json({"epoch": epoch, "history": {"loss": [200.0 - i for i in range(epochs)], "seconds": [1.0] * epochs}},
              folder / "state.json")
    if weights:
        with h5py.File(folder / "weights.weights.h5", "w") as file:
            file["vars/0"] = np.ones((784, 2), "float32")
    return folder


def started(tmp_path, epochs=10, settings=SETTINGS):
    """Write the progress folder of a run that started with `settings`; return its path."""
    Progress(tmp_path / ".interrupted_2d", settings).start(epochs)
    return tmp_path / ".interrupted_2d"


def test_a_resume_takes_the_newest_whole_checkpoint(tmp_path, capsys):
    progress = started(tmp_path)
    write_checkpoint(progress, 2)
    write_checkpoint(progress, 3)
    (progress / "epoch-0004.partial.123").mkdir()  # a checkpoint a kill cut short
    checkpoint = Progress(progress, SETTINGS).start(10)
    assert checkpoint.epoch == 3 and checkpoint.history["loss"] == [200.0, 199.0, 198.0]
    assert "Resuming an interrupted run after its epoch 3" in capsys.readouterr().out
    assert not list(progress.glob("*.partial.*"))


def test_a_torn_newest_checkpoint_is_skipped_with_a_line(tmp_path, capsys):
    progress = started(tmp_path)
    write_checkpoint(progress, 2)
    torn = write_checkpoint(progress, 3) / "weights.weights.h5"
    torn.write_bytes(torn.read_bytes()[:1000])
    assert Progress(progress, SETTINGS).start(10).epoch == 2
    output = capsys.readouterr().out
    assert "Skipping a damaged checkpoint: epoch-0003: its weights file is unreadable" in output
    assert "Resuming an interrupted run after its epoch 2" in output


@pytest.mark.parametrize("damage, reason", [
    (lambda progress: (progress / "settings.json").write_text('{"latent_dim": 2, "learn'),
     "its settings.json is unreadable"),
    (lambda progress: (progress / "settings.json").unlink(), "its settings.json is unreadable"),
    (lambda progress: write_checkpoint(progress, 3, weights=False), "no checkpoint in it is readable (epoch-0003: its weights"),
    (lambda progress: write_checkpoint(progress, 3, history_epochs=2),
     "no checkpoint in it is readable (epoch-0003: its history has [2] epochs instead of 3)"),
    (lambda progress: (write_checkpoint(progress, 3) / "state.json").write_text("{"),
     "no checkpoint in it is readable (epoch-0003: its state.json is unreadable or incomplete"),
    (lambda progress: write_checkpoint(progress, 12), "it had already trained 12 epochs, more than the 10 asked for"),
])
def test_progress_that_cannot_be_resumed_is_set_aside_and_the_run_starts_over(tmp_path, capsys, damage, reason):
    progress = started(tmp_path)
    damage(progress)
    assert Progress(progress, SETTINGS).start(10) is None
    output = capsys.readouterr().out
    assert f"Starting over: set aside the progress of an earlier interrupted run, as {reason}" in output
    set_aside = tmp_path / ".interrupted_2d.set-aside"
    assert set_aside.is_dir() and f"it is in {set_aside}" in output
    assert json.loads((progress / "settings.json").read_text()) == SETTINGS  # a fresh start
    assert not list(progress.glob("epoch-*"))


def test_progress_with_other_hyperparameters_is_set_aside_and_more_epochs_resume(tmp_path, capsys):
    progress = started(tmp_path)
    write_checkpoint(progress, 3)
    assert Progress(progress, SETTINGS).start(50).epoch == 3  # the epoch count may grow
    other = {**SETTINGS, "learning_rate": 0.0001}
    assert Progress(progress, other).start(10) is None
    assert "as it had other hyperparameters (learning_rate)" in capsys.readouterr().out


def test_a_run_killed_before_its_first_epoch_ended_starts_over_in_place(tmp_path, capsys):
    progress = started(tmp_path)
    assert Progress(progress, SETTINGS).start(10) is None
    assert capsys.readouterr().out == ""
    assert not (tmp_path / ".interrupted_2d.set-aside").exists()
