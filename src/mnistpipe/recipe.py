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


def make_learning_rate(initial: float, schedule: str, total_steps: int):
    """The learning rate, or the schedule of it, that ``schedule`` names over ``total_steps``."""
    return SCHEDULES[schedule](initial, total_steps)


def make_optimizer(name: str, learning_rate) -> keras.optimizers.Optimizer:
    return OPTIMIZERS[name](learning_rate)


def make_loss(reduction="sum_over_batch_size") -> keras.losses.Loss:
    # The models output logits; from_logits=True applies the softmax inside the
    # loss, which is numerically safer than a softmax layer followed by a log.
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)


def dtype_policy(mixed_precision: bool) -> str:
    """The Keras dtype policy the model's layers are built under."""
    return "mixed_float16" if mixed_precision else "float32"


def optimizer_from_settings(settings: dict, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The optimizer the ``train`` params name, with its learning-rate schedule over the run."""
    learning_rate = make_learning_rate(
        settings["learning_rate"], settings["lr_schedule"], steps_per_epoch * settings["epochs"]
    )
    optimizer = make_optimizer(settings["optimizer"], learning_rate)
    if settings["mixed_precision"]:
        # Scales the loss up and the gradients back down, so that small float16
        # gradients do not underflow to zero; the scale adapts as training goes.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
