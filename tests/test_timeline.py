"""The 2-D chapter's timeline (code/vae/timeline.py): which test images it follows, that recording them leaves
training exactly as it was, that a resumed run continues it, and the file and still figure it writes."""

import json

import keras
import numpy as np
import pytest

from conftest import run_python
from vae.timeline import (LOSS_KEYS, Timeline, choose_images, class_agreement, epoch_file, load_timeline,
                          plot_timeline, still_epochs, summary)


def test_the_images_are_the_same_each_time_as_many_of_each_class_and_leave_numpy_alone():
    labels = np.random.default_rng(5).integers(0, 10, 10_000)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    chosen = choose_images(labels)
    assert np.array_equal(np.random.get_state()[1], before)  # the global generator, which training seeds, untouched
    assert np.array_equal(chosen, choose_images(labels)) and np.array_equal(chosen, np.sort(chosen))
    assert len(chosen) == len(set(chosen)) == 2000
    assert np.array_equal(np.bincount(labels[chosen], minlength=10), [200] * 10)
    assert np.array_equal(choose_images(labels[:300]), np.arange(300))  # a small test set: all of it
    few = np.array([0] * 50 + [1] * 5000)  # a class too small for its share: the rest fill the count
    assert len(choose_images(few, count=1000)) == 1000 and (few[choose_images(few, count=1000)] == 0).sum() == 50


TRAIN = """
import json, sys
import keras, numpy as np
from vae.timeline import Timeline, choose_images
from vae.training import train
from vae_2d import VAE, build_decoder, build_encoder

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
images = (rng.random((700, 28, 28, 1)) < 0.2).astype("float32")
labels = rng.integers(0, 10, 700)
vae = VAE(build_encoder(2, seed=0), build_decoder(2))
vae.compile(optimizer=keras.optimizers.Adam(1e-3))
callbacks = []
if sys.argv[1] == "record":
    indices = choose_images(labels[:300], count=100)
    callbacks = [Timeline(images[:300][indices], labels[:300][indices], indices, sys.argv[2])]
history = train(vae, images[:400], images[400:], 3, 64, seed=0, verbose=0, callbacks=callbacks)
np.savez(sys.argv[3], *vae.get_weights(), noise_state=keras.ops.convert_to_numpy(vae.encoder.get_layer("z").seed_generator.state))
print(json.dumps(history["val_loss"]))
"""


def test_recording_leaves_training_exactly_as_it_was(tmp_path):
    """The same three epochs (the fused XLA path, as the chapters train), with and without recording:
    every weight, the sampling layer's noise state and every loss are bit-identical."""
    results = {}
    for mode in ["plain", "record"]:
        script = "import sys; sys.argv = ['x', %r, %r, %r]\n" % (mode, str(tmp_path), str(tmp_path / f"{mode}.npz"))
        result = run_python(script + TRAIN)
        assert result.returncode == 0, result.stderr[-3000:]
        results[mode] = json.loads(result.stdout.splitlines()[-1])
    assert results["plain"] == results["record"]
    plain, recorded = np.load(tmp_path / "plain.npz"), np.load(tmp_path / "record.npz")
    assert plain.files == recorded.files and len(plain.files) > 10
    for name in plain.files:
        assert np.array_equal(plain[name], recorded[name]), name
    for epoch in (1, 2, 3):  # and the recording was made, into the progress folder
        with np.load(epoch_file(tmp_path, epoch)) as saved:
            assert saved["z_mean"].shape == (100, 2) and set(LOSS_KEYS) <= set(saved.files)


class TinyVAE(keras.Model):
    """An encoder image (4,) → [z_mean, z_log_var, z] whose z_mean is the image's first two numbers times a
    weight, so that each epoch's codes are known."""

    def __init__(self):
        super().__init__()
        images = keras.Input((4,))
        scaled = keras.layers.Dense(2, use_bias=False, kernel_initializer="identity", name="z_mean")(images[:, :2] * 1.0)
        self.encoder = keras.Model(images, [scaled, scaled * 0.0, scaled])


def record(timeline, model, epochs, start=0):
    timeline.set_model(model)
    timeline.on_train_begin()
    for epoch in range(start, epochs):
        model.encoder.get_layer("z_mean").kernel.assign(np.eye(2) * (epoch + 1))
        timeline.on_epoch_end(epoch, {key: 100.0 - epoch for key in LOSS_KEYS} | {"seconds": 3.0})


