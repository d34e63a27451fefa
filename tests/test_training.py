"""Training on small synthetic data: each preset, both loops, seeded reruns, safe saving."""

import keras
import numpy as np
import pytest

from mnistpipe.data import scale_images
from mnistpipe.errors import PipelineError
from mnistpipe.models import build_model, load_model
from mnistpipe.training import (
    HISTORY_KEYS,
    make_datasets,
    make_learning_rate,
    make_optimizer,
    seed_everything,
    train,
    weights_sha256,
)
from tests.conftest import synthetic_split


def small_splits():
    images, labels = synthetic_split(600, seed=3)
    images = scale_images(images)
    labels = labels.astype(np.int64)
    return (images[:500], labels[:500]), (images[500:], labels[500:])


def run_training(model_name, loop, epochs=3, optimizer="adam", learning_rate=0.003, seed=7):
    seed_everything(seed, deterministic=True)
    train_split, val_split = small_splits()
    train_dataset, val_dataset = make_datasets(train_split, val_split, 32, 0, seed)
    model = build_model(model_name, dropout_rate=0.1)
    schedule = make_learning_rate(learning_rate, "cosine", 16 * epochs)
    history = train(
        model, make_optimizer(optimizer, schedule), loop, train_dataset, val_dataset, epochs
    )
    return model, history


@pytest.mark.parametrize(
    ("model_name", "loop", "optimizer"),
    [
        ("mlp", "fit", "adam"),
        ("quickstart_cnn", "custom", "adam"),
        ("mlp", "custom", "rmsprop"),
        ("quickstart_cnn", "fit", "sgd"),
    ],
)
def test_each_preset_learns_with_each_loop(model_name, loop, optimizer):
    learning_rate = 0.05 if optimizer == "sgd" else 0.003
    model, history = run_training(
        model_name, loop, optimizer=optimizer, learning_rate=learning_rate
    )
    assert set(history) == set(HISTORY_KEYS)
    assert all(len(values) == 3 for values in history.values())
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] >= 0.9


def test_the_default_convnet_trains_and_outputs_ten_logits():
    model, history = run_training("convnet", "fit", epochs=2)
    assert model.output_shape == (None, 10)
    assert history["loss"][-1] < history["loss"][0]
    assert all(np.isfinite(value) for values in history.values() for value in values)


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_the_same_seed_gives_the_same_weights(loop):
    first, first_history = run_training("quickstart_cnn", loop, epochs=1)
    second, second_history = run_training("quickstart_cnn", loop, epochs=1)
    assert weights_sha256(first) == weights_sha256(second)
    assert first_history == second_history


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


def test_a_diverging_run_stops_with_a_clear_error():
    with pytest.raises(PipelineError, match=r"training diverged: loss is (nan|inf) after epoch 1"):
        run_training("mlp", "custom", epochs=1, optimizer="sgd", learning_rate=1e12)
