"""What recording the timeline (code/vae/timeline.py) costs the 2-D chapter's training, as a share of an epoch.

    python benchmarks/timeline_cost.py          # prints one JSON line
    python benchmarks/timeline_cost.py --save   # and writes benchmarks/timeline_cost.json

One run of the 2-D chapter's model on all of MNIST, trained as the chapter trains it (vae.training.train,
the fused path), for --epochs epochs: the recording runs after every even epoch and not after the odd
ones, so that both kinds of epoch see the machine at nearly the same time. The first epoch compiles and is
dropped. Per epoch it measures the wall time from the epoch's start to the end of its callbacks (its
recording included: the codes of the 2,000 test images and the write of their record, fsync included),
and the recording alone. The cost is the recording's median over the median epoch without it; the
difference of the two kinds' medians says the same, with the machine's noise in it.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from vae.data import load_dataset  # noqa: E402
from vae.experiment import device_name  # noqa: E402
from vae.timeline import Timeline, choose_images  # noqa: E402
from vae.training import train  # noqa: E402
from vae_2d import VAE, build_decoder, build_encoder  # noqa: E402

OUTPUT = Path(__file__).resolve().parent / "timeline_cost.json"


class EveryOtherEpoch(keras.callbacks.Callback):
    """Times each epoch from its start to the end of this callback, and runs `timeline` after the even ones
    (2, 4, ...), timing it too: `epochs` [(epoch, recorded, epoch seconds, recording seconds or None)]."""

    def __init__(self, timeline):
        super().__init__()
        self.timeline = timeline
        self.epochs = []

    def set_model(self, model):
        super().set_model(model)
        self.timeline.set_model(model)

    def on_train_begin(self, logs=None):
        self.timeline.on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        recording = None
        if (epoch + 1) % 2 == 0:
            begin = time.perf_counter()
            self.timeline.on_epoch_end(epoch, logs)
            recording = time.perf_counter() - begin
        self.epochs.append((epoch + 1, recording is not None, time.perf_counter() - self.start, recording))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=13, help="epochs to train (default 13: 6 with, 6 without)")
    parser.add_argument("--save", action="store_true", help=f"write {OUTPUT.name}")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    (x_train, _), (x_test, y_test) = load_dataset("mnist")
    indices = choose_images(y_test)
    keras.utils.set_random_seed(0)
    vae = VAE(build_encoder(2, seed=0), build_decoder(2))
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    with tempfile.TemporaryDirectory() as folder:
        clock = EveryOtherEpoch(Timeline(x_test[indices], y_test[indices], indices, folder))
        train(vae, x_train, x_test, args.epochs, 128, seed=0, verbose=0, callbacks=[clock])
    measured = clock.epochs[1:]  # the first compiles
    with_recording = [seconds for _, recorded, seconds, _ in measured if recorded]
    without = [seconds for _, recorded, seconds, _ in measured if not recorded]
    recording = [seconds for _, recorded, _, seconds in measured if recorded]
    result = {
        "benchmark": "timeline_cost",
        "what": "the 2-D chapter's training with the timeline recorded after every even epoch, not after the odd ones",
        "images_recorded": len(indices),
        "train_images": len(x_train),
        "epochs_measured": len(measured),
        "epoch_s": [{"epoch": epoch, "recorded": recorded, "seconds": round(seconds, 4),
                     "recording_s": None if part is None else round(part, 4)} for epoch, recorded, seconds, part in measured],
        "median_epoch_s_without": statistics.median(without),
        "median_epoch_s_with": statistics.median(with_recording),
        "median_recording_s": statistics.median(recording),
        "cost_share": statistics.median(recording) / statistics.median(without),  # the recording over an epoch
        "difference_share": statistics.median(with_recording) / statistics.median(without) - 1,  # noisier
        "device": device_name(),
        "cores": os.cpu_count(),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # 1-minute; above `cores`: shared
        "tensorflow_version": tf.__version__,
    }
    print(json.dumps(result), flush=True)
    if args.save:
        OUTPUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
