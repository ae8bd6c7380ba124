"""code/explore.py and vae/inspection.py: every figure and the evaluation from small saved models, for
both priors and a latent space larger than three; a clear message for every bad argument, before any
long work; the run's metrics checked and their settings used; no output over a run's or the
repository's results; progress printed as it goes. And page/build.py's one line for a damaged metrics file.

The models are untrained (random weights, saved as the chapter scripts save them): the figures and
numbers need only their shapes. Runs in this process (explore.main), on the first test images.
"""

import importlib.util
import json
import math
import re

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT
from vae import figures, inspection
from vae.evaluation import aggregate_posterior, hole_statistics, latent_statistics
import vae_conditional
from vae.variants import continuous_bernoulli_decoder
from vae_2d import build_decoder, build_encoder
from vae.saving import sha256

_spec = importlib.util.spec_from_file_location("explore", REPO_ROOT / "code" / "explore.py")
explore = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(explore)

CORRELATED = "1.0,0.4;0.4,0.5"


def save_models(folder, latent_dim, seed=0, likelihood="bernoulli"):
    """An encoder image → (z_mean, z_log_var) and a decoder, saved like the chapter scripts' models."""
    keras.utils.set_random_seed(seed)
    training_encoder = build_encoder(latent_dim, seed=seed)
    encoder = keras.Model(training_encoder.input, training_encoder.outputs[:2], name="encoder")
    decoder = build_decoder(latent_dim)
    if likelihood == "continuous_bernoulli":  # as --likelihood continuous_bernoulli builds it (vae/variants.py)
        decoder = continuous_bernoulli_decoder(decoder)
    paths = folder / f"encoder_{latent_dim}_{likelihood}.h5", folder / f"decoder_{latent_dim}_{likelihood}.h5"
    encoder.save(paths[0])
    decoder.save(paths[1])
    return paths


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{latent_dim: (encoder path, decoder path)} for 2 and 4 dimensions."""
    folder = tmp_path_factory.mktemp("saved_models")
    return {k: save_models(folder, k) for k in (2, 4)}


def run(saved, latent_dim, out, *extra, data_dir=None):
    encoder, decoder = saved[latent_dim]
    argv = ["--encoder", str(encoder), "--decoder", str(decoder), "--out", str(out), "--name", "small", "--unmatched",
            *extra]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    return explore.main(argv)


def assert_page_figure(path):
    image = Image.open(path)
    assert image.mode == "P" and image.info["dpi"] == pytest.approx((figures.DPI, figures.DPI), abs=0.01)
    assert image.width <= figures.DPI * (figures.COLUMN_WIDTH + 0.3)
    assert path.stat().st_size < 200_000, f"{path.name}: {path.stat().st_size:,} bytes"


@pytest.mark.parametrize("prior", ["standard", "correlated"])
def test_every_2d_figure_and_the_evaluation_with_quadrature(saved, tmp_path, small_mnist, prior):
    extra = ["--prior-cov", CORRELATED, "--figures", "none"] if prior == "correlated" else []
    assert run(saved, 2, tmp_path, "--images", "40", "--samples", "20", *extra, data_dir=small_mnist) == 0
    for name in inspection.figures_for(2) if prior == "standard" else []:
        assert_page_figure(tmp_path / "assets" / inspection.figure_filename(name, "small"))
    assert not (tmp_path / "assets" / "traversal_small.png").exists(), "no traversal for a 2-D space"
    result = json.loads((tmp_path / "models" / "likelihood_small.json").read_text())
    assert result["likelihood_images"] == 40 and result["iw_samples"] == 20 and result["latent_dim"] == 2
    assert "Bernoulli" in result["data_convention"] and "nats per image" in result["data_convention"]
    # The bound ordering, within Monte Carlo error: ELBO ≤ IW ≤ exact.
    error = result["iw_log_likelihood_standard_error"]
    assert result["elbo"] <= result["iw_log_likelihood"] + 3 * error
    assert result["iw_log_likelihood"] <= result["quadrature_log_likelihood"] + 3 * error
    assert len(result["kl_per_dimension"]) == len(result["posterior_sigma_median"]) == 2
    assert 0 <= result["active_units"] <= 2 and 0 <= result["prior_mass_in_holes"] <= 1
    assert result["kl_per_dimension_sums_to_kl"] == (prior == "standard")


def test_every_figure_of_a_4d_space_without_evaluation(saved, tmp_path, small_mnist):
    assert run(saved, 4, tmp_path, "--images", "60", "--no-evaluate", "--interpolation", "spherical",
               data_dir=small_mnist) == 0
    drawn = sorted(path.name for path in (tmp_path / "assets").iterdir())
    assert drawn == sorted(inspection.figure_filename(name, "small") for name in inspection.FIGURES)
    for path in (tmp_path / "assets").iterdir():
        assert_page_figure(path)
    assert not (tmp_path / "models" / "likelihood_small.json").exists()


def test_chosen_figures_only_and_evaluation_of_a_4d_space(saved, tmp_path, small_mnist):
    assert run(saved, 4, tmp_path, "--images", "30", "--samples", "3", "--figures", "samples,traversal",
               data_dir=small_mnist) == 0
    assert sorted(p.name for p in (tmp_path / "assets").iterdir()) == ["samples_small.png", "traversal_small.png"]
    result = json.loads((tmp_path / "models" / "likelihood_small.json").read_text())
    assert "quadrature_log_likelihood" not in result and len(result["latent_activity"]) == 4


def test_a_continuous_bernoulli_decoder_is_evaluated_under_its_own_likelihood(tmp_path, small_mnist):
    encoder, decoder = save_models(tmp_path, 2, likelihood="continuous_bernoulli")
    argv = ["--encoder", str(encoder), "--decoder", str(decoder), "--out", str(tmp_path), "--name", "cb",
            "--images", "20", "--samples", "5", "--figures", "samples", "--no-quadrature", "--binarize", "dynamic",
            "--unmatched",
            "--data-dir", str(small_mnist)]
    assert explore.main(argv) == 0
    result = json.loads((tmp_path / "models" / "likelihood_cb.json").read_text())
    assert result["likelihood"] == "continuous_bernoulli" and result["binarize"] == "dynamic"
    assert "continuous Bernoulli" in result["data_convention"] and "binary" in result["data_convention"]
    # Untrained, the decoder's logits are near 0, where the density is near 1 for every pixel: ln p(x) near 0,
    # where a Bernoulli's would be about −784 ln 2 = −543 nats.
    assert -100 < result["elbo"] <= result["iw_log_likelihood"] + 3 * result["iw_log_likelihood_standard_error"]


def test_a_decoder_of_unknown_likelihood_is_refused(saved, tmp_path, capsys):
    z = keras.Input(shape=(2,))
    logits = keras.layers.Dense(784, name="logits")(z)
    images = keras.layers.Reshape((28, 28, 1))(keras.layers.Activation("relu", name="pixel_means")(logits))
    keras.Model(z, images).save(tmp_path / "relu.h5")
    with pytest.raises(SystemExit) as exit_info:
        explore.main(["--encoder", str(saved[2][0]), "--decoder", str(tmp_path / "relu.h5"), "--out", str(tmp_path),
                      "--unmatched"])
    assert exit_info.value.code == 2
    assert "its layer 'pixel_means' (Activation) is neither a sigmoid (Bernoulli)" in capsys.readouterr().err


def test_a_conditional_model_is_named_not_misread(tmp_path, capsys):
    """A conditional VAE's saved networks also take the label: explore.py says so and points to its script."""
    encoder = vae_conditional.build_encoder(2, 10)
    keras.Model(encoder.inputs, encoder.outputs[:2]).save(tmp_path / "encoder.h5")  # as vae_conditional.py saves it
    vae_conditional.build_decoder(2, 10).save(tmp_path / "decoder.h5")
    with pytest.raises(SystemExit) as exit_info:
        explore.main(["--encoder", str(tmp_path / "encoder.h5"), "--decoder", str(tmp_path / "decoder.h5"),
                      "--out", str(tmp_path), "--unmatched"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "is a conditional VAE's (it also takes the label)" in error and "vae_conditional.py" in error


@pytest.mark.parametrize("arguments, message", [
    (["--samples", "0"], "--samples must be at least 1, got 0"),
    (["--figures", "samples,holes"], "--figures: unknown figure 'holes'; choose from samples"),
    (["--figures", "traversal"], "--figures: traversal needs a larger latent space than 2-D"),
    (["--prior-cov", "1,0,0;0,1,0;0,0,1"], "--prior-cov is 3×3, but the model's latent size is 2"),
    (["--prior-cov", "1,2;2,1"], "--prior-cov:"),
    (["--prior-cov", "a,b"], "--prior-cov: expected rows of numbers"),
    (["--seed", "-5"], "--seed must be 0 or more, got -5"),
    (["--images", "1"], "--images must be at least 2, got 1"),
    (["--name", "../up"], "--name: '../up' cannot be part of a file name"),
])
def test_bad_arguments_are_named(saved, tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        run(saved, 2, tmp_path, *arguments)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_out_that_cannot_be_a_folder_is_refused_before_any_work(saved, tmp_path, capsys, where):
    (tmp_path / "taken").write_text("a file\n")
    out = tmp_path / "taken" if where == "a file" else tmp_path / "taken" / "deeper"
    with pytest.raises(SystemExit) as exit_info:
        run(saved, 2, out)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert f"--out: cannot write {out}/" in captured.err and f"{tmp_path / 'taken'} is a file, not a folder" in captured.err
    assert "Loading" not in captured.out, "refused before the models are loaded"


def test_a_model_file_that_could_run_code_is_refused_unloaded(saved, tmp_path, capsys):
    """A decoder with a Lambda layer (which carries Python code that Keras runs when loading) is refused by
    vae.saving.load_model_safely: one line naming the flag and the file."""
    z = keras.Input(shape=(2,))
    logits = keras.layers.Dense(784, name="logits")(z)
    images = keras.layers.Lambda(lambda x: keras.ops.reshape(keras.ops.sigmoid(x), (-1, 28, 28, 1)))(logits)
    keras.Model(z, images).save(tmp_path / "lambda.h5")
    with pytest.raises(SystemExit) as exit_info:
        explore.main(["--encoder", str(saved[2][0]), "--decoder", str(tmp_path / "lambda.h5"), "--out", str(tmp_path),
                      "--unmatched"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"--decoder: {tmp_path / 'lambda.h5'}: refused to load: it names" in error and "Lambda" in error


def test_missing_and_non_model_files_and_mismatched_latent_sizes(saved, tmp_path, capsys):
    cases = [
        (["--encoder", str(tmp_path / "absent.h5"), "--decoder", str(saved[2][1])], "--encoder: no such file"),
        (["--encoder", str(saved[2][0])], "give --model NAME, or both --encoder FILE and --decoder FILE"),
        (["--encoder", str(saved[2][0]), "--decoder", str(tmp_path / "text.h5")], f"--decoder: {tmp_path / 'text.h5'}"),
        (["--encoder", str(saved[2][0]), "--decoder", str(saved[4][1])],
         "the encoder's latent size is 2 but the decoder's is 4"),
        (["--encoder", str(saved[2][1]), "--decoder", str(saved[2][1])], "--encoder:"),
    ]
    (tmp_path / "text.h5").write_text("not a model\n")
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            explore.main([*argv, "--out", str(tmp_path), "--unmatched"])
        assert exit_info.value.code == 2, argv
        assert message in capsys.readouterr().err, argv


def test_help_lists_the_figures_and_the_default_k(capsys):
    with pytest.raises(SystemExit) as exit_info:
        explore.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "default: 1000" in text and all(name in text for name in inspection.FIGURES)
    # What it writes where, and no running time it cannot back up (it prints its progress instead).
    assert "runs/explore/<name>/" in text and "--update-results" in text and "--unmatched" in text
    assert not re.search(r"minute|about \d+ ?s\b|seconds", text), "no time quoted in --help"


# ---------------------------------------------------------------------------------------------
# The run's metrics: the pair checked against them, their settings used, damaged ones named


def fake_run(root, name="2d", latent_dim=2, seed=0, **recorded):
    """A chapter run's outputs under `root` as a script writes them: models/encoder_<name>.h5, decoder_<name>.h5
    and metrics_<name>.json, whose "files" hold the SHA-256 of both models and of assets/samples_<name>.png.
    `recorded` adds to or replaces the metrics' settings. Returns (encoder path, decoder path, metrics path)."""
    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    encoder, decoder = save_models(models, latent_dim, seed=seed)
    encoder = encoder.rename(models / f"encoder_{name}.h5")
    decoder = decoder.rename(models / f"decoder_{name}.h5")
    (root / "assets").mkdir(exist_ok=True)
    (root / "assets" / f"samples_{name}.png").write_bytes(b"the run's figure")
    metrics = {"model": name, "dataset": "mnist", "likelihood": "bernoulli", "binarize": "off", "latent_dim": latent_dim,
               "files": {f"assets/samples_{name}.png": sha256(root / "assets" / f"samples_{name}.png"),
                         f"models/encoder_{name}.h5": sha256(encoder), f"models/decoder_{name}.h5": sha256(decoder)},
               **recorded}
    (models / f"metrics_{name}.json").write_text(json.dumps(metrics))
    return encoder, decoder, models / f"metrics_{name}.json"


def test_a_pair_the_metrics_list_is_shown_with_their_prior(tmp_path, small_mnist, capsys):
    encoder, decoder, metrics = fake_run(tmp_path / "run", prior_covariance=[[1.0, 0.4], [0.4, 0.5]])
    out = tmp_path / "look"
    assert explore.main(["--encoder", str(encoder), "--decoder", str(decoder), "--out", str(out), "--figures", "none",
                         "--images", "20", "--samples", "3", "--no-quadrature", "--data-dir", str(small_mnist)]) == 0
    result = json.loads((out / "models" / "likelihood_2d.json").read_text())
    assert result["prior_covariance"] == [[1.0, 0.4], [0.4, 0.5]] and result["metrics"] == str(metrics)
    assert "listed together in" in capsys.readouterr().out


def test_the_data_set_comes_from_the_metrics_unless_a_flag_says(tmp_path, small_mnist, capsys):
    """A Fashion-MNIST run's pair is scored as Fashion-MNIST, not MNIST; --dataset mnist overrides it and says so.
    (--data-dir is a folder of IDX files, here MNIST's under either name: only the labels of the result differ.)"""
    encoder, decoder, _ = fake_run(tmp_path / "run", dataset="fashion_mnist")
    argv = ["--encoder", str(encoder), "--decoder", str(decoder), "--out", str(tmp_path / "look"), "--figures", "none",
            "--images", "20", "--samples", "3", "--no-quadrature", "--data-dir", str(small_mnist)]
    result_path = tmp_path / "look" / "models" / "likelihood_2d.json"
    assert explore.main(argv) == 0
    assert "test images: fashion_mnist (the metrics')" in capsys.readouterr().out
    result = json.loads(result_path.read_text())
    assert result["dataset"] == "fashion_mnist" and "grayscale Fashion-MNIST pixels" in result["data_convention"]
    assert explore.main([*argv, "--dataset", "mnist"]) == 0
    assert "test images: mnist (--dataset; the run's: fashion_mnist)" in capsys.readouterr().out
    assert json.loads(result_path.read_text())["dataset"] == "mnist"


def test_a_pair_the_metrics_do_not_list_together_is_refused_unless_unmatched(tmp_path, small_mnist, capsys):
    _, decoder, _ = fake_run(tmp_path / "run", prior_covariance=[[1.0, 0.4], [0.4, 0.5]])
    other_encoder, _, _ = fake_run(tmp_path / "other", seed=1)  # the same shapes, other weights
    argv = ["--encoder", str(other_encoder), "--decoder", str(decoder), "--out", str(tmp_path / "look"),
            "--figures", "none", "--images", "20", "--samples", "3", "--no-quadrature", "--data-dir", str(small_mnist)]
    with pytest.raises(SystemExit) as exit_info:
        explore.main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert f"--encoder {other_encoder}: not among the outputs that {tmp_path / 'run/models/metrics_2d.json'} lists" \
        in captured.err and "--unmatched" in captured.err
    assert "Loading" not in captured.out, "refused before the models are loaded"
    # With --unmatched it goes on, with the settings of the flags only: N(0, I), not the metrics' Σ.
    assert explore.main([*argv, "--unmatched"]) == 0
    assert json.loads((tmp_path / "look" / "models" / "likelihood_2d.json").read_text())["prior_covariance"] == \
        [[1.0, 0.0], [0.0, 1.0]]
    assert "not checked against any run's metrics (--unmatched)" in capsys.readouterr().out


def test_a_pair_without_metrics_is_refused_and_metrics_can_be_named(saved, tmp_path, small_mnist, capsys):
    encoder, decoder = saved[2]
    with pytest.raises(SystemExit) as exit_info:
        explore.main(["--encoder", str(encoder), "--decoder", str(decoder), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "no metrics list" in error and "--metrics FILE" in error and "--unmatched" in error
    # A run's files renamed: --metrics names the run's metrics, which still list them by their SHA-256.
    run_encoder, run_decoder, metrics = fake_run(tmp_path / "run")
    renamed = run_decoder.rename(tmp_path / "my_decoder.h5")
    assert explore.main(["--encoder", str(run_encoder), "--decoder", str(renamed), "--metrics", str(metrics),
                         "--out", str(tmp_path / "look"), "--figures", "none", "--no-evaluate",
                         "--data-dir", str(small_mnist)]) == 0


@pytest.mark.parametrize("text, problem", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "holds a JSON list, not an object"),
    (None, "no 'files'"),
    ({"latent_dim": "2"}, "latent_dim '2' is not a whole number ≥ 1"),
    ({"dataset": "kmnist"}, "dataset 'kmnist' is not one of mnist"),
    ({"files": ["abc"]}, "files is not an object of output: SHA-256"),
    ({"prior_covariance": [[1.0, 0.4]]}, "prior_covariance is not a latent_dim × latent_dim list of numbers"),
])
def test_a_damaged_metrics_file_is_named_before_any_work(tmp_path, capsys, text, problem):
    encoder, decoder, metrics = fake_run(tmp_path / "run")
    recorded = json.loads(metrics.read_text())
    if text is None:
        del recorded["files"]
    elif isinstance(text, dict):
        recorded.update(text)
    metrics.write_text(text if isinstance(text, str) else json.dumps(recorded))
    with pytest.raises(SystemExit) as exit_info:
        explore.main(["--encoder", str(encoder), "--decoder", str(decoder), "--out", str(tmp_path / "look")])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if ": error: " in line]
    assert len(lines) == 1 and str(metrics) in lines[0] and problem in lines[0]
    assert "Traceback" not in captured.err and "Loading" not in captured.out


def test_a_half_moved_run_is_refused_with_what_to_do(tmp_path, capsys):
    """A chapter run killed while moving its outputs into place leaves its journal: its files may be a mix of
    two runs, until the script runs again and finishes the move (vae.saving.OutputSet)."""
    encoder, decoder, _ = fake_run(tmp_path / "run")
    (tmp_path / "run" / "models" / ".staging_2d.journal.json").write_text('{"names": []}')
    with pytest.raises(SystemExit) as exit_info:
        explore.main(["--encoder", str(encoder), "--decoder", str(decoder), "--out", str(tmp_path / "look")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "an interrupted chapter run was still moving into place (.staging_2d.journal.json)" in error
    assert "Run that chapter script again with the same --out (e.g. python code/vae_2d.py)" in error


# ---------------------------------------------------------------------------------------------
# Where it writes: never over a run's outputs or the committed results unless asked


def test_the_default_out_is_apart_from_every_result():
    _, args = explore.parse_arguments(["--model", "2d"])
    assert args.out == REPO_ROOT / "runs" / "explore" / "2d"
    assert args.figure_dir == args.out / "assets" and args.likelihood_path == args.out / "models" / "likelihood_2d.json"
    assert args.metrics == REPO_ROOT / "models" / "metrics_2d.json" and args.dataset == "mnist"
    _, args = explore.parse_arguments(["--model", "correlated"])
    assert args.prior_cov == json.loads((REPO_ROOT / "models" / "metrics_correlated.json").read_text())["prior_covariance"]
    _, args = explore.parse_arguments(["--model", "2d", "--update-results"])
    assert args.likelihood_path == REPO_ROOT / "models" / "likelihood_2d.json"


@pytest.mark.parametrize("argv, message", [
    (["--out", str(REPO_ROOT)], "assets/samples_2d.png is an output of the run that models/metrics_2d.json records"),
    (["--out", str(REPO_ROOT), "--figures", "none"], "lies in the repository's committed results"),
    (["--out", str(REPO_ROOT / "assets")], "lies in the repository's committed results"),
    (["--update-results", "--images", "50"], "over the whole test set: leave out --images"),
    (["--update-results", "--no-evaluate"], "which --no-evaluate turns off"),
])
def test_the_repository_results_are_refused_unless_asked(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        explore.parse_arguments(["--model", "2d", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_run_folder_takes_the_evaluation_but_not_a_figure_over_its_outputs(tmp_path, small_mnist, capsys):
    """As code/compare_likelihoods.py does: --out the run's own folder, likelihood_<name>.json beside its
    metrics (not among its outputs); a figure the run drew is refused, and --update-results is for the
    repository's own models."""
    encoder, decoder, metrics = fake_run(tmp_path / "run")
    argv = ["--encoder", str(encoder), "--decoder", str(decoder), "--out", str(tmp_path / "run"),
            "--images", "20", "--samples", "3", "--no-quadrature", "--data-dir", str(small_mnist)]
    for extra, message in [(["--figures", "samples"], f"{tmp_path / 'run/assets/samples_2d.png'} is an output of the "
                                                      f"run that {metrics} records"),
                           (["--figures", "none", "--update-results"], "must be those that models/metrics_2d.json lists")]:
        with pytest.raises(SystemExit) as exit_info:
            explore.main([*argv, *extra])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    before = {path: path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()}
    assert explore.main([*argv, "--figures", "none"]) == 0
    assert all(path.read_bytes() == content for path, content in before.items())
    assert (tmp_path / "run" / "models" / "likelihood_2d.json").is_file()


# ---------------------------------------------------------------------------------------------
# Progress


def test_progress_prints_each_tenth_once(capsys):
    progress = explore.Progress("ln p(x)", "images")
    for done in range(0, 101):  # as the slow parts call it: 0 as they start, then after each batch
        progress(done, 100)
    lines = capsys.readouterr().out.splitlines()
    assert [re.search(r"\((\d+)%\)", line).group(1) for line in lines] == [str(10 * k) for k in range(1, 11)]
    assert lines[0].startswith("  ln p(x): 10 of 100 images (10%)") and "s to go" in lines[0]
    assert "to go" not in lines[-1]


def test_the_slow_parts_report_from_their_start_to_their_end():
    """The quadrature calls progress(0, G) as it starts (where explore.Progress starts its clock), then after
    each block of its grid, up to (G, G)."""
    from vae.likelihood import log_likelihood_by_quadrature

    calls = []
    log_likelihoods = lambda pixels, z: np.zeros((len(pixels), len(z)))  # noqa: E731  (float64: summed exactly)
    log_likelihood_by_quadrature(log_likelihoods, np.eye(2), np.zeros((3, 4)), spacing=0.5, grid_batch=150,
                                 progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 400), (150, 400), (300, 400), (400, 400)]


def test_a_run_says_what_it_does_and_how_far_along(saved, tmp_path, small_mnist, capsys):
    assert run(saved, 2, tmp_path, "--images", "40", "--samples", "1000", "--figures", "samples,interpolation",
               data_dir=small_mnist) == 0
    out = capsys.readouterr().out
    assert "Drawing figure 1 of 2: samples" in out and "Drawing figure 2 of 2: interpolation" in out
    # K = 1000: 16 images per batch of 16,384 decoded points, so 3 batches for 40 images.
    assert re.findall(r"ln p\(x\), K = 1,000: (\d+) of 40 images", out) == ["16", "32", "40"]
    assert len(re.findall(r"quadrature: [\d,]+ of 250,000 grid points", out)) == 10


# ---------------------------------------------------------------------------------------------
# The pieces


def test_spherical_interpolation_keeps_the_whitened_norm_and_both_ends():
    cholesky = np.linalg.cholesky([[1.0, 0.4], [0.4, 0.5]])
    a, b = cholesky @ [1.5, 0.0], cholesky @ [0.0, -1.5]  # whitened codes of norm 1.5, at right angles
    path = figures.interpolate(a, b, 9, "spherical", cholesky)
    np.testing.assert_allclose(path[[0, -1]], [a, b], atol=1e-12)
    norms = np.linalg.norm(np.linalg.solve(cholesky, path.T), axis=0)
    np.testing.assert_allclose(norms, 1.5, err_msg="slerp keeps ‖ε‖ rather than cutting towards the origin")
    linear = figures.interpolate(a, b, 9)
    assert np.linalg.norm(np.linalg.solve(cholesky, linear[4])) == pytest.approx(1.5 / math.sqrt(2))
    np.testing.assert_allclose(linear[4], (a + b) / 2)
    with pytest.raises(ValueError, match="method must be 'linear' or 'spherical'"):
        figures.interpolate(a, b, 3, "cubic")


def test_aggregate_posterior_of_posteriors_equal_to_the_prior_is_the_prior():
    z_mean, z_log_var = np.zeros((5, 2)), np.zeros((5, 2))
    edges, q, p = aggregate_posterior(z_mean, z_log_var, np.eye(2), limit=4.0, cells=80)
    assert q.sum() == pytest.approx(p.sum(), abs=1e-3) and q.sum() > 0.99
    assert np.max(np.abs(q - p)) < 1e-4
    assert hole_statistics(q, p)["prior_mass_in_holes"] < 1e-3
    # Narrow posteriors at a few points leave most of the prior in holes.
    narrow = aggregate_posterior(np.array([[1.0, 1.0], [-1.0, 0.0]]), np.full((2, 2), np.log(0.03 ** 2)),
                                 np.eye(2), limit=4.0, cells=80)
    assert hole_statistics(*narrow[1:])["prior_mass_in_holes"] > 0.9


def test_latent_statistics_count_active_units_and_split_the_kl():
    rng = np.random.default_rng(0)
    z_mean = np.column_stack([rng.normal(size=500), 0.05 * rng.normal(size=500), np.zeros(500)])
    z_log_var = np.log(np.column_stack([np.full(500, 0.01), np.full(500, 0.5), np.ones(500)]))
    stats = latent_statistics(z_mean, z_log_var)
    assert stats["active_units"] == 1  # Var(0.05 ε) = 0.0025 < 0.01
    assert stats["posterior_sigma_median"] == pytest.approx([0.1, math.sqrt(0.5), 1.0])
    full = 0.5 * np.mean(np.sum(np.exp(z_log_var) + z_mean ** 2 - 1 - z_log_var, axis=1))
    assert sum(stats["kl_per_dimension"]) == pytest.approx(full) and stats["kl_per_dimension"][2] == 0


# ---------------------------------------------------------------------------------------------
# page/build.py reads the same metrics: a damaged one is one line naming it


_page_spec = importlib.util.spec_from_file_location("page_build", REPO_ROOT / "page" / "build.py")
build_page = importlib.util.module_from_spec(_page_spec)
_page_spec.loader.exec_module(build_page)


def committed_copy(committed_root, folder, damaged):
    """`folder` mirroring the committed results, with each {file in models/: text} of `damaged` written instead."""
    for name in ("assets", "code", "benchmarks"):
        (folder / name).symlink_to(committed_root / name)
    (folder / "models").mkdir()
    for path in (committed_root / "models").iterdir():
        if path.name not in damaged:
            (folder / "models" / path.name).symlink_to(path)
    for name, text in damaged.items():
        (folder / "models" / name).write_text(text)
    return folder


def edited(committed_root, name, change):
    """The committed models/<name> with `change` applied to its JSON, as text."""
    data = json.loads((committed_root / "models" / name).read_text())
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize("name, text, message", [
    ("metrics_2d.json", lambda root: '{"test_loss": 140.6,', "models/metrics_2d.json is not valid JSON"),
    ("metrics_3d.json", lambda root: edited(root, "metrics_3d.json", lambda m: m.pop("history")),
     "models/metrics_3d.json has no 'history'"),
    ("metrics_correlated.json", lambda root: edited(root, "metrics_correlated.json", lambda m: m.update(test_loss="140")),
     "models/metrics_correlated.json holds a value of the wrong type or shape (test_loss is '140', not a number)"),
    ("metrics_2d.json", lambda root: edited(root, "metrics_2d.json", lambda m: m.update(seconds_training="a minute")),
     "models/metrics_2d.json holds a value of the wrong type or shape"),
    ("metrics_conditional.json", lambda root: edited(root, "metrics_conditional.json", lambda m: m.pop("num_classes")),
     "models/metrics_conditional.json has no 'num_classes'"),
    ("likelihood_3d.json", lambda root: "[]", "models/likelihood_3d.json holds a JSON list, not an object"),
])
def test_page_build_names_a_damaged_metrics_file_in_one_line(committed_root, tmp_path, capsys, name, text, message):
    root = committed_copy(committed_root, tmp_path, {name: text(committed_root)})
    with pytest.raises(build_page.BuildError) as error:
        build_page.load_facts(root)
    assert message in str(error.value) and "git checkout" in str(error.value)
    assert build_page.main(["--inputs", str(root), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("page/build.py: error: ") and message in err
