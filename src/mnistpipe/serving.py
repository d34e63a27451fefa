"""The exported SavedModel: raw uint8 images in, class probabilities out.

Scaling and softmax live inside the serving graph, so a client sends the
dataset's own pixels and never repeats the preprocessing. The images are
shaped as NumPy and Pillow hold pictures: (N, H, W) for grayscale data, as the
built-in datasets' IDX files give them (and as clients of the 28x28 exports
have always sent them), (N, H, W, 3) for RGB data.
"""

import hashlib
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import fingerprint_pb2

from mnistpipe.errors import PipelineError
from mnistpipe.models import probabilities

SIGNATURE = "serving_default"
OUTPUT = "probabilities"
PARITY_TOLERANCE = 1e-5
_BATCH = 1000


def served_shape(image_shape: tuple[int, int, int]) -> tuple[int, ...]:
    """One image's shape as the signature takes it: (H, W) for grayscale, (H, W, 3) for RGB."""
    height, width, channels = image_shape
    return (height, width) if channels == 1 else (height, width, channels)


def export_saved_model(
    model: keras.Model,
    directory: str | os.PathLike,
    image_shape: tuple[int, int, int] | None = None,
) -> None:
    """Write ``model`` with a serving signature taking uint8 images, (N, H, W) or (N, H, W, 3).

    ``image_shape`` is the model's (H, W, C), the prepared data's; None reads it
    from the model's own input (a functional or sequential model has one).

    The same model gives the same bytes. Keras' ``ExportArchive`` lists the
    variables in the order TensorFlow's identity set yields them (memory
    addresses), so this tracks them in the model's own order; it leaves out
    the variables serving never reads (Dropout's seed state, random at every
    load); and it replaces the random UUID TensorFlow writes into
    ``fingerprint.pb`` by one derived from the SavedModel's own hashes.
    """

    if image_shape is None:
        image_shape = tuple(model.input_shape[1:])
    grayscale = image_shape[2] == 1

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, *served_shape(image_shape)), tf.uint8, name="images")
        ]
    )
    def serve(images):
        # The same float32 division the preprocess stage does, so scores match exactly.
        scaled = tf.cast(images, tf.float32) / tf.constant(255.0, tf.float32)
        if grayscale:
            scaled = scaled[..., tf.newaxis]
        # A named output: a client reads outputs["probabilities"], not TensorFlow's "output_0".
        return {OUTPUT: tf.nn.softmax(model(scaled, training=False))}

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
    return serving_function(loaded, loaded.signatures[SIGNATURE])


def serving_function(loaded, signature):
    """uint8 images -> probabilities through ``signature``, a signature of ``loaded``.

    The images as the signature takes them, or gray ones with a channel axis.
    """
    # (H, W) or (H, W, 3): what one image is to this export.
    image_shape = tuple(signature.structured_input_signature[1]["images"].shape[1:])

    def probabilities(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.shape[1:] == (*image_shape, 1):
            # (N, H, W, 1), as pictures.load_picture and the prepared data hold gray images.
            images = images[..., 0]
        outputs = signature(images=tf.constant(images, dtype=tf.uint8))
        # Exports made before the output was named have only TensorFlow's "output_0".
        output = outputs[OUTPUT] if OUTPUT in outputs else next(iter(outputs.values()))
        return output.numpy()

    # Keep the loaded object alive as long as the function is used.
    probabilities.loaded = loaded
    probabilities.image_shape = image_shape
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

    ``raw_images`` are uint8, (N, H, W, C) or as the signature takes them.

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
