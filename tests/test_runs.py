"""Runs you can trust: Ctrl-C, kills at any moment, a diverging run, two runs at once, a full disk,
and the edge cases that once ended in a traceback.

Each test runs the real script as a reader does, on a small subset of the real MNIST that the
tests write (2,000 training and 1,000 test images) and without XLA's compiling, so that one run
takes seconds. After every
kill the outputs are checked: each one that exists loads, and all belong to one run (the metrics
file names every other output's SHA-256).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import REPO_ROOT, run_python, run_script, script_command, write_mnist
from vae.saving import OutputSet, sha256

EPOCHS = 4
COMMAND = ["--epochs", EPOCHS, "--no-xla"]  # the command a reader types, and types again after a kill


def run(out, data, *args, script="vae_2d.py"):
    """Run `script` with COMMAND (unless other args are given) to the end; the CompletedProcess."""
    return run_script(script, *(args or COMMAND), "--out", out, env_extra={"VAE_DATA_DIR": str(data)})


def start(out, data, *args):
    """Start vae_2d.py with COMMAND in the background; the Popen."""
    command, env = script_command("vae_2d.py", *(args or COMMAND), "--out", out,
                                  env_extra={"VAE_DATA_DIR": str(data)})
    # Ctrl-C's SIGINT is ignored in a process started in the background by a shell (as the suite may
    # be, in CI), and children inherit that; the run under test gets the default back, as in a terminal.
    return subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_until(process, condition, timeout=120):
    """Wait (polling every 2 ms) until condition() holds, while `process` runs."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended before the point waited for: {process.communicate()}"
        assert time.monotonic() < deadline, "the point waited for never came"
        time.sleep(0.002)


def stop_when(process, condition, sig, timeout=120):
    """Send `sig` to `process` as soon as condition() holds; wait for it; return (stdout, stderr)."""
    wait_until(process, condition, timeout)
    process.send_signal(sig)
    return process.communicate(timeout=timeout)


def pause_when(process, condition, timeout=120):
    """Wait until condition() holds, then pause `process` (SIGSTOP) and wait until it has stopped: what its
    files show from now on is where it stands when a signal sent now arrives."""
    wait_until(process, condition, timeout)
    process.send_signal(signal.SIGSTOP)
    os.waitpid(process.pid, os.WUNTRACED)


def where(out, earlier_metrics, name="2d"):
    """Where a paused run of `name` stands, read off its files: "running" (its metrics are not staged yet: at
    least one check for Ctrl-C lies ahead), "committing" (its journal is written or its outputs are in place:
    no check lies ahead), or "between" (its metrics are staged; the last check may or may not have passed).
    `earlier_metrics` is the text of the metrics file in place before the run (None: there was none)."""
    models = Path(out) / "models"
    metrics = models / f"metrics_{name}.json"
    if (models / f".staging_{name}.journal.json").exists() or (
            metrics.read_text() if metrics.exists() else None) != earlier_metrics:
        return "committing"
    return "between" if (models / f".staging_{name}" / "models" / metrics.name).exists() else "running"


def ctrl_c_when(process, out, condition, timeout=120):
    """Press Ctrl-C in `process` as soon as condition() holds, the process paused meanwhile; wait for it to end.
    Returns (stdout, stderr, where it stood when the signal arrived: see `where`)."""
    metrics = Path(out) / "models" / "metrics_2d.json"
    earlier = metrics.read_text() if metrics.exists() else None
    pause_when(process, condition, timeout)
    stood = where(out, earlier)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGCONT)
    return (*process.communicate(timeout=timeout), stood)


def messages(stderr):
    """The lines a run printed to stderr, without TensorFlow's C++ start-up lines."""
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith(("I0000", "E0000", "W0000", "WARNING: All log messages"))]


def progress(out):
    return Path(out) / "models" / ".interrupted_2d"


def in_progress(out, pattern):
    """The names in the progress folder matching `pattern`; none while the folder is missing, as it is for a
    moment while a run starting over removes and recreates it or sets it aside (a poll must not race that)."""
    try:
        return sorted(path.name for path in progress(out).glob(pattern))
    except FileNotFoundError:
        return []


