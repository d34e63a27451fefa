"""The training loops, ``model.fit`` and the quickstart's GradientTape loop, and their callbacks.

Both train on the same tf.data pipeline and return the same per-epoch history:
loss, accuracy, val_loss, val_accuracy.
"""

import math
import time

import keras
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback
from dvclive.utils import standardize_metric_name

from mnistpipe.errors import PipelineError
from mnistpipe.recipe import make_loss

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
# How many iterators each loop makes over the training data an epoch, for a
# resumed run to move the data order on (input_pipeline.skip_epochs). Keras'
# EpochIterator (keras 3.15) makes one at the start of each epoch and, when the
# epoch's batches run out, one more that the next epoch then replaces.
ITERATORS_PER_EPOCH = {"fit": 2, "custom": 1}


class _StopOnNonFiniteLoss(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        _check_finite(epoch, logs or {})


def _check_finite(epoch: int, logs: dict) -> None:
    for key in ("loss", "val_loss"):
        if key in logs and not math.isfinite(float(logs[key])):
            raise PipelineError(
                f"training diverged: {key} is {float(logs[key])} after epoch {epoch + 1}; "
                "expected a finite loss (try a smaller train.learning_rate)"
            )


class _EpochLine(keras.callbacks.Callback):
    """One line an epoch, readable in CI logs (no carriage-return progress bars)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        figures = " ".join(f"{key} {float(logs[key]):.4f}" for key in HISTORY_KEYS if key in logs)
        seconds = time.perf_counter() - self.started
        print(f"epoch {epoch + 1}/{self.epochs}: {figures} ({seconds:.1f} s)", flush=True)


def train_with_fit(
    model,
    optimizer,
    train_dataset,
    val_dataset,
    epochs: int,
    callbacks=(),
    jit_compile=False,
    initial_epoch=0,
    label_smoothing=0.0,
    live: Live | None = None,
) -> dict:
    # Keras turns XLA on by itself only when a GPU is visible; on CPU it did not
    # speed these models up (bench/), so the choice is the params' and explicit.
    model.compile(
        optimizer=optimizer,
        loss=make_loss(label_smoothing=label_smoothing),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    history = model.fit(
        train_dataset,
        validation_data=val_dataset,
        epochs=epochs,
        initial_epoch=initial_epoch,
        # The dataset is already shuffled with a seed; Keras would only warn.
        shuffle=False,
        verbose=0,
        callbacks=[
            _StopOnNonFiniteLoss(),
            _EpochLine(epochs),
            *callbacks,
            # dvclive's own callback: each epoch's logs, as dvclive names them.
            *([DVCLiveCallback(live=live)] if live is not None else []),
        ],
    )
    return {key: [float(value) for value in history.history[key]] for key in HISTORY_KEYS}


def train_with_custom_loop(
    model,
    optimizer,
    train_dataset,
    val_dataset,
    epochs: int,
    callbacks=(),
    jit_compile=False,
    initial_epoch=0,
    label_smoothing=0.0,
    live: Live | None = None,
) -> dict:
    """The quickstart's loop: tf.function train and test steps around a GradientTape.

    ``callbacks`` get ``on_epoch_begin`` and ``on_epoch_end`` as under ``fit``;
    ``initial_epoch`` is the number of epochs done already, as under ``fit``.
    The steps run on every replica of the strategy the model was built under
    (``strategy.run``), as TensorFlow's custom-training-loop guide does; with
    no strategy that is the one device.
    """
    # Keras models remember the strategy whose scope they were built in.
    strategy = model.distribute_strategy
    with strategy.scope():
        # Per-example losses, averaged over the *global* batch on each replica:
        # the all-reduce then sums the replicas' gradients into exactly the
        # gradient of the global batch's mean loss.
        loss_object = make_loss(reduction=None, label_smoothing=label_smoothing)
        train_loss = keras.metrics.Mean(name="loss")
        train_accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        val_loss = keras.metrics.Mean(name="val_loss")
        val_accuracy = keras.metrics.SparseCategoricalAccuracy(name="val_accuracy")
        # Create the optimizer's slots outside tf.function, where variables may be
        # made (unless a resumed run built them to restore them).
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
    train_batches = strategy.experimental_distribute_dataset(train_dataset)
    val_batches = strategy.experimental_distribute_dataset(val_dataset)

    def train_step(images, labels):
        with tf.GradientTape() as tape:
            predictions = model(images, training=True)
            per_example_loss = loss_object(labels, predictions)
            loss = tf.nn.compute_average_loss(per_example_loss)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            # Mixed precision: scaled up so float16 gradients do not underflow;
            # a LossScaleOptimizer scales them back down.
            scaled_loss = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        train_loss.update_state(per_example_loss)
        train_accuracy.update_state(labels, predictions)

    def test_step(images, labels):
        predictions = model(images, training=False)
        val_loss.update_state(loss_object(labels, predictions))
        val_accuracy.update_state(labels, predictions)

    @tf.function(jit_compile=jit_compile)
    def distributed_train_step(images, labels):
        strategy.run(train_step, args=(images, labels))

    @tf.function(jit_compile=jit_compile)
    def distributed_test_step(images, labels):
        strategy.run(test_step, args=(images, labels))

    history = {key: [] for key in HISTORY_KEYS}
    callback_list = keras.callbacks.CallbackList([_EpochLine(epochs), *callbacks], model=model)
    metrics = (train_loss, train_accuracy, val_loss, val_accuracy)
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        for metric in metrics:
            metric.reset_state()
        for images, labels in train_batches:
            distributed_train_step(images, labels)
        for images, labels in val_batches:
            distributed_test_step(images, labels)
        logs = {metric.name: float(metric.result()) for metric in metrics}
        _check_finite(epoch, logs)
        callback_list.on_epoch_end(epoch, logs)
        if live is not None:
            log_epoch(live, logs)
        for key in HISTORY_KEYS:
            history[key].append(logs[key])
    if live is not None:
        live.end()
    return history


def log_epoch(live: Live, logs: dict) -> None:
    """One epoch's figures into dvclive, named as its Keras callback names them, and the next step.

    Both loops then write the same files: dvclive/metrics.json (the last
    epoch's figures) and one dvclive/plots/metrics/{train,eval}/*.tsv a figure.
    """
    # In the order of model.fit's logs (sorted), so that an epoch logged by either
    # loop, or replayed from a checkpoint, writes the same bytes.
    for key in sorted(HISTORY_KEYS):
        live.log_metric(standardize_metric_name(key, "dvclive.keras"), logs[key])
    live.next_step()


def train(model, optimizer, loop: str, train_dataset, val_dataset, epochs: int, **options) -> dict:
    """Train with the ``loop`` the params name ("fit" or "custom").

    ``options`` are callbacks, jit_compile, initial_epoch and live (a dvclive
    Live that logs every epoch as it ends).
    """
    return LOOPS[loop](model, optimizer, train_dataset, val_dataset, epochs, **options)


# The loops params.LOOPS names (checked when the params are loaded).
LOOPS = {"fit": train_with_fit, "custom": train_with_custom_loop}
