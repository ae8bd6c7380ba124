"""Watch it learn: the posterior means of a fixed set of test images, and the losses, after every epoch.

The 2-D chapter records them while it trains (vae/experiment.py hooks `Timeline` into `fit`) and writes
models/timeline_2d.npz, a part of its output set:

    epochs           (E,) int32           the epochs recorded, 1, 2, ... (a gap only where a resumed run's
                                          earlier progress was saved without them)
    z_mean           (E, N, latent_dim) float32   the N chosen test images' posterior means after each epoch
    indices          (N,) int64           which rows of the test set they are (fixed by TIMELINE_SEED)
    labels           (N,) uint8           their classes
    loss, reconstruction, kl, val_loss, val_reconstruction, val_kl   (E,) float64, nats per image:
                                          the epoch's training means and the test set's after it

Recording must not change training: the means come from a model that ends at the encoder's z_mean
layer, so the Sampling layer's random state is never touched, and the images are chosen by a NumPy
generator of their own. Each epoch's record is written into the run's progress folder
(models/.interrupted_<run>/timeline-epoch-NNNN.npz) before that epoch's checkpoint, so a resumed run
continues the recording from the epochs its checkpoint holds.
"""

from pathlib import Path

import keras
import numpy as np

from vae.saving import atomic_path

TIMELINE_IMAGES = 2000  # test images recorded, the same number of each class
TIMELINE_SEED = 0  # chooses them, the same ones in every run
LOSS_KEYS = ("loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl")
STILL_EPOCHS = (1, 2, 5, 10, 30)  # the epochs the still figure shows (those run, and always the last)


def choose_images(labels, count=TIMELINE_IMAGES, seed=TIMELINE_SEED):
    """Sorted indices (≤ count,) int64 into a test set with `labels` (N,): count // classes of each class,
    chosen at random by a generator of their own (the global NumPy state is left alone), then filled up
    from the rest; all N when N ≤ count."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) <= count:
        return np.arange(len(labels), dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    classes = np.unique(labels)
    per_class = count // len(classes)
    chosen = np.concatenate([order[labels[order] == label][:per_class] for label in classes])
    rest = order[~np.isin(order, chosen)]
    return np.sort(np.concatenate([chosen, rest[:count - len(chosen)]])).astype(np.int64)


def epoch_file(folder, epoch):
    """The record of epoch `epoch` (1, 2, ...) in the progress folder `folder`."""
    return Path(folder) / f"timeline-epoch-{epoch:04d}.npz"


class Timeline(keras.callbacks.Callback):
    """Records, after every epoch, the posterior means of `images` (N, h, w, c) and the epoch's losses.

    Each epoch's record is written to `folder` (the run's progress folder); `resumed_after` epochs were
    recorded by an earlier run, whose records in `folder` are read back. Place it before the callback that
    checkpoints the epoch, so that every checkpoint has its record on disk.
    """

    def __init__(self, images, labels, indices, folder, resumed_after=0):
        super().__init__()
        self.images = np.asarray(images, np.float32)
        self.labels = np.asarray(labels).astype(np.uint8)
        self.indices = np.asarray(indices, np.int64)
        self.folder = Path(folder)
        self.records = {}  # {epoch: (z_mean (N, latent_dim) float32, {loss key: float})}
        self.missing = []
        for epoch in range(1, resumed_after + 1):
            try:
                with np.load(epoch_file(self.folder, epoch)) as saved:
                    self.records[epoch] = (saved["z_mean"], {key: float(saved[key]) for key in LOSS_KEYS if key in saved})
            except (OSError, ValueError, KeyError):  # saved by a run that did not record, or unreadable
                self.missing.append(epoch)
        if self.missing:
            print(f"The timeline lacks epoch(s) {_ranges(self.missing)}: the progress resumed was saved without "
                  f"them; the other epochs are recorded as usual")
        self.means = None

    def on_train_begin(self, logs=None):
        # A model from the image to z_mean only: the Sampling layer, and its seeded noise, never run here.
        encoder = self.model.encoder
        self.means = keras.Model(encoder.input, encoder.outputs[0], name="timeline_means")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        z_mean = np.concatenate([keras.ops.convert_to_numpy(self.means(self.images[i:i + 1000], training=False))
                                 for i in range(0, len(self.images), 1000)]).astype(np.float32)
        losses = {key: float(logs[key]) for key in LOSS_KEYS if key in logs}
        self.records[epoch + 1] = (z_mean, losses)
        with atomic_path(epoch_file(self.folder, epoch + 1)) as temporary:
            with open(temporary, "wb") as file:
                np.savez(file, z_mean=z_mean, **losses)

    def arrays(self):
        """The timeline as the arrays models/timeline_<run>.npz holds (the module's docstring)."""
        epochs = sorted(self.records)
        keys = [key for key in LOSS_KEYS if all(key in self.records[epoch][1] for epoch in epochs)]
        latent_dim = self.records[epochs[0]][0].shape[1] if epochs else 0
        return {
            "epochs": np.asarray(epochs, np.int32),
            "z_mean": np.stack([self.records[epoch][0] for epoch in epochs]) if epochs
            else np.zeros((0, len(self.indices), latent_dim), np.float32),
            "indices": self.indices,
            "labels": self.labels,
            **{key: np.asarray([self.records[epoch][1][key] for epoch in epochs], np.float64) for key in keys},
        }

    def save(self, path):
        """Write the timeline to `path` (.npz), atomically."""
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as file:
                np.savez_compressed(file, **self.arrays())


NEIGHBOURS = 10  # class agreement: a code's class against the vote of its this many nearest codes


def neighbours_for(images, k=NEIGHBOURS):
    """How many nearest codes vote in `class_agreement` over `images` codes: k, or all the others where there
    are fewer (a reader's tiny test set); 0 for a single code, which has no neighbour."""
    return max(0, min(k, images - 1))


def class_agreement(z, labels, k=NEIGHBOURS):
    """The share of the codes z (N, d) whose label is the majority label of their k nearest other codes
    (Euclidean; ties go to the smaller label; k capped by `neighbours_for`): how well the plane groups the
    classes, in [0, 1]; None for a single code."""
    k = neighbours_for(len(z), k)
    if k == 0:
        return None
    z = np.asarray(z, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    squares = (z ** 2).sum(-1)
    distances = squares[:, None] + squares[None, :] - 2 * z @ z.T
    np.fill_diagonal(distances, np.inf)
    nearest = np.argpartition(distances, k, axis=1)[:, :k]
    votes = np.zeros((len(z), labels.max() + 1), np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(z)), k), labels[nearest].ravel()), 1)
    return float((votes.argmax(axis=1) == labels).mean())