def checkpoints(out):
    """The names of the finished checkpoints in the progress folder (see `in_progress`)."""
    return in_progress(out, "epoch-[0-9][0-9][0-9][0-9]")


def check_outputs(out, name="2d"):
    """Assert that every output under `out` that exists loads and that all belong to one run;
    return that run's metrics, or None if no run has saved there yet.

    A commit cut short between its moves is first finished, as the next run does on starting.
    """
    models = Path(out) / "models"
    OutputSet(out, models / f".staging_{name}").recover()
    metrics_path = models / f"metrics_{name}.json"
    if not metrics_path.exists():
        assert not list(models.glob(f"*_{name}.*")), "outputs without the metrics that describe them"
        return None
    metrics = json.loads(metrics_path.read_text())  # valid JSON: no NaN
    assert set(metrics["files"]) == {f"assets/{figure}" for figure in FIGURES[name]} | {
        f"models/{kind}_{name}.{suffix}" for kind, suffix in
        [("encoder", "h5"), ("decoder", "h5"), ("test_encodings", "npz"), ("timeline", "npz")]}
    for relative, digest in metrics["files"].items():
        assert sha256(Path(out) / relative) == digest, f"{relative} is not from the run that metrics_{name}.json describes"
    keras.models.load_model(models / f"encoder_{name}.h5", compile=False)
    keras.models.load_model(models / f"decoder_{name}.h5", compile=False)
    assert np.load(models / f"test_encodings_{name}.npz")["z_mean"].shape == (metrics["test_images"], 2)
    return metrics


FIGURES = {"2d": ["Clusters2D.png", "latent2D.png", "reconstructions_2d.png", "history_2d.png", "samples_2d.png",
                  "interpolation_2d.png", "posterior_widths_2d.png", "holes_2d.png", "timeline_2d.png"]}


@pytest.fixture(scope="module")
def reference(small_mnist, tmp_path_factory):
    """An uninterrupted run of COMMAND: its output folder and metrics."""
    out = tmp_path_factory.mktemp("reference")
    result = run(out, small_mnist)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, check_outputs(out)


def earlier_run(reference, out):
    """`out` holding a copy of the reference run's outputs, as a reader's earlier results; their metrics."""
    shutil.copytree(reference[0] / "assets", out / "assets")
    shutil.copytree(reference[0] / "models", out / "models")
    return reference[1]


# ---------------------------------------------------------------------------------------------
# Ctrl-C and kills


def test_ctrl_c_prints_one_line_and_the_same_command_resumes_after_the_last_finished_epoch(
        small_mnist, reference, tmp_path):
    out = tmp_path
    process = start(out, small_mnist)
    _, stderr, stood = ctrl_c_when(process, out, lambda: "epoch-0002" in checkpoints(out))
    assert stood == "running"  # two of four epochs still to train: the test paused the run long before its end
    assert process.returncode == -signal.SIGINT  # killed by SIGINT, as the shell expects: exit status 130
    assert "Traceback" not in stderr
    done = int(checkpoints(out)[-1].split("-")[1])
    assert messages(stderr) == [f"Interrupted after epoch {done} of {EPOCHS}; the earlier results in {out} are "
                                f"unchanged. Run the same command again to resume after epoch {done}."]
    assert check_outputs(out) is None  # nothing was saved over (here: nothing was there)

    result = run(out, small_mnist)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming an interrupted run after its epoch {done}" in result.stdout
    assert f"epochs 1–{done} ran in an earlier, interrupted run" in result.stdout
    metrics = check_outputs(out)
    assert metrics["epochs"] == EPOCHS and metrics["resumed_after_epoch"] == done
    assert all(len(values) == EPOCHS for values in metrics["history"].values())
    assert len(metrics["seconds_per_epoch"]) == EPOCHS
    assert metrics["seconds_training"] == pytest.approx(sum(metrics["seconds_per_epoch"]))
    assert metrics["seconds_training_this_run"] == pytest.approx(sum(metrics["seconds_per_epoch"][done:]))
    assert 0 < metrics["seconds_training_this_run"] < metrics["seconds_total"]
    assert not progress(out).exists()
    # The weights and Adam's state are restored exactly; the shuffle order and the sampling noise
    # start afresh, so the result is close to an uninterrupted run's, not bit-identical.
    assert metrics["test_loss"] == pytest.approx(reference[1]["test_loss"], abs=1.0)
    assert metrics["history"]["loss"][:done] == reference[1]["history"]["loss"][:done]
    # The timeline continues the recording: every epoch, the first `done` as the uninterrupted run recorded them.
    timeline, recorded = np.load(out / "models" / "timeline_2d.npz"), np.load(reference[0] / "models" / "timeline_2d.npz")
    assert timeline["epochs"].tolist() == list(range(1, EPOCHS + 1))
    assert np.array_equal(timeline["z_mean"][:done], recorded["z_mean"][:done])
    assert timeline["val_loss"].tolist() == metrics["history"]["val_loss"]


