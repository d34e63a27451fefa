"""Training arms run side by side on the same data, and the ratios taken round by round."""

import os
import statistics
import sys
import threading
from pathlib import Path

from bench.arithmetic import training_flops_per_image
from bench.arms import Arm, pipeline_arm, tutorial_arm
from bench.turns import Turns

# The quickstart_cnn arm: the tutorial's model and epochs, with the pipeline's
# levers. Batches of 512 keep both cores busy in large matrix products (the
# tutorial's 32 spend most of a step in per-step overhead); the learning rate is
# scaled up with the batch and decays on the params' schedule.
QUICKSTART_PARAMS = {
    "model": "quickstart_cnn",
    "batch_size": 512,
    "learning_rate": 0.008,
    "augment": "none",
}
# The fast preset of goal 2 of issue 17: a params override (`dvc exp run -S
# train.model=strided_cnn -S ...`, docs/explanation/speed.md) meant to reach the
# tutorial's final test accuracy in a fifth of the tutorial's time. The
# strided_cnn model (two stride-2 Conv-BatchNorm blocks: a third of the
# quickstart's arithmetic an image) on a 3-epoch cosine schedule, chosen on the
# validation split: 2 epochs gave 90.7% val, within seed noise of the
# tutorial's accuracy, 3 epochs 91.2%. Batches of 128 (not 512): with 3 epochs
# the number of steps, not the arithmetic rate, limits the accuracy. The
# recipe knobs the default may turn on are set here, so the preset stays what it says.
FAST_PRESET = {
    "model": "strided_cnn",
    "batch_size": 128,
    "learning_rate": 0.004,
    "augment": "none",
    "epochs": 3,
    "shift_pixels": 0,
    "label_smoothing": 0.0,
    "warmup_epochs": 0,
}
# The bfloat16 comparison: the default params under each Keras dtype policy.
PRECISION_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
# Which parts of `python -m bench` need which arms (bench/__main__.py's --only).
ARMS_OF_PART = {
    "training": ("tutorial", "quickstart_cnn"),
    "preset": ("tutorial", "preset"),
    "bf16": tuple(PRECISION_POLICIES),
}


def run_arms(arms: dict, targets: dict) -> None:
    """Run each arm's target function in its own thread; they take turns by epoch."""
    threads = []
    for name, target in targets.items():

        def guarded(arm=arms[name], target=target):
            try:
                target(arm)
            except BaseException as error:  # Reported by the main thread below.
                arm.error = error
                arm.turns.done(arm.name, finished=True)

        threads.append(threading.Thread(target=guarded, name=name))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for arm in arms.values():
        if arm.error is not None:
            raise arm.error


def compare_training(
    root: Path,
    epochs: int,
    parts=tuple(ARMS_OF_PART),
    precision_epochs: int = 3,
    precision_images: int = 0,
) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
    from mnistpipe import paths
    from mnistpipe.data import read_raw
    from mnistpipe.params import load_params
    from mnistpipe.prepared import load_split

    os.chdir(root)
    params = load_params(paths.PARAMS)
    splits = {name: load_split(paths.PREPARED, name) for name in ("train", "val", "test")}
    test_count = len(splits["test"][1])

    def load_data():
        # The prepared test set is the first examples of the raw one (all unless
        # preprocess.limit is set): the tutorial scores on the same images.
        images, labels = read_raw(paths.RAW, "test")
        train_images, train_labels = read_raw(paths.RAW, "train")
        count = len(splits["train"][1]) + len(splits["val"][1])
        return (train_images[:count], train_labels[:count]), (
            images[:test_count],
            labels[:test_count],
        )

    targets = arm_targets(
        params, splits, load_data, epochs, parts, precision_epochs, precision_images
    )
    names = list(targets)
    turns = Turns(names)
    arms = {name: Arm(name, turns) for name in names}
    print(f"training, arms alternated epoch by epoch: {', '.join(names)}", flush=True)
    run_arms(arms, {name: lambda arm, run=run: run(arm, arms) for name, run in targets.items()})
    return {"arms": arms, "epochs": epochs}


def arm_targets(
    params: dict,
    splits: dict,
    load_data,
    epochs: int,
    parts,
    precision_epochs: int,
    precision_images: int = 0,
) -> dict:
    """The arms of a run, by name, in their turn order: adding an arm is one entry here.

    Each entry trains one arm, given the arm to record into and all the arms.
    ``parts`` picks the arms (ARMS_OF_PART); ``epochs`` are the tutorial's,
    ``precision_epochs`` those of the float32 and bfloat16 arms, which train on
    the first ``precision_images`` training images when it is not 0 (a CPU without
    bfloat16 arithmetic emulates it, several times slower than float32).
    """
    seed = params["seed"]

    def pipeline(settings, dtype_policy=None, arm_splits=splits):
        return lambda arm, arms: pipeline_arm(
            arm, settings, seed, arm_splits, lambda arm: False, dtype_policy
        )

    precision_splits = dict(splits)
    if precision_images:
        images, labels = splits["train"]
        precision_splits["train"] = (images[:precision_images], labels[:precision_images])
    precision_settings = {**params["train"], "epochs": precision_epochs}
    every_arm = {
        "tutorial": lambda arm, arms: tutorial_arm(arm, load_data, epochs, seed),
        "quickstart_cnn": pipeline({**params["train"], **QUICKSTART_PARAMS, "epochs": epochs}),
        "preset": pipeline({**params["train"], **FAST_PRESET}),
        **{
            name: pipeline(precision_settings, policy, precision_splits)
            for name, policy in PRECISION_POLICIES.items()
        },
    }
    wanted = {name for part in parts for name in ARMS_OF_PART.get(part, ())}
    return {name: target for name, target in every_arm.items() if name in wanted}


