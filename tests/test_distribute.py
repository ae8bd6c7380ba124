"""Training on several devices and machines (tf.distribute) and in mixed precision, on this CPU.

A CPU split into two logical devices stands in for two GPUs, and two processes on localhost for two
machines. Both must be set up before TensorFlow starts, so those tests run in fresh processes.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import CODE_DIR, REPO_ROOT, run_python, script_command
from vae.config import Config, ConfigError, parse_flags

TWO_CPUS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""

# A VAE whose sampling noise is a fixed function of the image: ε = cos(3μ), without gradient. Split
# across replicas or not, each image gets the same ε, so runs differ only in how they add up the batch.
# Trained with SGD: Adam's first step is about lr·sign(gradient), blind to a gradient N times too large.
FIXED_NOISE_VAE = """
import json
import keras
import numpy as np
from keras import ops
import vae_2d
from vae.training import batched
from vae.variants import ReplicaSampling, SeveralDevices

class FixedNoiseSampling(vae_2d.Sampling):
    def call(self, inputs):
        z_mean, z_log_var = inputs
        return z_mean + ops.exp(0.5 * z_log_var) * ops.stop_gradient(ops.cos(3.0 * z_mean))

RandomSampling = ReplicaSampling  # the Sampling layer a run on several replicas uses (vae/variants.py)
vae_2d.Sampling = FixedNoiseSampling  # build_encoder builds this one

class ReplicatedVAE(SeveralDevices, vae_2d.VAE):  # the chapter's VAE as --distribute extends it
    pass

def images(count):
    return np.random.default_rng(0).random((count, 28, 28, 1)).astype("float32")

class FirstStep(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 0:
            self.weights, self.loss = self.model.get_weights(), float(logs["loss"])

def train(strategy, x, batch_size=64, start=None):
    '''SGD over x in batches of batch_size (global), in order.
    Returns the weights at the start, after the first step and at the end, and the first step's loss.'''
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = ReplicatedVAE(vae_2d.build_encoder(2), vae_2d.build_decoder(2))
        if start is not None:
            model.set_weights(start)
        start, first_step = model.get_weights(), FirstStep()
        model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=False, steps_per_execution=1)
        model.fit(batched(x, batch_size), epochs=1, verbose=0, shuffle=False, callbacks=[first_step])
    return start, first_step.weights, model.get_weights(), first_step.loss

def max_difference(a, b):
    return float(max(np.abs(u - v).max() for u, v in zip(a, b)))
"""

TWO_D_OUTPUTS = {"assets/Clusters2D.png", "assets/latent2D.png", "assets/reconstructions_2d.png",
                 "assets/history_2d.png", "models/encoder_2d.h5", "models/decoder_2d.h5",
                 "models/test_encodings_2d.npz", "models/metrics_2d.json"}


def check_outputs(out, stdout):
    """Every file the run says it wrote is in `out`, not empty, and they include vae_2d.py's outputs."""
    said = {line.strip() for line in stdout.split("\nWrote ")[-1].splitlines()[1:] if line.startswith("  ")}
    written = {str(path) for path in out.glob("*/[!.]*")}  # not the run's lock
    assert said == written and all(Path(path).stat().st_size > 0 for path in written)
    assert {f"{out}/{name}" for name in TWO_D_OUTPUTS} <= written


# Weights are O(0.1); one SGD step moves them by O(1e-3); float32 sums in another order differ by O(1e-8).
WEIGHT_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def replica_runs(tmp_path_factory):
    """One process, its CPU split in two: the fixed-noise VAE trained on the same 129 images with one
    replica and with two, from the same weights. Returns the comparisons, and the folder where the
    one-replica run's end weights are (one_replica.npz)."""
    folder = tmp_path_factory.mktemp("replicas")
    result = run_python(TWO_CPUS + FIXED_NOISE_VAE + f"""
import tensorflow as tf
one, two = tf.distribute.get_strategy(), tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
# Three steps: 64 images (32 per replica), 64, and a last batch of 1 image, which leaves one replica none.
start, one_step, one_end, one_loss = train(one, images(129))
_, two_step, two_end, two_loss = train(two, images(129), start=start)
np.savez({str(folder / "one_replica.npz")!r}, *one_end)
# The tutorial's own Sampling layer: the noise each replica draws for its share of a batch.
with two.scope():
    sampling = RandomSampling(seed=0)
zeros = tf.zeros((500, 2))
noise = two.experimental_local_results(tf.function(lambda: two.run(lambda: sampling([zeros, zeros])))())
print(json.dumps({{"replicas": two.num_replicas_in_sync, "loss": [one_loss, two_loss],
                   "noise": [[float(e.numpy().mean()), float(e.numpy().std())] for e in noise],
                   "noise_correlation": float(np.corrcoef(noise[0].numpy().ravel(), noise[1].numpy().ravel())[0, 1]),
                   "first_step": max_difference(one_step, two_step), "moved": max_difference(one_step, start),
                   "three_steps": max_difference(one_end, two_end)}}))
""")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1]), folder