def test_two_seeds_taking_turns_each_resume_and_one_folder_named_two_ways_is_one_run(small_mnist, tmp_path):
    out = tmp_path / "out"
    (tmp_path / "elsewhere").mkdir()

    def seed_of_progress():  # None while the progress folder is being created, moved or written
        try:
            return json.loads((progress(out) / "settings.json").read_text())["seed"]
        except (OSError, ValueError, KeyError):
            return None

    first = start(f"{tmp_path}/elsewhere/../out/", small_mnist)  # seed 0, MNIST from $VAE_DATA_DIR
    stop_when(first, lambda: "epoch-0001" in checkpoints(out), signal.SIGKILL)
    other = start(out, small_mnist, *COMMAND, "--seed", "1")  # sets seed 0's progress aside
    stop_when(other, lambda: progress(out).exists() and seed_of_progress() == 1 and "epoch-0001" in checkpoints(out),
              signal.SIGKILL)
    # Seed 0 again, its folder and its data named another way: seed 1's progress set aside, seed 0's taken back.
    result = run(out, small_mnist, *COMMAND, "--data-dir", small_mnist)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "set aside earlier by a run with other hyperparameters, is back" in result.stdout
    assert check_outputs(out)["resumed_after_epoch"] >= 1
    [set_aside] = (out / "models" / ".interrupted_2d.set-aside").iterdir()
    assert json.loads((set_aside / "settings.json").read_text())["seed"] == 1 and checkpoints(out) == []


def test_ctrl_c_while_tensorflow_loads_prints_one_line(tmp_path, small_mnist):
    process = start(tmp_path, small_mnist)
    time.sleep(1.0)  # Python is up; importing TensorFlow takes seconds more
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGINT
    assert messages(stderr) == ["Interrupted before the run started; nothing was written."]
    assert not (tmp_path / "models").exists()


def test_ctrl_c_is_recorded_and_acted_on_at_the_next_check_and_a_second_one_stops_at_once():
    result = run_python("""
import os, signal
from vae import stopping

def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)  # Python runs its handler before the next line

stopping.install()
ctrl_c()
print("recorded, nothing raised")
try:
    stopping.check()
except KeyboardInterrupt:
    print("the check stops the run")
try:
    ctrl_c()
    print("the second Ctrl-C was lost")
except KeyboardInterrupt:
    print("the second Ctrl-C stops at once")
stopping.install()  # a new run starts with no request
stopping.check()
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a run started in the background by a shell
stopping.install()
ctrl_c()
print("ignored:", signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
stopping.check()
""")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == ["recorded, nothing raised", "the check stops the run",
                                          "the second Ctrl-C stops at once", "ignored: True"]


