"""The training arms the benchmark compares: each arm's epochs, and the two kinds of arm.

An arm is the tutorial's own code (``tutorial_arm``) or the pipeline's
training with some ``train`` settings (``pipeline_arm``); bench/comparison.py
lists the arms of a run in one place.
"""

import statistics
import time

from bench.turns import Turns


class Arm:
    """One arm's epochs: wall seconds, training images, test accuracy."""

    def __init__(self, name: str, turns: Turns):
        self.name = name
        self.turns = turns
        self.epochs: list[dict] = []
        self.error: BaseException | None = None
        # The trained model, kept by pipeline arms for measurements after training.
        self.model = None

    def record(self, seconds: float, images: int, test_accuracy: float) -> None:
        self.epochs.append({"seconds": seconds, "images": images, "test_accuracy": test_accuracy})
        epoch = len(self.epochs)
        print(
            f"  {self.name:<16} epoch {epoch}: {seconds:5.1f} s, "
            f"{images / seconds:7.0f} images/s, test accuracy {test_accuracy:.4f}",
            flush=True,
        )

    def images_per_second(self, epoch: int) -> float:
        figures = self.epochs[epoch]
        return figures["images"] / figures["seconds"]

    def epochs_to(self, accuracy: float) -> int | None:
        """The first epoch (counted from 1) whose test accuracy reached ``accuracy``."""
        for epoch, figures in enumerate(self.epochs, start=1):
            if figures["test_accuracy"] >= accuracy:
                return epoch
        return None

    def seconds_to(self, accuracy: float) -> float | None:
        """Training seconds, warm-up included, until the test accuracy reached ``accuracy``."""
        epochs = self.epochs_to(accuracy)
        if epochs is None:
            return None
        return sum(figures["seconds"] for figures in self.epochs[:epochs])

    def steady_epoch_seconds(self) -> float:
        """The median epoch after the first; with one epoch only, that epoch."""
        later = self.epochs[1:] or self.epochs
        return statistics.median(figures["seconds"] for figures in later)

    def warm_up_seconds(self) -> float:
        """The first epoch's extra time over a steady one: tracing and compiling."""
        return self.epochs[0]["seconds"] - self.steady_epoch_seconds()

    def seconds_to_without_warm_up(self, accuracy: float) -> float | None:
        """As ``seconds_to``, with the first epoch counted as a steady one."""
        seconds = self.seconds_to(accuracy)
        return None if seconds is None else seconds - self.warm_up_seconds()


def tutorial_arm(arm: Arm, load_data, epochs: int, seed: int) -> None:
    import keras
    import quickstart

    arm.turns.wait_for(arm.name)
    # The tutorial sets no seed; this one only makes the benchmark repeatable.
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    # The tutorial evaluates on the test set inside its own epoch; that stays in its time.
    for figures in quickstart.run(load_data, EPOCHS=epochs):
        arm.record(
            time.perf_counter() - started, figures["train_images"], figures["test_accuracy"]
        )
        arm.turns.done(arm.name, finished=figures["epoch"] == epochs)
        if figures["epoch"] < epochs:
            arm.turns.wait_for(arm.name)
        started = time.perf_counter()


def pipeline_arm(
    arm: Arm, settings: dict, seed: int, splits: dict, stop, dtype_policy: str | None = None
) -> None:
    """Train with ``settings`` as the train stage does, one epoch per turn.

    ``dtype_policy`` (a Keras policy such as "mixed_bfloat16") builds the model
    under that policy, which the params cannot ask for; None is the stage's own
    path, train_from_params.
    """
    import keras
    import tensorflow as tf

    from mnistpipe.params import check_train_settings
    from mnistpipe.seeding import seed_everything
    from mnistpipe.training import train_from_params

    check_train_settings(settings)

    # Set up in this arm's turn, seeded as the train stage seeds, so that the
    # default arm trains exactly the model the stage trains.
    arm.turns.wait_for(arm.name)
    seed_everything(seed, settings["deterministic"])
    test_dataset = tf.data.Dataset.from_tensor_slices(splits["test"]).batch(1000)

    class Alternate(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            arm.turns.wait_for(arm.name)
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            # Measured on the test set for the benchmark only, outside the epoch's time.
            accuracy = self.model.evaluate(test_dataset, verbose=0, return_dict=True)["accuracy"]
            arm.record(seconds, len(splits["train"][1]), accuracy)
            finished = epoch + 1 == settings["epochs"] or stop(arm)
            if finished:
                self.model.stop_training = True
            arm.turns.done(arm.name, finished=finished)

    if dtype_policy is None:
        arm.model, _ = train_from_params(
            settings, seed, splits["train"], splits["val"], callbacks=[Alternate()]
        )
    else:
        arm.model = _train_under_policy(settings, seed, splits, [Alternate()], dtype_policy)


def _train_under_policy(settings: dict, seed: int, splits: dict, callbacks, dtype_policy: str):
    # train_from_params's steps without a checkpoint or a strategy, with the
    # model built under ``dtype_policy`` instead of the params' precision.
    from mnistpipe.input_pipeline import make_datasets
    from mnistpipe.loops import train
    from mnistpipe.models import build_model
    from mnistpipe.recipe import optimizer_from_settings

    train_dataset, val_dataset = make_datasets(
        splits["train"],
        splits["val"],
        settings["batch_size"],
        settings["shuffle_buffer"],
        seed,
        settings["augment"],
        settings["shift_pixels"],
    )
    # The arrays' own image shape; the built-in datasets' ten classes.
    model = build_model(
        settings["model"],
        settings["dropout"],
        dtype_policy,
        input_shape=splits["train"][0].shape[1:],
        classes=10,
    )
    steps_per_epoch = -(-len(splits["train"][1]) // settings["batch_size"])
    optimizer = optimizer_from_settings(settings, steps_per_epoch)
    train(
        model,
        optimizer,
        settings["loop"],
        train_dataset,
        val_dataset,
        settings["epochs"],
        callbacks=callbacks,
        jit_compile=settings["jit_compile"],
        label_smoothing=settings["label_smoothing"],
    )
    return model
