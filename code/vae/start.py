"""The first thing a chapter script does, before TensorFlow loads: `start(__file__)`.

TensorFlow takes seconds to import. So that `--help` and a refused flag answer at once, and Ctrl-C
while TensorFlow loads prints one line instead of a traceback, a chapter calls `start` above its
`import keras`. It checks the platform, keeps TensorFlow's C++ start-up notes quiet, and reads the
chapter's hyperparameter block (the `Config(...)` at its bottom) without running it, to answer
`--help` or refuse a bad flag. The block's real parse, at the bottom, then finds the flags valid.
"""

import ast
import os
import re
import sys
import tempfile
import time

# The Python versions this code and its pinned TensorFlow and Keras run on. On others a script would
# fail later with a confusing error (3.9 lacks `X | None`; 3.14 has no TensorFlow 2.21), so say it first.
SUPPORTED_PYTHON = ((3, 10), (3, 13))

# When the script started, for its metrics' seconds_total (imports, training, figures, saving).
started = time.perf_counter()


def start(script):
    """Check the platform, quiet TensorFlow's C++ notes, answer --help and refuse bad flags for the chapter
    `script` (its __file__), and turn a Ctrl-C before the run begins into one line. Only for the script that
    Python runs: a chapter imported by another (vae_3d.py imports vae_2d.py) or by a test starts nothing."""
    global started
    main = sys.modules.get("__main__")
    if os.path.realpath(script) != os.path.realpath(getattr(main, "__file__", None) or "."):
        return  # imported by another chapter or a test: that one's own start does this
    started = time.perf_counter()
    if not SUPPORTED_PYTHON[0] <= tuple(sys.version_info[:2]) <= SUPPORTED_PYTHON[1]:
        raise SystemExit(
            "error: this tutorial runs on Python 3.10 to 3.13, and this is Python {}.{}. Create its "
            "virtual environment with a supported Python, e.g. `python3.12 -m venv .venv`.".format(*sys.version_info[:2]))
    # The run lock (vae/saving.py) uses POSIX file locking, and TensorFlow has no GPU support on native
    # Windows since 2.11: the tutorial runs there inside WSL2.
    if os.name == "nt":
        raise SystemExit("error: this tutorial runs on Linux and macOS; on Windows, run it inside WSL2 "
                         "(Windows Subsystem for Linux) with the Linux commands of README.md.")
    # Keep TensorFlow's C++ start-up messages (CUDA probing, CPU feature notes) out of the tutorial's
    # output; warnings and errors still show. Set the variable yourself to see them all.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.excepthook = _report_interrupt
    defaults = block_defaults(script)
    if defaults is not None:
        from vae.config import parse_flags  # loads no TensorFlow
        parse_flags(*defaults)  # exits on --help or a bad flag; the block parses the flags again, for real
    import_tensorflow()


def import_tensorflow():
    """Import TensorFlow and let it look for GPUs, printing its C++ start-up lines once each.

    Its two libraries each log the same lines as they load, before any setting can quiet them, and the
    search for a GPU logs another line later, in the middle of a run's own output. Here they are caught
    while they are written, and each is printed once, before the run prints anything.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines = caught.read().decode(errors="replace").splitlines()
    seen = set()
    for line in lines:
        text = re.sub(r"^[IWEF]\d{4} [\d:.]+ +\d+ ", "", line)  # without the time and thread of glog's prefix
        if text not in seen:
            seen.add(text)
            print(line, file=sys.stderr)


def _report_interrupt(kind, error, traceback):
    """sys.excepthook until a run starts (vae.experiment sets its own): Ctrl-C while TensorFlow is
    still loading gets one line instead of a traceback; Python then exits by SIGINT, status 130."""
    if issubclass(kind, KeyboardInterrupt):
        print("\nInterrupted before the run started; nothing was written.", file=sys.stderr)
    else:
        sys.__excepthook__(kind, error, traceback)


def block_defaults(script):
    """(Config of the block's values, argv, min_latent_dim, docstring) read from the chapter file `script`
    without running it, or None when the block is not plain literals (then the real parse alone checks it).

    The block is the `hyperparameters = Config(...)` in `if __name__ == "__main__":`, and the
    `parse_flags(hyperparameters, min_latent_dim=N, ...)` call beside it.
    """
    from vae.config import Config  # loads no TensorFlow

    try:
        with open(script, encoding="utf-8") as file:
            tree = ast.parse(file.read())
        fields, min_latent_dim = None, 1
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == "Config":
                    fields = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
                elif node.func.id == "parse_flags":
                    min_latent_dim = next((ast.literal_eval(k.value) for k in node.keywords
                                           if k.arg == "min_latent_dim"), 1)
        if fields is None:
            return None
        return Config(**fields), None, min_latent_dim, ast.get_docstring(tree)
    except (OSError, SyntaxError, ValueError, TypeError):
        return None
