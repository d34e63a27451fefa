"""Seeded Keras training, with ``model.fit`` or the quickstart's GradientTape loop.

Both loops train on the same tf.data pipeline and return the same per-epoch
history: loss, accuracy, val_loss, val_accuracy.
"""

import hashlib
import math
import time

import keras
import numpy as np
import tensorflow as tf

from mnistpipe.checkpoint import Checkpoint, fingerprint
from mnistpipe.data import Examples, examples_from_arrays
from mnistpipe.distribute import shard_by_data
from mnistpipe.errors import PipelineError
from mnistpipe.models import build_model

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; optionally make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def make_learning_rate(initial: float, schedule: str, total_steps: int):
    """A constant rate, or cosine decay from ``initial`` to 0 over the whole run.

    Decaying to zero lets the last epochs settle into a minimum instead of
    bouncing around it, which is worth about a point of test accuracy here.
    """
    if schedule == "constant":
        return initial
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(initial, decay_steps=max(1, total_steps))
    raise PipelineError(f"train.lr_schedule is {schedule!r}; expected one of: constant, cosine")


def make_optimizer(name: str, learning_rate) -> keras.optimizers.Optimizer:
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    raise PipelineError(f"train.optimizer is {name!r}; expected one of: adam, sgd, rmsprop")


def make_loss(reduction="sum_over_batch_size") -> keras.losses.Loss:
    # The models output logits; from_logits=True applies the softmax inside the
    # loss, which is numerically safer than a softmax layer followed by a log.
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)


def as_examples(split) -> Examples:
    """``split`` as Examples: it may be Examples already, or (images, labels) arrays."""
    return split if isinstance(split, Examples) else examples_from_arrays(*split)


def make_datasets(train, val, batch_size: int, shuffle_buffer: int, seed: int, augment="none"):
    """tf.data pipelines as in the quickstart: shuffled, batched training data; batched validation.

    ``train`` and ``val`` are Examples or (images, labels) arrays.
    ``shuffle_buffer`` 0 shuffles over the whole training set (a true
    permutation each epoch); the shuffle is seeded so reruns see the same order.
    ``augment`` "flip" mirrors a random half of each training batch left to right.
    """
    train, val = as_examples(train), as_examples(val)
    buffer = shuffle_buffer or train.count
    train_dataset = train.dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).batch(
        batch_size
    )
    if augment == "flip":
        # One stateless seed pair a batch, from a seeded stream that differs each
        # epoch: the flips are random, yet the same on every rerun.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        train_dataset = tf.data.Dataset.zip((train_dataset, seeds)).map(
            _flip_random_half, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    elif augment != "none":
        raise PipelineError(f"train.augment is {augment!r}; expected one of: none, flip")
    val_dataset = val.dataset.batch(batch_size)
    return train_dataset.prefetch(tf.data.AUTOTUNE), val_dataset.prefetch(tf.data.AUTOTUNE)


