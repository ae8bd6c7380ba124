"""Hyperparameters: the flags override the __main__ block's values, and bad values are refused by name."""

import ast
import dataclasses
import re

import pytest

from conftest import REPO_ROOT, run_python, run_script
from vae.config import Config, ConfigError, flag_name, flags_markdown, parse_covariance, parse_flags

DEFAULTS = Config(latent_dim=2, epochs=30, batch_size=128, learning_rate=1e-3, beta=1.0, seed=0)


def test_no_flags_keep_the_main_block_values():
    # The likelihood left at None is the data set's own, MNIST's Bernoulli; XLA left at None is on for the MLP.
    assert parse_flags(DEFAULTS, []) == dataclasses.replace(DEFAULTS, likelihood="bernoulli", xla=True)


def test_flags_override_their_fields():
    config = parse_flags(DEFAULTS, [
        "--epochs", "3", "--batch-size", "64", "--learning-rate", "5e-4", "--latent-dim", "3",
        "--beta", "0.5", "--seed", "7", "--train-size", "2000", "--data-dir", ".", "--out", "/tmp/x",
        "--grid-size", "10", "--grid-limit", "2", "--likelihood", "continuous_bernoulli",
    ])
    assert config == dataclasses.replace(
        DEFAULTS, epochs=3, batch_size=64, learning_rate=5e-4, latent_dim=3, beta=0.5, seed=7,
        train_size=2000, data_dir=".", out="/tmp/x", grid_size=10, grid_limit=2.0, likelihood="continuous_bernoulli",
        xla=True,
    )
    assert parse_flags(DEFAULTS, ["--binarize", "dynamic"]).binarize == "dynamic"


def test_continuous_bernoulli_on_binarized_pixels_is_refused():
    """Its density on pixels of exactly 0 or 1 has no maximum: the pair is refused, naming both and what to use."""
    with pytest.raises(ConfigError, match="continuous_bernoulli.*binarize 'dynamic'.*likelihood 'bernoulli'"):
        dataclasses.replace(DEFAULTS, likelihood="continuous_bernoulli", binarize="dynamic").check()


def test_prior_cov_flag_only_where_the_script_has_a_prior():
    with pytest.raises(SystemExit):
        parse_flags(DEFAULTS, ["--prior-cov", "1,0;0,1"])
    correlated = dataclasses.replace(DEFAULTS, prior_cov=[[1.0, 0.4], [0.4, 0.5]])
    assert parse_flags(correlated, ["--prior-cov", "2,0.5;0.5,1"]).prior_cov == [[2.0, 0.5], [0.5, 1.0]]


def test_parse_covariance():
    assert parse_covariance("1.0,0.4;0.4,0.5") == [[1.0, 0.4], [0.4, 0.5]]