def test_two_replicas_take_the_same_steps_as_one(replica_runs):
    found, _ = replica_runs
    print(found)
    assert found["replicas"] == 2
    assert found["loss"][1] == pytest.approx(found["loss"][0], rel=1e-6)
    assert found["moved"] > 1000 * WEIGHT_TOLERANCE  # the step did move the weights
    assert found["first_step"] < WEIGHT_TOLERANCE
    assert found["three_steps"] < WEIGHT_TOLERANCE


def test_each_replica_draws_its_own_sampling_noise(replica_runs):
    """Each replica holds a copy of the Sampling layer's seed state; drawn alike, two images on two
    replicas would share their ε. Each replica's 1,000 values of ε are N(0, 1), uncorrelated."""
    found, _ = replica_runs
    for mean, std in found["noise"]:
        assert abs(mean) < 0.15 and abs(std - 1) < 0.1
    assert abs(found["noise_correlation"]) < 0.15


def test_vae_2d_on_two_replicas_resumes_when_killed_and_writes_all_its_outputs(tmp_path, small_mnist):
    out = tmp_path / "out"
    code = TWO_CPUS + f"""
import runpy, sys
sys.argv = ["vae_2d.py", "--distribute", "mirrored", "--devices", "/cpu:0,/cpu:1", "--epochs", "2",
            "--grid-size", "4", "--data-dir", {str(small_mnist)!r}, "--out", {str(out)!r}]
runpy.run_path({str(CODE_DIR / "vae_2d.py")!r}, run_name="__main__")
"""
    # Killed once its first epoch is checkpointed: the same command resumes under the strategy.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(CODE_DIR)}
    first = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO_ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = out / "models" / ".interrupted_2d" / "epoch-0001"
    try:
        deadline = time.monotonic() + 180
        while not checkpoint.exists():
            assert first.poll() is None and time.monotonic() < deadline, "no checkpoint after the first epoch"
            time.sleep(0.01)
    finally:
        first.kill()
        first.wait()
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Training on 2 replicas with MirroredStrategy" in result.stdout
    assert "Resuming an interrupted run after its epoch 1" in result.stdout
    check_outputs(out, result.stdout)
    metrics = json.loads((out / "models" / "metrics_2d.json").read_text())
    assert 80 < metrics["test_loss"] < 400 and metrics["train_images"] == 2000
    assert metrics["resumed_after_epoch"] == 1 and len(metrics["history"]["loss"]) == 2
    assert (out / "assets" / "Clusters2D.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_workers():
    """The TF_CONFIG of worker 0 and of worker 1 of a cluster of two on this machine's loopback."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}) for index in range(2)]


def run_together(commands, timeout):
    """Start every (command, environment) at once and wait until all have stopped by themselves, at most
    `timeout` seconds (a worker whose peer died would wait for it forever); any left is killed.
    Returns their (stdout, stderr); fails the test if one failed."""
    processes = []
    try:
        for command, env in commands:
            processes.append(subprocess.Popen(command, env=env, cwd=REPO_ROOT, text=True,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        outputs = [process.communicate(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    return outputs


def test_two_workers_train_as_one_process(tmp_path, replica_runs):
    """Two processes on localhost, a cluster in TF_CONFIG, end with the weights of one process that
    trains on the same global batches (the one-replica run of `replica_runs`)."""
    worker = """
import sys
import numpy as np
from vae.config import Config
from vae.distribute import is_chief, setup
strategy = setup(Config(distribute="multi_worker", batch_size=64))
""" + FIXED_NOISE_VAE + """
# Three steps: 64 images (32 per worker), 64, and 1 image, which leaves one worker none.
_, _, end, loss = train(strategy, images(129))
np.savez(sys.argv[1], *end)
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "chief": is_chief(), "loss": loss}))
"""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(CODE_DIR)}
    outputs = run_together([([sys.executable, "-c", worker, str(tmp_path / f"worker{index}.npz")],
                             {**env, "TF_CONFIG": tf_config}) for index, tf_config in enumerate(two_workers())],
                           timeout=120)
    reports = [json.loads(stdout.splitlines()[-1]) for stdout, _ in outputs]
    assert [r["chief"] for r in reports] == [True, False]
    assert [r["replicas"] for r in reports] == [2, 2]
    found, folder = replica_runs
    assert reports[0]["loss"] == reports[1]["loss"] == pytest.approx(found["loss"][0], rel=1e-6)
    weights = [list(np.load(path).values()) for path in
               [tmp_path / "worker0.npz", tmp_path / "worker1.npz", folder / "one_replica.npz"]]
    print({"workers": max(np.abs(a - b).max() for a, b in zip(weights[0], weights[1])),
           "one process": max(np.abs(a - b).max() for a, b in zip(weights[0], weights[2]))})
    for a, b in zip(weights[0], weights[1]):
        np.testing.assert_array_equal(a, b)  # the workers apply the same all-reduced gradients
    for a, b in zip(weights[0], weights[2]):
        np.testing.assert_allclose(a, b, rtol=0, atol=WEIGHT_TOLERANCE)


def test_only_the_chief_worker_writes_results(tmp_path, small_mnist):
    """vae_2d.py in two worker processes: worker 0 writes the outputs under its --out, worker 1 nothing
    under its own; its progress and staging, in the temporary folder while it runs, are removed."""
    (tmp_path / "tmp").mkdir()
    outputs = run_together([script_command("vae_2d.py", "--distribute", "multi_worker", "--epochs", 1,
                                           "--train-size", 256, "--grid-size", 4, "--data-dir", small_mnist,
                                           "--out", tmp_path / f"out{index}",
                                           env_extra={"TF_CONFIG": tf_config, "TMPDIR": str(tmp_path / "tmp")})
                            for index, tf_config in enumerate(two_workers())], timeout=180)
    assert "Training on 2 replicas with MultiWorkerMirroredStrategy" in outputs[0][0]
    check_outputs(tmp_path / "out0", outputs[0][0])
    assert json.loads((tmp_path / "out0" / "models" / "metrics_2d.json").read_text())["train_images"] == 256
    assert "the chief writes the results" in outputs[1][0]
    assert not (tmp_path / "out1").exists()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_mixed_bfloat16_keeps_the_losses_in_float32_and_trains_like_float32(small_mnist):
    result = run_python(f"""
