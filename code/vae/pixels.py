"""The decoder's likelihood p(x|z) per pixel: Bernoulli or continuous Bernoulli.

The decoder gives every pixel a logit l, and λ = σ(l). Both likelihoods are exponential families
with l as their natural parameter: ln p(x|l) = x·l − A(l), with A(l) the log-partition function.

- "bernoulli": p(x|λ) = λˣ (1 − λ)¹⁻ˣ, A(l) = softplus(l) = ln(1 + eˡ). It sums to 1 over x ∈ {0, 1};
  on grayscale x ∈ [0, 1] (the tutorial's default) it is the binary cross-entropy, which is not a
  density over [0, 1]. Its mean is λ.
- "continuous_bernoulli" (Loaiza-Ganem & Cunningham 2019): the same λˣ (1 − λ)¹⁻ˣ times C(λ), with
  C(λ) = 2 atanh(1 − 2λ)/(1 − 2λ), the constant that makes it integrate to 1 over x ∈ [0, 1]; in
  logits C = l / tanh(l/2), and A(l) = softplus(l) − ln C = ln((eˡ − 1)/l). Its mean is not λ but
  E[x] = λ/(2λ − 1) + 1/(2 atanh(1 − 2λ)) = σ(l)/tanh(l/2) − 1/l, closer to ½.

Logits are float32, any shape; log-likelihoods are nats, summed over the pixels of each image.
"""

import math

import keras
from keras import layers, ops

from vae.checks import LIKELIHOODS

LOG_2 = math.log(2.0)
# Below this |l|, ln C(l) and the mean are computed from their Taylor series: their closed forms
# subtract two terms of size about 1/l there, and lose digits (and at l = 0 are 0/0).
SMALL_LOGIT = 0.1


def _check(likelihood):
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {', '.join(map(repr, LIKELIHOODS))}, got {likelihood!r}")


def _split_at_small(logits):
    """(small, near, far): where |l| < SMALL_LOGIT, and the logits as each branch may see them.

    The "double where": the series sees 0 where it is not used and the closed form sees 1 where it
    is not used, so neither branch meets an input it cannot handle (l⁴ overflowing, 1/0). A plain
    `where` would still differentiate the unused branch, and 0 × NaN is NaN.
    """
    small = ops.abs(logits) < SMALL_LOGIT
    return small, ops.where(small, logits, 0.0), ops.where(small, 1.0, logits)


def continuous_bernoulli_log_normalizer(logits):
    """ln C(l) = ln(l / tanh(l/2)), elementwise, same shape as `logits`: ln 2 at l = 0, about ln|l| far out.

    Closed form ln|l| − ln|tanh(l/2)| for |l| ≥ SMALL_LOGIT; below, the series
    ln 2 + l²/12 − 7 l⁴/1440 (the next term, 31 l⁶/90720, is below 4·10⁻¹⁰ there).
    Finite, with a finite gradient, for every finite float32 logit.
    """
    small, near, far = _split_at_small(logits)
    square = near * near
    series = LOG_2 + square / 12 - 7 * square * square / 1440
    closed = ops.log(ops.abs(far)) - ops.log(ops.abs(ops.tanh(far / 2)))
    return ops.where(small, series, closed)


def continuous_bernoulli_mean(logits):
    """E[x] = σ(l)/tanh(l/2) − 1/l, elementwise, same shape as `logits`, in [0, 1]: ½ at l = 0.

    Below SMALL_LOGIT the series ½ + l/12 − l³/720 (the next term, l⁵/30240, is below 4·10⁻¹⁰ there).
    """
    small, near, far = _split_at_small(logits)
    series = 0.5 + near / 12 - near * near * near / 720
    closed = ops.sigmoid(far) / ops.tanh(far / 2) - 1 / far
    return ops.where(small, series, closed)


def log_partition(logits, likelihood="bernoulli"):
    """A(l) of each pixel, same shape as `logits`, such that ln p(x|l) = x·l − A(l), in nats."""
    _check(likelihood)
    if likelihood == "bernoulli":
        return ops.softplus(logits)
    return ops.softplus(logits) - continuous_bernoulli_log_normalizer(logits)


def log_likelihood(pixels, logits, likelihood="bernoulli"):
    """ln p(x|l) summed over the pixels: (batch,) nats per image.

    pixels: (batch, 784) in [0, 1]; logits: (batch, 784). The Bernoulli part is minus the binary
    cross-entropy, computed from the logits, log σ(l) = −softplus(−l): exact and stable even where
    a sigmoid output would round to 0 or 1. The continuous Bernoulli adds its normalizer Σ ln C(l).
    """
    _check(likelihood)
    bernoulli = -ops.sum(ops.binary_crossentropy(pixels, logits, from_logits=True), axis=-1)
    if likelihood == "bernoulli":
        return bernoulli
    return bernoulli + ops.sum(continuous_bernoulli_log_normalizer(logits), axis=-1)


@keras.saving.register_keras_serializable(package="vae")
class ContinuousBernoulliMean(layers.Layer):
    """Logits → the continuous Bernoulli's mean (`continuous_bernoulli_mean`), same shape, in [0, 1].

    The decoder's layer "pixel_means" for likelihood="continuous_bernoulli" (vae/variants.py), where the
    Bernoulli's is a sigmoid.
    """

    def call(self, logits):
        return continuous_bernoulli_mean(logits)


def decoder_likelihood(decoder):
    """The likelihood a decoder (built by a chapter's build_decoder, or loaded from its .h5) was trained
    with, told by the class of its layer "pixel_means": "bernoulli" or "continuous_bernoulli".

    Raises ValueError for a decoder without such a layer.
    """
    try:
        layer = decoder.get_layer("pixel_means")
    except ValueError:
        raise ValueError("it has no layer named 'pixel_means' (the layer after its logits)") from None
    if isinstance(layer, ContinuousBernoulliMean):
        return "continuous_bernoulli"
    if isinstance(layer, layers.Activation) and getattr(layer.activation, "__name__", None) == "sigmoid":
        return "bernoulli"
    raise ValueError(f"its layer 'pixel_means' ({type(layer).__name__}) is neither a sigmoid (Bernoulli) nor "
                     f"a ContinuousBernoulliMean, so its likelihood is unknown")
