"""The exported SavedModel: raw uint8 images in, class probabilities out.

Scaling and softmax live inside the serving graph, so a client sends the
dataset's own pixels and never repeats the preprocessing.
"""

import hashlib
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import fingerprint_pb2

from mnistpipe.datasets import IMAGE_SIDE
from mnistpipe.errors import PipelineError
from mnistpipe.models import probabilities

SIGNATURE = "serving_default"
OUTPUT = "probabilities"
PARITY_TOLERANCE = 1e-5
_BATCH = 1000


def export_saved_model(model: keras.Model, directory: str | os.PathLike) -> None:
    """Write ``model`` with a serving signature taking uint8 images shaped (N, 28, 28).

    The same model gives the same bytes. Keras' ``ExportArchive`` lists the
    variables in the order TensorFlow's identity set yields them (memory
    addresses), so this tracks them in the model's own order; it leaves out
    the variables serving never reads (Dropout's seed state, random at every
    load); and it replaces the random UUID TensorFlow writes into
    ``fingerprint.pb`` by one derived from the SavedModel's own hashes.
    """

    @tf.function(
        input_signature=[tf.TensorSpec((None, IMAGE_SIDE, IMAGE_SIDE), tf.uint8, name="images")]
    )
    def serve(images):
        # The same float32 division the preprocess stage does, so scores match exactly.
        scaled = tf.cast(images, tf.float32) / tf.constant(255.0, tf.float32)
        # A named output: a client reads outputs["probabilities"], not TensorFlow's "output_0".
        return {OUTPUT: tf.nn.softmax(model(scaled[..., tf.newaxis], training=False))}

    concrete = serve.get_concrete_function()
    used = {id(variable) for variable in concrete.variables}
    root = tf.Module()
    # Keras variables wrap TensorFlow ones; the SavedModel holds the latter.
    root.model_variables = [
        variable.value for variable in model.variables if id(variable.value) in used
    ]
    root.serve = serve
    tf.saved_model.save(root, str(directory), signatures={SIGNATURE: concrete})
    _fingerprint_uuid_from_hashes(Path(directory) / "fingerprint.pb")


def _fingerprint_uuid_from_hashes(path: Path) -> None:
    # TensorFlow Serving and ML Metadata read the UUID as the SavedModel's
    # identity; derived from the hashes, two exports of one model share it.
    fingerprint = fingerprint_pb2.FingerprintDef.FromString(path.read_bytes())
    fingerprint.ClearField("uuid")
    digest = hashlib.sha256(fingerprint.SerializeToString(deterministic=True)).digest()
    fingerprint.uuid = str(int.from_bytes(digest[:16], "big"))
    path.write_bytes(fingerprint.SerializeToString(deterministic=True))


def load_serving_function(directory: str | os.PathLike):
    """The serving signature of the SavedModel at ``directory``, loaded fresh."""
    try:
        loaded = tf.saved_model.load(str(directory))
    except (OSError, ValueError) as error:
        raise PipelineError(f"cannot load SavedModel {directory}: {error}") from None
    signature = loaded.signatures[SIGNATURE]

    def probabilities(images: np.ndarray) -> np.ndarray:
        outputs = signature(images=tf.constant(images, dtype=tf.uint8))
        # Exports made before the output was named have only TensorFlow's "output_0".
        output = outputs[OUTPUT] if OUTPUT in outputs else next(iter(outputs.values()))
        return output.numpy()

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
