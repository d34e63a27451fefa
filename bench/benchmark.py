"""`make bench`: the tutorial's code against the pipeline, side by side in one run.

These machines drift by up to 1.6x between runs, so every comparison is made
inside one invocation:

1. The pipeline, as `dvc repro` runs it, in a temporary copy of the project:
   each stage's command timed on its own, with the train stage's peak memory;
   then `dvc commit` and a `dvc repro` with nothing changed, timed.
2. Training throughput and time to accuracy, with the arms alternated epoch by
   epoch on the same data: the TF2 quickstart exactly as the tutorial wrote it
   (bench/reference/quickstart.py), the pipeline's training with
   `train.model: quickstart_cnn`, and the pipeline's default preset. The first
   epoch of each arm is its warm-up (tracing and compiling, reported apart);
   every later epoch is one round, and a ratio is taken inside each round.
3. The exported SavedModel from step 1, in batches and one image at a time.

Everything is printed and written to bench/results.json.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parent.parent
RESULTS = REPOSITORY / "bench" / "results.json"
STAGES = ("download", "preprocess", "train", "evaluate", "export")
# What `dvc repro` needs from the working tree; data, models and caches are rebuilt.
PROJECT_FILES = ("dvc.yaml", "params.yaml", "stages", "src", ".dvc/config", ".dvcignore")
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


def cpu_model() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


# --- 1. The pipeline's stages -------------------------------------------------


def copy_project(destination: Path) -> None:
    for name in PROJECT_FILES:
        source = REPOSITORY / name
        target = destination / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg*"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    subprocess.run(["git", "init", "-q"], cwd=destination, check=True)


def timed_process(command: list[str], root: Path) -> tuple[float, float]:
    """Run ``command`` in ``root``; return its wall seconds and its peak RSS in MB."""
    # The stages call `python`: make it this interpreter.
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=root, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = process.stdout.read()
    # wait4 gives this child's own resource use, not the sum over all children.
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed in {root}:\n{output.decode()}")
    return seconds, usage.ru_maxrss / 1024


def run_pipeline(root: Path) -> dict:
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    seconds, peak_mb = {}, {}
    for name in STAGES:
        print(f"pipeline: {stages[name]['cmd']} ...", flush=True)
        seconds[name], peak_mb[name] = timed_process(stages[name]["cmd"].split(), root)
        print(f"  {seconds[name]:.1f} s, peak RSS {peak_mb[name]:.0f} MB", flush=True)
    dvc = [sys.executable, "-m", "dvc"]
    timed_process([*dvc, "commit", "--force", "--quiet"], root)
    noop = [timed_process([*dvc, "repro"], root)[0] for _ in range(3)]
    print(f"  dvc repro with nothing changed: {statistics.median(noop):.2f} s", flush=True)
    return {"seconds": seconds, "peak_mb": peak_mb, "noop_repro_seconds": noop}


# --- 2. Training, arm against arm ---------------------------------------------


class Turns:
    """Lets one arm run at a time, in a fixed order, one epoch per turn."""

    def __init__(self, names: list[str]):
        self.order = list(names)
        self.current = 0
        self.condition = threading.Condition()

    def wait_for(self, name: str) -> None:
        with self.condition:
            self.condition.wait_for(lambda: self.order[self.current] == name)

    def done(self, name: str, finished: bool = False) -> None:
        with self.condition:
            position = self.order.index(name)
            if finished:
                self.order.remove(name)
                self.current = position % len(self.order) if self.order else 0
            else:
                self.current = (position + 1) % len(self.order)
            self.condition.notify_all()


class Arm:
    """One arm's epochs: wall seconds, training images, test accuracy."""

    def __init__(self, name: str, turns: Turns):
        self.name = name
        self.turns = turns
        self.epochs: list[dict] = []
        self.error: BaseException | None = None

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


def pipeline_arm(arm: Arm, settings: dict, seed: int, splits: dict, stop) -> None:
    import keras
    import tensorflow as tf

    from mnistpipe.training import seed_everything, train_from_params

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

    train_from_params(settings, seed, splits["train"], splits["val"], callbacks=[Alternate()])


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
    sys.path.insert(0, str(REPOSITORY / "bench" / "reference"))
    from mnistpipe import paths
    from mnistpipe.data import load_split, read_raw
    from mnistpipe.params import load_params

    os.chdir(root)
    params = load_params(paths.PARAMS)
    splits = {name: load_split(paths.PREPARED, name) for name in ("train", "val", "test")}

    def load_data():
        return read_raw(paths.RAW, "train"), read_raw(paths.RAW, "test")

    quickstart_settings = {**params["train"], **QUICKSTART_PARAMS, "epochs": epochs}
    names = ["tutorial", "quickstart_cnn", "default"]
    turns = Turns(names)
    arms = {name: Arm(name, turns) for name in names}

    def default_may_stop(arm: Arm) -> bool:
        # The default preset runs until it has had as many rounds as the
        # tutorial and has reached the tutorial's final accuracy.
        tutorial = arms["tutorial"]
        if len(tutorial.epochs) < epochs or len(arm.epochs) < epochs:
            return False
        return arm.epochs_to(tutorial.epochs[-1]["test_accuracy"]) is not None

    print(f"training, arms alternated epoch by epoch: {', '.join(names)}", flush=True)
    run_arms(
        arms,
        {
            "tutorial": lambda arm: tutorial_arm(arm, load_data, epochs, params["seed"]),
            "quickstart_cnn": lambda arm: pipeline_arm(
                arm, quickstart_settings, params["seed"], splits, lambda _: False
            ),
            "default": lambda arm: pipeline_arm(
                arm, params["train"], params["seed"], splits, default_may_stop
            ),
        },
    )
    return {"arms": arms, "epochs": epochs}


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


