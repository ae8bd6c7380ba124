"""A reader's own folder of images (--dataset images, vae/images.py): folders made here from MNIST digits
written as PNG files, with and without class sub-folders, train end to end; each bad folder gets one message."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import run_script
from PIL import Image

from vae import images
from vae.config import Config, ConfigError, parse_flags
from vae.data import DataError, load_dataset
from vae.images import load_image_folder, scan_folder


def write_digits(folder, count, classes=0, start=0):
    """The repository's MNIST training digits start.. start+count as PNG files; with `classes`, in the
    sub-folders digit_0 .. digit_<classes-1> (the digit's label modulo `classes`), else flat in `folder`.
    Returns the digits, uint8 (count, 28, 28), and their labels."""
    (x, y), _ = load_dataset("mnist")
    digits = (x[start:start + count, :, :, 0] * 255).round().astype(np.uint8)
    labels = y[start:start + count] % max(classes, 1)
    for index, (digit, label) in enumerate(zip(digits, labels)):
        where = Path(folder) / (f"digit_{label}" if classes else "")
        where.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digit).save(where / f"{start + index:05d}.png")
    return digits, labels


@pytest.fixture(scope="module")
def digits_by_class(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "my_digits"
    write_digits(folder, 300, classes=3)
    return folder


@pytest.fixture(scope="module")
def flat_digits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "flat digits"
    write_digits(folder, 200)
    return folder


def test_a_folder_with_class_folders_loads_as_mnist_does(digits_by_class):
    (x_train, y_train), (x_test, y_test), info = load_image_folder(digits_by_class)
    assert x_train.shape == (240, 28, 28, 1) and x_test.shape == (60, 28, 28, 1)
    assert x_train.dtype == np.float32 and 0 <= x_train.min() and x_train.max() <= 1 and x_train.max() > 0.99
    assert y_train.dtype == np.int32 and set(np.unique(np.concatenate([y_train, y_test]))) == {0, 1, 2}
    assert info["classes"] == ["digit_0", "digit_1", "digit_2"] and info["folder_images"] == 300
    # Each image is a digit of the folder with its folder's label: PNG is lossless, and 28×28 needs no resizing.
    (x, _), _ = load_dataset("mnist")
    first = np.flatnonzero(np.all(np.abs(x[:300] - x_test[0]) < 1e-6, axis=(1, 2, 3)))
    assert len(first) == 1
    # The split is the same in every run (a fixed seed), and the two parts do not overlap.
    (_, _), (again, _), _ = load_image_folder(digits_by_class)
    np.testing.assert_array_equal(again, x_test)
    assert not any(np.array_equal(image, x_test[0]) for image in x_train)


def test_a_flat_folder_has_no_classes_and_resizes_in_colour(flat_digits):
    (x_train, y_train), (x_test, y_test), info = load_image_folder(flat_digits, image_size=20, color="rgb")
    assert x_train.shape == (160, 20, 20, 3) and x_test.shape == (40, 20, 20, 3)
    assert info["classes"] == [] and not y_train.any() and not y_test.any()
    assert x_train.min() >= 0 and x_train.max() <= 1


def test_the_flags_are_declared_once_with_their_checks(digits_by_class):
    config = parse_flags(Config(), ["--dataset", "images", "--data-dir", str(digits_by_class)])
    assert (config.image_size, config.color, config.likelihood) == (28, "grayscale", "bernoulli")
    config = parse_flags(Config(), ["--dataset", "images", "--data-dir", str(digits_by_class), "--color", "rgb"])
    assert (config.image_size, config.likelihood) == (32, "continuous_bernoulli")
    with pytest.raises(ConfigError, match="name it with data_dir"):
        Config(dataset="images").check()
    with pytest.raises(ConfigError, match="image_size must be from 4 to 128"):
        Config(dataset="images", data_dir=str(digits_by_class), image_size=500).check()
    with pytest.raises(ConfigError, match="image_size and color are for dataset 'images'"):
        Config(image_size=32).check()
    with pytest.raises(ConfigError, match="color must be one of"):
        Config(dataset="images", data_dir=str(digits_by_class), color="cmyk").check()


def test_bad_folders_each_get_one_message(tmp_path, digits_by_class, flat_digits):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no images .* it holds nothing"):
        scan_folder(empty)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="holds no images .* 1 other files"):
        scan_folder(notes)
    few = tmp_path / "few"
    write_digits(few, 20)
    with pytest.raises(DataError, match="holds 20 images; a run needs at least 50"):
        scan_folder(few)
    # A class folder without images, and images beside class folders.
    with_empty = tmp_path / "with_empty"
    write_digits(with_empty, 60, classes=2)
    (with_empty / "digit_9").mkdir()
    with pytest.raises(DataError, match="class folder .*digit_9 holds no images"):
        scan_folder(with_empty)
    (with_empty / "digit_9").rmdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(with_empty / "loose.png")
    with pytest.raises(DataError, match="both class folders .* 1 images of its own"):
        scan_folder(with_empty)
    # The conditional VAE needs two classes at least.
    with pytest.raises(DataError, match="conditional VAE needs images of at least two classes.*no class folders"):
        scan_folder(flat_digits, needs_classes=True)
    one_class = tmp_path / "one_class"
    write_digits(one_class, 60, classes=1)
    scan_folder(one_class)  # an unconditional VAE trains on one class
    with pytest.raises(DataError, match="one class folder only \\(digit_0\\)"):
        scan_folder(one_class, needs_classes=True)


def test_files_outside_the_folder_or_too_large_are_refused_before_decoding(tmp_path, monkeypatch):
    folder = tmp_path / "folder"
    write_digits(folder, 60)
    outside = tmp_path / "outside.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(outside)
    os.symlink(outside, folder / "link.png")
    with pytest.raises(DataError, match="link.png is a link to .*outside.png, outside the data folder"):
        scan_folder(folder)
    (folder / "link.png").unlink()
    os.symlink(folder / "00000.png", folder / "inside.png")  # a link within the folder is read
    assert len(scan_folder(folder).files) == 61
    other = tmp_path / "elsewhere"
    write_digits(other, 5)
    (tmp_path / "by_class").mkdir()
    os.symlink(other, tmp_path / "by_class" / "linked", target_is_directory=True)
    with pytest.raises(DataError, match="class folder .*linked is a link to .*elsewhere, outside"):
        scan_folder(tmp_path / "by_class")
    # A file that announces more pixels than MAX_IMAGE_PIXELS is refused from its header.
    Image.fromarray(np.zeros((300, 400), np.uint8)).save(folder / "big.png")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100_000)
    with pytest.raises(DataError, match="big.png: 400 × 300 pixels, more than the 100,000"):
        scan_folder(folder)
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 100)
    with pytest.raises(DataError, match=r"\.png: \d+ bytes, more than the 100 \(MAX_FILE_BYTES\)"):
        scan_folder(folder)
    monkeypatch.setattr(images, "MAX_IMAGES", 30)
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 10**6)
    with pytest.raises(DataError, match="more than 30 images"):
        scan_folder(folder)


def test_a_damaged_file_stops_the_run_naming_it(tmp_path):
    folder = tmp_path / "folder"
    write_digits(folder, 60)
    (folder / "broken.png").write_bytes(b"this is not a PNG")
    with pytest.raises(DataError, match="broken.png: not a PNG, JPEG, BMP or GIF image"):
        scan_folder(folder)
    # A valid header whose pixel data is cut off: Pillow reads the header, Keras then fails to decode.
    whole = (folder / "00001.png").read_bytes()
    (folder / "broken.png").write_bytes(whole[:60])
    with pytest.raises(DataError, match="broken.png: Keras cannot decode it"):
        load_image_folder(folder)


def test_a_folder_trains_end_to_end_named_after_it(tmp_path, digits_by_class, flat_digits):
    out = tmp_path / "out"
    result = run_script("vae_2d.py", "--dataset", "images", "--data-dir", str(digits_by_class), "--epochs", "1",
                        "--batch-size", "64", "--grid-size", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "240 for training, 60 held out for testing, 28×28 grayscale, 3 classes" in result.stdout
    metrics = json.loads((out / "models" / "metrics_2d_images-my_digits.json").read_text())
    assert metrics["data_folder"] == str(digits_by_class.resolve()) and metrics["folder_images"] == 300
    assert (metrics["train_images"], metrics["test_images"], metrics["classes"]) == (240, 60,
                                                                                     ["digit_0", "digit_1", "digit_2"])
    assert "seed 0" in metrics["split"] and "grayscale image folder pixels" in metrics["data_convention"]
    assert (out / "assets" / "Clusters2D_images-my_digits.png").is_file()
    assert not (out / "assets" / "Clusters2D.png").exists()  # the tutorial's own outputs are not written
    # A flat folder trains too, its figures without classes; with too large a batch it gets one message.
    result = run_script("vae_2d.py", "--dataset", "images", "--data-dir", str(flat_digits), "--epochs", "1",
                        "--grid-size", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "160 for training, 40 held out for testing, 28×28 grayscale, no classes" in result.stdout
    assert json.loads((out / "models" / "metrics_2d_images-flat-digits.json").read_text())["classes"] == []
    assert (out / "assets" / "Clusters2D_images-flat-digits.png").is_file()
    result = run_script("vae_2d.py", "--dataset", "images", "--data-dir", str(flat_digits), "--epochs", "1",
                        "--batch-size", "500", "--out", str(out))
    assert result.returncode == 1 and "error: batch_size is 500, but the folder's training set has only 160" in \
        result.stderr and "Traceback" not in result.stderr
    result = run_script("vae_conditional.py", "--dataset", "images", "--data-dir", str(flat_digits), "--epochs", "1",
                        "--out", str(out))
    assert result.returncode == 1 and "error: the conditional VAE needs images of at least two classes" in \
        result.stderr and "Traceback" not in result.stderr


def test_the_conditional_chapter_draws_a_folders_own_classes(tmp_path, digits_by_class):
    out = tmp_path / "out"
    result = run_script("vae_conditional.py", "--dataset", "images", "--data-dir", str(digits_by_class), "--epochs",
                        "1", "--batch-size", "64", "--grid-size", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "models" / "metrics_conditional_images-my_digits.json").read_text())
    assert metrics["num_classes"] == 3 and len(metrics["samples_of_asked_class_per_class"]) == 3
    assert metrics["style_grid_class"] == 2
