"""The model presets, precision policies and safe loading of .keras files."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mnistpipe.data import scale_images
from mnistpipe.errors import PipelineError
from mnistpipe.models import (
    PRESETS,
    FusedBatchNormalization,
    build_model,
    load_model,
    save_model,
    with_test_time_augmentation,
)
from mnistpipe.serving import export_saved_model, parity
from tests.conftest import BUILT_IN, small_splits
from tests.test_loops import run_training


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_maps_images_to_ten_logits(name):
    model = build_model(name, 0.1, **BUILT_IN)
    assert model.name == name
    assert model(np.zeros((2, 28, 28, 1), dtype=np.float32)).shape == (2, 10)


# (height, width, channels) and class counts from the smallest to the largest
# the presets are built for: each preset is built and run on one image.
SHAPES_AND_CLASSES = [((8, 8, 1), 2), ((32, 32, 3), 7), ((64, 48, 3), 1000), ((256, 256, 3), 3)]


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize(("input_shape", "classes"), SHAPES_AND_CLASSES)
def test_every_preset_takes_the_datas_image_shape_and_class_count(name, input_shape, classes):
    model = build_model(name, 0.1, input_shape=input_shape, classes=classes)
    assert model(np.zeros((1, *input_shape), dtype=np.float32)).shape == (1, classes)
    # Pooled before the head: a 256x256 photo gives a model no larger than a 28x28 one's
    # (the class count's Dense layer aside).
    largest = build_model(name, 0.1, input_shape=(28, 28, 3), classes=classes)
    assert model.count_params() <= largest.count_params()


def test_the_built_in_shape_gives_the_models_of_before():
    # No pooling layer at 28x28: the default model's layers are those of the model built
    # before shapes came from the data (its batch norms computed by the fused op).
    convnet = build_model("convnet", 0.1, **BUILT_IN)
    assert [layer.__class__.__name__ for layer in convnet.layers] == [
        "InputLayer",
        *["Conv2D", "FusedBatchNormalization", "Activation", "MaxPooling2D"] * 3,
        "Flatten",
        "Dropout",
        "Dense",
        "Dropout",
        "Dense",
    ]
    # The parameter counts of the presets built before (git show 5cc0f09:src/mnistpipe/models.py).
    counts = {
        "mlp": 101_770,
        "quickstart_cnn": 2_770_634,
        "convnet": 242_218,
        "strided_cnn": 421_930,
    }
    for name, count in counts.items():
        model = build_model(name, 0.1, **BUILT_IN)
        assert model.count_params() == count
        assert not any(isinstance(layer, keras.layers.AveragePooling2D) for layer in model.layers)


@pytest.mark.parametrize(
    ("name", "side", "smallest"), [("convnet", 7, 8), ("quickstart_cnn", 2, 3)]
)
def test_a_preset_refuses_an_image_too_small_for_it_in_one_line(name, side, smallest):
    with pytest.raises(PipelineError) as caught:
        build_model(name, 0.1, input_shape=(side, 40, 3), classes=4)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"train.model {name} cannot take images of {side}x40 pixels")
    assert f"at least {smallest}x{smallest} (folder.image_size)" in message
    assert "mlp" in message and name not in message.split("another train.model")[1]


def test_a_three_class_rgb_quickstart_model_round_trips_through_a_safe_keras_file(tmp_path):
    keras.utils.set_random_seed(4)
    model = build_model("quickstart_cnn", 0.1, input_shape=(40, 36, 3), classes=3)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path, (40, 36, 3), 3)
    images = np.random.default_rng(1).random((2, 40, 36, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded(images), model(images), rtol=0, atol=1e-6)
    with pytest.raises(PipelineError, match=r"giving 10 logits"):
        load_model(path, (40, 36, 3), 10)


def test_a_policy_applies_to_the_model_built_under_it_only():
    model = build_model("mlp", 0.1, "mixed_float16", **BUILT_IN)
    assert model.layers[1].compute_dtype == "float16"
    assert model.layers[-1].compute_dtype == "float32"
    assert build_model("mlp", 0.1, **BUILT_IN).layers[1].compute_dtype == "float32"


def test_a_model_round_trips_through_a_safe_keras_file(tmp_path):
    model, _ = run_training("quickstart_cnn", "custom", epochs=1)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path, **BUILT_IN)
    images = small_splits()[1][0][:20]
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=0, atol=1e-6
    )


def test_a_model_with_a_lambda_layer_is_refused(tmp_path):
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Lambda(lambda x: x * 2)(keras.layers.Flatten()(inputs))
    path = tmp_path / "crafted.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(PipelineError, match="cannot load model .*crafted.keras"):
        load_model(path, **BUILT_IN)


def test_only_keras_files_are_loaded(tmp_path):
    with pytest.raises(PipelineError, match="is not a .keras file"):
        load_model(tmp_path / "model.h5", **BUILT_IN)


def test_flip_test_time_augmentation_averages_the_probabilities_of_an_image_and_its_mirror():
    keras.utils.set_random_seed(1)
    model = build_model("convnet", 0.1, **BUILT_IN)
    images = small_splits()[1][0][:16]
    averaged = with_test_time_augmentation(model, "flip", (28, 28, 1))
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(averaged(images)))
    expected = (
        keras.ops.convert_to_numpy(keras.ops.softmax(model(images)))
        + keras.ops.convert_to_numpy(keras.ops.softmax(model(images[:, :, ::-1])))
    ) / 2
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)
    # An image and its mirror now score alike, which the model alone does not.
    mirrored = keras.ops.convert_to_numpy(averaged(images[:, :, ::-1]))
    np.testing.assert_allclose(mirrored, keras.ops.convert_to_numpy(averaged(images)), atol=1e-5)
    assert with_test_time_augmentation(model, "none", (28, 28, 1)) is model


def test_averaged_logits_stay_finite_when_one_view_is_certain():
    inputs = keras.Input((28, 28, 1))
    # Huge logits: in float32 the losing class's probability underflows to 0.
    logits = keras.layers.Dense(10, kernel_initializer="ones")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, logits * np.arange(10, dtype=np.float32))
    averaged = with_test_time_augmentation(model, "flip", (28, 28, 1))
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(averaged(np.ones((2, 28, 28, 1))))))


def _keras_and_fused_batch_norms():
    """Keras' BatchNormalization and the fused one, with the same (non-trivial) weights."""
    layers = keras.layers.BatchNormalization(momentum=0.9), FusedBatchNormalization(momentum=0.9)
    for layer in layers:
        layer.build((None, 5, 5, 3))
        layer.gamma.assign([0.5, 1.0, 2.0])
        layer.beta.assign([-1.0, 0.0, 1.0])
    return layers


