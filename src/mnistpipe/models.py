"""The model presets. Every model maps (N, H, W, C) float32 images to one logit a class.

The input shape and the class count are the prepared data's (``dataset.json``,
mnistpipe.dataset_info): 28x28x1 and ten classes for the built-in datasets,
anything from 8x8 to a few hundred pixels a side, 1 or 3 channels and 2 to
thousands of classes for a folder of one's own images.

- ``mlp``: the Fashion-MNIST basic classification tutorial's model.
- ``quickstart_cnn``: the TF2 quickstart's subclassed model.
- ``convnet``: the default, a small Conv-BatchNorm network that is far more
  accurate than both and still trains in minutes on two CPU cores.
- ``strided_cnn``: the fast preset's model (bench/comparison.py FAST_PRESET),
  the quickstart's Dense(128) head on two stride-2 Conv-BatchNorm blocks.
"""

import json
import os
import zipfile

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from mnistpipe.errors import PipelineError
from mnistpipe.files import atomic_path

# The last layer computes in float32 even under mixed precision (Keras' advice):
# float16 logits would lose precision in the softmax, and the model's outputs
# keep one dtype whatever the policy.
LOGITS_DTYPE = "float32"


# The largest grid each preset's Flatten → Dense(128) head sees: its grid at 28x28.
# A larger image is average-pooled down to it first (``_head_pooling``), so a
# 256x256 photo gives a model of the Fashion-MNIST model's size, not one whose
# Dense layer alone holds hundreds of millions of weights; at 28x28 and below
# no pooling layer is added, and the built-in datasets' models stay as they were.
HEAD_GRIDS = {
    "mlp": (28, 28),
    "quickstart_cnn": (26, 26),
    "convnet": (3, 3),
    "strided_cnn": (7, 7),
}


def _head_pooling(grid: tuple[int, int], preset: str) -> tuple[int, int] | None:
    """The pool size that brings a (height, width) ``grid`` within the preset's head grid."""
    pool = tuple(-(-side // limit) for side, limit in zip(grid, HEAD_GRIDS[preset], strict=True))
    return None if pool == (1, 1) else pool


def _pooled_for_head(x, preset: str):
    pool = _head_pooling(tuple(x.shape[1:3]), preset)
    # "same" padding: a side that the pool does not divide keeps its last pixels.
    return x if pool is None else layers.AveragePooling2D(pool, padding="same")(x)


def build_mlp(input_shape: tuple[int, int, int], classes: int, dropout_rate: float) -> keras.Model:
    pool = _head_pooling(input_shape[:2], "mlp")
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            # An image larger than 28x28 is scaled down (averaged) to at most 28x28 first.
            *([layers.AveragePooling2D(pool, padding="same")] if pool else []),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(dropout_rate),
            layers.Dense(classes, dtype=LOGITS_DTYPE),
        ],
        name="mlp",
    )


# Registered so that the .keras file can name the class and safe_mode loading
# can rebuild it without running arbitrary code.
@keras.saving.register_keras_serializable(package="mnistpipe")
class QuickstartModel(keras.Model):
    """The quickstart's subclassed model: Conv2D(32, 3) → Flatten → Dense(128) → Dense(classes).

    ``pool_size`` (HEAD_GRIDS) average-pools the convolution's output before
    Flatten for images larger than 28x28; None, the quickstart's own model.
    """

    def __init__(self, classes: int = 10, pool_size=None, **kwargs):
        super().__init__(**kwargs)
        # Kept for get_config; a file saved before these existed loads with the defaults.
        self.classes = classes
        self.pool_size = None if pool_size is None else tuple(pool_size)
        self.conv1 = layers.Conv2D(32, 3, activation="relu")
        self.pool = (
            None
            if self.pool_size is None
            else layers.AveragePooling2D(self.pool_size, padding="same")
        )
        self.flatten = layers.Flatten()
        self.d1 = layers.Dense(128, activation="relu")
        self.d2 = layers.Dense(classes, dtype=LOGITS_DTYPE)

    def call(self, x):
        x = self.conv1(x)
        if self.pool is not None:
            x = self.pool(x)
        x = self.flatten(x)
        x = self.d1(x)
        return self.d2(x)

    def get_config(self):
        config = {**super().get_config(), "classes": self.classes}
        if self.pool_size is not None:
            config["pool_size"] = list(self.pool_size)
        return config


