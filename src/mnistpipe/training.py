"""Training as the params' ``train`` section describes it, resumed from a checkpoint when one fits.

The one story that the train stage and the benchmark share: settings →
datasets → model → recipe → the checkpoint state to start from → the loop.
"""

from dataclasses import dataclass, field

import tensorflow as tf

from mnistpipe.checkpoint import Checkpoint, fingerprint
from mnistpipe.dataset_info import DatasetInfo
from mnistpipe.distribute import shard_by_data
from mnistpipe.examples import Examples
from mnistpipe.input_pipeline import as_examples, make_datasets, skip_epochs
from mnistpipe.loops import HISTORY_KEYS, ITERATORS_PER_EPOCH, log_epoch, train
from mnistpipe.models import build_model
from mnistpipe.recipe import dtype_policy, optimizer_from_settings

# Fashion-MNIST's and MNIST's class count: what arrays without a dataset.json hold.
BUILT_IN_CLASSES = 10


def train_from_params(
    settings: dict,
    seed: int,
    train_split,
    val_split,
    callbacks=(),
    checkpoint_path=None,
    strategy=None,
    live=None,
    info: DatasetInfo | None = None,
):
    """Build what the params' ``train`` section names, train it, return (model, history).

    ``settings`` are checked params (params.load_params, or
    params.check_train_settings for a dict made by hand). ``train_split`` and
    ``val_split`` are Examples or (images, labels) arrays.

    The train stage and the benchmark both call this, so the benchmark measures
    exactly the stage's model, input pipeline, optimizer and loop.
    With ``checkpoint_path`` the state is saved there at every epoch end, and a
    run killed part way resumes from its last finished epoch; with deterministic
    settings it then ends with the same weights as a run never interrupted.
    ``strategy`` (distribute.make_strategy) spreads training over its replicas.
    ``live``, a dvclive Live, logs every epoch as it ends; a resumed run first
    logs the checkpoint's epochs again, so its dvclive files end as an
    uninterrupted run's.
    ``info`` (dataset_info.read_info, the train stage passes the prepared
    data's) gives the model its input shape and class count; None takes the
    shape from the training data and the built-in datasets' ten classes, for
    the benchmark's and the tests' arrays.
    """
    train_split, val_split = as_examples(train_split), as_examples(val_split)
    input_shape = (
        info.image_shape
        if info is not None
        else tuple(int(side) for side in train_split.dataset.element_spec[0].shape)
    )
    classes = info.num_classes if info is not None else BUILT_IN_CLASSES
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        train_dataset, val_dataset = make_datasets(
            train_split,
            val_split,
            settings["batch_size"],
            settings["shuffle_buffer"],
            seed,
            settings["augment"],
            settings["shift_pixels"],
        )
        train_dataset, val_dataset = shard_by_data(train_dataset), shard_by_data(val_dataset)
        model = build_model(
            settings["model"],
            settings["dropout"],
            dtype_policy(settings["mixed_precision"]),
            input_shape=input_shape,
            classes=classes,
        )
        steps_per_epoch = -(-train_split.count // settings["batch_size"])
        optimizer = optimizer_from_settings(settings, steps_per_epoch)
        start = _starting_point(
            settings, seed, train_split, val_split, model, optimizer, checkpoint_path
        )
        skip_epochs(train_dataset, start.epochs_done * ITERATORS_PER_EPOCH[settings["loop"]])
        history = start.history
        if live is not None:
            # Replayed from the checkpoint rather than with dvclive's resume=True:
            # a kill between dvclive's step and the checkpoint's save would
            # otherwise leave one epoch logged twice.
            for epoch in range(start.epochs_done):
                log_epoch(live, {key: values[epoch] for key, values in history.items()})
        if start.epochs_done < settings["epochs"]:
            new_history = train(
                model,
                optimizer,
                settings["loop"],
                train_dataset,
                val_dataset,
                settings["epochs"],
                callbacks=[*callbacks, *start.callbacks],
                jit_compile=settings["jit_compile"],
                initial_epoch=start.epochs_done,
                label_smoothing=settings["label_smoothing"],
                live=live,
            )
            history = {key: [*history[key], *new_history[key]] for key in HISTORY_KEYS}
    return model, history


@dataclass
class _StartingPoint:
    """Where a run starts: the epochs a checkpoint had done, their history, what saves the next."""

    epochs_done: int = 0
    history: dict = field(default_factory=lambda: {key: [] for key in HISTORY_KEYS})
    callbacks: list = field(default_factory=list)


def _starting_point(
    settings: dict,
    seed: int,
    train_split: Examples,
    val_split: Examples,
    model,
    optimizer,
    checkpoint_path,
) -> _StartingPoint:
    """Restore ``model`` and ``optimizer`` from the checkpoint, if it belongs to this run."""
    if checkpoint_path is None:
        return _StartingPoint()
    if settings["distribute"] != "none":
        print(
            f"train: no checkpoints under train.distribute {settings['distribute']}; "
            "an interrupted run starts over",
            flush=True,
        )
        return _StartingPoint()
    checkpoint = Checkpoint(
        checkpoint_path, fingerprint(settings, seed, train_split.digest, val_split.digest)
    )
    # Restoring needs the optimizer's variables to exist before training.
    optimizer.build(model.trainable_variables)
    start = _StartingPoint()
    start.epochs_done, restored = checkpoint.restore(model, optimizer)
    start.history.update(restored)
    start.callbacks.append(checkpoint.callback(model, optimizer, start.history))
    return start
