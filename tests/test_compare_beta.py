"""code/compare_beta.py from small saved runs: which runs it trains (and which it keeps), and the summaries
and figures it writes. No training here: the runs are metrics files, encodings and an untrained decoder."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import compare_beta
import compare_likelihoods
from compare_likelihoods import MODEL_FILES, run_folder
from conftest import REPO_ROOT, script_command, write_mnist
from test_scripts import assert_png
from vae.inspection import SCRIPT_SAMPLES
from vae_2d import build_decoder
from vae.saving import save_encodings, save_json, save_model, sha256


def fake_run(folder, latent_dim, beta=1.0, kl_warmup_epochs=0, free_bits=0.0, epochs=2, decoder=None, seed=0,
             **changed):
    """The files of a finished 2-D chapter run that compare_beta reads, with made-up numbers that differ by
    seed; its metrics list its model files' SHA-256, as a chapter run's do. `changed`: metrics to write instead
    of the chapter's."""
    rng = np.random.default_rng(seed)
    activity = rng.uniform(0.5, 2, latent_dim)
    activity[::3] = 0.001  # every third dimension collapsed
    kl = np.where(activity > 0.01, 2.0, 0.002)
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    save_encodings(rng.normal(size=(300, latent_dim)), rng.integers(0, 10, 300), models / "test_encodings_2d.npz")
    if decoder is not None:
        shutil.copy(decoder, models / "decoder_2d.h5")
    else:
        (models / "decoder_2d.h5").write_bytes(b"a stand-in decoder")
    (models / "encoder_2d.h5").write_bytes(b"a stand-in encoder")
    save_json({"beta": beta, "latent_dim": latent_dim, "kl_warmup_epochs": kl_warmup_epochs, "free_bits": free_bits,
               "dataset": "mnist", "architecture": "mlp", "likelihood": "bernoulli", "binarize": "off",
               "seed": seed, "epochs": epochs, "train_images": 2000, "test_images": 300, "likelihood_images": 300,
               "iw_samples": SCRIPT_SAMPLES, "test_loss": 140.0 + beta * kl.sum(),
               "test_reconstruction": 140.0 - 2 * seed, "test_kl": float(kl.sum()),
               "test_elbo": -140.0 + 2 * seed - float(kl.sum()), "iw_log_likelihood": -138.0, "active_units":
               int((activity > 0.01).sum()), "active_unit_threshold": 0.01, "latent_activity": activity.tolist(),
               "kl_per_dimension": kl.tolist(), "seconds_training": 3.0, **changed,
               "files": {name: sha256(folder / name) for name in MODEL_FILES}}, models / "metrics_2d.json")


@pytest.fixture(autouse=True)
def no_committed_run(tmp_path, monkeypatch):
    """The repository's own runs are not copied into the tests' folders."""
    monkeypatch.setattr(compare_likelihoods, "COMMITTED_RUNS", tmp_path / "no committed run")


def folder(runs, flags, seed=0):
    return run_folder(runs, "2d", flags, seed)


@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("decoder") / "decoder_2d.h5"
    save_model(build_decoder(2), path)
    return path


def test_it_trains_each_setting_once_with_the_chapters_flags_and_keeps_finished_runs(tmp_path, monkeypatch):
    commands = []
    monkeypatch.setattr(compare_beta, "run_step", lambda command, what: commands.append(command))
    args = compare_beta.parse_arguments(["--epochs", "2", "--train-size", "2000", "--seeds", "1",
                                         "--runs", str(tmp_path)])
    assert args.out == str(tmp_path)  # not the repository: a short run writes no committed file
    settings = compare_beta.collapse_settings(args.epochs)
    fake_run(folder(tmp_path, {"latent_dim": 32}), 32)  # finished with these settings: kept
    fake_run(folder(tmp_path, {"latent_dim": 32, "free_bits": 0.25}), 32, free_bits=0.1)  # another: trained again
    compare_beta.train_all(settings, args)
    assert [[str(part) for part in command] for command in commands] == [
        ["code/vae_2d.py", "--epochs", "2", "--seed", "0", "--out",
         str(tmp_path / "2d" / "latent_dim_32_kl_warmup_epochs_1" / "seed0"), "--latent-dim", "32",
         "--kl-warmup-epochs", "1", "--train-size", "2000"],  # the warm-up shortened to fit 2 epochs
        ["code/vae_2d.py", "--epochs", "2", "--seed", "0", "--out",
         str(tmp_path / "2d" / "latent_dim_32_free_bits_0.25" / "seed0"), "--latent-dim", "32",
         "--free-bits", "0.25", "--train-size", "2000"],
    ]
    assert compare_beta.parse_arguments([]).out == str(compare_beta.REPO_ROOT)
    assert compare_beta.parse_arguments(["--seeds", "2"]).out != str(compare_beta.REPO_ROOT)  # fewer seeds than asked
    assert [folder(tmp_path, flags).parent.name for flags in compare_beta.beta_settings().values()] == [
        "beta_0", "beta_0.5", "default", "beta_4", "beta_16"]