def _flip_random_half(batch, seed_pair):
    # Fashion-MNIST's classes look the same mirrored (a shoe pointing left is
    # still a shoe), so mirroring adds examples without changing any label.
    images, labels = batch
    flip = tf.random.stateless_uniform(tf.shape(labels)[:1], seed=seed_pair) < 0.5
    images = tf.where(flip[:, tf.newaxis, tf.newaxis, tf.newaxis], tf.reverse(images, [2]), images)
    return images, labels


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
) -> dict:
    # Keras turns XLA on by itself only when a GPU is visible; on CPU it did not
    # speed these models up (bench/), so the choice is the params' and explicit.
    model.compile(
        optimizer=optimizer, loss=make_loss(), metrics=["accuracy"], jit_compile=jit_compile
    )
    history = model.fit(
        train_dataset,
        validation_data=val_dataset,
        epochs=epochs,
        initial_epoch=initial_epoch,
        # The dataset is already shuffled with a seed; Keras would only warn.
        shuffle=False,
        verbose=0,
        callbacks=[_StopOnNonFiniteLoss(), _EpochLine(epochs), *callbacks],
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
        loss_object = make_loss(reduction=None)
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
        for key in HISTORY_KEYS:
            history[key].append(logs[key])
    return history


def train(model, optimizer, loop: str, train_dataset, val_dataset, epochs: int, **options) -> dict:
    """Train with the ``loop`` the params name.

    ``options`` are callbacks, jit_compile and initial_epoch.
    """
    if loop == "fit":
        return train_with_fit(model, optimizer, train_dataset, val_dataset, epochs, **options)
    if loop == "custom":
        return train_with_custom_loop(
            model, optimizer, train_dataset, val_dataset, epochs, **options
        )
    raise PipelineError(f"train.loop is {loop!r}; expected one of: fit, custom")


def check_settings(settings: dict) -> None:
    """Refuse combinations of ``train`` params that cannot work, before any work starts."""
    if settings["jit_compile"] and settings["deterministic"]:
        # Keras would quietly train without XLA: TensorFlow's op determinism has no
        # XLA kernels.
        raise PipelineError(
            "train.jit_compile is true and train.deterministic is true; XLA cannot run "
            "deterministically, so set one of them to false"
        )
    if settings["distribute"] == "multi_worker" and settings["loop"] == "fit":
        raise PipelineError(
            "train.distribute is multi_worker and train.loop is fit; Keras 3's model.fit "
            "fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so set "
            "train.loop: custom"
        )
    if settings["mixed_precision"] and not tf.config.list_physical_devices("GPU"):
        raise PipelineError(
            "train.mixed_precision is true but TensorFlow sees no GPU; float16 is only "
            "faster on GPUs (compute capability 7.0 or newer), so set it to false here"
        )


def train_from_params(
    settings: dict,
    seed: int,
    train_split,
    val_split,
    callbacks=(),
    checkpoint_path=None,
    strategy=None,
):
    """Build what the params' ``train`` section names, train it, return (model, history).

    ``train_split`` and ``val_split`` are Examples or (images, labels) arrays.

    The train stage and the benchmark both call this, so the benchmark measures
    exactly the stage's model, input pipeline, optimizer and loop.
    With ``checkpoint_path`` the state is saved there at every epoch end, and a
    run killed part way resumes from its last finished epoch; with deterministic
    settings it then ends with the same weights as a run never interrupted.
    ``strategy`` (distribute.make_strategy) spreads training over its replicas.
    """
    check_settings(settings)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        return _train_in_scope(settings, seed, train_split, val_split, callbacks, checkpoint_path)


def _train_in_scope(settings, seed, train_split, val_split, callbacks, checkpoint_path):
    train_split, val_split = as_examples(train_split), as_examples(val_split)
    train_dataset, val_dataset = make_datasets(
        train_split,
        val_split,
        settings["batch_size"],
        settings["shuffle_buffer"],
        seed,
        settings["augment"],
    )
    train_dataset, val_dataset = shard_by_data(train_dataset), shard_by_data(val_dataset)
    model = _build_model(settings)
    steps_per_epoch = -(-train_split.count // settings["batch_size"])
    learning_rate = make_learning_rate(
        settings["learning_rate"], settings["lr_schedule"], steps_per_epoch * settings["epochs"]
    )
    optimizer = make_optimizer(settings["optimizer"], learning_rate)
    if settings["mixed_precision"]:
        # Scales the loss up and the gradients back down, so that small float16
        # gradients do not underflow to zero; the scale adapts as training goes.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    epochs_done, history = 0, {key: [] for key in HISTORY_KEYS}
    if checkpoint_path is not None and settings["distribute"] != "none":
        print(
            f"train: no checkpoints under train.distribute {settings['distribute']}; "
            "an interrupted run starts over",
            flush=True,
        )
    elif checkpoint_path is not None:
        checkpoint = Checkpoint(
            checkpoint_path, fingerprint(settings, seed, train_split.digest, val_split.digest)
        )
        # Restoring needs the optimizer's variables to exist before training.
        optimizer.build(model.trainable_variables)
        epochs_done, restored = checkpoint.restore(model, optimizer)
        history.update(restored)
        _skip_epochs(train_dataset, epochs_done, settings["loop"])
        callbacks = [*callbacks, checkpoint.callback(model, optimizer, history)]
    if epochs_done < settings["epochs"]:
        new_history = train(
            model,
            optimizer,
            settings["loop"],
            train_dataset,
            val_dataset,
            settings["epochs"],
            callbacks=callbacks,
            jit_compile=settings["jit_compile"],
            initial_epoch=epochs_done,
        )
        for key in HISTORY_KEYS:
            history[key] = [*history[key], *new_history[key]]
    return model, history


# How many iterators each loop makes over the training data an epoch. Keras'
# EpochIterator (keras 3.15) makes one at the start of each epoch and, when the
# epoch's batches run out, one more that the next epoch then replaces.
_ITERATORS_PER_EPOCH = {"fit": 2, "custom": 1}


def _build_model(settings: dict) -> keras.Model:
    if not settings["mixed_precision"]:
        return build_model(settings["model"], settings["dropout"])
    # Layers take the policy in force when they are made; restore it afterwards
    # so that models built later in this process are not affected.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        return build_model(settings["model"], settings["dropout"])
    finally:
        keras.config.set_dtype_policy(previous)


def _skip_epochs(train_dataset, epochs: int, loop: str) -> None:
    """Move the seeded shuffle and flips on by ``epochs``, as if those epochs had run.

    Each iterator made over the dataset draws a new shuffle order and new flip
    seeds when it is created, so making and dropping as many as the loop made
    in ``epochs`` epochs gives a resumed run the very batches that the
    uninterrupted run saw next (tests/test_checkpoint.py checks it, both loops).
    """
    for _ in range(epochs * _ITERATORS_PER_EPOCH[loop]):
        iter(train_dataset)


def weights_sha256(model: keras.Model) -> str:
    """A fingerprint of the trained weights, to prove two runs gave the same model."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()
