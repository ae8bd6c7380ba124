"""The comparisons' seeds: vae/spread.py's rule for a ranking beyond the spread, one run folder per setting and
seed shared between the comparisons, the chapter's own run copied rather than trained again, and
code/compare_priors.py from small saved runs and from a tiny real run."""

import json
import shutil

import numpy as np
import pytest

import compare_beta
import compare_likelihoods
import compare_priors
from compare_likelihoods import model_files, run_folder
from conftest import REPO_ROOT, script_command, write_mnist
from test_scripts import assert_png
from vae.inspection import SCRIPT_SAMPLES
from vae.saving import save_json, sha256
from vae.spread import beyond_spread, over_seeds, ranking


def spread(*values, metric="elbo"):
    return over_seeds({seed: {metric: value} for seed, value in enumerate(values)}, [metric])


# ---------------------------------------------------------------------------------------------
# The rule


def test_over_seeds_gives_each_seeds_value_the_mean_the_sample_sd_and_the_range():
    summary = over_seeds({2: {"a": 3.0, "b": None}, 0: {"a": 1.0, "b": 1.0}, 1: {"a": 2.0, "b": 1.0}}, ["a", "b", "c"])
    assert summary["seeds"] == [0, 1, 2] and summary["values"] == {"a": [1.0, 2.0, 3.0]}  # b and c: not in every run
    assert summary["mean"]["a"] == 2.0 and summary["sd"]["a"] == pytest.approx(1.0)  # n − 1 in the denominator
    assert (summary["min"]["a"], summary["max"]["a"]) == (1.0, 3.0)
    assert spread(5.0)["sd"]["elbo"] is None  # one seed: no spread


@pytest.mark.parametrize("a, b, beyond", [
    ((10.0, 11.0, 12.0), (14.0, 15.0, 16.0), True),  # 11 ± 1 and 15 ± 1: apart
    ((10.0, 11.0, 12.0), (12.0, 13.0, 14.0), False),  # 11 ± 1 and 13 ± 1 touch: not beyond
    ((10.0, 11.0, 12.0), (11.5, 11.5, 11.5), False),  # inside the other's interval
    ((3.0, 3.0, 3.0), (2.0, 2.0, 2.0), True),  # no spread at all, different values (active units)
    ((3.0, 3.0, 3.0), (3.0, 3.0, 3.0), False),  # equal
    ((10.0,), (20.0,), False),  # one seed each: no spread measured, no ranking
])
def test_a_difference_is_beyond_the_spread_only_where_the_mean_sd_intervals_do_not_overlap(a, b, beyond):
    assert beyond_spread(spread(*a), spread(*b), "elbo") is beyond
    assert beyond_spread(spread(*b), spread(*a), "elbo") is beyond


def test_a_ranking_names_a_best_setting_only_where_it_is_beyond_the_spread_of_every_other():
    settings = {"0": spread(-150.0, -151.0, -149.0), "1": spread(-141.0, -140.9, -141.1),
                "4": spread(-141.2, -141.0, -141.4)}
    verdict = ranking(settings, "elbo", higher_is_better=True)
    assert verdict["order"] == ["1", "4", "0"] and verdict["best"] is None  # 1 and 4 overlap
    assert {(pair["better"], pair["worse"]): pair["beyond_spread"] for pair in verdict["pairs"]} == {
        ("1", "4"): False, ("1", "0"): True, ("4", "0"): True}
    assert verdict["separable_order"] is False and "do not overlap" in verdict["rule"]
    settings["4"] = spread(-145.0, -145.5, -144.5)
    verdict = ranking(settings, "elbo", higher_is_better=True)
    assert verdict["best"] == "1" and verdict["separable_order"] is True
    lower = ranking(settings, "elbo", higher_is_better=False)
    assert lower["order"] == ["0", "4", "1"] and lower["better"] == "lower" and lower["best"] == "0"


# ---------------------------------------------------------------------------------------------
# One folder per setting and seed, shared


def fake_chapter_run(folder, name="2d", seed=0, epochs=2, train_images=2000, test_loss=140.0, **changed):
    """The files of a finished chapter run as the comparisons read them: stand-in models whose SHA-256 the
    metrics list, and made-up numbers."""
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    for file in model_files(name):
        (folder / file).write_bytes(f"a stand-in {file} of seed {seed}".encode())
    split = {"test": {"mutual_information": 6.4 + seed / 10, "marginal_kl": 0.4}}
    save_json({"model": name, "dataset": "mnist", "architecture": "mlp", "latent_dim": 2, "beta": 1.0,
               "kl_warmup_epochs": 0, "free_bits": 0.0, "likelihood": "bernoulli", "binarize": "off", "seed": seed,
               "epochs": epochs, "train_images": train_images, "test_images": 300, "likelihood_images": 300,
               "iw_samples": SCRIPT_SAMPLES, "test_loss": test_loss, "test_reconstruction": test_loss - 7,
               "test_kl": 7.0, "test_elbo": -test_loss, "iw_log_likelihood": 3 - test_loss, "active_units": 2,
               "kl_split": split, "holes": {"test": {"prior_mass_in_holes": 0.05}}, "seconds_training": 3.0,
               **({"prior_covariance": compare_priors.PRIOR_COV} if name == "correlated" else {}), **changed,
               "files": {file: sha256(folder / file) for file in model_files(name)}},
              models / f"metrics_{name}.json")


