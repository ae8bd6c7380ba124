"""The KL term's weight over training: a KL warm-up (Bowman et al. 2016).

From the first step, the KL pulls every posterior q(z|x) towards the prior, while the decoder has not
yet learned to use the code: a dimension the decoder does not use yet costs KL and gains nothing, so it
may be pushed to the prior for good ("posterior collapse"). A warm-up weighs the KL less at first,
rising linearly from 0 over the first N epochs, so that the code is put to use before the KL pulls:

    epoch e = 1, 2, ... trains with weight β·(e − 1)/N while e ≤ N, and with β from epoch N + 1 on.

So epoch 1 trains with weight 0 (an autoencoder with noisy codes), epoch N with β·(N − 1)/N.
`KLWarmUp` sets the model's β, a variable in a run with a warm-up (vae/variants.py), before each epoch:
the compiled train step reads the variable, so nothing is recompiled, and the fused path (vae/fused.py) uses it too.
(A module of its own rather than vae/training.py: it changes what is minimized, not how fast.)
"""

import keras


def warmup_kl_weight(epoch, beta, warmup_epochs):
    """The KL's weight in epoch `epoch` (1, 2, ...) of a run with a warm-up of `warmup_epochs` epochs
    (0: none) to the weight `beta`: beta·(epoch − 1)/warmup_epochs while epoch ≤ warmup_epochs, then beta."""
    if epoch < 1:
        raise ValueError(f"epochs are counted from 1, got {epoch}")
    if epoch > warmup_epochs:
        return float(beta)
    return float(beta) * (epoch - 1) / warmup_epochs


class KLWarmUp(keras.callbacks.Callback):
    """Sets the model's variable `beta` to `warmup_kl_weight` of its `target_beta` at the start of every
    epoch, and back to `target_beta` when training ends, so that the final evaluation weighs the KL fully.

    Keras numbers the epochs from `initial_epoch`, so a resumed run picks up the schedule where it
    stopped. Each epoch's weight is added to its logs (and so to the history) as "kl_weight".
    """

    def __init__(self, warmup_epochs):
        super().__init__()
        self.warmup_epochs = warmup_epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.weight = warmup_kl_weight(epoch + 1, self.model.target_beta, self.warmup_epochs)  # Keras counts from 0
        self.model.beta.assign(self.weight)

    def on_epoch_end(self, epoch, logs=None):
        logs["kl_weight"] = self.weight  # the weight this epoch's loss and val_loss used

    def on_train_end(self, logs=None):
        self.model.beta.assign(self.model.target_beta)
