"""The page shows the code that runs: every listing in page/tutorial.md comes from a chapter file and names a
class or function that the chapters' default runs call."""

import re
import sys
from pathlib import Path

import keras
import numpy as np

from vae.config import Config
from vae.variants import build

REPO_ROOT = Path(__file__).resolve().parents[1]
LISTING = re.compile(r'source\("([^"]+)", "([^"]+)"\)')


def listings():
    """[(file, name)] of every `source(file, name)` listing in page/tutorial.md."""
    return LISTING.findall((REPO_ROOT / "page" / "tutorial.md").read_text())


def calls_of_a_default_step(chapter, vae_class, **kwargs):
    """{(file name, qualified name)} of every Python function that building the chapter's default model and one
    training and evaluation step run (eagerly, so that the steps run as Python)."""
    import vae_2d

    called = set()

    def profile(frame, event, arg):
        if event == "call":
            called.add((Path(frame.f_code.co_filename).name, frame.f_code.co_qualname))

    config = Config(latent_dim=2, **{key: value for key, value in kwargs.items() if key == "prior_cov"}).check(2)
    images = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    sys.setprofile(profile)
    try:
        encoder = vae_2d.build_encoder(2, seed=0)
        decoder = vae_2d.build_decoder(2)
        vae = build(vae_class, encoder, decoder, config, **kwargs)
        vae.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
        vae.fit(images, epochs=1, batch_size=8, verbose=0)
        vae.evaluate(images, batch_size=8, verbose=0)
    finally:
        sys.setprofile(None)
    return called


def test_every_listing_is_from_a_chapter_and_runs_in_its_default_run():
    import vae_2d
    import vae_correlated

    called = (calls_of_a_default_step("2d", vae_2d.VAE)
              | calls_of_a_default_step("correlated", vae_correlated.CorrelatedVAE,
                                        prior_cov=[[1.0, 0.4], [0.4, 0.5]]))
    shown = listings()
    assert len(shown) >= 7
    for path, name in shown:
        assert re.fullmatch(r"code/vae_\w+\.py", path), f"{path}: a listing not taken from a chapter file"
        file = Path(path).name
        ran = {qualname for called_file, qualname in called if called_file == file}
        assert name in ran or any(q.startswith(name + ".") for q in ran), f"{path}: {name} does not run"


def test_the_check_fails_for_a_function_the_default_run_does_not_call():
    """The listing check itself: the continuous Bernoulli's reconstruction term runs only with its flag."""
    import vae_2d

    called = calls_of_a_default_step("2d", vae_2d.VAE)
    assert ("vae_2d.py", "VAE.train_step") in called
    assert ("variants.py", "ContinuousBernoulli.reconstruction_loss") not in called
