"""Seeds for Python, NumPy, TensorFlow and Keras, and op determinism: identical reruns."""

import keras
import tensorflow as tf


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; optionally make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
