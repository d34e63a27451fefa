"""The two training loops and their callbacks, on small synthetic data."""

import numpy as np
import pytest

from mnistpipe.errors import PipelineError
from mnistpipe.input_pipeline import make_datasets
from mnistpipe.loops import HISTORY_KEYS, train
from mnistpipe.models import build_model
from mnistpipe.recipe import make_learning_rate, make_optimizer
from mnistpipe.seeding import seed_everything
from tests.conftest import BUILT_IN, small_splits


def run_training(model_name, loop, epochs=3, optimizer="adam", learning_rate=0.003, seed=7):
    seed_everything(seed, deterministic=True)
    train_split, val_split = small_splits()
    train_dataset, val_dataset = make_datasets(train_split, val_split, 32, 0, seed)
    model = build_model(model_name, dropout_rate=0.1, **BUILT_IN)
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


def test_a_diverging_run_stops_with_a_clear_error():
    with pytest.raises(PipelineError, match=r"training diverged: loss is (nan|inf) after epoch 1"):
        run_training("mlp", "custom", epochs=1, optimizer="sgd", learning_rate=1e12)


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_each_loop_prints_one_line_an_epoch(loop, capsys):
    run_training("mlp", loop, epochs=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("val_accuracy" in line and "\r" not in line for line in lines)
