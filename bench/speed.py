"""Training speed of the default params, before and after each change, and its arithmetic rate.

Each arm trains the default params (params.yaml's ``train`` section, through
``train_from_params`` as the train stage does) with a few settings changed,
in a process of its own (``python -m bench.speed ROOT IMAGES ARM FIGURES_FILE``):
two epochs on the first IMAGES training images, the second timed with its
validation pass, as the stage's epochs are. The arms alternate round by round
(before, fused_batch_norm, ..., before, ...), so a drift of a machine shared
with other work falls on all of them, and each arm's speed-up over ``before``
is taken inside each round (median, min, max). Every arm reports its
arithmetic rate (GFLOP/s from the model's counted multiply-adds,
bench/arithmetic.py) beside the CPU's peak.
"""

import json
import statistics
import sys
import time
from pathlib import Path

from bench.arithmetic import peak, serving_flops_per_image, training_flops_per_image
from bench.child_process import figures_from_child

# The arms, in their turn order: whether batch normalization uses TensorFlow's
# fused op (models.FusedBatchNormalization), and the ``train`` params changed.
# ``before`` is the default as it was before issue 28 (Keras' own batch-norm
# computation, batches of 128 at a rate of 0.002); each later arm adds one change.
ARMS = {
    "before": {"fused_batch_norm": False, "train": {"batch_size": 128, "learning_rate": 0.002}},
    "fused_batch_norm": {
        "fused_batch_norm": True,
        "train": {"batch_size": 128, "learning_rate": 0.002},
    },
    "fused_batch_norm_batch_256": {
        "fused_batch_norm": True,
        "train": {"batch_size": 256, "learning_rate": 0.004},
    },
    # params.yaml's train section as it stands, unchanged.
    "default": {"fused_batch_norm": True, "train": {}},
}


def measure_speed(
    root: Path, rounds: int = 2, images: int = 12000, arms=tuple(ARMS), steps: int = 60
) -> dict:
    """``rounds`` rounds of one process an arm (summarize_speed), then ``steps`` alternated steps.

    (measure_steps, in this process.)
    """
    figures_by_arm: dict[str, list[dict]] = {name: [] for name in arms}
    for round_number in range(1, rounds + 1):
        for name in arms:
            figures = figures_from_child(
                "bench.speed", [str(root), str(images), name], {}, f"the speed arm {name}"
            )
            figures_by_arm[name].append(figures)
            print(
                f"  speed {name:<28} round {round_number}: "
                f"{figures['train_images_per_second']:6.0f} images/s, "
                f"{figures['gflops']:5.1f} GFLOP/s, "
                f"{figures['train_images_per_cpu_second']:6.0f} images/CPU s, validation "
                f"{figures['validation_seconds']:.1f} of {figures['epoch_seconds']:.1f} s",
                flush=True,
            )
    return {**summarize_speed(figures_by_arm), **measure_steps(steps)}


def summarize_speed(figures_by_arm: dict[str, list[dict]]) -> dict:
    """Each arm's speed-up over the first arm inside each round (median, min, max), and rates."""
    names = list(figures_by_arm)
    first = figures_by_arm[names[0]]
    machine = first[0]["peak"]
    arms = {}
    for name, runs in figures_by_arm.items():
        speedups = [
            run["train_images_per_second"] / base["train_images_per_second"]
            for base, run in zip(first, runs, strict=True)
        ]
        cpu_speedups = [
            run["train_images_per_cpu_second"] / base["train_images_per_cpu_second"]
            for base, run in zip(first, runs, strict=True)
        ]
        gflops = statistics.median(run["gflops"] for run in runs)
        arms[name] = {
            "settings": ARMS.get(name),
            "speedup": statistics.median(speedups),
            "speedup_min": min(speedups),
            "speedup_max": max(speedups),
            "cpu_time_speedup": statistics.median(cpu_speedups),
            "train_images_per_second": statistics.median(
                run["train_images_per_second"] for run in runs
            ),
            "gflops": gflops,
            "share_of_peak": gflops / machine["peak_gflops"] if "peak_gflops" in machine else None,
            "validation_share": statistics.median(
                run["validation_seconds"] / run["epoch_seconds"] for run in runs
            ),
            "train_mflop_per_image": runs[0]["train_flops_per_image"] / 1e6,
            # Identical reruns: every round of an arm trains the same weights.
            "reruns_identical": len({run["weights_sha256"] for run in runs}) == 1,
            "rounds": runs,
        }
    summary = {"speed_arms": arms, "speed_images": first[0]["images"], **machine}
    if "default" in arms:
        summary["default_train_speedup"] = arms["default"]["speedup"]
        summary["default_train_speedup_min"] = arms["default"]["speedup_min"]
    return summary


