"""Resuming training from the checkpoint of its last finished epoch."""

import keras
import numpy as np
import pytest

from mnistpipe.checkpoint import Checkpoint, epochs_saved
from mnistpipe.lineage import weights_sha256
from mnistpipe.seeding import seed_everything
from mnistpipe.training import train_from_params
from tests.conftest import settings_for, small_splits

SEED = 11


class Interrupted(Exception):
    pass


class _InterruptAtEpoch(keras.callbacks.Callback):
    """Stops training as a kill would: after ``epoch`` epochs were finished and saved."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Interrupted


def train_run(settings, checkpoint_path=None, callbacks=()):
    # Each run starts as a fresh process would: seeds set, the model built anew.
    seed_everything(SEED, deterministic=True)
    return train_from_params(
        settings, SEED, *small_splits(), callbacks=callbacks, checkpoint_path=checkpoint_path
    )


@pytest.mark.parametrize(("model_name", "loop"), [("convnet", "fit"), ("mlp", "custom")])
def test_a_resumed_run_ends_with_the_weights_and_history_of_an_uninterrupted_one(
    tmp_path, capsys, model_name, loop
):
    settings = settings_for(model_name, loop)
    model, history = train_run(settings)
    checkpoint_path = tmp_path / "train.npz"
    with pytest.raises(Interrupted):
        train_run(settings, checkpoint_path, callbacks=[_InterruptAtEpoch(2)])
    assert checkpoint_path.exists()

    resumed_model, resumed_history = train_run(settings, checkpoint_path)

    assert f"resuming from {checkpoint_path} after epoch 2" in capsys.readouterr().out
    assert resumed_history == history
    assert weights_sha256(resumed_model) == weights_sha256(model)


def test_a_run_that_finished_all_its_epochs_before_the_kill_trains_no_more(tmp_path):
    settings = settings_for("mlp", "fit", epochs=2)
    checkpoint_path = tmp_path / "train.npz"
    model, history = train_run(settings, checkpoint_path)
    recorder = _InterruptAtEpoch(0)  # any epoch started would raise

    again, again_history = train_run(settings, checkpoint_path, callbacks=[recorder])

    assert again_history == history
    assert weights_sha256(again) == weights_sha256(model)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"not a checkpoint at all", id="garbage"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"", id="empty"),
        # A flipped byte inside an array: the zip's CRC check finds it.
        pytest.param(
            lambda data: data[:400] + bytes([data[400] ^ 0xFF]) + data[401:], id="bitflip"
        ),
    ],
)
def test_a_corrupt_checkpoint_is_reported_and_training_starts_over(tmp_path, capsys, damage):
    settings = settings_for("mlp", "fit")
    model, history = train_run(settings)
    checkpoint_path = tmp_path / "train.npz"
    with pytest.raises(Interrupted):
        train_run(settings, checkpoint_path, callbacks=[_InterruptAtEpoch(2)])
    checkpoint_path.write_bytes(damage(checkpoint_path.read_bytes()))
    capsys.readouterr()

    restarted, restarted_history = train_run(settings, checkpoint_path)

    err = capsys.readouterr().err
    assert f"warning: ignoring the checkpoint {checkpoint_path}: it cannot be read" in err
    assert "training from epoch 1" in err
    assert restarted_history == history
    assert weights_sha256(restarted) == weights_sha256(model)


@pytest.mark.parametrize(
    "changes", [{"learning_rate": 0.002}, {"epochs": 4}, {"dropout": 0.1}], ids=str
)
def test_a_checkpoint_from_other_params_is_discarded(tmp_path, capsys, changes):
    checkpoint_path = tmp_path / "train.npz"
    with pytest.raises(Interrupted):
        train_run(settings_for("mlp", "fit"), checkpoint_path, callbacks=[_InterruptAtEpoch(2)])
    changed = settings_for("mlp", "fit", **changes)
    capsys.readouterr()

    _, history = train_run(changed, checkpoint_path)

    assert "belongs to a run with other params, data or library versions" in (
        capsys.readouterr().err
    )
    assert len(history["loss"]) == changed["epochs"]


def test_a_checkpoint_of_other_data_is_discarded(tmp_path, capsys):
    settings = settings_for("mlp", "fit")
    checkpoint_path = tmp_path / "train.npz"
    with pytest.raises(Interrupted):
        train_run(settings, checkpoint_path, callbacks=[_InterruptAtEpoch(1)])
    (train_images, train_labels), val_split = small_splits()
    train_labels[0] = (train_labels[0] + 1) % 10
    seed_everything(SEED, deterministic=True)

    _, history = train_from_params(
        settings, SEED, (train_images, train_labels), val_split, checkpoint_path=checkpoint_path
    )

    assert "belongs to a run with other params, data" in capsys.readouterr().err
    assert len(history["loss"]) == 3


def test_the_checkpoint_holds_plain_arrays_only(tmp_path):
    checkpoint_path = tmp_path / "train.npz"
    train_run(settings_for("mlp", "fit", epochs=1), checkpoint_path)
    with np.load(checkpoint_path, allow_pickle=False) as archive:
        assert all(archive[name].dtype != object for name in archive.files)


# Every warning an error: the weights must reach NumPy without passing through
# warnings.warn (NumPy 2 warns when an __array__ lacks its copy keyword), where a
# Ctrl-C's exception would surface as NumPy's TypeError instead (a CI failure).
@pytest.mark.filterwarnings("error")
def test_saving_the_checkpoint_and_hashing_the_weights_go_through_no_warning(tmp_path):
    checkpoint_path = tmp_path / "train.npz"
    model, _ = train_run(settings_for("mlp", "fit", epochs=1), checkpoint_path)
    assert checkpoint_path.exists()
    assert len(weights_sha256(model)) == 64


def test_a_directory_where_the_checkpoint_goes_is_a_warning_not_a_traceback(tmp_path, capsys):
    # `mkdir -p checkpoints/train.npz`: reading it failed, and so did removing it, with
    # an IsADirectoryError traceback before the first epoch.
    path = tmp_path / "train.npz"
    path.mkdir()
    assert Checkpoint(path, "any").restore(model=None, optimizer=None) == (0, {})
    err = capsys.readouterr().err
    assert f"warning: ignoring the checkpoint {path}: it cannot be read" in err
    assert f"warning: could not remove the checkpoint {path} (Is a directory)" in err


def test_a_checkpoint_whose_state_is_not_an_object_is_ignored(tmp_path, capsys):
    path = tmp_path / "train.npz"
    np.savez(path, state=np.frombuffer(b"[1, 2]", dtype=np.uint8))
    assert Checkpoint(path, "any").restore(model=None, optimizer=None) == (0, {})
    assert "its state is a JSON list, not an object" in capsys.readouterr().err
    assert not path.exists()


def test_a_checkpoint_whose_state_is_nested_too_deeply_is_ignored(tmp_path, capsys):
    # JSON nested 100,000 deep was a RecursionError traceback before the first epoch.
    path = tmp_path / "train.npz"
    np.savez(path, state=np.frombuffer(b"[" * 100_000, dtype=np.uint8))
    assert epochs_saved(path) == 0
    assert Checkpoint(path, "any").restore(model=None, optimizer=None) == (0, {})
    err = capsys.readouterr().err
    assert err == (
        f"warning: ignoring the checkpoint {path}: it cannot be read (its state is JSON nested "
        "too deeply to read); training from epoch 1\n"
    ), err
    assert not path.exists()


def test_an_interrupted_run_whose_checkpoint_counts_infinite_epochs_says_none_were_saved(
    tmp_path,
):
    # int(1e999) raised OverflowError while the interruption was being reported.
    path = tmp_path / "train.npz"
    np.savez(path, state=np.frombuffer(b'{"epochs_done": 1e999}', dtype=np.uint8))
    assert epochs_saved(path) == 0


@pytest.mark.parametrize("epochs_done", ["1e300", "true", '"7"', "-3", "null"])
def test_a_checkpoint_whose_epochs_done_no_run_writes_is_ignored(tmp_path, capsys, epochs_done):
    # int() took 1e300 (an interruption line with an epoch of 301 digits), true and
    # "7"; restore() handed them to training, which skipped that many batches.
    path = tmp_path / "train.npz"
    state = f'{{"format": 1, "fingerprint": "run", "epochs_done": {epochs_done}, "history": {{}}}}'
    np.savez(path, state=np.frombuffer(state.encode(), dtype=np.uint8))
    assert epochs_saved(path) == 0
    assert Checkpoint(path, "run").restore(model=None, optimizer=None) == (0, {})
    assert "its epochs_done or history is not what a run writes" in capsys.readouterr().err
