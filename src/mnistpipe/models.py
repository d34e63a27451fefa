"""The model presets. Every model maps (N, 28, 28, 1) float32 images to 10 logits.

- ``mlp``: the Fashion-MNIST basic classification tutorial's model.
- ``quickstart_cnn``: the TF2 quickstart's subclassed model.
- ``convnet``: the default, a small Conv-BatchNorm network that is far more
  accurate than both and still trains in minutes on two CPU cores.
"""

import keras
import numpy as np
from keras import layers

from mnistpipe.datasets import IMAGE_SIDE, NUM_CLASSES
from mnistpipe.errors import PipelineError

INPUT_SHAPE = (IMAGE_SIDE, IMAGE_SIDE, 1)
# The last layer computes in float32 even under mixed precision (Keras' advice):
# float16 logits would lose precision in the softmax, and the model's outputs
# keep one dtype whatever the policy.
LOGITS_DTYPE = "float32"


def build_mlp(dropout_rate: float) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(dropout_rate),
            layers.Dense(NUM_CLASSES, dtype=LOGITS_DTYPE),
        ],
        name="mlp",
    )


# Registered so that the .keras file can name the class and safe_mode loading
# can rebuild it without running arbitrary code.
@keras.saving.register_keras_serializable(package="mnistpipe")
class QuickstartModel(keras.Model):
    """The quickstart's subclassed model: Conv2D(32, 3) → Flatten → Dense(128) → Dense(10)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = layers.Conv2D(32, 3, activation="relu")
        self.flatten = layers.Flatten()
        self.d1 = layers.Dense(128, activation="relu")
        self.d2 = layers.Dense(NUM_CLASSES, dtype=LOGITS_DTYPE)

    def call(self, x):
        x = self.conv1(x)
        x = self.flatten(x)
        x = self.d1(x)
        return self.d2(x)


def build_quickstart_cnn() -> keras.Model:
    model = QuickstartModel(name="quickstart_cnn")
    # Subclassed models create their weights on the first call; build now so
    # that summaries, weight counts and saving work before training.
    model(keras.ops.zeros((1, *INPUT_SHAPE)))
    return model


def probabilities(logits) -> np.ndarray:
    """Class probabilities from the models' logits, as a NumPy array."""
    return keras.ops.convert_to_numpy(keras.ops.softmax(logits))


def _conv_block(x, filters: int):
    # Bias is redundant before BatchNormalization, which adds its own offset.
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    # Momentum 0.9 rather than Keras' 0.99: with a few hundred steps an epoch the
    # moving statistics then track the weights, so validation accuracy is right
    # from the first epoch instead of lagging several epochs behind.
    x = layers.BatchNormalization(momentum=0.9)(x)
    return layers.Activation("relu")(x)


def build_convnet(dropout_rate: float) -> keras.Model:
    inputs = keras.Input(shape=INPUT_SHAPE)
    x = inputs
    # Three Conv-BatchNorm blocks, each halving the resolution: 28 → 14 → 7 → 3.
    for filters in (32, 64, 128):
        x = _conv_block(x, filters)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout_rate)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(dropout_rate)(x)
    outputs = layers.Dense(NUM_CLASSES, dtype=LOGITS_DTYPE)(x)
    return keras.Model(inputs, outputs, name="convnet")


def build_model(name: str, dropout_rate: float) -> keras.Model:
    if name == "mlp":
        return build_mlp(dropout_rate)
    if name == "quickstart_cnn":
        return build_quickstart_cnn()
    if name == "convnet":
        return build_convnet(dropout_rate)
    raise PipelineError(f"train.model is {name!r}; expected one of: convnet, mlp, quickstart_cnn")


def load_model(path) -> keras.Model:
    """Load a ``.keras`` model with ``safe_mode=True``: no Lambda layers, no pickled code."""
    path = str(path)
    if not path.endswith(".keras"):
        raise PipelineError(f"{path} is not a .keras file; only .keras models are loaded")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (OSError, ValueError, TypeError) as error:
        raise PipelineError(f"cannot load model {path}: {error}") from None
