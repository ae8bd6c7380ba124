"""Ctrl-C during a run: noted when it arrives, acted on at the next step, never lost.

Python's own Ctrl-C handling raises KeyboardInterrupt wherever the signal lands. During training
that is often inside TensorFlow's C++ code as it calls back into Python, which can swallow the
exception: the run then trained on, finished and replaced the outputs. So while a run is alive,
Ctrl-C only records the request (`install`), and the run itself raises KeyboardInterrupt at the
next point it controls (`check`): after every training call (at most 64 steps, a fraction of a
second), after every validation batch and epoch, and between the stages after training. From
there the usual path runs: one line saying what happened, exit status 130.

A second Ctrl-C raises KeyboardInterrupt at once, for a run stuck where no check comes.
"""

import signal
import sys

import keras

_requested = False


def install():
    """Make Ctrl-C (SIGINT) a stop request for the run starting now (a script's run, not an import).

    A run started in the background by a shell ignores Ctrl-C, and keeps ignoring it. In a notebook's kernel
    (IPython) nothing changes: the kernel's interrupt button must stay the kernel's.
    """
    global _requested
    _requested = False
    if "IPython" in sys.modules and sys.modules["IPython"].get_ipython() is not None:
        return
    if signal.getsignal(signal.SIGINT) in (signal.default_int_handler, _on_sigint):
        signal.signal(signal.SIGINT, _on_sigint)


def uninstall():
    """Give Ctrl-C back to Python (a KeyboardInterrupt where it lands) once the run is over: in a notebook's
    kernel the next cell is then interrupted at once again."""
    if signal.getsignal(signal.SIGINT) is _on_sigint:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _on_sigint(signum, frame):
    global _requested
    if _requested:  # the second Ctrl-C: stop now, wherever the run is
        raise KeyboardInterrupt
    _requested = True  # nothing printed yet: the run says it when it stops


def check():
    """Raise KeyboardInterrupt if Ctrl-C has been pressed: the run stops here."""
    if _requested:
        raise KeyboardInterrupt


class StopOnRequest(keras.callbacks.Callback):
    """Stops `fit` with KeyboardInterrupt at the first batch or epoch boundary after a Ctrl-C.

    Put it after the callback that saves each epoch's checkpoint, so that an epoch that just
    finished is saved before the run stops.
    """

    def on_train_batch_end(self, batch, logs=None):
        check()

    def on_test_batch_end(self, batch, logs=None):
        check()

    def on_epoch_begin(self, epoch, logs=None):
        check()

    def on_epoch_end(self, epoch, logs=None):
        check()
