"""Resuming training after a kill: the whole training state, saved at every epoch end.

Keras' BackupAndRestore saves the weights and the optimizer, but not the state
of the Dropout layers' random seeds, so a resumed run would drop different
units and end with different weights. This checkpoint holds every variable the
model and the optimizer have (weights, BatchNorm statistics, seed states, the
optimizer's step count and moments), the epochs done with their history, and a
fingerprint of everything the run depends on: params, seed, data and library
versions. A checkpoint with another fingerprint belongs to another run and is
discarded; one that cannot be read is reported, and training starts over.

The file is one ``.npz`` of plain arrays (no pickle), written atomically, and
lives outside DVC's outputs so that DVC's run-cache never sees it.
"""

import hashlib
import json
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np

from mnistpipe.errors import PipelineError
from mnistpipe.files import atomic_path
from mnistpipe.lineage import library_versions

_STATE_KEY = "state"
_FORMAT = 1


def fingerprint(settings: dict, seed: int, *data_digests: str) -> str:
    """SHA-256 of what a training run depends on: its settings, seed, data and libraries."""
    identity = {
        "settings": settings,
        "seed": seed,
        "data": data_digests,
        "versions": library_versions(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _variables(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> list:
    # model.variables, unlike model.weights, includes the Dropout seed states.
    return [*model.variables, *optimizer.variables]


def epochs_saved(path: str | Path) -> int:
    """How many epochs the checkpoint at ``path`` holds; 0 if there is none or it is unreadable.

    Read when a run is interrupted, to say where a rerun goes on from. It does
    not check the fingerprint: the run being interrupted wrote the file.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            state = _state_of(archive)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return 0
    return _epochs_done(state) or 0


def _epochs_done(state: dict) -> int | None:
    """The state's epochs_done if it is what a run writes, a whole number >= 0; else None.

    Not 1e999, true, "7" or -3, which int() would take or break on.
    """
    epochs_done = state.get("epochs_done")
    if isinstance(epochs_done, bool) or not isinstance(epochs_done, int) or epochs_done < 0:
        return None
    return epochs_done


def _state_of(archive) -> dict:
    """The JSON object saved beside the checkpoint's arrays; ValueError if it is not one."""
    try:
        state = json.loads(archive[_STATE_KEY].tobytes().decode())
    except RecursionError:
        # JSON nested thousands deep ([[[[...) exhausts the parser's stack: as bad as
        # any other JSON that does not parse, and caught where that is.
        raise ValueError("its state is JSON nested too deeply to read") from None
    if not isinstance(state, dict):
        raise ValueError(f"its state is a JSON {type(state).__name__}, not an object")
    return state


def how_to_resume(path: str | Path) -> str:
    """What an interrupted train stage says: the epochs ``path`` holds, and how to go on."""
    epochs = epochs_saved(path)
    if epochs:
        return f"after epoch {epochs}; run dvc repro again to resume (from {path})"
    return "before the first epoch ended; run dvc repro again to train from the start"


def discard(path: str | Path) -> None:
    """Remove the checkpoint at ``path``; one that cannot be removed is a warning, not an error.

    A directory or a file standing where the checkpoint or its folder goes
    (``checkpoints`` made by hand) must not fail a run whose outputs are written.
    """
    path = Path(path)
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        print(
            f"warning: could not remove the checkpoint {path} ({error.strerror or error}); "
            f"expected a file there: remove {path} by hand",
            file=sys.stderr,
            flush=True,
        )


class Checkpoint:
    """The checkpoint file of one training run, identified by its fingerprint."""

    def __init__(self, path: str | Path, run_fingerprint: str):
        self.path = Path(path)
        self.fingerprint = run_fingerprint

    def restore(self, model, optimizer) -> tuple[int, dict]:
        """Load the saved state into ``model`` and ``optimizer`` if it belongs to this run.

        Returns the number of epochs already done and their history; (0, {}) when
        there is nothing to resume. The optimizer must be built already so that
        its variables exist.
        """
        if not self.path.exists():
            return 0, {}
        try:
            state, arrays = self._read()
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            self._start_over(f"it cannot be read ({error})")
            return 0, {}
        if state.get("fingerprint") != self.fingerprint:
            self._start_over("it belongs to a run with other params, data or library versions")
            return 0, {}
        epochs_done, history = _epochs_done(state), state.get("history")
        if epochs_done is None or not isinstance(history, dict):
            self._start_over("its epochs_done or history is not what a run writes")
            return 0, {}
        variables = _variables(model, optimizer)
        found = [array.shape for array in arrays]
        expected = [tuple(variable.shape) for variable in variables]
        if found != expected:
            self._start_over(
                f"it holds {len(found)} arrays that do not match the model's "
                f"{len(expected)} variables"
            )
            return 0, {}
        # Every array was read and checked before the first assignment, so a bad
        # file can never leave the model half restored.
        for variable, array in zip(variables, arrays, strict=True):
            variable.assign(array)
        print(f"train: resuming from {self.path} after epoch {epochs_done}", flush=True)
        return epochs_done, history

    def save(self, model, optimizer, epochs_done: int, history: dict) -> None:
        state = {
            "format": _FORMAT,
            "fingerprint": self.fingerprint,
            "epochs_done": epochs_done,
            "history": history,
        }
        # variable.numpy(), not np.asarray(variable): Keras's Variable.__array__ lacks
        # NumPy 2's copy keyword, and NumPy's way around that goes through warnings.warn.
        arrays = {
            f"variable_{index:04d}": variable.numpy()
            for index, variable in enumerate(_variables(model, optimizer))
        }
        arrays[_STATE_KEY] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
        try:
            with atomic_path(self.path, suffix=".npz") as temporary:
                np.savez(temporary, allow_pickle=False, **arrays)
        except PipelineError as error:
            # The checkpoint only saves time after a kill: not being able to write
            # it (a full disk) should not end a run that may still finish.
            print(
                f"warning: no checkpoint after epoch {epochs_done}: {error}",
                file=sys.stderr,
                flush=True,
            )

    def discard(self) -> None:
        discard(self.path)

    def callback(self, model, optimizer, history: dict) -> keras.callbacks.Callback:
        """A callback that saves the checkpoint at each epoch end.

        ``history`` maps each metric to its values from the epochs done so far;
        the callback appends each epoch's value of those metrics.
        """
        return _SaveEachEpoch(self, model, optimizer, history)

    def _read(self) -> tuple[dict, list[np.ndarray]]:
        with np.load(self.path, allow_pickle=False) as archive:
            state = _state_of(archive)
            if state.get("format") != _FORMAT:
                raise ValueError(f"format {state.get('format')!r}, expected {_FORMAT}")
            names = sorted(name for name in archive.files if name != _STATE_KEY)
            return state, [archive[name] for name in names]

    def _start_over(self, reason: str) -> None:
        print(
            f"warning: ignoring the checkpoint {self.path}: {reason}; training from epoch 1",
            file=sys.stderr,
            flush=True,
        )
        self.discard()


class _SaveEachEpoch(keras.callbacks.Callback):
    def __init__(self, checkpoint: Checkpoint, model, optimizer, history: dict):
        super().__init__()
        self.checkpoint = checkpoint
        self.trained_model = model
        self.trained_optimizer = optimizer
        # Only the keys the history already has: fit's logs may hold more.
        self.history = {key: list(values) for key, values in history.items()}

    def on_epoch_end(self, epoch, logs=None):
        for key, values in self.history.items():
            values.append(float(logs[key]))
        self.checkpoint.save(self.trained_model, self.trained_optimizer, epoch + 1, self.history)
