"""The fused training path before and after the chapters took their model back (the refactor of vae/model.py into
code/vae_2d.py and vae/variants.py): one process per measurement, the same 4 epochs on all of MNIST.

    git worktree add --detach ../before 6352a0f      # the last commit with vae/model.py
    for i in 1 2 3 4; do for side in ../before .; do (cd $side && python benchmarks/chapter_speed.py); done; done

Run from a checkout's root; it trains that checkout's 2-D model (vae/model.py's before the refactor, the
chapter's after it) through vae.training.train, the fused path, and prints one JSON line with the seconds of
each epoch (the first includes XLA's compiling). Alternate the two sides, on one machine.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "code"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from vae.data import load_mnist  # noqa: E402
from vae.training import train  # noqa: E402

try:  # before the refactor
    from vae.model import VAE, build_decoder, build_encoder  # noqa: E402
    side = "vae/model.py"
except ImportError:  # after it
    from vae_2d import VAE, build_decoder, build_encoder  # noqa: E402
    side = "code/vae_2d.py"

(x_train, _), (x_test, _) = load_mnist()
keras.utils.set_random_seed(0)
vae = VAE(build_encoder(2, seed=0), build_decoder(2))
history = train(vae, x_train, x_test, epochs=4, batch_size=128, learning_rate=1e-3, seed=0, verbose=0)
print(json.dumps({"model": side, "seconds": [round(s, 3) for s in history["seconds"]], "val_loss": history["val_loss"][-1]}))
