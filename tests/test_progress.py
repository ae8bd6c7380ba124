"""Progress set aside, never lost: runs of other hyperparameters take turns on one progress folder, each
resuming its own; one run's folder spelled several ways is one run; the set-asides are bounded, and each
one dropped (to keep that bound, or for disk space) is named before it goes. Progress is used directly
here, with small stand-in checkpoints (test_saving.write_checkpoint)."""

import shutil
from collections import namedtuple

import pytest

import vae.progress
from test_saving import write_checkpoint
from vae.progress import SET_ASIDE_KEPT, Progress, make_room, normalized, set_asides, settings_key

SEED_0 = {"latent_dim": 2, "seed": 0, "out": "results", "data_dir": None, "epochs": None, "name": "2d"}
SEED_1 = {**SEED_0, "seed": 1}


def killed_after(folder, settings, epochs_done, epochs=10):
    """A run of `settings` on progress `folder` that was killed after epoch `epochs_done`: (its start's
    checkpoint, which it resumed from or None)."""
    checkpoint = Progress(folder, settings).start(epochs)
    for epoch in range(checkpoint.epoch + 1 if checkpoint else 1, epochs_done + 1):
        write_checkpoint(folder, epoch)
    return checkpoint


def test_two_runs_taking_turns_each_resume_their_own_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / ".interrupted_2d"
    killed_after(folder, SEED_0, 2)  # run A, killed after epoch 2
    assert killed_after(folder, SEED_1, 3) is None  # run B, another seed: A's progress set aside, B starts over
    output = capsys.readouterr().out
    key_a = settings_key(normalized(SEED_0))
    assert f"set aside the progress of an earlier interrupted run, as it had other hyperparameters (seed); " \
           f"it is in {folder}.set-aside/{key_a}" in output
    resumed = killed_after(folder, SEED_0, 4)  # A again: B's progress set aside, A's taken back
    assert resumed.epoch == 2 and resumed.history["loss"] == [200.0, 199.0]
    assert "after its epoch 2: its progress, set aside earlier by a run with other hyperparameters, is back" \
           in capsys.readouterr().out
    assert Progress(folder, SEED_1).start(10).epoch == 3  # and B again resumes where it stopped
    assert Progress(folder, SEED_0).start(10).epoch == 4
    assert [path.name for path in set_asides(folder)] == [settings_key(normalized(SEED_1))]


