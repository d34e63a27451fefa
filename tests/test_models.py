"""The model presets, precision policies and safe loading of .keras files."""

import keras
import numpy as np
import pytest

from mnistpipe.errors import PipelineError
from mnistpipe.models import PRESETS, build_model, load_model, with_test_time_augmentation
from tests.conftest import small_splits
from tests.test_loops import run_training


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_maps_images_to_ten_logits(name):
    model = build_model(name, 0.1)
    assert model.name == name
    assert model(np.zeros((2, 28, 28, 1), dtype=np.float32)).shape == (2, 10)


def test_a_policy_applies_to_the_model_built_under_it_only():
    model = build_model("mlp", 0.1, "mixed_float16")
    assert model.layers[1].compute_dtype == "float16"
    assert model.layers[-1].compute_dtype == "float32"
    assert build_model("mlp", 0.1).layers[1].compute_dtype == "float32"


def test_a_model_round_trips_through_a_safe_keras_file(tmp_path):
    model, _ = run_training("quickstart_cnn", "custom", epochs=1)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
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
        load_model(path)


def test_only_keras_files_are_loaded(tmp_path):
    with pytest.raises(PipelineError, match="is not a .keras file"):
        load_model(tmp_path / "model.h5")


def test_flip_test_time_augmentation_averages_the_probabilities_of_an_image_and_its_mirror():
    keras.utils.set_random_seed(1)
    model = build_model("convnet", 0.1)
    images = small_splits()[1][0][:16]
    averaged = with_test_time_augmentation(model, "flip")
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(averaged(images)))
    expected = (
        keras.ops.convert_to_numpy(keras.ops.softmax(model(images)))
        + keras.ops.convert_to_numpy(keras.ops.softmax(model(images[:, :, ::-1])))
    ) / 2
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)
    # An image and its mirror now score alike, which the model alone does not.
    mirrored = keras.ops.convert_to_numpy(averaged(images[:, :, ::-1]))
    np.testing.assert_allclose(mirrored, keras.ops.convert_to_numpy(averaged(images)), atol=1e-5)
    assert with_test_time_augmentation(model, "none") is model


def test_averaged_logits_stay_finite_when_one_view_is_certain():
    inputs = keras.Input((28, 28, 1))
    # Huge logits: in float32 the losing class's probability underflows to 0.
    logits = keras.layers.Dense(10, kernel_initializer="ones")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, logits * np.arange(10, dtype=np.float32))
    averaged = with_test_time_augmentation(model, "flip")
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(averaged(np.ones((2, 28, 28, 1))))))