def test_kills_at_any_moment_leave_one_whole_set_of_outputs_and_the_next_run_finishes(
        small_mnist, reference, tmp_path):
    """SIGKILL and Ctrl-C at each stage of a run, each time running the same command again."""
    out = tmp_path
    earlier = earlier_run(reference, out)

    def unchanged():
        assert check_outputs(out) == earlier

    # 1. Ctrl-C as training starts, however soon (TensorFlow's C++ code once swallowed it there).
    process = start(out, small_mnist)
    _, stderr, stood = ctrl_c_when(process, out, lambda: (progress(out) / "settings.json").exists())
    assert stood == "running"  # paused as its first epoch starts, four epochs before its outputs are staged
    assert process.returncode == -signal.SIGINT  # killed by SIGINT, as the shell expects: exit status 130
    assert "Traceback" not in stderr
    assert messages(stderr) == [f"Interrupted after epoch 0 of {EPOCHS}; the earlier results in {out} are "
                                f"unchanged. Run the same command again to start over."]
    unchanged()
    # 2. Between epochs, while a checkpoint after the first is being written (its temporary folder exists).
    writing = lambda: in_progress(out, "epoch-*.partial.*") and "epoch-0001" in checkpoints(out)  # noqa: E731
    process = start(out, small_mnist)
    pause_when(process, writing)
    torn = list(progress(out).glob("epoch-*.partial.*"))  # none if it was renamed before the pause took hold
    process.kill()
    process.communicate()
    unchanged()
    if not torn:  # then leave what a kill mid-write leaves: a checkpoint folder with half a weights file
        whole = progress(out) / checkpoints(out)[-1]
        torn = [whole.with_name(f"epoch-{int(whole.name.split('-')[1]) + 1:04d}.partial.1")]
        torn[0].mkdir()
        weights = (whole / "weights.weights.h5").read_bytes()
        (torn[0] / "weights.weights.h5").write_bytes(weights[:len(weights) // 2])
    assert checkpoints(out) and all(path.exists() for path in torn)  # a torn checkpoint beside whole ones
    # 3. After the last epoch, while saving (the first outputs are staged, the rest not yet): the
    #    training is kept, and the same command repeats no epoch.
    staged = out / "models" / ".staging_2d"
    process = start(out, small_mnist)
    stdout, _ = stop_when(process, lambda: (staged / "assets" / "latent2D.png").exists(), signal.SIGKILL)
    assert "Resuming an interrupted run after its epoch " in stdout
    unchanged()
    assert checkpoints(out)[-1] == f"epoch-{EPOCHS:04d}"
    assert not list(progress(out).glob("epoch-*.partial.*"))  # the torn checkpoint was cleared, not resumed from
    # 4. Ctrl-C while saving: the run stops, unless it had begun moving its outputs into place when the
    #    signal came (only then does it finish). The test pauses it to know which.
    process = start(out, small_mnist)
    stdout, stderr, stood = ctrl_c_when(process, out, lambda: (staged / "models" / "decoder_2d.h5").exists())
    assert f"Resuming an interrupted run after its epoch {EPOCHS}" in stdout
    if stood == "running" or stood == "between" and process.returncode != 0:
        assert process.returncode == -signal.SIGINT, stderr[-3000:]
        assert messages(stderr)[-1] == (
            f"Interrupted while saving; the earlier results in {out} are unchanged. Run the same command again "
            f"to evaluate and save the trained model (no epoch is repeated).")
        unchanged()
        # The same command finishes, with the true epoch count, and its outputs replace the earlier ones.
        result = run(out, small_mnist)
        assert result.returncode == 0, result.stderr[-3000:]
    else:  # the outputs were moving into place when the signal came: the run finished, no epoch repeated
        assert process.returncode == 0, stderr[-3000:]
    metrics = check_outputs(out)
    assert metrics["epochs"] == EPOCHS and all(len(values) == EPOCHS for values in metrics["history"].values())
    assert metrics["resumed_after_epoch"] == EPOCHS
    assert metrics["files"] != earlier["files"]
    assert not progress(out).exists() and not staged.exists()


# ---------------------------------------------------------------------------------------------
# Divergence, two runs at once, a full disk


def test_a_diverging_run_stops_at_once_names_the_epoch_and_saves_nothing(small_mnist, reference, tmp_path):
    earlier = earlier_run(reference, tmp_path)
    result = run(tmp_path, small_mnist, "--epochs", 10, "--learning-rate", 0.1, "--no-xla")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error = messages(result.stderr)[-1]
    assert error.startswith("error: training diverged in epoch ") and " of 10: the loss became NaN or infinite" in error
    assert "Try a lower --learning-rate (this run: 0.1; the tutorial's 0.001 trains stably)" in error
    assert check_outputs(tmp_path) == earlier
    assert not progress(tmp_path).exists()  # nothing to resume: the same command would diverge again


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_finishes(small_mnist, tmp_path):
    first = start(tmp_path, small_mnist)
    deadline = time.monotonic() + 120
    while not (progress(tmp_path) / "settings.json").exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.01)
    second = run(tmp_path, small_mnist)
    assert second.returncode == 1
    assert messages(second.stderr) == [
        f"error: another run of this script (process {first.pid}) is writing to {tmp_path}. Wait for it to "
        f"finish, or give this run another folder with --out DIR."]
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-3000:]
    assert check_outputs(tmp_path)["epochs"] == EPOCHS