def test_a_resumed_run_continues_the_recording(tmp_path, capsys):
    images = np.arange(12, dtype="float32").reshape(3, 4)
    model = TinyVAE()
    first = Timeline(images, [0, 1, 2], [4, 5, 6], tmp_path)
    record(first, model, 2)  # killed after epoch 2 (its checkpoint): the next run resumes after it
    epoch_file(tmp_path, 3).write_bytes(b"torn")  # a record of an epoch whose checkpoint was never written
    resumed = Timeline(images, [0, 1, 2], [4, 5, 6], tmp_path, resumed_after=2)
    record(resumed, model, 4, start=2)
    data = resumed.arrays()
    assert data["epochs"].tolist() == [1, 2, 3, 4]
    for epoch in range(4):
        np.testing.assert_array_equal(data["z_mean"][epoch], images[:, :2] * (epoch + 1))
    assert data["val_loss"].tolist() == [100.0, 99.0, 98.0, 97.0]
    assert "lacks" not in capsys.readouterr().out

    (tmp_path / "timeline-epoch-0001.npz").unlink()  # progress saved by a run that did not record
    gap = Timeline(images, [0, 1, 2], [4, 5, 6], tmp_path, resumed_after=2)
    assert "The timeline lacks epoch(s) 1: the progress resumed was saved without them" in capsys.readouterr().out
    record(gap, model, 3, start=2)
    assert gap.arrays()["epochs"].tolist() == [2, 3]


def test_the_file_reads_back_and_a_wrong_one_is_named(tmp_path):
    images = np.arange(12, dtype="float32").reshape(3, 4)
    timeline = Timeline(images, [0, 1, 2], [4, 5, 6], tmp_path)
    record(timeline, TinyVAE(), 3)
    timeline.save(tmp_path / "timeline_2d.npz")
    data = load_timeline(tmp_path / "timeline_2d.npz")
    assert data["z_mean"].shape == (3, 3, 2) and data["z_mean"].dtype == np.float32
    assert data["indices"].tolist() == [4, 5, 6] and data["labels"].dtype == np.uint8
    np.savez(tmp_path / "bad.npz", epochs=np.arange(3), z_mean=np.zeros((2, 3, 2)), indices=np.arange(3),
             labels=np.zeros(3))
    with pytest.raises(ValueError, match="bad.npz: its arrays do not fit together"):
        load_timeline(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="missing.npz: not a readable timeline"):
        load_timeline(tmp_path / "missing.npz")


def test_class_agreement_and_spread():
    labels = np.repeat(np.arange(3), 20)
    apart = np.stack([labels * 10.0, np.zeros(60)], 1) + np.random.default_rng(0).normal(0, 0.1, (60, 2))
    assert class_agreement(apart, labels) == 1.0
    mixed = np.random.default_rng(1).normal(0, 1, (60, 2))
    assert class_agreement(mixed, labels) < 0.7
    found = summary({"epochs": np.array([1, 2]), "z_mean": np.stack([mixed, apart]), "labels": labels})
    assert found["class_agreement"][1] == 1.0 and found["epochs"] == [1, 2] and found["images"] == 60
    assert found["spread"][0] == pytest.approx(np.sqrt((mixed ** 2).sum(1).mean()))


def test_the_still_figure_shows_chosen_epochs_and_the_last(tmp_path):
    assert still_epochs(range(1, 31)) == [1, 2, 5, 10, 30]
    assert still_epochs([1, 2, 3]) == [1, 2, 3]
    assert still_epochs([3, 4, 5, 6]) == [5, 6]
    rng = np.random.default_rng(0)
    data = {"epochs": np.arange(1, 7), "z_mean": rng.normal(0, 1, (6, 50, 2)).astype("float32"),
            "labels": rng.integers(0, 10, 50).astype("uint8"), "val_loss": np.linspace(200, 150, 6)}
    plot_timeline(data, tmp_path / "timeline.png")
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_class_agreement_of_a_tiny_test_set_votes_among_all_the_other_codes():
    """A reader's test set of five images: the vote takes the four other codes, not ten (it once crashed the
    run at its end); a single code has no neighbour and no agreement."""
    from vae.timeline import class_agreement, neighbours_for

    z = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0]])
    assert neighbours_for(5) == 4 and neighbours_for(2000) == 10 and neighbours_for(1) == 0
    assert class_agreement(z, [3, 3, 3, 3, 3]) == 1.0
    assert class_agreement(z[:1], [3]) is None
