"""The exported SavedModel: raw uint8 images in, class probabilities out.

Scaling and softmax live inside the serving graph, so a client sends the
dataset's own pixels and never repeats the preprocessing.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from mnistpipe.datasets import IMAGE_SIDE
from mnistpipe.errors import PipelineError
from mnistpipe.models import probabilities

SIGNATURE = "serving_default"
PARITY_TOLERANCE = 1e-5
_BATCH = 1000


def export_saved_model(model: keras.Model, directory: str | os.PathLike) -> None:
    """Write ``model`` with a serving signature taking uint8 images shaped (N, 28, 28)."""
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(images):
        # The same float32 division the preprocess stage does, so scores match exactly.
        scaled = tf.cast(images, tf.float32) / tf.constant(255.0, tf.float32)
        return tf.nn.softmax(model(scaled[..., tf.newaxis], training=False))

    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[tf.TensorSpec((None, IMAGE_SIDE, IMAGE_SIDE), tf.uint8, name="images")],
    )
    archive.write_out(str(directory), verbose=False)


def load_serving_function(directory: str | os.PathLike):
    """The serving signature of the SavedModel at ``directory``, loaded fresh."""
    try:
        loaded = tf.saved_model.load(str(directory))
    except (OSError, ValueError) as error:
        raise PipelineError(f"cannot load SavedModel {directory}: {error}") from None
    signature = loaded.signatures[SIGNATURE]

    def probabilities(images: np.ndarray) -> np.ndarray:
        outputs = signature(images=tf.constant(images, dtype=tf.uint8))
        return next(iter(outputs.values())).numpy()

    # Keep the loaded object alive as long as the function is used.
    probabilities.loaded = loaded
    return probabilities


def predict_in_batches(function, images: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [function(images[start : start + _BATCH]) for start in range(0, len(images), _BATCH)]
    )


def parity(
    model: keras.Model,
    directory: str | os.PathLike,
    raw_images: np.ndarray,
    scaled_images: np.ndarray,
) -> dict:
    """Compare the SavedModel on raw images with the trained model on preprocessed ones.

    Returns the figures; raises ``PipelineError`` unless every argmax agrees and
    no probability differs by more than ``PARITY_TOLERANCE``.
    """
    exported = predict_in_batches(load_serving_function(directory), raw_images)
    trained = probabilities(model.predict(scaled_images, batch_size=_BATCH, verbose=0))
    argmax_disagreements = int(np.sum(exported.argmax(axis=1) != trained.argmax(axis=1)))
    max_difference = float(np.max(np.abs(exported - trained)))
    if argmax_disagreements or max_difference > PARITY_TOLERANCE:
        raise PipelineError(
            f"exported model {directory} disagrees with the trained model: "
            f"{argmax_disagreements} of {len(raw_images)} predicted classes differ, largest "
            f"probability difference {max_difference:.2e}; expected 0 and <= {PARITY_TOLERANCE:g}"
        )
    return {
        "argmax_disagreements": argmax_disagreements,
        "max_probability_difference": max_difference,
        "predictions": exported,
    }