def test_the_lock_of_a_killed_run_is_released_by_the_system(tmp_path):
    from vae.saving import RunLock

    code = ("import time; from vae.saving import RunLock; "
            f"lock = RunLock({str(tmp_path / 'x.lock')!r}); assert lock.acquire() is None; "
            "print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "code")})
    assert holder.stdout.readline().strip() == "locked"
    assert RunLock(tmp_path / "x.lock").acquire() == str(holder.pid)
    holder.kill()
    holder.wait()
    lock = RunLock(tmp_path / "x.lock")
    assert lock.acquire() is None
    lock.release()


@pytest.fixture
def small_disk(tmp_path):
    """Mount a 64 MB tmpfs at tmp_path/disk (a disk that can be filled); unmount afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk, leave_bytes):
    """Fill `disk` up to `leave_bytes` free, with one file; returns it."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with open(filler, "ab") as file:
        os.posix_fallocate(file.fileno(), 0, max(0, free - leave_bytes))
    return filler


def test_a_full_disk_gets_one_message_keeps_earlier_files_and_progress(small_mnist, reference, small_disk):
    out = small_disk / "run"
    earlier_run(reference, out)
    earlier = check_outputs(out)
    # Full from the start: the first checkpoint cannot be written (HDF5 used to crash the process).
    filler = fill(small_disk, leave_bytes=3_000_000)
    result = run(out, small_mnist)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert messages(result.stderr)[-1].startswith(
        f"error: cannot write {progress(out)}: No space left on device (about ")
    assert "(while training). The earlier results in" in messages(result.stderr)[-1]
    assert check_outputs(out) == earlier
    filler.unlink()
    # Full after training, while saving: the training is kept, and the same command only saves.
    process = start(out, small_mnist)
    last_two = [f"epoch-{EPOCHS - 1:04d}", f"epoch-{EPOCHS:04d}"]  # and the older checkpoints deleted
    wait_until(process, lambda: checkpoints(out) == last_two)
    filler = fill(small_disk, leave_bytes=200_000)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    error = messages(stderr)[-1]
    assert error.startswith("error: cannot write ") and "No space left on device" in error
    assert error.endswith("Free some space, then run the same command again to evaluate and save the trained "
                          "model (no epoch is repeated).")
    assert check_outputs(out) == earlier
    assert not (out / "models" / ".staging_2d").exists()  # this run's partial outputs are cleaned up
    filler.unlink()
    result = run(out, small_mnist)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming an interrupted run after its epoch {EPOCHS}" in result.stdout
    assert check_outputs(out)["epochs"] == EPOCHS


# ---------------------------------------------------------------------------------------------
# Edge cases that used to end in a traceback


def test_a_test_set_of_five_images_of_one_class_runs_to_the_end(tmp_path):
    data = write_mnist(tmp_path / "threes", train=300, test=5, only_class=3)
    result = run(tmp_path / "out", data, "--epochs", 2, "--batch-size", 64, "--no-xla")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Test set (5 images)" in result.stdout
    metrics = check_outputs(tmp_path / "out")
    assert metrics["test_images"] == 5 and metrics["train_images"] == 300


def test_the_saved_encoder_loads_with_plain_keras(reference):
    result = run_python(
        "import sys, keras, numpy as np\n"
        f"encoder = keras.models.load_model({str(reference[0] / 'models' / 'encoder_2d.h5')!r}, compile=False)\n"
        "z_mean, z_log_var = encoder(np.zeros((3, 28, 28, 1), 'float32'))\n"
        "print(tuple(z_mean.shape), tuple(z_log_var.shape), 'vae' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(3, 2) (3, 2) False"
