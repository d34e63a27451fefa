"""Training arms run side by side on the same data, and the ratios taken round by round."""

import os
import statistics
import sys
import threading
from pathlib import Path

from bench.arms import Arm, pipeline_arm, tutorial_arm
from bench.turns import Turns

# Training FLOPs per image of the quickstart model (forward, input and weight
# gradients of Conv2D(32, 3), Dense(128), Dense(10)), to compare with the CPU's
# arithmetic limit.
QUICKSTART_TRAIN_FLOP_PER_IMAGE = 17.4e6
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


def compare_training(root: Path, epochs: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
    from mnistpipe import paths
    from mnistpipe.data import load_split, read_raw
    from mnistpipe.params import load_params

    os.chdir(root)
    params = load_params(paths.PARAMS)
    splits = {name: load_split(paths.PREPARED, name) for name in ("train", "val", "test")}

    def load_data():
        return read_raw(paths.RAW, "train"), read_raw(paths.RAW, "test")

    targets = arm_targets(params, splits, load_data, epochs)
    names = list(targets)
    turns = Turns(names)
    arms = {name: Arm(name, turns) for name in names}
    print(f"training, arms alternated epoch by epoch: {', '.join(names)}", flush=True)
    run_arms(arms, {name: lambda arm, run=run: run(arm, arms) for name, run in targets.items()})
    return {"arms": arms, "epochs": epochs}


def arm_targets(params: dict, splits: dict, load_data, epochs: int) -> dict:
    """The arms of a run, by name, in their turn order: adding an arm is one entry here.

    Each entry trains one arm, given the arm to record into and all the arms
    (an arm may decide when to stop by looking at the others).
    """
    seed = params["seed"]
    quickstart_settings = {**params["train"], **QUICKSTART_PARAMS, "epochs": epochs}

    def default_may_stop(arm: Arm, arms: dict) -> bool:
        # The default preset runs until it has had as many rounds as the
        # tutorial and has reached the tutorial's final accuracy.
        tutorial = arms["tutorial"]
        if len(tutorial.epochs) < epochs or len(arm.epochs) < epochs:
            return False
        return arm.epochs_to(tutorial.epochs[-1]["test_accuracy"]) is not None

    return {
        "tutorial": lambda arm, arms: tutorial_arm(arm, load_data, epochs, seed),
        "quickstart_cnn": lambda arm, arms: pipeline_arm(
            arm, quickstart_settings, seed, splits, lambda arm: False
        ),
        "default": lambda arm, arms: pipeline_arm(
            arm, params["train"], seed, splits, lambda arm: default_may_stop(arm, arms)
        ),
    }


def summarize_training(training: dict) -> dict:
    arms, epochs = training["arms"], training["epochs"]
    tutorial, quickstart, default = arms["tutorial"], arms["quickstart_cnn"], arms["default"]
    rounds = range(1, epochs)  # Epoch 0 is every arm's warm-up.
    throughput_ratios = [
        quickstart.images_per_second(epoch) / tutorial.images_per_second(epoch) for epoch in rounds
    ]
    target = tutorial.epochs[-1]["test_accuracy"]
    tutorial_epochs = tutorial.epochs_to(target)
    default_epochs = default.epochs_to(target)
    # Time to accuracy inside each round: the epochs each arm needed, times the
    # length of its epoch in that round, plus each arm's own warm-up epoch.
    time_to_accuracy_ratios = []
    if default_epochs is not None:
        for epoch in rounds:
            tutorial_seconds = (
                tutorial.epochs[0]["seconds"]
                + (tutorial_epochs - 1) * tutorial.epochs[epoch]["seconds"]
            )
            default_seconds = (
                default.epochs[0]["seconds"]
                + (default_epochs - 1) * default.epochs[epoch]["seconds"]
            )
            time_to_accuracy_ratios.append(tutorial_seconds / default_seconds)

    def steady_rate(arm: Arm) -> float:
        return statistics.median(arm.images_per_second(epoch) for epoch in rounds)

    def warm_up_seconds(arm: Arm) -> float:
        # The first epoch's extra time over a steady epoch: tracing and compiling.
        steady = statistics.median(arm.epochs[epoch]["seconds"] for epoch in rounds)
        return arm.epochs[0]["seconds"] - steady

    quickstart_rate = steady_rate(quickstart)
    return {
        "throughput_ratio": statistics.median(throughput_ratios),
        "throughput_ratio_min": min(throughput_ratios),
        "throughput_ratio_max": max(throughput_ratios),
        "tutorial_images_per_second": steady_rate(tutorial),
        "quickstart_images_per_second": quickstart_rate,
        "default_images_per_second": steady_rate(default),
        "quickstart_gflops": quickstart_rate * QUICKSTART_TRAIN_FLOP_PER_IMAGE / 1e9,
        "warm_up_seconds": {name: warm_up_seconds(arm) for name, arm in arms.items()},
        "tutorial_final_test_accuracy": target,
        "quickstart_final_test_accuracy": quickstart.epochs[epochs - 1]["test_accuracy"],
        "tutorial_seconds_to_accuracy": tutorial.seconds_to(target),
        "default_seconds_to_accuracy": default.seconds_to(target),
        "tutorial_epochs_to_accuracy": tutorial_epochs,
        "default_epochs_to_accuracy": default_epochs,
        "time_to_accuracy_ratio": (
            statistics.median(time_to_accuracy_ratios) if time_to_accuracy_ratios else 0.0
        ),
        "time_to_accuracy_ratio_min": min(time_to_accuracy_ratios, default=0.0),
        "time_to_accuracy_ratio_max": max(time_to_accuracy_ratios, default=0.0),
        "test_accuracy_per_epoch": {
            name: [figures["test_accuracy"] for figures in arm.epochs]
            for name, arm in arms.items()
        },
        "seconds_per_epoch": {
            name: [figures["seconds"] for figures in arm.epochs] for name, arm in arms.items()
        },
    }
