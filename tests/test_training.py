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
    train_from_params,
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


class _EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("end", epoch, sorted(logs)))


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_train_from_params_builds_what_the_params_name_and_calls_back_each_epoch(loop):
    settings = {
        "model": "mlp",
        "optimizer": "adam",
        "learning_rate": 0.003,
        "lr_schedule": "cosine",
        "batch_size": 64,
        "epochs": 2,
        "shuffle_buffer": 0,
        "augment": "flip",
        "loop": loop,
        "dropout": 0.1,
        "deterministic": True,
        "jit_compile": False,
        "distribute": "none",
        "mixed_precision": False,
    }
    seed_everything(5, deterministic=True)
    recorder = _EpochRecorder()
    model, history = train_from_params(settings, 5, *small_splits(), callbacks=[recorder])
    assert model.name == "mlp"
    assert len(history["val_accuracy"]) == 2
    assert [event[:2] for event in recorder.events] == [
        ("begin", 0),
        ("end", 0),
        ("begin", 1),
        ("end", 1),
    ]
    assert set(HISTORY_KEYS) <= set(recorder.events[-1][2])


def test_xla_with_op_determinism_is_refused_rather_than_quietly_dropped():
    settings = {
        "model": "quickstart_cnn",
        "optimizer": "adam",
        "learning_rate": 0.003,
        "lr_schedule": "constant",
        "batch_size": 64,
        "epochs": 1,
        "shuffle_buffer": 0,
        "augment": "none",
        "loop": "fit",
        "dropout": 0.0,
        "deterministic": True,
        "jit_compile": True,
        "distribute": "none",
        "mixed_precision": False,
    }
    with pytest.raises(PipelineError, match="train.jit_compile is true and train.deterministic"):
        train_from_params(settings, 5, *small_splits())


def test_flip_augmentation_mirrors_about_half_of_each_batch_the_same_way_on_every_rerun():
    images = np.arange(64 * 28 * 28, dtype=np.float32).reshape(64, 28, 28, 1)
    labels = np.arange(64)

    def flipped_labels():
        train_dataset, _ = make_datasets(
            (images, labels), (images[:8], labels[:8]), 64, 0, 3, "flip"
        )
        ((batch_images, batch_labels),) = list(train_dataset)
        batch_images, batch_labels = batch_images.numpy(), batch_labels.numpy()
        flipped = []
        for image, label in zip(batch_images, batch_labels, strict=True):
            if np.array_equal(image, images[label][:, ::-1]):
                flipped.append(int(label))
            else:
                np.testing.assert_array_equal(image, images[label])
        return flipped

    first = flipped_labels()
    assert 16 <= len(first) <= 48
    assert flipped_labels() == first
