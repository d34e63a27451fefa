"""train_from_params: what the params' train section names, trained, with callbacks each epoch."""

import keras
import pytest

from mnistpipe.lineage import weights_sha256
from mnistpipe.loops import HISTORY_KEYS
from mnistpipe.seeding import seed_everything
from mnistpipe.training import train_from_params
from tests.conftest import settings_for, small_splits


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
    settings = settings_for("mlp", loop, epochs=2, dropout=0.1)
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


def test_a_finished_checkpoint_trains_no_further_epoch(tmp_path):
    settings = settings_for("mlp", "custom", epochs=1)
    checkpoint = tmp_path / "train.npz"
    seed_everything(5, deterministic=True)
    _, first = train_from_params(settings, 5, *small_splits(), checkpoint_path=checkpoint)
    seed_everything(5, deterministic=True)
    recorder = _EpochRecorder()
    _, again = train_from_params(
        settings, 5, *small_splits(), callbacks=[recorder], checkpoint_path=checkpoint
    )
    assert recorder.events == []
    assert again == first


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_the_recipe_with_shifts_smoothing_and_warm_up_reruns_to_identical_weights(loop):
    settings = settings_for(
        "mlp", loop, epochs=2, shift_pixels=2, label_smoothing=0.1, warmup_epochs=1
    )

    def run():
        seed_everything(5, deterministic=True)
        model, history = train_from_params(settings, 5, *small_splits())
        return weights_sha256(model), history

    first = run()
    assert run() == first
    seed_everything(5, deterministic=True)
    plain, _ = train_from_params(settings_for("mlp", loop, epochs=2), 5, *small_splits())
    assert weights_sha256(plain) != first[0]
