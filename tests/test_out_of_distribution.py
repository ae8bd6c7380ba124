"""code/compare_datasets.py: the exact ln p(x) of the MNIST and Fashion-MNIST 2-D models on each other's test
images, what ranks the images, and the committed result. The runs use the real Fashion-MNIST when
$VAE_DATA_DIR has it, and skip with the reason otherwise."""

import json

import keras
import numpy as np
import pytest

from compare_datasets import auroc, image_measures, main, parse_arguments, summarize
from conftest import REPO_ROOT, real_fashion_dir
from vae.saving import sha256
from vae_2d import build_decoder, build_encoder


@pytest.mark.parametrize("arguments, message", [
    (["--images", "1"], "--images must be from 2 to 10,000, got 1"),
    (["--images", "10001"], "--images must be from 2 to 10,000"),
    (["--out", "FILE"], "--out: cannot write"),
])
def test_bad_flags_are_refused_with_one_line_before_any_work(tmp_path, capsys, arguments, message):
    (tmp_path / "FILE").write_text("a file, not a folder")
    arguments = [str(tmp_path / "FILE") if value == "FILE" else value for value in arguments]
    with pytest.raises(SystemExit) as stopped:
        parse_arguments(arguments)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_a_short_run_writes_beside_its_runs_not_into_the_repository(tmp_path):
    args = parse_arguments(["--images", "20", "--runs", str(tmp_path)])
    assert args.out == tmp_path
    assert parse_arguments([]).out == REPO_ROOT


def test_the_image_measures_of_known_images():
    images = np.zeros((3, 28, 28, 1), dtype=np.float32)
    images[1, :14] = 1.0  # half the pixels on, binary
    images[2] = 0.5  # every pixel grey: the Bernoulli's ceiling is 784 ln ½
    measures = image_measures(images)
    np.testing.assert_allclose(measures["zero_pixel_share"], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(measures["on_pixels"], [0, 392, 0])
    np.testing.assert_allclose(measures["bernoulli_ceiling"], [0.0, 0.0, 784 * np.log(0.5)])
    noise = np.random.default_rng(0).random((1, 28, 28, 1)).astype(np.float32)
    assert image_measures(noise)["compressed_bytes"][0] > 700 > 40 > measures["compressed_bytes"].max()


def test_auroc_and_the_share_above_the_median():
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5
    rng = np.random.default_rng(1)
    own, odd = rng.normal(0, 1, 1001), rng.normal(10, 1, 500)
    measures = {data: image_measures(rng.random((n, 28, 28, 1)).astype(np.float32))
                for data, n in [("mnist", 1001), ("fashion_mnist", 500)]}
    summary = summarize({("mnist", "mnist"): own, ("mnist", "fashion_mnist"): odd,
                         ("fashion_mnist", "fashion_mnist"): odd, ("fashion_mnist", "mnist"): own},
                        measures, {pair: 0 for pair in [("mnist", "mnist"), ("mnist", "fashion_mnist"),
                                                         ("fashion_mnist", "fashion_mnist"),
                                                         ("fashion_mnist", "mnist")]})
    assert summary["mnist"]["out_above_in_median"] == 1.0 and summary["mnist"]["auroc_in_above_out"] == 0.0
    assert summary["fashion_mnist"]["out_above_in_median"] == 0.0
    assert summary["fashion_mnist"]["log_likelihood_median"]["mnist"] == pytest.approx(np.median(own))


def untrained_fashion_run(folder):
    """An untrained 2-D chapter model saved as a finished default run on Fashion-MNIST would leave it."""
    models = folder / "models"
    models.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    training_encoder = build_encoder(2, seed=0)
    keras.Model(training_encoder.input, training_encoder.outputs[:2]).save(models / "encoder_2d_fashion_mnist.h5")
    build_decoder(2).save(models / "decoder_2d_fashion_mnist.h5")
    metrics = {"dataset": "fashion_mnist", "architecture": "mlp", "latent_dim": 2, "beta": 1.0,
               "kl_warmup_epochs": 0, "free_bits": 0.0, "likelihood": "bernoulli", "binarize": "off",
               "epochs": 30, "seed": 0, "test_loss": 1.0, "test_reconstruction": 1.0, "test_kl": 0.0,
               "seconds_training": 0.0,
               "files": {f"models/{kind}_2d_fashion_mnist.h5": sha256(models / f"{kind}_2d_fashion_mnist.h5")
                         for kind in ("encoder", "decoder")}}
    (models / "metrics_2d_fashion_mnist.json").write_text(json.dumps(metrics))


def test_a_run_on_the_real_data_writes_its_numbers_and_reuses_them(tmp_path, capsys):
    """20 test images of each set, the committed MNIST model and an untrained 'Fashion' one; the second run
    trains nothing and integrates nothing again."""
    data = real_fashion_dir()
    untrained_fashion_run(tmp_path / "runs" / "fashion_mnist")
    command = ["--runs", str(tmp_path / "runs"), "--images", "20", "--data-dir", str(data)]
    assert main(command) == 0
    first = capsys.readouterr().out
    assert first.count("exact ln p(x) by quadrature") == 4 and "trained earlier" in first
    result = json.loads((tmp_path / "runs" / "models" / "out_of_distribution.json").read_text())
    assert (tmp_path / "runs" / "assets" / "out_of_distribution.png").is_file()
    assert result["images"] == {"mnist": 20, "fashion_mnist": 20}
    for model, other in [("mnist", "fashion_mnist"), ("fashion_mnist", "mnist")]:
        numbers = result[model]
        assert numbers["out_of_distribution"] == other and 0 <= numbers["out_above_in_median"] <= 1
        assert set(numbers["spearman_with_log_likelihood"]) == {"zero_pixel_share", "on_pixels", "compressed_bytes",
                                                                "bernoulli_ceiling"}
    assert main(command) == 0
    second = capsys.readouterr().out
    assert second.count("computed earlier, kept") == 4 and "by quadrature" not in second
    assert json.loads((tmp_path / "runs" / "models" / "out_of_distribution.json").read_text())["mnist"] == result["mnist"]


def test_the_committed_result_covers_both_test_sets_and_agrees_with_the_committed_2d_model():
    """models/out_of_distribution.json: all 10,000 images of each set; the MNIST model's mean exact ln p(x) on its
    own test set is the one code/explore.py recorded in models/likelihood_2d.json."""
    result = json.loads((REPO_ROOT / "models" / "out_of_distribution.json").read_text())
    assert result["images"] == {"mnist": 10_000, "fashion_mnist": 10_000}
    explored = json.loads((REPO_ROOT / "models" / "likelihood_2d.json").read_text())
    assert result["mnist"]["log_likelihood_mean"]["mnist"] == pytest.approx(explored["quadrature_log_likelihood"],
                                                                            abs=1e-3)
    for model in ("mnist", "fashion_mnist"):
        assert result[model]["posteriors_beyond_grid"][model] == 0
