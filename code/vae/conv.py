"""--architecture conv: convolutional encoder and decoder, for images of any size and number of channels.

They take the place of a chapter's dense networks (vae/variants.py) and keep their names and outputs:
the encoder gives [z_mean, z_log_var, z], each (batch, latent_dim); the decoder's layer "logits" gives one
logit per pixel and channel, flattened, (batch, h·w·c), and its output is the pixel means, (batch, h, w, c).
With `num_classes` (the conditional chapter) each also takes the label, an integer (batch,), one-hot.
"""


import keras
from keras import layers

# The encoder's filters, each layer halving the height and width (kernel 4, stride 2); the decoder's
# transposed convolutions double them back in reverse order. A kernel of 4 at stride 2 covers every
# output pixel equally often, where a kernel of 3 leaves a checkerboard in the decoded images.
CONV_FILTERS = (32, 64)
CONV_KERNEL = 4


def with_label(features, network_input, num_classes):
    """(features joined to the one-hot label, [network_input, label input]) for a conditional network;
    otherwise (features, network_input) unchanged."""
    if not num_classes:
        return features, network_input
    label = keras.Input(shape=(), dtype="int32", name="label")
    one_hot = layers.CategoryEncoding(num_classes, output_mode="one_hot", name="one_hot")(label)
    return layers.Concatenate(name="with_label")([features, one_hot]), [network_input, label]


def build_conv_encoder(latent_dim, image_shape, sampling, seed=None, num_classes=None):
    """image → Conv2D 32 → Conv2D 64 (kernel 4, stride 2, relu: 28×28×1 → 14×14×32 → 7×7×64; an odd side
    rounds up) → Flatten → Dense 256 relu → [z_mean, z_log_var, z]. `sampling`: the chapter's Sampling class."""
    images = keras.Input(shape=image_shape, name="image")
    x = images
    for filters in CONV_FILTERS:
        x = layers.Conv2D(filters, CONV_KERNEL, strides=2, padding="same", activation="relu")(x)
    x, inputs = with_label(layers.Flatten()(x), images, num_classes)
    x = layers.Dense(256, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = sampling(seed=seed, name="z")([z_mean, z_log_var])
    return keras.Model(inputs, [z_mean, z_log_var, z], name="encoder")


def build_conv_decoder(latent_dim, image_shape, num_classes=None):
    """z → Dense 256 relu → Dense 7·7·64 relu → Reshape 7×7×64 → Conv2DTranspose 64 → 32 (kernel 4, stride 2,
    relu: → 14×14×64 → 28×28×32) → Conv2D (kernel 3), one filter per channel → logits, flattened → sigmoid →
    image_shape. Sizes are for 28×28; a side that is not a multiple of 4 is decoded 4·⌈side/4⌉ long and cropped."""
    height, width, channels = image_shape
    z = keras.Input(shape=(latent_dim,), name="z")
    x, inputs = with_label(z, z, num_classes)
    x = layers.Dense(256, activation="relu")(x)
    scale = 2 ** len(CONV_FILTERS)  # the encoder's downsampling: 4
    small = (-(-height // scale), -(-width // scale))  # ⌈side / 4⌉: 7×7 for 28×28, 8×8 for 32×32
    x = layers.Dense(small[0] * small[1] * CONV_FILTERS[-1], activation="relu")(x)
    x = layers.Reshape((*small, CONV_FILTERS[-1]))(x)
    for filters in reversed(CONV_FILTERS):
        x = layers.Conv2DTranspose(filters, CONV_KERNEL, strides=2, padding="same", activation="relu")(x)
    extra = (small[0] * scale - height, small[1] * scale - width)
    if any(extra):  # the rows and columns beyond the image, cut from both sides
        x = layers.Cropping2D([(side // 2, side - side // 2) for side in extra])(x)
    x = layers.Conv2D(channels, 3, padding="same", name="logit_image")(x)
    logits = layers.Flatten(name="logits")(x)  # (batch, h·w·c), in the order images are flattened
    pixels = layers.Activation("sigmoid", name="pixel_means")(logits)
    images = layers.Reshape(image_shape, name="image")(pixels)
    return keras.Model(inputs, images, name="decoder")
