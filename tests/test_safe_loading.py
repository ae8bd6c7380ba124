"""Model files are loaded only by `load_model_safely`: a file whose saved config names a Lambda layer, or any
class the project's models never hold, is refused before Keras sees it, so nothing it carries ever runs;
a file that is no model gets one line naming it; every committed model loads."""

import json
import os
import subprocess
import sys

import h5py
import pytest

from conftest import CODE_DIR, REPO_ROOT
from vae.saving import UnsafeModelError, load_model_safely

COMMITTED = sorted((REPO_ROOT / "models").glob("*.h5"))

# A script that saves a model whose Lambda layer, if it is ever run, creates the file argv[2], and shows that
# Keras' unsafe loading runs it. It runs in a child process, so that this test's process never holds the function.
WRITE_HOSTILE = """
import os, sys
import keras
marker = sys.argv[2]
touch = eval(f"lambda tensor: (open({marker!r}, 'w').close(), tensor)[1]")  # saved as its bytecode
inputs = keras.Input((2,))
keras.Model(inputs, keras.layers.Lambda(touch)(keras.layers.Dense(2)(inputs))).save(sys.argv[1])
os.remove(marker)  # building the model ran the Lambda once
keras.models.load_model(sys.argv[1], safe_mode=False)
print("unsafe loading ran it:", os.path.exists(marker))
"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """(path of an .h5 whose Lambda layer writes a marker file if run, the marker's path)."""
    folder = tmp_path_factory.mktemp("hostile")
    path, marker = folder / "decoder_2d.h5", folder / "ran"
    written = subprocess.run([sys.executable, "-c", WRITE_HOSTILE, str(path), str(marker)], cwd=CODE_DIR,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True)
    assert "unsafe loading ran it: True" in written.stdout, written.stderr[-2000:]
    marker.unlink()
    return path, marker


def test_a_model_with_a_lambda_layer_is_refused_before_anything_runs(hostile):
    path, marker = hostile
    with pytest.raises(UnsafeModelError) as refused:
        load_model_safely(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: refused to load: it names the class 'Lambda'") and "\n" not in message
    assert not marker.exists()


def rewrite_config(source, target, change):
    """Copy the .h5 file `source` to `target`, its model_config changed by `change(config)` in place."""
    target.write_bytes(source.read_bytes())
    with h5py.File(target, "r+") as file:
        config = json.loads(file.attrs["model_config"])
        change(config)
        file.attrs["model_config"] = json.dumps(config)


def first_layer(config):
    return config["config"]["layers"][1]  # the first layer after the input


@pytest.mark.parametrize("change, named", [
    (lambda config: first_layer(config).update(class_name="Unknown"), "the class 'Unknown'"),
    (lambda config: first_layer(config).update(class_name="os>system"), "the class 'os>system'"),
    (lambda config: first_layer(config).update(module="os"), "the class 'Dense' of module 'os'"),
    (lambda config: first_layer(config).update(registered_name="evil>Dense"),
     "the class 'Dense' registered as 'evil>Dense'"),
    (lambda config: first_layer(config)["config"].update(
        kernel_initializer={"module": "builtins", "class_name": "function", "config": "exec"}),
     "the class 'function' of module 'builtins'"),
    (lambda config: first_layer(config).update(class_name=["Dense"]), "the class (a list)"),
    (lambda config: first_layer(config).update(class_name="X" * 5000), "the class 'XXXXXXXX"),
])
def test_a_config_naming_a_class_the_project_does_not_know_is_refused(tmp_path, change, named):
    path = tmp_path / "decoder.h5"
    rewrite_config(REPO_ROOT / "models" / "decoder_2d.h5", path, change)
    with pytest.raises(UnsafeModelError, match="^" + f"{path}: refused to load: it names {named}".replace("(", r"\(")
                       .replace(")", r"\)")) as refused:
        load_model_safely(path)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 300 + len(str(path))


@pytest.mark.parametrize("make, problem", [
    (lambda path: path.write_bytes(b"not HDF5 at all"), "not a readable HDF5 model file"),
    (lambda path: path.write_bytes((REPO_ROOT / "models" / "decoder_2d.h5").read_bytes()[:5000]),
     "not a readable HDF5 model file"),
    (lambda path: h5py.File(path, "w").close(), "holds no model (no model_config attribute"),
    (lambda path: None, "file not found"),
    (lambda path: path.mkdir(), "not a readable HDF5 model file"),
])
def test_a_file_that_is_no_model_is_one_line_naming_it(tmp_path, make, problem):
    path = tmp_path / "encoder.h5"
    make(path)
    with pytest.raises(ValueError) as refused:
        load_model_safely(path)
    assert str(refused.value).startswith(f"{path}: {problem}") and "\n" not in str(refused.value)


def test_only_h5_files_are_loaded(tmp_path):
    with pytest.raises(ValueError, match=r"decoder.keras: not a .h5 model file"):
        load_model_safely(tmp_path / "decoder.keras")


@pytest.mark.parametrize("path", COMMITTED, ids=[path.name for path in COMMITTED])
def test_every_committed_model_loads(path):
    model = load_model_safely(path)
    assert model.name and model.count_params() > 0