@pytest.mark.parametrize("field, value, message", [
    ("latent_dim", 0, "latent_dim must be from 1 to 1,024, got 0"),
    ("latent_dim", 5000, "latent_dim must be from 1 to 1,024, got 5,000"),
    ("latent_dim", 2.5, "latent_dim must be a whole number"),
    ("epochs", 0, "epochs must be from 1 to 10,000"),
    ("batch_size", 0, "batch_size must be from 1 to 60,000"),
    ("batch_size", 2**63, "batch_size must be from 1 to 60,000, got 9,223,372,036,854,775,808"),
    ("batch_size", True, "batch_size must be a whole number"),
    ("learning_rate", 0.0, "learning_rate must be from 1.2e-38 to 3.4e+38 (what float32 training can use)"),
    ("learning_rate", 1e-50, "learning_rate must be from 1.2e-38 to 3.4e+38 (what float32 training can use), got 1e-50"),
    ("learning_rate", float("nan"), "learning_rate must be a finite number"),
    ("beta", -0.1, "beta must be from 0 to 3.4e+38"),
    ("beta", 1e39, "beta must be from 0 to 3.4e+38 (what float32 training can use), got 1e+39"),
    ("seed", -1, "seed must be from 0 to 4,294,967,295"),
    ("seed", 2**32, "seed must be from 0 to 4,294,967,295, got 4,294,967,296"),
    ("train_size", 0, "train_size must be from 1 to 60,000"),
    ("train_size", 60001, "train_size must be from 1 to 60,000"),
    ("grid_size", 1, "grid_size must be from 2 to 100"),
    ("grid_size", 10**6, "grid_size must be from 2 to 100, got 1,000,000"),
    ("grid_limit", 0, "grid_limit must be from 1.2e-38 to 1e+02"),
    ("grid_limit", 1e308, "grid_limit must be from 1.2e-38 to 1e+02 (what float32 training can use), got 1e+308"),
    ("data_dir", "/no/such/folder", "data_dir: /no/such/folder is not a folder"),
    ("data_dir", 42, "data_dir must be a folder name, got 42"),
    ("out", "/tmp/" + "x" * 300, f"out: a name in /tmp/{'x' * 300} is longer than 255 bytes"),
    ("prior_cov", [[1.0, 0.4], [0.3, 0.5]], "prior_cov: covariance is not symmetric"),
    ("prior_cov", [[1.0, 2.0], [2.0, 1.0]], "prior_cov: covariance is not positive definite"),
    ("prior_cov", [[1.0, 0.9999999], [0.9999999, 1.0]], "prior_cov: covariance is nearly singular: its condition number"),
    ("prior_cov", [[1e39, 0.0], [0.0, 1.0]], "prior_cov: covariance is not finite in float32"),
    ("prior_cov", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], "prior_cov: covariance does not match latent_dim"),
    ("prior_cov", [[1.0, 0.4, 0.0], [0.4, 0.5, 0.0]], "prior_cov: covariance is not square"),
    ("prior_cov", [[float("inf"), 0.0], [0.0, 1.0]], "prior_cov: covariance is not finite"),
    ("likelihood", "gaussian", "likelihood must be one of 'bernoulli', 'continuous_bernoulli', got 'gaussian'"),
    ("likelihood", "", "likelihood must be one of 'bernoulli', 'continuous_bernoulli', got ''"),
    ("dataset", "svhn", "dataset must be one of 'mnist', 'fashion_mnist', 'cifar10', 'images', got 'svhn'"),
    ("dataset", None, "dataset must be one of 'mnist', 'fashion_mnist', 'cifar10', 'images', got None"),
    ("architecture", "resnet", "architecture must be one of 'mlp', 'conv', got 'resnet'"),
    ("binarize", True, "binarize must be one of 'off', 'dynamic', got True"),
    ("binarize", "static", "binarize must be one of 'off', 'dynamic', got 'static'"),
    ("kl_warmup_epochs", -1, "kl_warmup_epochs must be from 0 to 10,000, got -1"),
    ("kl_warmup_epochs", 2.0, "kl_warmup_epochs must be a whole number, got 2.0"),
    ("kl_warmup_epochs", 30, "kl_warmup_epochs must be less than epochs (30), so that the last epochs train with "
                             "the full beta, got 30"),
    ("free_bits", -0.1, "free_bits must be from 0 to 10 nats per latent dimension"),
    ("free_bits", 50.0, "free_bits must be from 0 to 10 nats per latent dimension (ln 60,000 ≈ 11 nats already "
                        "tells every training image apart), got 50"),
    ("free_bits", float("nan"), "free_bits must be a finite number, got nan"),
    ("free_bits", "0.25", "free_bits must be a finite number, got '0.25'"),
])
def test_each_bad_value_is_refused_by_name(field, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        dataclasses.replace(DEFAULTS, **{field: value}).check()


def test_script_minimum_latent_dim():
    with pytest.raises(ConfigError, match="latent_dim must be from 2 to 1,024, got 1"):
        dataclasses.replace(DEFAULTS, latent_dim=1).check(min_latent_dim=2)


def test_bad_flag_exits_with_a_message_naming_it(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_flags(DEFAULTS, ["--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "batch_size must be from 1 to 60,000, got 0" in capsys.readouterr().err


def test_script_refuses_bad_flag_before_loading_data(tmp_path):
    """The data folder does not exist, so a run that got as far as loading would say so instead."""
    result = run_script("vae_2d.py", "--epochs", "0", "--out", tmp_path,
                        env_extra={"VAE_DATA_DIR": str(tmp_path / "missing")})
    assert result.returncode == 2
    assert "epochs must be from 1 to 10,000, got 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "assets").exists()


@pytest.mark.slow  # the script loads TensorFlow before it looks for the data
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
                 "--train-size", "--data-dir", "--out", "--likelihood", "--binarize"]:
        assert flag in result.stdout


@pytest.mark.slow  # the script loads TensorFlow before it creates the folders
def test_script_refuses_an_output_folder_it_cannot_create(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_script("vae_2d.py", "--epochs", "1", "--out", blocker / "sub",
                        env_extra={"VAE_DATA_DIR": str(tmp_path / "missing")})
    assert result.returncode == 1
    assert "error: out: cannot create" in result.stderr and "Traceback" not in result.stderr


def test_folders_may_be_given_as_paths_and_are_kept_as_strings(tmp_path):
    """A reader may write out=Path(...) in the script's block: it is checked and stored as text (JSON-able)."""
    config = dataclasses.replace(DEFAULTS, out=tmp_path / "new", data_dir=tmp_path).check()
    assert config.out == str(tmp_path / "new") and config.data_dir == str(tmp_path)


def test_help_is_printed_before_tensorflow_is_imported():
    """--help answers at once: the script parses its flags before the TensorFlow-heavy imports."""
    code = ("import runpy, sys\n"
            "sys.argv = ['vae_2d.py', '--help']\n"
            "try:\n"
            "    runpy.run_path('code/vae_2d.py', run_name='__main__')\n"
            "except SystemExit as exit:\n"
            "    print('exit', exit.code)\n"
            "print('loaded:', sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))\n")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "usage: vae_2d.py" in result.stdout and "exit 0" in result.stdout
    assert "loaded: []" in result.stdout


def test_help_keeps_the_descriptions_line_breaks_and_shows_each_default_once():
    result = run_script("vae_3d.py", "--help")
    assert result.returncode == 0
    assert "\n    python code/vae_3d.py --epochs 5   # override one for this run" in result.stdout
    assert "models/test_encodings_3d.npz" in result.stdout
    for line in result.stdout.split("options:")[1].split("\n  --")[1:]:
        assert line.count("(default:") <= 1, line
    assert "(default: all 60,000)" in " ".join(result.stdout.split())


@pytest.mark.parametrize("version", ["3.9", "3.14"])
def test_an_unsupported_python_gets_one_clear_message_before_any_import_fails(version):
    """Simulated: the package checks sys.version_info first thing."""
    major, minor = map(int, version.split("."))
    result = run_python(f"import sys; sys.version_info = ({major}, {minor}, 0, 'final', 0); "
                        "import runpy; sys.argv = ['vae_2d.py']; runpy.run_path('code/vae_2d.py', run_name='__main__')")
    assert result.returncode == 1
    assert f"error: this tutorial runs on Python 3.10 to 3.13, and this is Python {version}." in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("flag, value", [("--likelihood", "gaussian"), ("--binarize", "yes"), ("--dataset", "svhn"),
                                         ("--architecture", "resnet")])
def test_script_refuses_a_bad_likelihood_or_binarize_flag_before_loading_data(tmp_path, flag, value):
    result = run_script("vae_2d.py", flag, value, "--out", tmp_path,
                        env_extra={"VAE_DATA_DIR": str(tmp_path / "missing")})
    assert result.returncode == 2
    assert f"argument {flag}: invalid choice: '{value}'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "assets").exists()


@pytest.mark.parametrize("field, value, message", [
    ("likelihood", "'gaussian'", "likelihood must be one of 'bernoulli', 'continuous_bernoulli', got 'gaussian'"),
    ("binarize", "True", "binarize must be one of 'off', 'dynamic', got True"),
])
def test_a_bad_value_in_the_main_block_is_refused_by_name_before_loading_data(tmp_path, field, value, message):
    """The reader's own edit of the script's block: the run stops at the flags, with one line."""
    source = (REPO_ROOT / "code" / "vae_2d.py").read_text()
    assert "        seed=0,\n" in source
    script = tmp_path / "vae_2d.py"
    script.write_text(source.replace("        seed=0,\n", f"        seed=0,\n        {field}={value},\n"))
    result = run_python(f"import runpy, sys; sys.argv = ['vae_2d.py', '--out', {str(tmp_path)!r}]; "
                        f"runpy.run_path({str(script)!r}, run_name='__main__')")
    assert result.returncode == 2
    assert f"error: {message}" in result.stderr and "Traceback" not in result.stderr
    assert "MNIST from" not in result.stdout and not (tmp_path / "assets").exists()


def test_the_kl_remedies_flags_set_their_fields_and_free_bits_refuse_a_correlated_prior():
    config = parse_flags(DEFAULTS, ["--kl-warmup-epochs", "10", "--free-bits", "0.25"])
    assert (config.kl_warmup_epochs, config.free_bits) == (10, 0.25)
    assert dataclasses.replace(DEFAULTS, free_bits=0.25, prior_cov=[[2.0, 0.0], [0.0, 0.5]]).check()
    with pytest.raises(ConfigError, match=r"free_bits needs a prior with independent dimensions \(a diagonal prior_cov\)"):
        dataclasses.replace(DEFAULTS, free_bits=0.25, prior_cov=[[1.0, 0.4], [0.4, 0.5]]).check()


@pytest.mark.parametrize("script, flags, message", [
    ("vae_2d.py", ["--epochs", "5", "--kl-warmup-epochs", "5"], "kl_warmup_epochs must be less than epochs (5)"),
    ("vae_correlated.py", ["--free-bits", "0.25"], "free_bits needs a prior with independent dimensions"),
])
def test_script_refuses_a_bad_kl_remedy_flag_before_loading_data(tmp_path, script, flags, message):
    result = run_script(script, *flags, "--out", tmp_path, env_extra={"VAE_DATA_DIR": str(tmp_path / "missing")})
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "assets").exists()


def test_a_bad_kl_remedy_in_the_main_block_is_refused_before_loading_data(tmp_path):
    """The reader's own edit of the 2-D script's block, free_bits=-1: the run stops at the flags, with one line."""
    source = (REPO_ROOT / "code" / "vae_2d.py").read_text()
    assert "        free_bits=0.0," in source
    script = tmp_path / "vae_2d.py"
    script.write_text(source.replace("        free_bits=0.0,", "        free_bits=-1.0,"))
    result = run_python(f"import runpy, sys; sys.argv = ['vae_2d.py', '--out', {str(tmp_path)!r}]; "
                        f"runpy.run_path({str(script)!r}, run_name='__main__')")
    assert result.returncode == 2
    assert "error: free_bits must be from 0 to 10 nats per latent dimension" in result.stderr
    assert "Traceback" not in result.stderr and "MNIST from" not in result.stdout


def test_the_likelihood_defaults_to_the_data_sets_own():
    """Bernoulli for the grey-scale sets, as the tutorial has it; the continuous Bernoulli for CIFAR-10's colours.
    A likelihood named in the block or by a flag is kept."""
    assert Config().check().likelihood == "bernoulli"
    assert Config(dataset="fashion_mnist").check().likelihood == "bernoulli"
    assert Config(dataset="cifar10").check().likelihood == "continuous_bernoulli"
    assert Config(dataset="cifar10", likelihood="bernoulli").check().likelihood == "bernoulli"
    config = parse_flags(DEFAULTS, ["--dataset", "cifar10", "--architecture", "conv"])
    assert (config.dataset, config.architecture, config.likelihood) == ("cifar10", "conv", "continuous_bernoulli")
    assert parse_flags(DEFAULTS, ["--dataset", "cifar10", "--likelihood", "bernoulli"]).likelihood == "bernoulli"


def test_xla_defaults_to_on_for_the_mlp_and_off_for_convolutions():
    """XLA's fused steps run the convolutions about 40× slower on a CPU than TensorFlow's own kernels."""
    assert Config().check().xla is True and Config(architecture="conv").check().xla is False
    assert Config(architecture="conv", xla=True).check().xla is True
    assert parse_flags(DEFAULTS, ["--architecture", "conv"]).xla is False
    assert parse_flags(DEFAULTS, ["--architecture", "conv", "--xla"]).xla is True


@pytest.mark.parametrize("fields, message", [
    ({"binarize": "dynamic"}, "binarize 'dynamic' draws binary images from grey-scale pixels; cifar10 is in colour"),
    ({"train_size": 50001}, "train_size must be from 1 to 50,000, got 50,001"),
])
def test_cifar10_refuses_what_does_not_fit_it(fields, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config(dataset="cifar10", **fields).check()
    Config(dataset="fashion_mnist", **fields).check()  # fine for a grey-scale set of 60,000


def test_each_hyperparameter_is_declared_once_with_one_line_of_help():
    """A field named twice in the class body would silently keep only the second: the source has each once."""
    source = (REPO_ROOT / "code" / "vae" / "config.py").read_text()
    config_class = next(node for node in ast.parse(source).body
                        if isinstance(node, ast.ClassDef) and node.name == "Config")
    declarations = [node for node in config_class.body if isinstance(node, ast.AnnAssign)]
    assert [node.target.id for node in declarations] == [field.name for field in dataclasses.fields(Config)]
    assert all(isinstance(node.value, ast.Call) and node.value.func.id == "hyperparameter" for node in declarations)
    for field in dataclasses.fields(Config):
        assert field.metadata["help"].strip() and "\n" not in field.metadata["help"], field.name
    assert "add_argument(\"--" not in source  # the flags come from the declarations, not written out again


def test_help_lists_every_flag_with_its_help_and_the_blocks_defaults(capsys):
    block = dataclasses.replace(DEFAULTS, epochs=5, xla=True, prior_cov=[[1.0, 0.4], [0.4, 0.5]])
    with pytest.raises(SystemExit) as exit_info:
        parse_flags(block, ["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    joined = "".join(text.split())  # argparse wraps the help at spaces and hyphens
    for field in dataclasses.fields(Config):
        assert flag_name(field.name) in text
        assert "".join(field.metadata["help"].split()) in joined, field.name
    assert "passesoverthetrainingset(default:5)" in joined
    assert "(default:1.0,0.4;0.4,0.5)" in joined and "(default:--xla)" in joined
    assert text.count("(default:") == len(dataclasses.fields(Config))  # each default shown once


def test_flags_markdown_has_a_row_per_flag_with_its_default_and_help():
    lines = flags_markdown().splitlines()
    assert lines[:2] == ["| flag | default | what it does |", "|---|---|---|"]
    rows = [[cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]
    fields = dataclasses.fields(Config)
    assert len(rows) == len(fields)
    for (flag, default, help_text), field in zip(rows, fields):
        assert flag.startswith(f"`{flag_name(field.name)}"), flag
        assert help_text == field.metadata["help"]
    table = {row[0].split("`")[1].split()[0]: row[1] for row in rows}  # "`--train-size N`" → "--train-size"
    assert table["--epochs"] == "`30`" and table["--train-size"] == "all 60,000" and table["--out"] == "the repository"
    assert "p(x\\|z)" in flags_markdown()  # a | in a cell is escaped, so the row keeps its three cells
    assert str(REPO_ROOT) not in flags_markdown()  # nothing of this machine in the README or the page


def test_the_flag_table_loads_no_tensorflow():
    result = run_python("import sys\n"
                        "from vae.config import flags_markdown\n"
                        "assert flags_markdown()\n"
                        "print('loaded:', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout


@pytest.mark.parametrize("module", ["priors", "pixels", "checks", "likelihood"])
def test_the_maths_imports_nothing_from_the_command_line(module):
    """The layers point one way: vae/config.py may import the maths' constants, never the reverse; and the
    maths (priors, pixel likelihoods, ln p(x)) imports neither training nor the runner."""
    tree = ast.parse((REPO_ROOT / "code" / "vae" / f"{module}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    runner = ("vae.config", "vae.experiment", "vae.training", "vae.fused", "vae.distribute", "vae.variants", "vae.start")
    assert not any(name.startswith(runner) for name in imported), imported
    if module == "checks":  # what config.py imports from the maths must not load TensorFlow
        assert imported == {"numpy"}, imported


@pytest.mark.slow  # a second Python loads TensorFlow
def test_importing_the_maths_loads_neither_training_nor_the_runner():
    """Not even through the modules it imports: the maths loads only what it computes with."""
    runner = ("vae.config", "vae.experiment", "vae.training", "vae.fused", "vae.distribute", "vae.variants", "vae.start")
    result = run_python(f"import sys, vae.priors, vae.pixels, vae.likelihood, vae.checks\n"
                        f"print(sorted(m for m in sys.modules if m.startswith({runner!r})))")
    assert result.returncode == 0 and result.stdout.split()[-1] == "[]", result.stdout + result.stderr