def build_quickstart_cnn(input_shape: tuple[int, int, int], classes: int) -> keras.Model:
    # The 3x3 convolution without padding takes 2 pixels off each side.
    grid = (input_shape[0] - 2, input_shape[1] - 2)
    model = QuickstartModel(
        classes=classes, pool_size=_head_pooling(grid, "quickstart_cnn"), name="quickstart_cnn"
    )
    # Subclassed models create their weights on the first call; build now so
    # that summaries, weight counts and saving work before training.
    model(keras.ops.zeros((1, *input_shape)))
    return model


def probabilities(logits) -> np.ndarray:
    """Class probabilities from the models' logits, as a NumPy array."""
    return keras.ops.convert_to_numpy(keras.ops.softmax(logits))


# The test-time augmentations params.TEST_TIME_AUGMENTATIONS names
# (evaluate.test_time_augmentation): each maps an input batch to its views.
TEST_TIME_AUGMENTATIONS = {
    "none": None,
    # Width is axis 2 of (N, H, W, C): the same mirror as the flip augmentation.
    "flip": lambda images: [images, keras.ops.flip(images, axis=2)],
}


def with_test_time_augmentation(
    model: keras.Model, augmentation: str, input_shape: tuple[int, int, int]
) -> keras.Model:
    """``model`` scoring each image as the mean of its views' class probabilities.

    The result still outputs logits (the log of the mean probabilities), so
    that softmax, argmax and the loss treat it as any model; "none" returns
    ``model`` itself. The views are whole-batch ops inside the graph, so a
    SavedModel exported from the result does the averaging for its clients.
    ``input_shape`` is the model's (H, W, C), the prepared data's.
    """
    views = TEST_TIME_AUGMENTATIONS[augmentation]
    if views is None:
        return model
    inputs = keras.Input(shape=input_shape)
    log_probabilities = [keras.ops.log_softmax(model(view)) for view in views(inputs)]
    # log(mean(p)) computed as logsumexp(log p) - log(count): a probability
    # that underflows to 0 in one view gives no log(0) = -inf.
    outputs = keras.ops.logsumexp(keras.ops.stack(log_probabilities), axis=0) - np.log(
        np.float32(len(log_probabilities))
    )
    return keras.Model(inputs, outputs, name=f"{model.name}_{augmentation}_averaged")


