"""oneDNN kernels off and on: the default's training and serving speed, and the tutorial's.

TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it loads, so each arm is a
process of its own (``python -m bench.onednn ROOT IMAGES``), and the two settings
alternate round by round (off, on, off, on, ...): a drift of the machine then
falls on both. mnistpipe turns the kernels on by default (mnistpipe/__init__.py
says why); this part is the measurement behind that choice.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {"off": "0", "on": "1"}


def measure_onednn(root: Path, rounds: int = 2, images: int = 12000) -> dict:
    """Ratios on / off of each figure, taken inside each round (median, min, max)."""
    arms: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for round_number in range(1, rounds + 1):
        for name, value in SETTINGS.items():
            environment = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": value}
            completed = subprocess.run(
                [sys.executable, "-m", "bench.onednn", str(root), str(images)],
                cwd=Path(__file__).resolve().parent.parent,
                env=environment,
                capture_output=True,
                text=True,
                check=False,
            )
            if completed.returncode != 0:
                raise RuntimeError(f"the oneDNN {name} arm failed:\n{completed.stderr}")
            figures = json.loads(completed.stdout.splitlines()[-1])
            if figures["onednn_kernels"] != (name == "on"):
                raise RuntimeError(f"the oneDNN {name} arm ran with TensorFlow's other kernels")
            arms[name].append(figures)
            print(
                f"  oneDNN {name:<3} round {round_number}: default trains "
                f"{figures['train_images_per_second']:.0f} images/s, serves "
                f"{figures['serving_images_per_second']:.0f}; the tutorial trains "
                f"{figures['tutorial_images_per_second']:.0f}",
                flush=True,
            )
    results = {"onednn_images": images, "onednn_rounds": arms}
    for figure in ("train", "serving", "tutorial"):
        key = f"{figure}_images_per_second"
        ratios = [on[key] / off[key] for off, on in zip(arms["off"], arms["on"], strict=True)]
        results[f"onednn_{figure}_speedup"] = statistics.median(ratios)
        results[f"onednn_{figure}_speedup_min"] = min(ratios)
        results[f"onednn_{figure}_speedup_max"] = max(ratios)
    # Identical reruns hold within each setting: every round trains the same weights.
    results["onednn_reruns_identical"] = all(
        len({figures["weights_sha256"] for figures in arms[name]}) == 1 for name in SETTINGS
    )
    return results


def measure_one_arm(root: Path, images: int) -> dict:
    """In this process, under its TF_ENABLE_ONEDNN_OPTS: two epochs each, the second timed."""
    import keras

    from bench.reference import quickstart
    from bench.serving import measure_model_serving
    from mnistpipe import paths
    from mnistpipe.data import load_split, read_raw
    from mnistpipe.lineage import onednn_kernels, weights_sha256
    from mnistpipe.params import load_params
    from mnistpipe.seeding import seed_everything
    from mnistpipe.training import train_from_params

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.started

    params = load_params(root / paths.PARAMS)
    train_images, train_labels = load_split(root / paths.PREPARED, "train")
    train = (train_images[:images], train_labels[:images])
    # The default params as the train stage runs them, on the first ``images``.
    settings = {**params["train"], "epochs": 2}
    seed_everything(params["seed"], settings["deterministic"])
    timer = EpochTimer()
    model, _ = train_from_params(
        settings, params["seed"], train, load_split(root / paths.PREPARED, "val"), [timer]
    )
    with tempfile.TemporaryDirectory() as directory:
        serving = measure_model_serving(model, Path(directory) / "saved_model", root / paths.RAW)

    def load_data():
        # The tutorial's uint8 arrays, as keras.datasets gives them (bench/comparison.py).
        (raw_images, raw_labels), test = (
            read_raw(root / paths.RAW, "train"),
            read_raw(root / paths.RAW, "test"),
        )
        return (raw_images[:images], raw_labels[:images]), (test[0][:1000], test[1][:1000])

    started = time.perf_counter()
    for _ in quickstart.run(load_data, EPOCHS=2):
        tutorial_seconds = time.perf_counter() - started
        started = time.perf_counter()
    return {
        "onednn_kernels": onednn_kernels(),
        "train_images_per_second": images / timer.seconds,
        "serving_images_per_second": serving["serving_images_per_second"],
        "tutorial_images_per_second": images / tutorial_seconds,
        "weights_sha256": weights_sha256(model),
    }


if __name__ == "__main__":
    # The process of one arm: mnistpipe first, so that it loads TensorFlow.
    import mnistpipe  # noqa: F401

    print(json.dumps(measure_one_arm(Path(sys.argv[1]), int(sys.argv[2]))))