def test_the_fused_batch_norm_computes_what_keras_batch_norm_does():
    images = np.random.default_rng(0).normal(2.0, 3.0, (8, 5, 5, 3)).astype(np.float32)
    keras_layer, fused_layer = _keras_and_fused_batch_norms()
    gradients = []
    for layer in (keras_layer, fused_layer):
        inputs = tf.constant(images)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, training=True)
            loss = tf.reduce_sum(outputs * outputs * [1.0, 2.0, 3.0])
        gradients.append(tape.gradient(loss, [inputs, layer.gamma, layer.beta]))
        assert layer(images, training=False).shape == images.shape
    np.testing.assert_allclose(
        fused_layer(images, training=True), keras_layer(images, training=True), atol=2e-5
    )
    # The moving statistics move as Keras moves them (the biased batch variance).
    np.testing.assert_allclose(fused_layer.moving_mean, keras_layer.moving_mean, rtol=1e-5)
    np.testing.assert_allclose(fused_layer.moving_variance, keras_layer.moving_variance, rtol=1e-5)
    np.testing.assert_allclose(fused_layer(images), keras_layer(images), atol=2e-5)
    for fused_gradient, keras_gradient in zip(gradients[1], gradients[0], strict=True):
        np.testing.assert_allclose(fused_gradient, keras_gradient, rtol=1e-3, atol=1e-3)


def test_the_convnet_uses_the_fused_batch_norm_and_trains_the_same_weights_twice(tmp_path):
    weights = []
    for _ in range(2):
        model, history = run_training("convnet", "fit", epochs=1)
        weights.append([variable.numpy() for variable in model.weights])
    assert any(isinstance(layer, FusedBatchNormalization) for layer in model.layers)
    for first, second in zip(*weights, strict=True):
        np.testing.assert_array_equal(first, second)
    # Saved and loaded with safe_mode=True, it is the same layer computing the same logits.
    path = tmp_path / "model.keras"
    save_model(model, path)
    loaded = load_model(path, **BUILT_IN)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in loaded.layers)
    images = small_splits()[1][0][:20]
    np.testing.assert_array_equal(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0)
    )
    # Its export serves the same probabilities, and TensorFlow Lite converts it.
    export_saved_model(loaded, tmp_path / "export")
    raw_images = np.round(images[..., 0] * 255).astype(np.uint8)
    assert (
        parity(loaded, tmp_path / "export", raw_images, scale_images(raw_images))[
            "argmax_disagreements"
        ]
        == 0
    )
    assert tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "export")).convert()
