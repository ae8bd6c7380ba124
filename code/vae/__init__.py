"""The machinery behind the tutorial's scripts: data, model, priors, training, evaluation, figures, saving."""

import os
import time

# When a script first imports the package, before TensorFlow loads: its run's start, for seconds_total.
STARTED = time.perf_counter()

# Keep TensorFlow's C++ start-up messages (CUDA probing, CPU feature notes) out of the
# tutorial's output; warnings and errors still show. Set the variable yourself to override.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