@pytest.mark.parametrize("first, again, environment", [
    ({"out": "results/"}, {"out": "./results"}, None),
    ({"out": "results"}, {"out": "{tmp}/results"}, None),
    ({"out": "~/results"}, {"out": "{home}/results"}, None),
    ({"data_dir": None}, {"data_dir": "{tmp}/data"}, "data"),  # $VAE_DATA_DIR=data names the folder read
    ({"data_dir": "data/"}, {"data_dir": None}, "{tmp}/data"),
])
def test_one_folder_spelled_another_way_resumes(tmp_path, monkeypatch, first, again, environment):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spelled = lambda values: {key: value.format(tmp=tmp_path, home=tmp_path / "home") if value else value  # noqa: E731
                              for key, value in values.items()}
    if environment is None:
        monkeypatch.delenv("VAE_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("VAE_DATA_DIR", environment.format(tmp=tmp_path))
    folder = tmp_path / ".interrupted_2d"
    killed_after(folder, {**SEED_0, **spelled(first)}, 2)
    assert Progress(folder, {**SEED_0, **spelled(again)}).start(10).epoch == 2
    assert not set_asides(folder)


def test_another_data_folder_is_other_hyperparameters(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / ".interrupted_2d"
    killed_after(folder, SEED_0, 2)
    assert Progress(folder, {**SEED_0, "data_dir": str(tmp_path / "other")}).start(10) is None
    assert "it had other hyperparameters (data_dir)" in capsys.readouterr().out


def test_only_the_most_recent_set_asides_are_kept_and_a_dropped_one_is_named(tmp_path, capsys):
    folder = tmp_path / ".interrupted_2d"
    for seed in range(SET_ASIDE_KEPT + 1):
        killed_after(folder, {**SEED_0, "seed": seed}, seed + 1)
    capsys.readouterr()
    killed_after(folder, {**SEED_0, "seed": 99}, 1)  # sets aside the last seed's: one too many
    oldest = folder.with_name(".interrupted_2d.set-aside") / settings_key(normalized(SEED_0))
    assert f"Dropping the oldest set-aside progress, {oldest} (1 epoch trained): only the {SET_ASIDE_KEPT} most " \
           f"recent are kept" in capsys.readouterr().out
    kept = [settings_key(normalized({**SEED_0, "seed": seed})) for seed in range(SET_ASIDE_KEPT, 0, -1)]
    assert [path.name for path in set_asides(folder)] == kept


def test_progress_too_far_along_is_set_aside_and_a_longer_run_takes_it_back(tmp_path, capsys):
    folder = tmp_path / ".interrupted_2d"
    killed_after(folder, SEED_0, 12, epochs=20)
    assert Progress(folder, SEED_0).start(10) is None  # 12 epochs done, 10 asked for
    output = capsys.readouterr().out
    assert "as it had already trained 12 epochs, more than the 10 asked for" in output
    assert "Not resuming" not in output  # one line about it, not two
    # Another seed: the 10-epoch run's progress, with no finished epoch, is not set aside.
    assert Progress(folder, {**SEED_0, "seed": 5}).start(10) is None
    assert Progress(folder, SEED_0).start(20).epoch == 12


def test_progress_of_the_same_hyperparameters_replacing_a_set_aside_one_says_so(tmp_path, capsys):
    folder = tmp_path / ".interrupted_2d"
    killed_after(folder, SEED_0, 12, epochs=20)
    Progress(folder, SEED_0).start(10)  # set aside, 12 epochs
    write_checkpoint(folder, 1)
    capsys.readouterr()
    Progress(folder, SEED_1).start(10)  # sets aside the 1-epoch progress of SEED_0 over the 12-epoch one
    assert "(12 epochs trained): the progress set aside now has the same hyperparameters and replaces it" \
           in capsys.readouterr().out


def test_a_damaged_progress_is_set_aside_apart_and_never_taken_back(tmp_path, capsys):
    folder = tmp_path / ".interrupted_2d"
    killed_after(folder, SEED_0, 2)
    (folder / "settings.json").write_text("{")
    assert Progress(folder, SEED_0).start(10) is None
    [damaged] = set_asides(folder)
    assert damaged.name.startswith("damaged-") and (damaged / "epoch-0002").is_dir()
    assert Progress(folder, SEED_0).start(10) is None


def test_a_full_disk_drops_set_aside_progress_oldest_first_and_says_so_before(tmp_path, monkeypatch, capsys):
    folder = tmp_path / ".interrupted_2d"
    for seed in range(3):
        killed_after(folder, {**SEED_0, "seed": seed}, 1)
    oldest, middle = set_asides(folder)[::-1][:2]  # seeds 0 and 1; seed 2's progress is the run's own
    Usage = namedtuple("Usage", "total used free")
    # free space: 1 MB, plus 5 MB for each set-aside folder gone
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(0, 0, 1e6 + 5e6 * (2 - len(set_asides(folder)))))
    said_before = []
    remove = shutil.rmtree
    monkeypatch.setattr(vae.progress.shutil, "rmtree", lambda path, **kw: (
        said_before.append(f"dropping the set-aside progress {path}" in capsys.readouterr().out), remove(path, **kw)))
    make_room(folder, 4e6)
    assert said_before == [True] and not oldest.exists() and middle.exists()
    with pytest.raises(OSError, match="No space left on device"):
        make_room(folder, 20e6)  # even with every set-aside dropped
    assert said_before == [True, True] and not set_asides(folder)


def test_progress_set_aside_in_the_earlier_layout_is_taken_back(tmp_path, capsys):
    folder = tmp_path / ".interrupted_2d"
    killed_after(folder, SEED_0, 2)
    folder.rename(tmp_path / ".interrupted_2d.set-aside")  # as set aside before a folder per hyperparameters
    assert Progress(folder, SEED_0).start(10).epoch == 2
    assert "set aside earlier by a run with other hyperparameters, is back" in capsys.readouterr().out
    assert set_asides(folder) == []
