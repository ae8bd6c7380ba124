"""Hyperparameters: the flags override the __main__ block's values, and bad values are refused by name."""

import dataclasses

import pytest

from conftest import run_script
from vae.config import Config, ConfigError, parse_covariance, parse_flags

DEFAULTS = Config(latent_dim=2, epochs=30, batch_size=128, learning_rate=1e-3, beta=1.0, seed=0)


def test_no_flags_keep_the_main_block_values():
    assert parse_flags(DEFAULTS, []) == DEFAULTS


def test_flags_override_their_fields():
    config = parse_flags(DEFAULTS, [
        "--epochs", "3", "--batch-size", "64", "--learning-rate", "5e-4", "--latent-dim", "3",
        "--beta", "0.5", "--seed", "7", "--train-size", "2000", "--data-dir", ".", "--out", "/tmp/x",
        "--grid-size", "10", "--grid-limit", "2",
    ])
    assert config == dataclasses.replace(
        DEFAULTS, epochs=3, batch_size=64, learning_rate=5e-4, latent_dim=3, beta=0.5, seed=7,
        train_size=2000, data_dir=".", out="/tmp/x", grid_size=10, grid_limit=2.0,
    )


def test_prior_cov_flag_only_where_the_script_has_a_prior():
    with pytest.raises(SystemExit):
        parse_flags(DEFAULTS, ["--prior-cov", "1,0;0,1"])
    correlated = dataclasses.replace(DEFAULTS, prior_cov=[[1.0, 0.4], [0.4, 0.5]])
    assert parse_flags(correlated, ["--prior-cov", "2,0.5;0.5,1"]).prior_cov == [[2.0, 0.5], [0.5, 1.0]]


def test_parse_covariance():
    assert parse_covariance("1.0,0.4;0.4,0.5") == [[1.0, 0.4], [0.4, 0.5]]


@pytest.mark.parametrize("field, value, message", [
    ("latent_dim", 0, "latent_dim must be ≥ 1"),
    ("latent_dim", 2.5, "latent_dim must be a whole number"),
    ("epochs", 0, "epochs must be ≥ 1"),
    ("batch_size", 0, "batch_size must be ≥ 1"),
    ("batch_size", True, "batch_size must be a whole number"),
    ("learning_rate", 0.0, "learning_rate must be > 0"),
    ("learning_rate", float("nan"), "learning_rate must be a finite number"),
    ("beta", -0.1, "beta must be ≥ 0"),
    ("seed", -1, "seed must be ≥ 0"),
    ("train_size", 0, "train_size must be from 1 to 60000"),
    ("train_size", 60001, "train_size must be from 1 to 60000"),
    ("grid_size", 1, "grid_size must be ≥ 2"),
    ("grid_limit", 0, "grid_limit must be > 0"),
    ("data_dir", "/no/such/folder", "data_dir: /no/such/folder is not a folder"),
    ("prior_cov", [[1.0, 0.4], [0.3, 0.5]], "prior_cov: covariance is not symmetric"),
    ("prior_cov", [[1.0, 2.0], [2.0, 1.0]], "prior_cov: covariance is not positive definite"),
    ("prior_cov", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], "prior_cov: covariance does not match latent_dim"),
    ("prior_cov", [[1.0, 0.4, 0.0], [0.4, 0.5, 0.0]], "prior_cov: covariance is not square"),
    ("prior_cov", [[float("inf"), 0.0], [0.0, 1.0]], "prior_cov: covariance is not finite"),
])
def test_each_bad_value_is_refused_by_name(field, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        dataclasses.replace(DEFAULTS, **{field: value}).check()


def test_script_minimum_latent_dim():
    with pytest.raises(ConfigError, match="latent_dim must be ≥ 2, got 1"):
        dataclasses.replace(DEFAULTS, latent_dim=1).check(min_latent_dim=2)


def test_bad_flag_exits_with_a_message_naming_it(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_flags(DEFAULTS, ["--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "batch_size must be ≥ 1, got 0" in capsys.readouterr().err


def test_script_refuses_bad_flag_before_loading_data(tmp_path):
    """The data folder does not exist, so a run that got as far as loading would say so instead."""
    result = run_script("vae_2d.py", "--epochs", "0", "--out", tmp_path,
                        env_extra={"VAE_DATA_DIR": str(tmp_path / "missing")})
    assert result.returncode == 2
    assert "epochs must be ≥ 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "assets").exists()


def test_script_reports_missing_data_in_one_line(tmp_path):
    result = run_script("vae_2d.py", "--epochs", "1", "--out", tmp_path,
                        env_extra={"VAE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert str(tmp_path) in result.stderr and "train-images-idx3-ubyte" in result.stderr


def test_help_lists_every_flag():
    result = run_script("vae_2d.py", "--help")
    assert result.returncode == 0
    for flag in ["--epochs", "--batch-size", "--learning-rate", "--latent-dim", "--beta", "--seed",
                 "--train-size", "--data-dir", "--out"]:
        assert flag in result.stdout


def test_script_refuses_an_output_folder_it_cannot_create(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_script("vae_2d.py", "--epochs", "1", "--out", blocker / "sub",
                        env_extra={"VAE_DATA_DIR": str(tmp_path / "missing")})
    assert result.returncode == 1
    assert "error: out: cannot create" in result.stderr and "Traceback" not in result.stderr


def test_an_interrupted_run_with_other_hyperparameters_is_not_resumed(tmp_path, capsys):
    from vae.experiment import Experiment

    config = dataclasses.replace(DEFAULTS, out=str(tmp_path))
    progress = tmp_path / "models" / ".interrupted_2d"
    Experiment(config, "2d")._resume_or_start_over(progress)
    (progress / "backup").mkdir()
    Experiment(dataclasses.replace(config, epochs=50), "2d")._resume_or_start_over(progress)
    assert "Resuming" in capsys.readouterr().out and (progress / "backup").exists()
    Experiment(dataclasses.replace(config, learning_rate=1e-4), "2d")._resume_or_start_over(progress)
    assert "Starting over" in capsys.readouterr().out and not (progress / "backup").exists()

    (progress / "epochs.csv").write_text("epoch,loss\n0,200\n1,180\n2,170\n")
    Experiment(dataclasses.replace(config, learning_rate=1e-4, epochs=3), "2d")._resume_or_start_over(progress)
    assert "Starting over" in capsys.readouterr().out and not (progress / "epochs.csv").exists()