@pytest.fixture
def commands(monkeypatch, tmp_path):
    """The chapter commands the comparisons run (recorded, not run); the repository's own runs not copied."""
    commands = []
    for module in (compare_beta, compare_likelihoods, compare_priors):
        monkeypatch.setattr(module, "run_step", lambda command, what: commands.append([str(part) for part in command]))
    monkeypatch.setattr(compare_likelihoods, "COMMITTED_RUNS", tmp_path / "no committed run")
    return commands


def test_each_seed_is_a_run_of_its_own_trained_with_the_chapters_seed_flag(tmp_path, commands):
    args = compare_beta.parse_arguments(["--epochs", "2", "--train-size", "2000", "--runs", str(tmp_path)])
    assert args.seeds == 3
    compare_beta.train_all({"4": {"beta": 4.0}}, args)
    assert [(command[command.index("--seed") + 1], command[command.index("--out") + 1]) for command in commands] == [
        (str(seed), str(tmp_path / "2d" / "beta_4" / f"seed{seed}")) for seed in range(3)]


def test_the_default_run_of_each_seed_serves_the_beta_sweep_the_likelihoods_and_the_priors(tmp_path, commands):
    for seed in range(2):
        fake_chapter_run(run_folder(tmp_path, "2d", {}, seed), seed=seed)
    beta = compare_beta.parse_arguments(["--epochs", "2", "--train-size", "2000", "--seeds", "2",
                                         "--runs", str(tmp_path)])
    compare_beta.train_all({"1": {"beta": 1.0}}, beta)
    priors = compare_priors.parse_arguments(["--epochs", "2", "--train-size", "2000", "--seeds", "2",
                                             "--runs", str(tmp_path)])
    compare_priors.train_all(priors)
    # the standard runs: kept; the correlated and the 3-D chapters' trained
    assert [command[0] for command in commands] == ["code/vae_correlated.py", "code/vae_3d.py"] * 2
    assert compare_likelihoods.run_folder(tmp_path, "2d", compare_likelihoods.setting_flags("bernoulli"), 1) == \
        run_folder(tmp_path, "2d", {"beta": 1.0}, 1) == compare_priors.folder_of("standard", priors, 1)
    correlated = commands[0]
    assert correlated[correlated.index("--prior-cov") + 1] == "1,0.4;0.4,0.5"
    assert correlated[correlated.index("--out") + 1] == str(tmp_path / "correlated" / "default" / "seed0")


def test_the_chapters_own_run_is_copied_for_seed_0_when_it_is_the_run_asked_for(tmp_path, commands, monkeypatch,
                                                                                capsys):
    repository = tmp_path / "repository"
    fake_chapter_run(repository, epochs=30, train_images=60000)
    save_json({"iw_samples": 1000}, repository / "models" / "likelihood_2d.json")
    fake_chapter_run(repository, name="correlated", epochs=30, train_images=60000, prior_covariance=[[1.0, 0.0],
                                                                                                     [0.0, 1.0]])
    monkeypatch.setattr(compare_likelihoods, "COMMITTED_RUNS", repository)
    args = compare_priors.parse_arguments(["--seeds", "2", "--runs", str(tmp_path / "runs")])
    compare_priors.train_all(args)
    seed0 = tmp_path / "runs" / "2d" / "default" / "seed0"
    assert "the N(0, I) prior, seed 0: the chapter's own run, copied" in capsys.readouterr().out
    for file in [*model_files("2d"), "models/metrics_2d.json", "models/likelihood_2d.json"]:
        assert (seed0 / file).read_bytes() == (repository / file).read_bytes()
    # The committed correlated run has another Σ than the comparison's: trained, not copied; there is no committed
    # 3-D run here; the seeds 1 are all trained.
    assert [(command[0], command[command.index("--seed") + 1]) for command in commands] == [
        ("code/vae_correlated.py", "0"), ("code/vae_3d.py", "0"),
        ("code/vae_2d.py", "1"), ("code/vae_correlated.py", "1"), ("code/vae_3d.py", "1")]
    assert not (tmp_path / "runs" / "correlated" / "default" / "seed0" / "models").exists()


def test_a_finished_run_is_not_overwritten_by_the_chapters_own(tmp_path, commands, monkeypatch):
    repository = tmp_path / "repository"
    fake_chapter_run(repository, epochs=30, train_images=60000, test_loss=150.0)
    monkeypatch.setattr(compare_likelihoods, "COMMITTED_RUNS", repository)
    folder = run_folder(tmp_path / "runs", "2d", {}, 0)
    fake_chapter_run(folder, epochs=30, train_images=60000, test_loss=141.0)
    expected = compare_beta.expected_metrics({}, 30, None, 0)
    assert compare_likelihoods.copy_committed_run(folder, expected) is False
    assert json.loads((folder / "models" / "metrics_2d.json").read_text())["test_loss"] == 141.0