def summarize_training(training: dict) -> dict:
    """The figures of the arms that ran: throughput, time to accuracy, bfloat16 speed-up."""
    arms, epochs = training["arms"], training["epochs"]
    summary = {
        "warm_up_seconds": {name: arm.warm_up_seconds() for name, arm in arms.items()},
        "test_accuracy_per_epoch": {
            name: [figures["test_accuracy"] for figures in arm.epochs]
            for name, arm in arms.items()
        },
        "seconds_per_epoch": {
            name: [figures["seconds"] for figures in arm.epochs] for name, arm in arms.items()
        },
    }
    summary["gflops_per_arm"] = {
        name: steady_rate(arm) * arm_training_flops(arm) / 1e9 for name, arm in arms.items()
    }
    if "tutorial" in arms:
        tutorial = arms["tutorial"]
        summary.update(
            tutorial_images_per_second=steady_rate(tutorial),
            tutorial_final_test_accuracy=tutorial.epochs[-1]["test_accuracy"],
            tutorial_seconds=sum(figures["seconds"] for figures in tutorial.epochs),
            tutorial_epochs=len(tutorial.epochs),
        )
    if "quickstart_cnn" in arms:
        summary.update(throughput_summary(arms["tutorial"], arms["quickstart_cnn"], epochs))
    if "preset" in arms:
        summary.update(preset_summary(arms["tutorial"], arms["preset"]))
    if "bfloat16" in arms:
        summary.update(precision_summary(arms["float32"], arms["bfloat16"]))
    return summary


def arm_training_flops(arm: Arm) -> float:
    """Training FLOPs of one image of ``arm``'s model, counted from its layers.

    The tutorial's model is the quickstart's, built here to be counted.
    """
    if arm.model is None:
        from mnistpipe.models import build_quickstart_cnn

        return training_flops_per_image(build_quickstart_cnn((28, 28, 1), 10))
    return training_flops_per_image(arm.model)


def steady_rate(arm: Arm) -> float:
    """Training images a second over the epochs after the warm-up (median)."""
    later = range(1, len(arm.epochs)) if len(arm.epochs) > 1 else range(1)
    return statistics.median(arm.images_per_second(epoch) for epoch in later)


def throughput_summary(tutorial: Arm, quickstart: Arm, epochs: int) -> dict:
    # Epoch 0 is every arm's warm-up; each later epoch is a round.
    rounds = range(1, epochs)
    ratios = [
        quickstart.images_per_second(epoch) / tutorial.images_per_second(epoch) for epoch in rounds
    ]
    quickstart_rate = steady_rate(quickstart)
    return {
        "throughput_ratio": statistics.median(ratios),
        "throughput_ratio_min": min(ratios),
        "throughput_ratio_max": max(ratios),
        "quickstart_params": QUICKSTART_PARAMS,
        "quickstart_images_per_second": quickstart_rate,
        "quickstart_gflops": quickstart_rate * arm_training_flops(quickstart) / 1e9,
        "quickstart_final_test_accuracy": quickstart.epochs[epochs - 1]["test_accuracy"],
    }


def preset_summary(tutorial: Arm, preset: Arm) -> dict:
    """How much sooner the preset reaches the tutorial's final test accuracy, same run.

    ``preset_time_to_accuracy_ratio`` uses wall seconds with each arm's warm-up
    (tracing, compiling) included, as a user waits for them; the ratio without
    the warm-ups is reported beside it. 0 when the preset never gets there.
    """
    target = tutorial.epochs[-1]["test_accuracy"]
    tutorial_seconds = tutorial.seconds_to(target)
    preset_seconds = preset.seconds_to(target)
    ratio = without_warm_up = 0.0
    if preset_seconds is not None:
        ratio = tutorial_seconds / preset_seconds
        without_warm_up = tutorial.seconds_to_without_warm_up(
            target
        ) / preset.seconds_to_without_warm_up(target)
    return {
        "preset": FAST_PRESET,
        "preset_time_to_accuracy_ratio": ratio,
        "preset_time_to_accuracy_ratio_without_warm_up": without_warm_up,
        "preset_time_to_accuracy_ratio_uses": "wall seconds, warm-up included",
        "tutorial_seconds_to_accuracy": tutorial_seconds,
        "tutorial_epochs_to_accuracy": tutorial.epochs_to(target),
        "preset_seconds_to_accuracy": preset_seconds,
        "preset_epochs_to_accuracy": preset.epochs_to(target),
        "preset_final_test_accuracy": preset.epochs[-1]["test_accuracy"],
        "preset_images_per_second": steady_rate(preset),
    }


def precision_summary(float32: Arm, bfloat16: Arm) -> dict:
    """bfloat16's speed-up per epoch, round by round after the warm-up, and both accuracies."""
    rounds = range(1, min(len(float32.epochs), len(bfloat16.epochs)))
    speedups = [
        float32.epochs[epoch]["seconds"] / bfloat16.epochs[epoch]["seconds"] for epoch in rounds
    ]
    return {
        "bf16_train_speedup": statistics.median(speedups),
        "bf16_train_speedup_min": min(speedups),
        "bf16_train_speedup_max": max(speedups),
        "precision_epochs": len(float32.epochs),
        # Each arm's images an epoch: the whole training set, or --bf16-images of it.
        "precision_training_images": float32.epochs[-1]["images"],
        "float32_test_accuracy": float32.epochs[-1]["test_accuracy"],
        "bf16_test_accuracy": bfloat16.epochs[-1]["test_accuracy"],
        "default_images_per_second": steady_rate(float32),
    }
