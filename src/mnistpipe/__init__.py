"""Shared code of the Fashion-MNIST / MNIST DVC pipeline.

Each stage script under ``stages/`` is a short ``main()``; everything it needs
more than once (params, IDX parsing, models, metrics, atomic file writing)
lives here, once.
"""

import os

# TensorFlow's C++ start-up chatter (CPU feature notes, oneDNN notices) buries
# the stages' own one-line reports; keep its warnings and errors only.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