@pytest.mark.parametrize("change, reason", [
    ({"epochs": 1}, "its run has epochs 1 (not 2)"),
    ({"iw_samples": 5}, f"its run has iw_samples 5 (not {SCRIPT_SAMPLES})"),
    ({"likelihood_images": 200}, "its ln p(x) is over 200 images, not all its 300 test images"),
    ({"beta": 4.0}, "its run has beta 4.0 (not 1.0)"),
    ({"seed": 1}, "its run has seed 1 (not 0)"),
])
def test_a_run_unlike_what_the_comparison_asks_is_trained_again_with_a_line(tmp_path, monkeypatch, capsys, change,
                                                                           reason):
    whats = []
    monkeypatch.setattr(compare_beta, "run_step", lambda command, what: whats.append(what))
    args = compare_beta.parse_arguments(["--epochs", "2", "--train-size", "2000", "--seeds", "1",
                                         "--runs", str(tmp_path)])
    settings = {"1": {"beta": 1.0}}
    fake_run(folder(tmp_path, {}), 2, **change)
    compare_beta.train_all(settings, args)
    assert whats == ["run 1 of 1: 1 (β = 1), seed 0, training and evaluating (2 epochs)"]
    assert f"not reusing the run in {folder(tmp_path, {})}: {reason}" in capsys.readouterr().out


def test_a_run_whose_model_file_changed_is_trained_again(tmp_path, monkeypatch, capsys):
    whats = []
    monkeypatch.setattr(compare_beta, "run_step", lambda command, what: whats.append(what))
    args = compare_beta.parse_arguments(["--epochs", "2", "--train-size", "2000", "--seeds", "1",
                                         "--runs", str(tmp_path)])
    settings = compare_beta.beta_settings()
    for flags in settings.values():
        fake_run(folder(tmp_path, flags), 2, **flags)
    (folder(tmp_path, {"beta": 4.0}) / "models" / "decoder_2d.h5").write_bytes(b"another decoder")
    compare_beta.train_all(settings, args, first=4, total=8)
    assert whats == ["run 7 of 8: 4 (β = 4), seed 0, training and evaluating (2 epochs)"]
    output = capsys.readouterr().out
    assert "its models/decoder_2d.h5 is not the file its metrics_2d.json lists (SHA-256)" in output
    assert "== run 4 of 8: 0 (β = 0), seed 0: finished earlier" in output


def test_the_help_quotes_only_recorded_times(tmp_path, monkeypatch):
    summary = tmp_path / "beta_sweep.json"
    save_json({"betas": {
        "0": {"epochs": 30, "over_seeds": {"seeds": [0, 1], "values": {"seconds_training": [100.4, 10]}}},
        "1": {"epochs": 30, "over_seeds": {"seeds": [0], "values": {"seconds_training": [20]}}}}}, summary)
    monkeypatch.setattr(compare_beta, "SUMMARIES", {"beta": summary, "collapse": tmp_path / "missing.json"})
    monkeypatch.setattr(compare_beta, "REPO_ROOT", tmp_path)
    assert compare_beta.recorded_times() == ("Times recorded: study beta: 3 runs of 30 epochs trained for 130 s in "
                                             "all (beta_sweep.json; evaluation and figures not timed); study "
                                             "collapse: no time recorded yet.")


def test_the_beta_sweep_writes_its_summary_and_figures(tmp_path, decoder_file):
    runs, out = tmp_path / "runs", tmp_path / "out"
    args = compare_beta.parse_arguments(["--epochs", "2", "--train-size", "2000", "--seeds", "2", "--runs", str(runs)])
    for flags in compare_beta.beta_settings().values():
        for seed in range(2):
            fake_run(folder(runs, flags, seed), 2, beta=flags["beta"], decoder=decoder_file, seed=seed)
    compare_beta.write_beta_sweep(compare_beta.finished_seeds(compare_beta.beta_settings(), args), out)
    summary = json.loads((out / "models" / "beta_sweep.json").read_text())
    assert list(summary["betas"]) == ["0", "0.5", "1", "4", "16"]
    four = summary["betas"]["4"]
    assert four["beta"] == 4.0 and four["collapsed_dimensions"] == [0] and four["active_units"] == 1
    assert four["seed"] == 0 and four["test_elbo"] == pytest.approx(-(four["test_reconstruction"] + four["test_kl"]))
    assert {"test_loss", "kl_per_dimension", "iw_log_likelihood"} <= four.keys()
    spread = four["over_seeds"]
    assert spread["seeds"] == [0, 1] and spread["values"]["test_reconstruction"] == [140.0, 138.0]
    assert spread["mean"]["test_reconstruction"] == 139.0
    assert spread["sd"]["test_reconstruction"] == pytest.approx(2 ** 0.5)
    assert (spread["min"]["test_reconstruction"], spread["max"]["test_reconstruction"]) == (138.0, 140.0)
    assert summary["rankings"]["test_elbo"]["better"] == "higher" and "rule" in summary["rankings"]["test_elbo"]
    for figure in ["beta_sweep.png", "rate_distortion.png", "beta_spread.png"]:
        assert_png(out / "assets" / figure)


