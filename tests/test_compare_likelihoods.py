"""code/compare_likelihoods.py from small saved runs: which runs it reuses, which it trains and which it only
evaluates, and what its --help quotes. No training here: run_step only records the commands."""

import os

import pytest

import compare_likelihoods
from compare_likelihoods import (IMPORTANCE_SAMPLES, MODEL_FILES, SETTINGS, TEST_IMAGES, TRAIN_IMAGES, run_folder,
                                 setting_flags)
from vae.saving import save_json, sha256


def folder(runs, name, seed=0):
    """Where setting `name`'s run with this seed is kept: RUNS/2d/<setting>/seed<N>."""
    return run_folder(runs, "2d", setting_flags(name), seed)


def fake_run(folder, likelihood, binarize, epochs=30, evaluation=None, seed=0):
    """The files of a finished 2-D run (stand-in models whose SHA-256 its metrics list) and, unless
    `evaluation` is False, explore.py's likelihood_2d.json with `evaluation`'s values changed."""
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        (folder / name).write_bytes(f"a stand-in {name}".encode())
    save_json({"dataset": "mnist", "architecture": "mlp", "latent_dim": 2, "beta": 1.0, "kl_warmup_epochs": 0,
               "free_bits": 0.0, "likelihood": likelihood, "binarize": binarize, "epochs": epochs, "seed": seed,
               "train_images": TRAIN_IMAGES, "test_images": TEST_IMAGES,
               "files": {name: sha256(folder / name) for name in MODEL_FILES}}, models / "metrics_2d.json")
    if evaluation is not False:
        save_json({"likelihood": likelihood, "binarize": binarize, "iw_samples": IMPORTANCE_SAMPLES,
                   "likelihood_images": TEST_IMAGES, **(evaluation or {})}, models / "likelihood_2d.json")


@pytest.fixture
def steps(monkeypatch, tmp_path):
    """The steps main() runs, as their descriptions; the summary is not written, the repository's own run
    not copied."""
    whats = []
    monkeypatch.setattr(compare_likelihoods, "COMMITTED_RUNS", tmp_path / "no committed run")
    monkeypatch.setattr(compare_likelihoods, "run_step", lambda command, what: whats.append((what, command)))
    monkeypatch.setattr(compare_likelihoods, "write_comparison", lambda runs, out: None)
    return whats


def test_finished_and_evaluated_runs_are_kept(tmp_path, steps, capsys):
    for name, (likelihood, binarize) in SETTINGS.items():
        fake_run(folder(tmp_path, name), likelihood, binarize)
    compare_likelihoods.main(["--runs", str(tmp_path), "--seeds", "1"])
    assert steps == []
    output = capsys.readouterr().out
    assert "== run 3 of 3: binarized, seed 0: trained earlier" in output and "ln p(x) evaluated earlier, kept" in output


@pytest.mark.parametrize("evaluation", [
    {"iw_samples": 5, "likelihood_images": 200},  # a quick look's evaluation
    False,  # none: the comparison was stopped while evaluating
])
def test_a_trained_run_whose_evaluation_is_not_the_one_asked_is_evaluated_not_trained(tmp_path, steps, evaluation):
    for name, (likelihood, binarize) in SETTINGS.items():
        fake_run(folder(tmp_path, name), likelihood, binarize, evaluation=evaluation if name == "binarized" else None)
    compare_likelihoods.main(["--runs", str(tmp_path), "--seeds", "1"])
    [(what, command)] = steps
    assert what == "run 3 of 3: binarized, seed 0, evaluating ln p(x) (K = 1,000 on 10,000 test images)"
    assert command[0] == "code/explore.py" and command[command.index("--samples") + 1] == IMPORTANCE_SAMPLES


def test_an_evaluation_older_than_its_model_is_done_again(tmp_path, steps):
    for name, (likelihood, binarize) in SETTINGS.items():
        fake_run(folder(tmp_path, name), likelihood, binarize)
    decoder = folder(tmp_path, "bernoulli") / "models" / "decoder_2d.h5"
    later = (folder(tmp_path, "bernoulli") / "models" / "likelihood_2d.json").stat().st_mtime + 10
    os.utime(decoder, (later, later))
    compare_likelihoods.main(["--runs", str(tmp_path), "--seeds", "1"])
    assert [what for what, _ in steps] == [
        "run 1 of 3: bernoulli, seed 0, evaluating ln p(x) (K = 1,000 on 10,000 test images)"]


def test_runs_of_other_epochs_or_changed_models_are_trained_again_and_their_old_evaluation_dropped(
        tmp_path, steps, capsys):
    fake_run(folder(tmp_path, "bernoulli"), "bernoulli", "off", epochs=1)  # a quick look's run: not the default's 30
    fake_run(folder(tmp_path, "continuous_bernoulli"), "continuous_bernoulli", "off")
    (folder(tmp_path, "continuous_bernoulli") / "models" / "encoder_2d.h5").write_bytes(b"another encoder")
    fake_run(folder(tmp_path, "binarized"), "bernoulli", "off")  # not binarized
    compare_likelihoods.main(["--runs", str(tmp_path), "--seeds", "1"])
    assert [what for what, _ in steps] == [
        "run 1 of 3: bernoulli, seed 0, training (30 epochs)",
        "run 1 of 3: bernoulli, seed 0, evaluating ln p(x) (K = 1,000 on 10,000 test images)",
        "run 2 of 3: continuous_bernoulli, seed 0, training (30 epochs)",
        "run 2 of 3: continuous_bernoulli, seed 0, evaluating ln p(x) (K = 1,000 on 10,000 test images)",
        "run 3 of 3: binarized, seed 0, training (30 epochs)",
        "run 3 of 3: binarized, seed 0, evaluating ln p(x) (K = 1,000 on 10,000 test images)",
    ]
    training = steps[0][1]
    assert training[training.index("--epochs") + 1] == 30
    output = capsys.readouterr().out
    assert f"not reusing the run in {folder(tmp_path, 'bernoulli')}: its run has epochs 1 (not 30)" in output
    assert "its models/encoder_2d.h5 is not the file its metrics_2d.json lists (SHA-256)" in output
    assert "its run has binarize 'off' (not 'dynamic')" in output
    assert not (folder(tmp_path, "bernoulli") / "models" / "likelihood_2d.json").exists()  # the 1-epoch model's


def test_the_help_quotes_only_recorded_times(tmp_path, monkeypatch):
    monkeypatch.setattr(compare_likelihoods, "SUMMARY", tmp_path / "likelihoods_2d.json")
    assert compare_likelihoods.recorded_times().startswith("No times are recorded yet")
    save_json({"settings": {
        "a": {"epochs": 30, "over_seeds": {"seeds": [0, 1], "values": {"seconds_training": [100.2, 20]}}},
        "b": {"epochs": 30, "over_seeds": {"seeds": [0], "values": {"seconds_training": [50]}}}}},
        tmp_path / "likelihoods_2d.json")
    assert compare_likelihoods.recorded_times() == (
        "Times recorded in models/likelihoods_2d.json: its 3 runs trained for 170 s in all (30, 30 epochs); "
        "the time of the ln p(x) estimates is not recorded there.")
    save_json({"settings": {"a": {"epochs": 30, "over_seeds": {
        "seeds": [0, 1], "values": {"seconds_training": [100, 100], "iw_seconds": [200.4, 100]}}}}},
        tmp_path / "likelihoods_2d.json")
    assert compare_likelihoods.recorded_times().endswith("(30 epochs), and 300 s of ln p(x) estimates.")