import json, math
import keras
from vae.config import Config
from vae.data import load_mnist
from vae.distribute import setup
from vae.evaluation import evaluate
from vae.training import train
from vae.variants import build
from vae_2d import VAE, build_decoder, build_encoder

(x_train, _), (x_test, _) = load_mnist({str(small_mnist)!r})
found = {{}}
for precision in ["float32", "mixed_bfloat16"]:
    config = Config(precision=precision).check()
    setup(config)  # as an Experiment does
    keras.utils.set_random_seed(0)
    vae = build(VAE, build_encoder(2, seed=0), build_decoder(2), config)  # as run.model does
    z_mean, z_log_var, z = vae.encoder(x_test[:8], training=True)
    reconstruction, kl = vae.compute_losses(x_test[:8], training=True)
    tensors = {{"z_log_var": z_log_var, "reconstruction_per_image": reconstruction, "kl_per_image": kl,
                "loss": keras.ops.mean(reconstruction + vae.beta * kl)}}
    dtypes = {{"dense": vae.encoder.layers[2].compute_dtype,
               **{{name: keras.backend.standardize_dtype(t.dtype) for name, t in tensors.items()}}}}
    history = train(vae, x_train, x_test, epochs=2, batch_size=128, learning_rate=1e-3, seed=0,
                    verbose=0, jit_compile=False)
    found[precision] = {{"dtypes": dtypes, "history": history["loss"],
                         "test_loss": evaluate(vae, x_test)["loss"]}}
