"""A reader's own folder of images as a data set: `--dataset images --data-dir DIR`.

Keras reads the folder (`keras.utils.image_dataset_from_directory`): every PNG, JPEG, BMP and GIF file
(an animated GIF's first frame), resized to image_size × image_size as Keras resizes (bilinear; the
aspect ratio is not kept), in grayscale or RGB, its pixels scaled from 0..255 to [0, 1]:

    x: float32, shape (N, image_size, image_size, 1 or 3), values in [0, 1], like MNIST's
    y: int32, shape (N,), the class of each image: 0, 1, ... in the alphabetical order of the
       class folders' names (Keras' order); all 0 when the folder has no class folders

With sub-folders, DIR/<class>/..., each names a class (images further down count for their class); a
flat folder, images directly in DIR, has no classes. A fixed TEST_FRACTION of the images, chosen by
Keras' validation_split with the seed SPLIT_SEED (the same test images in every run on the folder,
whatever the run's --seed), is held out as the test set.

Before Keras reads anything, `scan_folder` lists the files as Keras will list them and checks each:
no file or class folder may lie outside DIR (a symbolic link to elsewhere is refused, not followed), each
is a regular file of at most MAX_FILE_BYTES, whose header (read by Pillow, which Keras' own image
utilities use) gives at most MAX_IMAGE_PIXELS pixels; and there are from MIN_IMAGES to MAX_IMAGES
images, whose arrays take at most MAX_ARRAY_BYTES. So a huge, hostile or damaged file is refused
before it is decoded, and memory stays bounded. A file that Keras then cannot decode stops the run,
naming the file (docs/data.md says why). Every problem raises `DataError` with one message.
"""

import os
import re
import stat
from pathlib import Path

import numpy as np

from vae.data import DataError

# The file names Keras' loader reads, compared in lower case (its ALLOWLIST_FORMATS).
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
COLORS = ("grayscale", "rgb")  # Keras' color_mode: 1 or 3 channels
CHANNELS = {"grayscale": 1, "rgb": 3}
DEFAULT_IMAGE_SIZES = {"grayscale": 28, "rgb": 32}  # MNIST's and CIFAR-10's
MAX_IMAGE_SIZE = 128  # pixels per side: the MLP's first layer then has 128·128·3·512 ≈ 25 million weights

TEST_FRACTION = 0.2  # of the folder's images, held out as the test set
SPLIT_SEED = 0  # the split's seed: the same test images in every run on a folder
MIN_IMAGES = 50  # so that the test set holds at least 10 images, a row of the reconstructions figure
MAX_IMAGES = 70_000  # as many as MNIST's training and test images together
MAX_CLASSES = 10  # the figures' ten colours and the conditional chapter's rows
MAX_FILE_BYTES = 50_000_000  # one image file
MAX_FOLDER_BYTES = 2_000_000_000  # all image files together
MAX_IMAGE_PIXELS = 40_000_000  # one image's width × height before resizing: 160 MB decoded as RGBA
MAX_ARRAY_BYTES = 1_000_000_000  # the float32 arrays of all images, after resizing (MNIST's: 220 MB)


class FolderScan:
    """What `scan_folder` found: the folder, the class names ([] for a flat folder), the image files and
    their class indices, in the order Keras lists them, and their bytes in all."""

    def __init__(self, folder, class_names, files, labels, total_bytes):
        self.folder, self.class_names, self.files = folder, class_names, files
        self.labels, self.total_bytes = labels, total_bytes