def measure_one_arm(root: Path, images: int, arm: str) -> dict:
    """In this process: two epochs of ``arm``'s settings, the second timed with its validation."""
    # isort: off
    import mnistpipe  # noqa: F401  (first: its settings apply before TensorFlow loads)

    # isort: on
    import keras

    from mnistpipe import models, paths
    from mnistpipe.lineage import weights_sha256
    from mnistpipe.params import check_train_settings, load_params
    from mnistpipe.prepared import load_split
    from mnistpipe.seeding import seed_everything
    from mnistpipe.training import train_from_params

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            self.cpu_started = time.process_time()

        def on_test_begin(self, logs=None):
            self.validation_started = time.perf_counter()

        def on_test_end(self, logs=None):
            self.validation_seconds = time.perf_counter() - self.validation_started

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.started
            self.cpu_seconds = time.process_time() - self.cpu_started

    models.FusedBatchNormalization.use_fused_op = ARMS[arm]["fused_batch_norm"]
    params = load_params(root / paths.PARAMS)
    train_images, train_labels = load_split(root / paths.PREPARED, "train")
    train = (train_images[:images], train_labels[:images])
    val = load_split(root / paths.PREPARED, "val")
    settings = {**params["train"], **ARMS[arm]["train"], "epochs": 2}
    check_train_settings(settings)
    seed_everything(params["seed"], settings["deterministic"])
    timer = EpochTimer()
    model, _ = train_from_params(settings, params["seed"], train, val, [timer])
    train_flops = training_flops_per_image(model)
    validation_images = len(val[1])
    arithmetic = len(train[1]) * train_flops + validation_images * serving_flops_per_image(model)
    return {
        "images": len(train[1]),
        "epoch_seconds": timer.seconds,
        "validation_seconds": timer.validation_seconds,
        "train_images_per_second": len(train[1]) / timer.seconds,
        # Images per second of this process's CPU time (all its threads): on a
        # machine shared with other work, less sensitive than wall time to how
        # much of the cores the others took.
        "train_images_per_cpu_second": len(train[1]) / timer.cpu_seconds,
        "train_flops_per_image": train_flops,
        # The epoch's arithmetic, its validation pass included, over its wall time.
        "gflops": arithmetic / timer.seconds / 1e9,
        "peak": peak(),
        "weights_sha256": weights_sha256(model),
    }


if __name__ == "__main__":
    figures = measure_one_arm(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
    Path(sys.argv[4]).write_text(json.dumps(figures))


# Step-alternated arms: (fused batch norm, batch size). Measured in one process,
# one training step of each arm in turn, so that other work on a shared machine
# slows every arm alike; the arm processes above include the input pipeline,
# validation and Keras' fit, these the model's step alone.
STEP_ARMS = {
    "before": (False, 128),
    "fused_batch_norm": (True, 128),
    "fused_batch_norm_batch_64": (True, 64),
}


def measure_steps(steps: int = 60, model_name: str = "convnet") -> dict:
    """Training steps of ``model_name`` alternated arm by arm; per-image speed-ups over the first.

    The median step and the 10th-percentile step (the least disturbed) of each
    arm, per image, give two speed-ups; the steps train on one fixed batch of
    random images under op determinism, as the train stage's steps run.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from mnistpipe import models
    from mnistpipe.recipe import make_loss
    from mnistpipe.seeding import seed_everything

    seed_everything(0, True)
    loss_function = make_loss()
    arms = {}
    for name, (fused, batch_size) in STEP_ARMS.items():
        # Read when the step is traced, just below, so each arm keeps its own computation.
        models.FusedBatchNormalization.use_fused_op = fused
        model = models.build_model(model_name, 0.2, input_shape=(28, 28, 1), classes=10)
        optimizer = keras.optimizers.Adam(0.002)
        optimizer.build(model.trainable_variables)
        generator = np.random.default_rng(0)
        images = tf.constant(generator.random((batch_size, *model.input_shape[1:]), "float32"))
        labels = tf.constant(generator.integers(0, 10, batch_size))

        @tf.function
        def step(images, labels, model=model, optimizer=optimizer):
            with tf.GradientTape() as tape:
                loss = loss_function(labels, model(images, training=True))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))

        step(images, labels)  # Traced here, outside the timing.
        arms[name] = (step, images, labels, batch_size)
    models.FusedBatchNormalization.use_fused_op = True
    seconds_per_image: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(steps):
        for name, (step, images, labels, batch_size) in arms.items():
            started = time.perf_counter()
            step(images, labels)
            seconds_per_image[name].append((time.perf_counter() - started) / batch_size)
    return summarize_steps(seconds_per_image)


def summarize_steps(seconds_per_image: dict[str, list[float]]) -> dict:
    """Per-image speed-ups of each arm over the first, at the median and 10th-percentile step."""

    def percentile(values, fraction):
        return sorted(values)[int(fraction * (len(values) - 1))]

    names = list(seconds_per_image)
    first = seconds_per_image[names[0]]
    return {
        "step_arms": {
            name: {
                "speedup": percentile(first, 0.5) / percentile(values, 0.5),
                "speedup_p10": percentile(first, 0.1) / percentile(values, 0.1),
                "images_per_second": 1 / percentile(values, 0.5),
                "steps": len(values),
            }
            for name, values in seconds_per_image.items()
        }
    }
