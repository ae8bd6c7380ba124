"""Training beyond one device: TensorFlow's distribution strategies and Keras' mixed precision.

config.distribute picks the strategy:
- "none": TensorFlow's default, one device (a GPU when TensorFlow sees one, else the CPU);
- "mirrored": `tf.distribute.MirroredStrategy`, one replica per local GPU (or per device in
  config.devices); every step splits the global batch (config.batch_size images) across them;
- "multi_worker": `tf.distribute.MultiWorkerMirroredStrategy`, one process per machine, each
  told the cluster and its own place in it by the TF_CONFIG environment variable (README).

config.precision picks Keras' dtype policy: "float32", or "mixed_float16" (GPUs) and
"mixed_bfloat16" (CPUs, TPUs), which compute the layers in 16 bits and keep the weights, ln σ²,
the logits and the losses in float32 (vae/variants.py).
"""

import json
import os

import keras
import tensorflow as tf

from vae.data import DATASET_SIZES
from vae.evaluation import EVAL_BATCH_SIZE


def setup(config):
    """Set the precision policy and the strategy for every model, optimizer and metric created from
    now on (the chapter scripts build theirs after this); return the strategy.

    Raises SystemExit naming the parameter when this machine cannot do what config asks.
    """
    if config.precision == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
        raise SystemExit("error: precision: mixed_float16 needs a GPU, and TensorFlow sees none here; "
                         "on a CPU use --precision mixed_bfloat16 (or float32)")
    keras.mixed_precision.set_global_policy(config.precision)
    strategy = strategy_for(config)
    if config.distribute != "none":
        check_even_split(config, strategy.num_replicas_in_sync)
        # Everything built from now on is built in the strategy's scope, as if inside `with strategy.scope():`.
        tf.distribute.experimental_set_strategy(strategy)
    return strategy


def check_even_split(config, replicas):
    """Raise SystemExit unless the first batch of training and of evaluation split evenly among `replicas`.

    Keras starts every distributed fit and evaluate by averaging the replicas' shares of the first
    batch, which fails for shares of unequal size ("Inputs to operation AddN must have the same size
    and shape", keras-team/keras#19246). Later batches, a short last one included, may split unevenly.
    """
    first_batch = min(config.batch_size, config.train_size or DATASET_SIZES["mnist"][0])
    if first_batch % replicas:
        raise SystemExit(f"error: batch_size: the first batch of {first_batch} images does not split evenly "
                         f"among {replicas} replicas; use a multiple of {replicas}")
    if EVAL_BATCH_SIZE % replicas:
        raise SystemExit(f"error: distribute: evaluation's batches of {EVAL_BATCH_SIZE} images do not split evenly "
                         f"among {replicas} replicas; use a number of devices that divides {EVAL_BATCH_SIZE}")