def scan_folder(folder, needs_classes=False):
    """List and check the image files of `folder` as Keras will read them; returns a FolderScan.

    needs_classes: the chapter needs at least two classes (the conditional VAE draws each class).
    Raises DataError naming the folder or file and what is wrong, before any image is decoded.
    """
    folder = Path(os.path.expanduser(folder))
    if not folder.is_dir():
        raise DataError(f"data_dir: {folder} is not a folder")
    root = os.path.realpath(folder)
    entries = sorted(os.listdir(folder))
    # Keras' labels="inferred": every visible entry that is a folder (after following a link) is a class.
    class_names = [name for name in entries if not name.startswith(".") and os.path.isdir(folder / name)]
    for name in class_names:
        _check_inside(folder / name, root, "class folder")
    if class_names:
        loose = [name for name in entries if name.lower().endswith(IMAGE_EXTENSIONS) and (folder / name).is_file()]
        if loose:
            raise DataError(f"{folder} holds both class folders ({_names(class_names)}) and {len(loose):,} images of "
                            f"its own (e.g. {loose[0]}), which Keras would leave out: move them into a class folder, "
                            f"or all images into {folder} itself to train without classes")
        if len(class_names) > MAX_CLASSES:
            raise DataError(f"{folder} has {len(class_names)} class folders ({_names(class_names)}); this tutorial "
                            f"takes at most {MAX_CLASSES} classes (its figures' colours, the conditional VAE's rows)")
    if needs_classes and len(class_names) < 2:
        found = "no class folders" if not class_names else f"one class folder only ({class_names[0]})"
        raise DataError(f"the conditional VAE needs images of at least two classes, one sub-folder of {folder} per "
                        f"class, and {folder} has {found}")

    files, labels, total_bytes, others = [], [], 0, 0
    for label, subfolder in enumerate(class_names or [""]):
        count_before = len(files)
        for path in _image_files(folder / subfolder):
            if not path.name.lower().endswith(IMAGE_EXTENSIONS):
                others += 1
                continue
            total_bytes += _check_image_file(path, root)
            files.append(path)
            labels.append(label)
            if len(files) > MAX_IMAGES:
                raise DataError(f"{folder} holds more than {MAX_IMAGES:,} images (MAX_IMAGES), more than this "
                                f"tutorial keeps in memory; train on a folder with fewer")
            if total_bytes > MAX_FOLDER_BYTES:
                raise DataError(f"the images in {folder} take more than {MAX_FOLDER_BYTES:,} bytes "
                                f"(MAX_FOLDER_BYTES); train on a folder with fewer or smaller images")
        if subfolder and len(files) == count_before:
            raise DataError(f"the class folder {folder / subfolder} holds no images (PNG, JPEG, BMP or GIF): "
                            f"add some, or remove the folder")
    if not files:
        what = f"{others:,} other files" if others else "nothing"
        raise DataError(f"{folder} holds no images (files ending in {', '.join(IMAGE_EXTENSIONS)}); it holds {what}")
    if len(files) < MIN_IMAGES:
        raise DataError(f"{folder} holds {len(files)} images; a run needs at least {MIN_IMAGES} (MIN_IMAGES), so "
                        f"that its test set, {TEST_FRACTION:.0%} of them, holds {int(MIN_IMAGES * TEST_FRACTION)}")
    return FolderScan(folder, class_names, files, labels, total_bytes)


def _image_files(folder):
    """Every file under `folder`, in the order Keras walks it: folders by path, files by name; folders that
    are symbolic links are not entered (os.walk's default, which Keras keeps)."""
    for where, _, names in sorted(os.walk(folder), key=lambda walked: walked[0]):
        for name in sorted(names):
            yield Path(where) / name


def _check_inside(path, root, what):
    """A DataError if `path`, after following its links, lies outside the folder `root`."""
    target = os.path.realpath(path)
    if os.path.commonpath([root, target]) != root:
        raise DataError(f"the {what} {path} is a link to {target}, outside the data folder; this loader reads "
                        f"nothing outside it: copy the file into the folder instead")


def _check_image_file(path, root):
    """Check one image file before Keras reads it; return its size in bytes."""
    _check_inside(path, root, "image file")
    try:
        info = os.stat(path)
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path}: not a regular file (a device, pipe or socket); remove it from the folder")
    if info.st_size > MAX_FILE_BYTES:
        raise DataError(f"{path}: {info.st_size:,} bytes, more than the {MAX_FILE_BYTES:,} (MAX_FILE_BYTES) "
                        f"this loader reads of one image")
    width, height = _header_size(path)
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(f"{path}: {width:,} × {height:,} pixels, more than the {MAX_IMAGE_PIXELS:,} "
                        f"(MAX_IMAGE_PIXELS) this loader decodes; shrink it first")
    return info.st_size


