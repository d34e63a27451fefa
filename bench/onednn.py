"""oneDNN kernels off and on, and portable or the machine's own: training and serving speed.

TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it loads, so each arm is a
process of its own (``python -m bench.onednn ROOT IMAGES FIGURES_FILE``), and the two settings
alternate round by round (off, on, off, on, ...): a drift of the machine then
falls on both. mnistpipe turns the kernels on by default (mnistpipe/__init__.py
says why); this part is the measurement behind that choice.
"""

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.child_process import figures_from_child

SETTINGS = {"off": "0", "on": "1"}
# The portable kernels (mnistpipe/__init__: oneDNN capped at AVX2, 1, 2 or 4 threads) against
# the machine's own (MNISTPIPE_PORTABLE=0): what the same bytes everywhere cost here.
PORTABLE_SETTINGS = {"machine's own": "0", "portable": "1"}


def alternate_arms(
    root: Path, rounds: int, images: int, variable: str, settings: dict[str, str], label: str
) -> dict[str, list[dict]]:
    """``rounds`` rounds of one process per setting of ``variable``, in turn; figures by arm."""
    arms: dict[str, list[dict]] = {name: [] for name in settings}
    for round_number in range(1, rounds + 1):
        for name, value in settings.items():
            figures = figures_from_child(
                "bench.onednn",
                [str(root), str(images)],
                {variable: value},
                f"the {label} {name} arm ({variable}={value})",
            )
            arms[name].append(figures)
            print(
                f"  {label} {name:<13} round {round_number}: default trains "
                f"{figures['train_images_per_second']:.0f} images/s, serves "
                f"{figures['serving_images_per_second']:.0f} (one image "
                f"{figures['serving_single_ms_p50']:.2f} ms); the tutorial trains "
                f"{figures['tutorial_images_per_second']:.0f}",
                flush=True,
            )
    return arms


def measure_onednn(root: Path, rounds: int = 2, images: int = 12000) -> dict:
    """Run ``rounds`` rounds of one process off and one on; their summary (summarize_onednn)."""
    arms = alternate_arms(root, rounds, images, "TF_ENABLE_ONEDNN_OPTS", SETTINGS, "oneDNN")
    for name, figures_of_rounds in arms.items():
        if any(figures["onednn_kernels"] != (name == "on") for figures in figures_of_rounds):
            value = SETTINGS[name]
            sys.exit(
                f"bench: TensorFlow ignored TF_ENABLE_ONEDNN_OPTS={value} (oneDNN kernels "
                f"{'on' if name == 'off' else 'off'}): this build cannot "
                "switch them, so there is nothing to compare"
            )
    return summarize_onednn(arms)


def measure_portable(root: Path, rounds: int = 2, images: int = 12000) -> dict:
    """The portable kernels against the machine's own, alternated; speeds as portable / own.

    On an AVX2 machine with 2 or 4 cores the two arms run the same kernels (ratios near 1,
    the same weights); on an AVX-512 one, or with 8 cores and more, the machine's own are
    the faster ones, by the ratio this measures.
    """
    arms = alternate_arms(root, rounds, images, "MNISTPIPE_PORTABLE", PORTABLE_SETTINGS, "kernels")
    own, portable = arms["machine's own"], arms["portable"]
    results = {"portable_images": portable[0]["images"], "portable_rounds": arms}
    for figure in ("train", "serving"):
        key = f"{figure}_images_per_second"
        ratios = [mine[key] / theirs[key] for theirs, mine in zip(own, portable, strict=True)]
        results[f"portable_{figure}_speed_ratio"] = statistics.median(ratios)
        results[f"portable_{figure}_speed_ratio_min"] = min(ratios)
        results[f"portable_{figure}_speed_ratio_max"] = max(ratios)
    results["portable_same_weights_as_own"] = {
        figures["weights_sha256"] for figures in portable
    } == {figures["weights_sha256"] for figures in own}
    return results


def summarize_onednn(arms: dict[str, list[dict]]) -> dict:
    """Ratios on / off of each figure, taken inside each round (median, min, max)."""

    def ratios(key: str) -> list[float]:
        return [on[key] / off[key] for off, on in zip(arms["off"], arms["on"], strict=True)]

    results = {"onednn_images": arms["on"][0]["images"], "onednn_rounds": arms}
    for figure in ("train", "serving", "tutorial"):
        speedups = ratios(f"{figure}_images_per_second")
        results[f"onednn_{figure}_speedup"] = statistics.median(speedups)
        results[f"onednn_{figure}_speedup_min"] = min(speedups)
        results[f"onednn_{figure}_speedup_max"] = max(speedups)
    # One image at a time the kernels cost more than they save (a latency, lower is better).
    results["onednn_single_image_latency_ratio"] = statistics.median(
        ratios("serving_single_ms_p50")
    )
    # Identical reruns hold within each setting: every round trains the same weights.
    results["onednn_reruns_identical"] = all(
        len({figures["weights_sha256"] for figures in arms[name]}) == 1 for name in SETTINGS
    )
    return results


def measure_one_arm(root: Path, images: int) -> dict:
    """In this process, under its TF_ENABLE_ONEDNN_OPTS: two epochs each, the second timed.

    The default's second epoch includes its validation pass, as the train stage's epochs do.
    """
    # isort: off
    import mnistpipe  # noqa: F401  (first: its settings apply before TensorFlow loads)

    # isort: on
    import keras

    from bench.arithmetic import training_flops_per_image
    from bench.reference import quickstart
    from bench.serving import measure_model_serving
    from mnistpipe import paths
    from mnistpipe.data import read_raw
    from mnistpipe.lineage import onednn_kernels, portable_kernels, weights_sha256
    from mnistpipe.params import load_params
    from mnistpipe.prepared import load_split
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
        train_pixels, train_classes = read_raw(root / paths.RAW, "train")
        test_pixels, test_classes = read_raw(root / paths.RAW, "test")
        return (train_pixels[:images], train_classes[:images]), (
            test_pixels[:1000],
            test_classes[:1000],
        )

    started = time.perf_counter()
    for figures in quickstart.run(load_data, EPOCHS=2):
        tutorial_rate = figures["train_images"] / (time.perf_counter() - started)
        started = time.perf_counter()
    return {
        "onednn_kernels": onednn_kernels(),
        "same_bytes_everywhere": portable_kernels()["same_bytes_everywhere"],
        "images": len(train[1]),
        "train_images_per_second": len(train[1]) / timer.seconds,
        # Its arithmetic rate (bench/arithmetic.py), the validation pass not counted.
        "train_gflops": len(train[1]) / timer.seconds * training_flops_per_image(model) / 1e9,
        "serving_images_per_second": serving["serving_images_per_second"],
        "serving_single_ms_p50": serving["serving_single_ms_p50"],
        "tutorial_images_per_second": tutorial_rate,
        "weights_sha256": weights_sha256(model),
    }


if __name__ == "__main__":
    figures = measure_one_arm(Path(sys.argv[1]), int(sys.argv[2]))
    Path(sys.argv[3]).write_text(json.dumps(figures))