print(json.dumps(found))
""")
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.splitlines()[-1])
    print({precision: found[precision]["test_loss"] for precision in found})
    mixed = found["mixed_bfloat16"]
    assert mixed["dtypes"] == {"dense": "bfloat16", "z_log_var": "float32", "reconstruction_per_image": "float32",
                               "kl_per_image": "float32", "loss": "float32"}
    assert all(np.isfinite(mixed["history"])) and np.isfinite(mixed["test_loss"])
    assert mixed["history"][-1] < mixed["history"][0]  # it trained
    assert abs(mixed["test_loss"] - found["float32"]["test_loss"]) < 1.0


def test_distribute_and_precision_flags_are_checked():
    defaults = Config()
    assert (defaults.distribute, defaults.devices, defaults.precision) == ("none", None, "float32")
    config = parse_flags(defaults, ["--distribute", "mirrored", "--devices", "/gpu:0, /gpu:1",
                                    "--precision", "mixed_float16"])
    assert (config.distribute, config.devices, config.precision) == ("mirrored", ["/gpu:0", "/gpu:1"], "mixed_float16")
    for bad, message in [
        (dict(distribute="horovod"), "distribute must be one of 'none', 'mirrored', 'multi_worker', got 'horovod'"),
        (dict(precision="float16"), "precision must be one of 'float32', 'mixed_float16', 'mixed_bfloat16'"),
        (dict(devices=["/gpu:0"]), "devices is only for distribute='mirrored'"),
        (dict(distribute="mirrored", devices=["gpu0"]), "devices must be a list of device names"),
        (dict(distribute="mirrored", devices=[]), "devices must be a list of device names"),
        (dict(distribute="mirrored", devices=["/gpu:0", "/GPU:0"]), "devices names a device twice"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            Config(**bad).check()
    with pytest.raises(SystemExit):
        parse_flags(defaults, ["--precision", "float16"])


def test_what_this_machine_cannot_do_is_refused_before_any_data_loads(monkeypatch):
    from vae.distribute import check_even_split, setup

    for config, message in [
        (Config(precision="mixed_float16"), "precision: mixed_float16 needs a GPU"),
        (Config(distribute="mirrored", devices=["/gpu:7"]), "devices: /gpu:7 is not a device of this machine"),
        # One device: nothing to mirror, and TensorFlow's multi-device input iterator crashed 2 runs in 20 there.
        (Config(distribute="mirrored", devices=["/cpu:0"]),
         r"distribute: mirrored on one device \(/cpu:0\) has nothing to mirror and can crash TensorFlow; "
         r"train without --distribute, or name two or more devices \(--devices\)"),
        (Config(distribute="multi_worker"), "distribute: multi_worker needs the TF_CONFIG environment variable"),
    ]:
        monkeypatch.delenv("TF_CONFIG", raising=False)
        with pytest.raises(SystemExit, match=message):
            setup(config.check())
    # Keras cannot start a distributed fit or evaluate whose first batch splits unevenly (keras-team/keras#19246).
    with pytest.raises(SystemExit, match="batch_size: the first batch of 129 images does not split evenly among 2"):
        check_even_split(Config(batch_size=129), replicas=2)
    with pytest.raises(SystemExit, match="distribute: evaluation's batches of 1000 images do not split evenly among 3"):
        check_even_split(Config(batch_size=120), replicas=3)
    check_even_split(Config(batch_size=129, train_size=100), replicas=2)  # the first batch: 100 images


def test_the_chief_is_worker_0_or_the_chief_task(monkeypatch):
    from vae.distribute import is_chief

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief()  # a single process writes its results
    workers = {"worker": ["a:1", "b:1"]}
    for cluster, task, chief in [(workers, {"type": "worker", "index": 0}, True),
                                 (workers, {"type": "worker", "index": 1}, False),
                                 ({"chief": ["c:1"], **workers}, {"type": "chief", "index": 0}, True),
                                 ({"chief": ["c:1"], **workers}, {"type": "worker", "index": 0}, False)]:
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
        assert is_chief() == chief