# Registered so that a saved model names it and safe_mode loading rebuilds it.
@keras.saving.register_keras_serializable(package="mnistpipe")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization computed by TensorFlow's fused batch-norm op.

    Keras 3 on TensorFlow normalizes with ``tf.nn.moments`` then
    ``tf.nn.batch_normalization``: several passes over the activations forward
    and more in the gradient, each bound by memory bandwidth. The fused op
    (FusedBatchNormV3, and its gradient) does each direction in one kernel,
    which trains the default convnet markedly faster on a CPU (README.md,
    Speed; ``python -m bench --only fused_bn``). Same weights, same config and
    same moving-statistics update as Keras' layer; a case the fused op does not
    cover (not the last axis of a 4-D input, a mask, renorm, synchronized)
    falls back to Keras' own computation.
    """

    # False computes as Keras' layer: the bench's "before" arm measures what the op buys.
    use_fused_op = True

    def _fused(self, inputs, mask) -> bool:
        return (
            self.use_fused_op
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.scale
            and self.center
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        # The op takes float16 or bfloat16 activations with float32 parameters.
        if inputs.dtype not in (tf.float16, tf.bfloat16):
            inputs = tf.cast(inputs, tf.float32)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True
            )
            # The op returns the unbiased (Bessel-corrected) batch variance;
            # Keras' moving variance averages the biased one, which normalizes.
            count = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
            variance = variance * ((count - 1.0) / count)
            self.moving_mean.assign(
                self.moving_mean * self.momentum + mean * (1.0 - self.momentum)
            )
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                self.gamma,
                self.beta,
                mean=self.moving_mean,
                variance=self.moving_variance,
                epsilon=self.epsilon,
                is_training=False,
            )
        return tf.cast(outputs, self.compute_dtype)


def _conv_block(x, filters: int, strides: int = 1):
    # Bias is redundant before BatchNormalization, which adds its own offset.
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    # Momentum 0.9 rather than Keras' 0.99: with a few hundred steps an epoch the
    # moving statistics then track the weights, so validation accuracy is right
    # from the first epoch instead of lagging several epochs behind.
    x = FusedBatchNormalization(momentum=0.9)(x)
    return layers.Activation("relu")(x)


def build_convnet(
    input_shape: tuple[int, int, int], classes: int, dropout_rate: float
) -> keras.Model:
    inputs = keras.Input(shape=input_shape)
    x = inputs
    # Three Conv-BatchNorm blocks, each halving the resolution: 28 → 14 → 7 → 3.
    for filters in (32, 64, 128):
        x = _conv_block(x, filters)
        x = layers.MaxPooling2D()(x)
    x = _pooled_for_head(x, "convnet")
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout_rate)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(dropout_rate)(x)
    outputs = layers.Dense(classes, dtype=LOGITS_DTYPE)(x)
    return keras.Model(inputs, outputs, name="convnet")


def build_strided_cnn(input_shape: tuple[int, int, int], classes: int) -> keras.Model:
    """Two stride-2 Conv-BatchNorm blocks (28 → 14 → 7), then the quickstart's head.

    Built for the tutorial's accuracy soonest on a CPU: the strides do the
    downsampling that the quickstart's full-resolution Dense(128) pays for (its
    Dense layer alone is 2.8 M multiply-adds an image; here the whole model is
    1.4 M), and BatchNorm lets the rate be high from the first step.
    """
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for filters in (32, 64):
        x = _conv_block(x, filters, strides=2)
    x = _pooled_for_head(x, "strided_cnn")
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(classes, dtype=LOGITS_DTYPE)(x)
    return keras.Model(inputs, outputs, name="strided_cnn")


# The presets params.MODELS names (checked when the params are loaded), each
# from (input shape (H, W, C), class count, dropout rate).
PRESETS = {
    "convnet": build_convnet,
    "mlp": build_mlp,
    "quickstart_cnn": lambda input_shape, classes, dropout_rate: build_quickstart_cnn(
        input_shape, classes
    ),
    "strided_cnn": lambda input_shape, classes, dropout_rate: build_strided_cnn(
        input_shape, classes
    ),
}

# The smallest side, in pixels, each preset takes, and why: below it a layer
# would be left with no pixels (the others shrink to 1 pixel and stop there).
SMALLEST_SIDES = {
    "convnet": (8, "its three 2x2 max-poolings halve the image to 1 pixel at 8"),
    "quickstart_cnn": (3, "its 3x3 convolution without padding needs 3"),
}


def check_input_fits(name: str, input_shape: tuple[int, int, int]) -> None:
    """Refuse, in one line, an image size the preset ``name`` cannot take."""
    height, width, _ = input_shape
    smallest, reason = SMALLEST_SIDES.get(name, (1, ""))
    if min(height, width) < smallest:
        others = ", ".join(
            other
            for other in sorted(PRESETS)
            if min(height, width) >= SMALLEST_SIDES.get(other, (1, ""))[0]
        )
        raise PipelineError(
            f"train.model {name} cannot take images of {height}x{width} pixels (the prepared "
            f"data's image_shape): {reason}; expected images of at least {smallest}x{smallest} "
            f"(folder.image_size) or another train.model ({others})"
        )


def build_model(
    name: str,
    dropout_rate: float,
    dtype_policy: str = "float32",
    *,
    input_shape: tuple[int, int, int],
    classes: int,
) -> keras.Model:
    """The preset ``name`` for (H, W, C) images and ``classes`` classes, under ``dtype_policy``.

    ``input_shape`` and ``classes`` are the prepared data's (dataset_info.read_info).
    """
    check_input_fits(name, tuple(input_shape))
    # Layers take the policy in force when they are made; restore it afterwards
    # so that models built later in this process are not affected.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype_policy)
    try:
        return PRESETS[name](tuple(input_shape), classes, dropout_rate)
    finally:
        keras.config.set_dtype_policy(previous)


def load_model(path, input_shape: tuple[int, int, int], classes: int) -> keras.Model:
    """Load a ``.keras`` model with ``safe_mode=True``: no Lambda layers, no pickled code.

    The model must map images of ``input_shape`` to ``classes`` logits, the
    dataset's; anything else (another model's file, a file cut short) is a
    ``PipelineError`` naming the file, what it holds and how to get the right one.
    """
    path = str(path)
    way_back = "run dvc repro --force train (or dvc checkout models/model.keras)"
    if not path.endswith(".keras"):
        raise PipelineError(f"{path} is not a .keras file; only .keras models are loaded")
    if not os.path.isfile(path):
        raise PipelineError(
            f"{path} does not exist; expected the train stage's model: run dvc repro"
        )
    # Keras reports a .keras file cut short as "File not found"; say what it is.
    if not zipfile.is_zipfile(path):
        raise PipelineError(
            f"{path} is not a complete .keras file ({os.path.getsize(path)} bytes, not a zip "
            f"archive: cut short or corrupt); expected the model the train stage writes; "
            f"{way_back}"
        )
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 (any failure of Keras' loader means a bad file)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PipelineError(
            f"cannot load model {path}: {reason}; expected a .keras model the train stage wrote; "
            f"{way_back}"
        ) from None
    _check_model_fits(model, path, input_shape, classes, way_back)
    return model


def _check_model_fits(model, path: str, input_shape, classes: int, way_back: str) -> None:
    """Run one blank image through ``model``: it must take ``input_shape`` and give ``classes``."""
    expected = (
        f"expected a model taking images of shape {input_shape} and giving {classes} logits "
        "(this dataset's)"
    )
    declared = getattr(model, "input_shape", None) if model.built else None
    if isinstance(declared, tuple) and tuple(declared[1:]) != tuple(input_shape):
        raise PipelineError(
            f"{path} takes inputs of shape {tuple(declared[1:])}; {expected}; {way_back}"
        )
    try:
        outputs = model(np.zeros((1, *input_shape), dtype=np.float32), training=False)
        found = tuple(keras.ops.shape(outputs))
    except Exception as error:  # noqa: BLE001 (Keras' message names its layers, not the file)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PipelineError(
            f"{path} cannot take an image of shape {input_shape} ({reason}); {expected}; "
            f"{way_back}"
        ) from None
    if found != (1, classes):
        raise PipelineError(
            f"{path} gives outputs of shape {found[1:]} for one image; {expected}; {way_back}"
        )


# The earliest time a zip entry can record: every entry gets it, so the bytes
# of a saved model do not depend on when it was saved.
_ZIP_ENTRY_TIME = (1980, 1, 1, 0, 0, 0)
# rw-r--r-- for a regular file, in the high bits where zip keeps Unix modes.
_ZIP_ENTRY_MODE = 0o100644 << 16
_ZIP_UNIX = 3


def save_model(model: keras.Model, path: str | os.PathLike) -> None:
    """Save ``model`` as a ``.keras`` file whose bytes depend only on the model.

    Keras' own file records the save date (``metadata.json``), each entry's
    modification time, and the memory address of every object shared between
    layers (``shared_object_id`` in ``config.json``), so two saves of the same
    weights differ. Here the date is dropped, entry times are fixed and sorted,
    and shared objects are numbered in the order they appear.
    """
    with atomic_path(path, suffix=".keras") as temporary:
        model.save(temporary)
        with zipfile.ZipFile(temporary) as archive:
            entries = {
                info.filename: (info.compress_type, archive.read(info))
                for info in archive.infolist()
            }
        entries["metadata.json"] = (
            entries["metadata.json"][0],
            _without_save_date(entries["metadata.json"][1]),
        )
        entries["config.json"] = (
            entries["config.json"][0],
            _shared_objects_numbered(entries["config.json"][1]),
        )
        with zipfile.ZipFile(temporary, "w") as archive:
            for name in sorted(entries):
                compress_type, content = entries[name]
                info = zipfile.ZipInfo(name, date_time=_ZIP_ENTRY_TIME)
                info.compress_type = compress_type
                info.external_attr = _ZIP_ENTRY_MODE
                info.create_system = _ZIP_UNIX
                archive.writestr(info, content)


def _without_save_date(metadata: bytes) -> bytes:
    fields = json.loads(metadata)
    fields.pop("date_saved", None)
    return json.dumps(fields, sort_keys=True).encode()


def _shared_objects_numbered(config: bytes) -> bytes:
    # Keras names a shared object (a layer's dtype policy, ...) by id(), which
    # changes from run to run; any number works as long as the same object keeps it.
    numbers: dict[int, int] = {}

    def renumber(value):
        if isinstance(value, dict):
            if "shared_object_id" in value:
                identity = value["shared_object_id"]
                value["shared_object_id"] = numbers.setdefault(identity, len(numbers))
            for item in value.values():
                renumber(item)
        elif isinstance(value, list):
            for item in value:
                renumber(item)

    fields = json.loads(config)
    renumber(fields)
    return json.dumps(fields).encode()