def summary(data):
    """What the timeline shows, for the metrics: per recorded epoch, `class_agreement` of the codes and their
    `spread`, the root mean square distance of the codes from the origin (latent units; the prior's is √d)."""
    z = np.asarray(data["z_mean"], np.float64)
    return {
        "images": int(len(data["labels"])),
        "seed": TIMELINE_SEED,
        "epochs": [int(epoch) for epoch in data["epochs"]],
        "neighbours": neighbours_for(len(data["labels"])),
        "class_agreement": [class_agreement(codes, data["labels"]) for codes in z],
        "spread": [float(np.sqrt((codes ** 2).sum(-1).mean())) for codes in z],
    }


def load_timeline(path):
    """The arrays of a timeline file (models/timeline_2d.npz), as a dict; ValueError naming the file if it is
    not one (missing keys, shapes that disagree)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            data = {key: saved[key] for key in saved.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable timeline ({type(error).__name__})") from None
    missing = {"epochs", "z_mean", "indices", "labels"} - set(data)
    if missing:
        raise ValueError(f"{path}: not a timeline: no {', '.join(sorted(missing))}")
    epochs, z_mean = data["epochs"], data["z_mean"]
    if z_mean.ndim != 3 or z_mean.shape[:2] != (len(epochs), len(data["labels"])) or \
            len(data["indices"]) != len(data["labels"]) or \
            any(len(data[key]) != len(epochs) for key in LOSS_KEYS if key in data):
        raise ValueError(f"{path}: its arrays do not fit together (z_mean {z_mean.shape}, {len(epochs)} epochs, "
                         f"{len(data['labels'])} labels)")
    return data


def still_epochs(epochs, wanted=STILL_EPOCHS):
    """The recorded epochs the still figure shows: those of `wanted` recorded, and the last recorded."""
    epochs = [int(epoch) for epoch in epochs]
    shown = [epoch for epoch in wanted if epoch in epochs and epoch < epochs[-1]] if epochs else []
    return shown + epochs[-1:]


def plot_timeline(data, path):
    """The still version of the timeline: the plane at a few epochs (`still_epochs`) side by side, the
    codes colored by class as in the clusters figure, on the same axes; the losses under each panel."""
    import matplotlib.pyplot as plt

    from vae.figures import COLUMN_WIDTH, _digit_numerals, _scatter_digits, save_png

    epochs = [int(epoch) for epoch in data["epochs"]]
    shown = still_epochs(epochs)
    z = data["z_mean"]
    # One square view for every panel, holding 99.5% of each shown epoch's codes, in whole latent units.
    shown_z = [z[epochs.index(epoch)][:, :2] for epoch in shown]
    limit = max([1.0] + [float(np.ceil(np.percentile(np.abs(points), 99.5))) for points in shown_z if len(points)])
    figure, axes = plt.subplots(1, max(1, len(shown)), figsize=(COLUMN_WIDTH, COLUMN_WIDTH / max(1, len(shown)) + 0.7),
                                squeeze=False, sharex=True, sharey=True)
    for ax, epoch in zip(axes[0], shown):
        points = z[epochs.index(epoch)]
        _scatter_digits(ax, points[:, 0], points[:, 1], data["labels"], size=1.5)
        _digit_numerals(ax, points[:, :2], data["labels"], fontsize=8)
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_aspect("equal")
        ax.set_xticks([-limit, 0, limit])
        ax.set_yticks([-limit, 0, limit])
        ax.tick_params(labelsize=7)
        title = f"epoch {epoch}"
        if "val_loss" in data:
            title += f"\ntest loss {data['val_loss'][epochs.index(epoch)]:.1f}"
        ax.set_title(title, fontsize=8)
    axes[0][0].set_ylabel("z₁", fontsize=8)
    for ax in axes[0]:
        ax.set_xlabel("z₀", fontsize=8)
    figure.suptitle(f"The posterior means of {len(data['labels']):,} test images during training", fontsize=9)
    figure.tight_layout()
    save_png(figure, path)


def _ranges(numbers):
    """'1–3, 5' for [1, 2, 3, 5]."""
    parts, start = [], None
    for i, number in enumerate(numbers):
        if start is None:
            start = number
        if i + 1 == len(numbers) or numbers[i + 1] != number + 1:
            parts.append(f"{start}–{number}" if number > start else f"{start}")
            start = None
    return ", ".join(parts)