def _header_size(path):
    """(width, height) from the image's header, read by Pillow without decoding the pixels."""
    from PIL import Image  # Pillow: installed with matplotlib; Keras' load_img uses it too

    try:
        with Image.open(path) as image:
            return image.size
    except Image.DecompressionBombError:
        raise DataError(f"{path}: more than {MAX_IMAGE_PIXELS:,} pixels (MAX_IMAGE_PIXELS); shrink it first") from None
    except Exception as error:  # UnidentifiedImageError, a truncated header, ...
        raise DataError(f"{path}: not a PNG, JPEG, BMP or GIF image that can be read ({_first_line(error)}); "
                        f"fix or remove the file") from None


def load_image_folder(folder, image_size=None, color="grayscale", needs_classes=False):
    """Return (x_train, y_train), (x_test, y_test), info for the images in `folder` (see the module docstring).

    image_size: pixels per side (None: 28 for grayscale, 32 for rgb); color: "grayscale" or "rgb".
    info: a dict for the metrics: the folder, its classes, the counts and the split.
    """
    import keras
    import tensorflow as tf

    image_size = image_size or DEFAULT_IMAGE_SIZES[color]
    scan = scan_folder(folder, needs_classes)
    array_bytes = len(scan.files) * image_size * image_size * CHANNELS[color] * 4
    if array_bytes > MAX_ARRAY_BYTES:
        raise DataError(f"the {len(scan.files):,} images of {scan.folder} at {image_size}×{image_size} {color} take "
                        f"{array_bytes:,} bytes as float32, more than {MAX_ARRAY_BYTES:,} (MAX_ARRAY_BYTES); "
                        f"lower --image-size or use fewer images")
    try:
        train, test = keras.utils.image_dataset_from_directory(
            scan.folder, labels="inferred" if scan.class_names else None, label_mode="int" if scan.class_names else None,
            color_mode=color, image_size=(image_size, image_size), batch_size=256, shuffle=True, seed=SPLIT_SEED,
            validation_split=TEST_FRACTION, subset="both", follow_links=False, verbose=False)
        (x_train, y_train), (x_test, y_test) = _arrays(train), _arrays(test)
    except (tf.errors.OpError, ValueError):
        _name_undecodable(scan.files, color)  # raises DataError naming the file
        raise
    info = {
        "data_folder": str(scan.folder.resolve()),
        "classes": scan.class_names,  # label i is class_names[i]; [] for a flat folder
        "folder_images": len(scan.files),
        "split": f"{TEST_FRACTION:g} of the images held out as the test set by Keras' validation_split, "
                 f"seed {SPLIT_SEED}",
        "image_size": image_size,
        "color": color,
    }
    return (x_train, y_train), (x_test, y_test), info


def _arrays(dataset):
    """A Keras image data set's batches as arrays: images float32 (N, h, w, c) in [0, 1], labels int32 (N,)."""
    images, labels = [], []
    for batch in dataset:
        batch_images, batch_labels = batch if isinstance(batch, tuple) else (batch, None)
        images.append(batch_images.numpy() / np.float32(255))
        labels.append(np.zeros(len(images[-1]), np.int32) if batch_labels is None else batch_labels.numpy())
    return np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int32)


def _name_undecodable(files, color):
    """Decode each file as Keras does, and raise DataError for the first that fails. (Keras' own error
    does not name the file.)"""
    import tensorflow as tf

    for path in files:
        try:
            tf.io.decode_image(tf.io.read_file(str(path)), channels=CHANNELS[color], expand_animations=False)
        except tf.errors.OpError as error:
            raise DataError(f"{path}: Keras cannot decode it ({_first_line(error.message)}); fix or remove the "
                            f"file") from None


def folder_tag(folder):
    """The folder's name as output names carry it: 'images-<name>', its letters, digits, '-' and '_' only,
    at most 40 of them (e.g. images-my_photos)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(os.path.expanduser(folder)).resolve().name).strip("-")[:40]
    return f"images-{name or 'folder'}"


def _names(names, most=5):
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__
