"""The machinery behind the tutorial's scripts: data, model, priors, training, evaluation, figures, saving."""

import os
import sys
import time

# When a script first imports the package, before TensorFlow loads: its run's start, for seconds_total.
STARTED = time.perf_counter()

# The Python versions this code and its pinned TensorFlow and Keras run on. On others a script would
# fail later with a confusing error (3.9 lacks `X | None`; 3.14 has no TensorFlow 2.21), so say it first.
SUPPORTED_PYTHON = ((3, 10), (3, 13))
if not SUPPORTED_PYTHON[0] <= tuple(sys.version_info[:2]) <= SUPPORTED_PYTHON[1]:
    raise SystemExit(
        "error: this tutorial runs on Python 3.10 to 3.13, and this is Python {}.{}. Create its "
        "virtual environment with a supported Python, e.g. `python3.12 -m venv .venv`.".format(*sys.version_info[:2])
    )

# The run lock (vae/saving.py) uses POSIX file locking, and TensorFlow has no GPU support on native
# Windows since 2.11: the tutorial runs there inside WSL2.
if os.name == "nt":
    raise SystemExit("error: this tutorial runs on Linux and macOS; on Windows, run it inside WSL2 "
                     "(Windows Subsystem for Linux) with the Linux commands of README.md.")

# Keep TensorFlow's C++ start-up messages (CUDA probing, CPU feature notes) out of the
# tutorial's output; warnings and errors still show. Set the variable yourself to override.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _report_interrupt(kind, error, traceback):
    """sys.excepthook until a run starts (vae.experiment sets its own): Ctrl-C while TensorFlow is
    still loading gets one line instead of a traceback; Python then exits by SIGINT, status 130."""
    if issubclass(kind, KeyboardInterrupt):
        print("\nInterrupted before the run started; nothing was written.", file=sys.stderr)
    else:
        sys.__excepthook__(kind, error, traceback)


sys.excepthook = _report_interrupt
