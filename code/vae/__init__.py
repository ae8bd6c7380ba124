"""The machinery behind the tutorial's scripts: data, model, priors, training, evaluation, figures, saving."""

import os

# Keep TensorFlow's C++ start-up messages (CUDA probing, CPU feature notes) out of the
# tutorial's output; warnings and errors still show. Set the variable yourself to override.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
