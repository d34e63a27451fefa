"""The training recipe: learning-rate schedule, optimizer, loss and numeric precision."""

import keras

# The learning-rate schedules params.SCHEDULES names (checked when the params
# are loaded), each from (initial rate, steps of the run).
# Cosine decay to zero lets the last epochs settle into a minimum instead of
# bouncing around it, which is worth about a point of test accuracy here.
SCHEDULES = {
    "cosine": lambda initial, total_steps: keras.optimizers.schedules.CosineDecay(
        initial, decay_steps=max(1, total_steps)
    ),
    "constant": lambda initial, total_steps: initial,
}

# The optimizers params.OPTIMIZERS names, each from its learning rate.
OPTIMIZERS = {
    "adam": lambda learning_rate: keras.optimizers.Adam(learning_rate),
    "sgd": lambda learning_rate: keras.optimizers.SGD(learning_rate, momentum=0.9),
    "rmsprop": lambda learning_rate: keras.optimizers.RMSprop(learning_rate),
}


def make_learning_rate(initial: float, schedule: str, total_steps: int, warmup_steps: int = 0):
    """The learning rate, or the schedule of it, that ``schedule`` names over ``total_steps``.

    With ``warmup_steps`` the rate first rises linearly from 0 to ``initial``
    over those steps, then follows ``schedule`` over the steps that remain.
    """
    if not warmup_steps:
        return SCHEDULES[schedule](initial, total_steps)
    # A warm-up lets Adam's moment estimates and BatchNorm's statistics settle
    # before the full rate; CosineDecay has one built in. alpha=1 holds the rate
    # at ``initial`` after the warm-up, the constant schedule's warm-up.
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=1.0 if schedule == "constant" else 0.0,
        warmup_target=initial,
        warmup_steps=warmup_steps,
    )


def make_optimizer(name: str, learning_rate) -> keras.optimizers.Optimizer:
    return OPTIMIZERS[name](learning_rate)


def make_loss(reduction="sum_over_batch_size", label_smoothing: float = 0.0) -> keras.losses.Loss:
    """Cross-entropy of integer labels against the models' logits.

    ``label_smoothing`` s trains towards 1 - s + s/K for the true class and s/K
    for each other one, K the class count (s/10 for the built-in datasets;
    train.label_smoothing); 0 is plain cross-entropy.
    """
    if label_smoothing:
        return SmoothedSparseCrossentropy(label_smoothing, reduction=reduction)
    # The models output logits; from_logits=True applies the softmax inside the
    # loss, which is numerically safer than a softmax layer followed by a log.
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)


class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy with label smoothing, for integer labels and logits.

    Keras' SparseCategoricalCrossentropy has no label smoothing, and one-hot
    labels in the input pipeline would change every metric and dataset, so the
    labels become smoothed one-hot vectors here, inside the loss.
    """

    def __init__(self, label_smoothing: float, reduction="sum_over_batch_size", **kwargs):
        super().__init__(reduction=reduction, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        classes = keras.ops.shape(y_pred)[-1]
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        return keras.losses.categorical_crossentropy(
            keras.ops.one_hot(labels, classes, dtype=y_pred.dtype),
            y_pred,
            from_logits=True,
            label_smoothing=self.label_smoothing,
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def dtype_policy(mixed_precision: bool) -> str:
    """The Keras dtype policy the model's layers are built under."""
    return "mixed_float16" if mixed_precision else "float32"


def optimizer_from_settings(settings: dict, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The optimizer the ``train`` params name, with its learning-rate schedule over the run."""
    learning_rate = make_learning_rate(
        settings["learning_rate"],
        settings["lr_schedule"],
        steps_per_epoch * settings["epochs"],
        warmup_steps=round(settings["warmup_epochs"] * steps_per_epoch),
    )
    optimizer = make_optimizer(settings["optimizer"], learning_rate)
    if settings["mixed_precision"]:
        # Scales the loss up and the gradients back down, so that small float16
        # gradients do not underflow to zero; the scale adapts as training goes.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