def test_the_collapse_study_writes_its_summary_and_figure_from_the_seeds_finished(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "out"
    settings = compare_beta.collapse_settings(30)
    for flags in settings.values():
        for seed in range(3 if flags.get("free_bits") else 2):  # the third seed of two settings not finished yet
            fake_run(folder(runs, flags, seed), 32, epochs=30, train_images=60000, seed=seed,
                     **{key: value for key, value in flags.items() if key != "latent_dim"})
    compare_beta.main(["--study", "collapse", "--runs", str(runs), "--out", str(out), "--summarize-only"])
    output = capsys.readouterr().out
    assert "not finished yet, so left out of the summary: plain seed 2, warmup seed 2" in output
    summary = json.loads((out / "models" / "collapse_32.json").read_text())
    assert summary["latent_dim"] == 32 and list(summary["settings"]) == ["plain", "warmup", "free_bits"]
    assert summary["settings"]["warmup"]["kl_warmup_epochs"] == 10
    assert summary["settings"]["free_bits"]["free_bits"] == 0.25
    assert summary["settings"]["plain"]["collapsed_dimensions"] == list(range(0, 32, 3))
    assert len(summary["settings"]["plain"]["kl_per_dimension"]) == 32
    assert summary["settings"]["plain"]["over_seeds"]["seeds"] == [0, 1]
    assert summary["settings"]["free_bits"]["over_seeds"]["seeds"] == [0, 1, 2]
    assert len(summary["settings"]["free_bits"]["over_seeds"]["kl_per_dimension"]) == 3
    assert set(summary["rankings"]) == {"test_elbo", "iw_log_likelihood", "active_units", "test_kl"}
    assert_png(out / "assets" / "collapse_32.png")


# ---------------------------------------------------------------------------------------------
# A comparison's child dies with it


def children(pid):
    """The ids of the living processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            except OSError:
                continue  # ended meanwhile
            if int(ppid) == pid and state != "Z":
                found.append(int(entry.name))
    return found


def command_line(pid):
    """Process `pid`'s command line, its arguments separated by NUL bytes; b"" once it has ended."""
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid):
    """True while process `pid` exists and is not a zombie."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition, what, timeout=300):
    """Poll until condition() holds; fail naming `what` if it never does (a guard, not a timing)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_comparison_takes_its_run_with_it_and_a_rerun_goes_on(tmp_path):
    data, runs = write_mnist(tmp_path / "mnist", train=200, test=100), tmp_path / "runs"
    command, env = script_command("compare_beta.py", "--study", "beta", "--epochs", "1", "--train-size", "100",
                                  "--seeds", "1", "--runs", runs, "--data-dir", data)
    lock = runs / "2d" / "beta_0" / "seed0" / "models" / ".2d.lock"

    def start(log):
        return subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    with open(tmp_path / "first.log", "w") as log:
        parent = start(log)
    wait_for(lambda: lock.exists() and children(parent.pid) or parent.poll() is not None, "the first run's start")
    assert parent.poll() is None, (tmp_path / "first.log").read_text()
    [child] = children(parent.pid)
    parent.kill()  # SIGKILL: no chance to clean up
    parent.wait()
    wait_for(lambda: not alive(child), "the orphaned run's end", timeout=30)

    with open(tmp_path / "again.log", "w") as log:
        again = start(log)
    output = lambda: (tmp_path / "again.log").read_text()  # noqa: E731
    second = lambda: [pid for pid in children(again.pid) if b"beta_0.5" in command_line(pid)]  # noqa: E731
    wait_for(lambda: second() or again.poll() is not None, "the rerun's second run")
    assert again.poll() is None, output()
    assert "another run of this script" not in output()
    assert (runs / "2d" / "beta_0" / "seed0" / "models" / "metrics_2d.json").exists()
    [child] = second()
    again.send_signal(signal.SIGINT)  # Ctrl-C, sent to the comparison alone: it stops its run
    assert again.wait(60) == 1
    assert not alive(child)
    assert "Interrupted during run 2 of 5: 0.5 (β = 0.5), seed 0, training and evaluating" in output()