# ---------------------------------------------------------------------------------------------
# The priors' summary


def test_the_priors_summary_holds_each_seed_the_spread_and_the_verdicts(tmp_path, commands, capsys):
    runs, out = tmp_path / "runs", tmp_path / "out"
    for seed, (standard, correlated) in enumerate([(141.0, 140.8), (141.3, 141.2), (140.7, 141.1)]):
        fake_chapter_run(run_folder(runs, "2d", {}, seed), seed=seed, test_loss=standard)
        fake_chapter_run(run_folder(runs, "correlated", {}, seed), "correlated", seed=seed, test_loss=correlated)
        fake_chapter_run(run_folder(runs, "3d", {}, seed), "3d", seed=seed, test_loss=130.0 + seed / 10, latent_dim=3)
    compare_priors.main(["--epochs", "2", "--train-size", "2000", "--runs", str(runs), "--out", str(out)])
    assert commands == []  # every run finished: nothing trained
    summary = json.loads((out / "models" / "priors_2d.json").read_text())
    standard, correlated = summary["priors"]["standard"], summary["priors"]["correlated"]
    assert standard["seed"] == 0 and standard["test_loss"] == 141.0 and correlated["prior_covariance"] == [[1.0, 0.4],
                                                                                                          [0.4, 0.5]]
    assert standard["over_seeds"]["values"]["test_loss"] == [141.0, 141.3, 140.7]
    assert standard["over_seeds"]["mean"]["test_loss"] == pytest.approx(141.0)
    assert standard["over_seeds"]["sd"]["test_loss"] == pytest.approx(0.3)
    assert standard["over_seeds"]["values"]["mutual_information_test"] == pytest.approx([6.4, 6.5, 6.6])
    pairs = {frozenset((pair["better"], pair["worse"])): pair for pair in summary["rankings"]["test_loss"]["pairs"]}
    assert pairs[frozenset(("standard", "correlated"))]["beyond_spread"] is False
    assert pairs[frozenset(("3d", "standard"))]["beyond_spread"] is True  # 130.1 ± 0.1 against 141.0 ± 0.3
    assert "within the spread" in capsys.readouterr().out
    assert_png(out / "assets" / "priors_2d.png")


def test_the_priors_help_quotes_only_recorded_times(tmp_path, monkeypatch):
    monkeypatch.setattr(compare_priors, "SUMMARY", tmp_path / "priors_2d.json")
    assert compare_priors.recorded_times().startswith("No times are recorded yet")
    save_json({"priors": {"standard": {"over_seeds": {"seeds": [0, 1], "values": {"seconds_training": [100, 50.4]}}}}},
              tmp_path / "priors_2d.json")
    assert compare_priors.recorded_times() == ("Times recorded in models/priors_2d.json: its 2 runs trained for "
                                               "150 s in all.")


@pytest.mark.parametrize("value", ["0", "two", "101"])
def test_a_bad_number_of_seeds_is_refused_in_one_line(value, capsys):
    with pytest.raises(SystemExit):
        compare_priors.parse_arguments(["--seeds", value])
    assert "argument --seeds: must be" in capsys.readouterr().err


def test_two_seeds_of_both_priors_train_as_two_different_runs_each(tmp_path):
    """A tiny real comparison: 1 epoch on 300 images, seeds 0 and 1 of both chapters; a rerun trains nothing."""
    import subprocess

    data, runs, out = write_mnist(tmp_path / "mnist", train=300, test=100), tmp_path / "runs", tmp_path / "out"
    command, env = script_command("compare_priors.py", "--epochs", "1", "--train-size", "300", "--seeds", "2",
                                  "--runs", runs, "--out", out, "--data-dir", data)
    first = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    summary = json.loads((out / "models" / "priors_2d.json").read_text())
    for prior in ["standard", "correlated", "3d"]:
        spread = summary["priors"][prior]["over_seeds"]
        assert spread["seeds"] == [0, 1]
        assert spread["values"]["test_loss"][0] != spread["values"]["test_loss"][1]  # another seed, another run
        assert spread["sd"]["test_loss"] > 0
    encodings = [np.load(runs / "2d" / "default" / f"seed{seed}" / "models" / "test_encodings_2d.npz")["z_mean"]
                 for seed in range(2)]
    assert not np.allclose(*encodings)
    again = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and again.stdout.count("finished earlier") == 6 and "training and" not in again.stdout
    shutil.rmtree(runs)


def test_the_page_states_a_ranking_through_the_jsons_verdict():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_page", REPO_ROOT / "page" / "build.py")
    build_page = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_page)
    verdict = ranking({"0.5": spread(-140.4, -140.3, -140.5), "1": spread(-140.3, -141.1, -140.9),
                       "4": spread(-143.6, -143.8, -144.2)}, "elbo", higher_is_better=True)
    assert build_page.apart(verdict, "1", "0.5") is False and build_page.apart(verdict, "0.5", "4") is True
    with pytest.raises(build_page.BuildError, match="has no pair '1', '16'"):
        build_page.apart(verdict, "1", "16")
