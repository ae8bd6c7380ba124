"""The KL warm-up (vae/schedules.py): its weight in each epoch, and that training uses it, on the fused path
and after a resume."""

import keras
import numpy as np
import pytest

from conftest import REPO_ROOT
from vae.config import Config
from vae.data import read_idx
from vae.fused import FusedTrainFunction
from vae.schedules import KLWarmUp, warmup_kl_weight
from vae.training import train
from vae.variants import build
from vae_2d import VAE, build_decoder, build_encoder


def test_the_weight_rises_linearly_from_zero_then_stays_at_beta():
    assert [warmup_kl_weight(epoch, 2.0, 4) for epoch in range(1, 8)] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert [warmup_kl_weight(epoch, 1.0, 1) for epoch in range(1, 4)] == [0.0, 1.0, 1.0]
    assert [warmup_kl_weight(epoch, 0.5, 0) for epoch in range(1, 4)] == [0.5, 0.5, 0.5]  # no warm-up
    with pytest.raises(ValueError, match="counted from 1"):
        warmup_kl_weight(0, 1.0, 3)


def test_each_epoch_of_a_resumed_fused_run_trains_with_its_weight():
    """A warm-up over 3 epochs to β = 1.5, resumed after epoch 1: epochs 2, 3 and 4 weigh the KL by 0.5, 1.0
    and 1.5. Each epoch's logged loss (training and validation) is reconstruction + β_e·KL, so the compiled
    fused step read the variable anew every epoch; after training the weight is β again, for the evaluation."""
    keras.utils.set_random_seed(0)
    digits = read_idx(REPO_ROOT / "data" / "mnist" / "t10k-images-idx3-ubyte.gz")[:356, ..., None] / 255.0
    x_train, x_val = digits[:256].astype("float32"), digits[256:].astype("float32")
    config = Config(latent_dim=2, epochs=4, beta=1.5, kl_warmup_epochs=3).check()
    vae = build(VAE, build_encoder(2, seed=1), build_decoder(2), config, beta=1.5)  # β a variable the step reads
    history = train(vae, x_train, x_val, 4, 64, 1e-3, seed=0, verbose=0, steps_per_execution=2, fused_steps=2,
                    callbacks=[KLWarmUp(3)], initial_epoch=1)
    assert isinstance(vae.train_function, FusedTrainFunction)  # the fused path ran, not the fallback
    assert history["kl_weight"] == [0.5, 1.0, 1.5]
    weights = np.array(history["kl_weight"])
    for prefix in ["", "val_"]:
        loss, reconstruction, kl = (np.array(history[prefix + name]) for name in ["loss", "reconstruction", "kl"])
        assert np.all(kl > 1.0)  # large enough that a wrong weight would show
        np.testing.assert_allclose(loss, reconstruction + weights * kl, rtol=1e-5, err_msg=prefix + "loss")
    assert float(vae.beta.numpy()) == 1.5