# --- 3. The exported model ----------------------------------------------------


def measure_serving(root: Path, batch_size: int = 1000, rounds: int = 5) -> dict:
    import numpy as np

    from mnistpipe import paths
    from mnistpipe.data import read_raw
    from mnistpipe.serving import load_serving_function

    serve = load_serving_function(root / paths.EXPORT / "saved_model")
    images, _ = read_raw(root / paths.RAW, "test")
    batches = [images[start : start + batch_size] for start in range(0, len(images), batch_size)]
    serve(batches[0])  # Warm-up: the first call traces.
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for batch in batches:
            np.asarray(serve(batch))
        rates.append(len(images) / (time.perf_counter() - started))
    single = images[:1]
    for _ in range(10):
        serve(single)
    latencies = []
    for index in range(300):
        image = images[index : index + 1]
        started = time.perf_counter()
        np.asarray(serve(image))
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "serving_images_per_second": statistics.median(rates),
        "serving_single_ms_p50": statistics.median(latencies),
        "serving_single_ms_p90": statistics.quantiles(latencies, n=10)[-1],
    }


# --- Report -------------------------------------------------------------------


def report(results: dict) -> None:
    goals = [
        ("default test accuracy", "default_test_accuracy", ">=", 0.930, "{:.4f}"),
        ("default train stage, s", "default_train_seconds", "<=", 480, "{:.1f}"),
        ("throughput ratio (quickstart_cnn / tutorial)", "throughput_ratio", ">=", 3.0, "{:.2f}"),
        (
            "time-to-accuracy ratio (tutorial / default)",
            "time_to_accuracy_ratio",
            ">=",
            5.0,
            "{:.2f}",
        ),
        ("no-op dvc repro, s", "noop_repro_seconds", "<=", 3.0, "{:.2f}"),
        ("preprocess, s", "preprocess_seconds", "<=", 10.0, "{:.1f}"),
        ("evaluate + export, s", "evaluate_export_seconds", "<=", 60.0, "{:.1f}"),
        ("train peak RSS, MB", "train_peak_rss_mb", "<=", 1536, "{:.0f}"),
        (
            "serving, images/s (batches of 1000)",
            "serving_images_per_second",
            ">=",
            10000,
            "{:.0f}",
        ),
        ("serving one image, ms (median)", "serving_single_ms_p50", "<=", 2.0, "{:.2f}"),
    ]
    print(f"\nCPU: {results['cpu_model']}")
    print(f"{'figure':<46} {'measured':>10} {'goal':>10}")
    for label, key, relation, goal, form in goals:
        value = results[key]
        met = value >= goal if relation == ">=" else value <= goal
        print(
            f"{label:<46} {form.format(value):>10} {relation}{goal:>8} {'ok' if met else 'MISSED'}"
        )
    print(
        f"throughput ratio min {results['throughput_ratio_min']:.2f}, "
        f"max {results['throughput_ratio_max']:.2f}; time-to-accuracy ratio "
        f"min {results['time_to_accuracy_ratio_min']:.2f}, "
        f"max {results['time_to_accuracy_ratio_max']:.2f}"
    )
    print(
        f"images/s: tutorial {results['tutorial_images_per_second']:.0f}, quickstart_cnn "
        f"{results['quickstart_images_per_second']:.0f} "
        f"({results['quickstart_gflops']:.0f} GFLOP/s of training arithmetic), default "
        f"{results['default_images_per_second']:.0f}"
    )
    print(
        f"tutorial's final test accuracy {results['tutorial_final_test_accuracy']:.4f}: "
        f"tutorial reached it after {results['tutorial_seconds_to_accuracy']:.1f} s "
        f"(epoch {results['tutorial_epochs_to_accuracy']}), default after "
        f"{results['default_seconds_to_accuracy'] or float('nan'):.1f} s "
        f"(epoch {results['default_epochs_to_accuracy']}); quickstart_cnn ended at "
        f"{results['quickstart_final_test_accuracy']:.4f}"
    )
    warm_up = ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in results["warm_up_seconds"].items()
    )
    print(f"warm-up (first epoch over a steady one): {warm_up}")
    print(f"wrote {RESULTS.relative_to(REPOSITORY)}")


def rounded(value):
    """Floats to 4 decimals, for a results file people read."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="the tutorial's epochs (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    arguments = parser.parse_args()
    if arguments.epochs < 4:
        parser.error("--epochs must be at least 4: one warm-up epoch and three rounds")

    from mnistpipe.files import write_json

    root = Path(tempfile.mkdtemp(prefix="mnistpipe-bench-"))
    try:
        copy_project(root)
        pipeline = run_pipeline(root)
        training = summarize_training(compare_training(root, arguments.epochs))
        serving = measure_serving(root)
        evaluation = json.loads((root / "metrics" / "evaluate.json").read_text())
        results = {
            "cpu_model": cpu_model(),
            "default_test_accuracy": evaluation["accuracy"],
            "default_train_seconds": pipeline["seconds"]["train"],
            "noop_repro_seconds": statistics.median(pipeline["noop_repro_seconds"]),
            "preprocess_seconds": pipeline["seconds"]["preprocess"],
            "evaluate_export_seconds": pipeline["seconds"]["evaluate"]
            + pipeline["seconds"]["export"],
            "train_peak_rss_mb": pipeline["peak_mb"]["train"],
            "stage_seconds": pipeline["seconds"],
            "stage_peak_rss_mb": pipeline["peak_mb"],
            "quickstart_params": QUICKSTART_PARAMS,
            **training,
            **serving,
        }
        write_json(RESULTS, rounded(results))
        report(results)
    finally:
        if arguments.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