def strategy_for(config):
    """The `tf.distribute.Strategy` that config.distribute names."""
    if config.distribute == "mirrored":
        if config.devices is not None:
            known = [device.name for device in tf.config.list_logical_devices()]  # "/device:GPU:0", ...
            for device in config.devices:
                if tf.DeviceSpec.from_string(device).to_string() not in known:  # "/gpu:0" → "/device:GPU:0"
                    raise SystemExit(f"error: devices: {device} is not a device of this machine "
                                     f"(TensorFlow sees {', '.join(known)})")
        strategy = tf.distribute.MirroredStrategy(config.devices)  # default: every local GPU, else the CPU
        if strategy.num_replicas_in_sync == 1:
            # Nothing to mirror, and not harmless: MirroredStrategy feeds even one device through TensorFlow's
            # multi-device input iterator, and on this project's CPU 2 runs in 20 crashed (segmentation fault)
            # as Keras deleted a finished one. Plain training takes the same steps.
            device = tf.DeviceSpec.from_string(strategy.extended.worker_devices[0])
            name = f"/{device.device_type.lower()}:{device.device_index}"  # "/cpu:0"
            raise SystemExit(f"error: distribute: mirrored on one device ({name}) has nothing to mirror and can "
                             f"crash TensorFlow; train without --distribute, or name two or more devices (--devices)")
        return strategy
    if config.distribute == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise SystemExit("error: distribute: multi_worker needs the TF_CONFIG environment variable "
                             "(the cluster's addresses and this worker's place in it; see the README)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief():
    """True for the process that writes the results: the only one, or in a multi-worker cluster
    (TF_CONFIG) the task of type "chief", or worker 0 when there is no chief."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    if "chief" in tf_config.get("cluster", {}):
        return kind == "chief"
    return kind == "worker" and index == 0


def share_of_global_mean(mean, batch_size):
    """This replica's part of the loss over the global batch: `mean`, a scalar averaged over this
    replica's `batch_size` images, times its share of the global batch's images.

    The optimizer sums the replicas' gradients, so these parts must sum to the mean over the global
    batch. Keras' built-in losses divide by the number of replicas instead (`scale_loss_for_distribution`
    in keras/src/losses/loss.py); a loss written by hand, like the VAE's, must scale itself
    (keras-team/keras#19308). Weighting by the share is also exact when a short last batch is split
    unevenly; a replica given no images (mean 0/0 = NaN) adds 0. With one replica: `mean`, untouched.
    """
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return mean
    global_batch_size = replica.all_reduce("sum", batch_size)
    return keras.ops.where(batch_size > 0, mean * (batch_size / global_batch_size), 0.0)


def normal_noise(shape, dtype, seed_generator):
    """ε ~ N(0, I) of `shape`, drawn with `seed_generator` (a `keras.random.SeedGenerator`).

    Every replica holds a copy of the generator's state, so `keras.random.normal` would draw the same
    ε on all of them, for different images. With several replicas, the replica's number is folded
    into the seed (TensorFlow's `stateless_fold_in`), so each draws its own; with one replica this is
    `keras.random.normal`, untouched.
    """
    if _replicas() == 1:
        return keras.random.normal(shape, dtype=dtype, seed=seed_generator)
    return tf.random.stateless_normal(shape, seed=_replica_seed(seed_generator), dtype=dtype)


def uniform_noise(shape, dtype, seed_generator):
    """u ~ U[0, 1) of `shape`, drawn with `seed_generator`, each replica its own: as `normal_noise`.

    Drawn with TensorFlow's stateless Philox generator, named: `keras.random.uniform` leaves the
    algorithm to TensorFlow, whose choice inside an XLA-compiled step on a CPU took 33 ms for one
    batch of 128 × 784 pixels, seven times the rest of the step; Philox takes 1.2 ms. (ThreeFry, 0.6 ms
    under XLA, has no kernel outside XLA, where --no-xla and tf.distribute train.)
    """
    return tf.random.stateless_uniform(shape, seed=_replica_seed(seed_generator), dtype=dtype, alg="philox")


def _replicas():
    """How many replicas the code running now is one of (1 outside a replica context)."""
    replica = tf.distribute.get_replica_context()
    return 1 if replica is None else replica.num_replicas_in_sync


def _replica_seed(seed_generator):
    """The generator's next seed, with this replica's number folded in when there are several."""
    seed = seed_generator.next()
    if _replicas() == 1:
        return seed
    return tf.random.experimental.stateless_fold_in(seed, tf.distribute.get_replica_context().replica_id_in_sync_group)


def as_step_outputs(results):
    """`results`, the dict of scalars a train or test step returns, shaped for Keras to gather.

    Under MultiWorkerMirroredStrategy Keras 3 averages every output of a step along its axis 0,
    which a scalar does not have ("Invalid reduction dimension 0 for input with 0 dimensions",
    tensorflow/tensorflow#72388): there each value becomes a vector of one. Elsewhere: unchanged.
    (The epoch's values come from the trackers themselves, summed over every replica.)
    """
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return {name: keras.ops.reshape(value, (1,)) for name, value in results.items()}
    return results
