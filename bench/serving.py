"""The exported SavedModel's speed: images a second in batches, and one image's latency.

Batches are timed in the bench's own process. One image at a time is timed in a
process of its own, set up as docs/how-to/serve.md tells a server that
answers one request at a time (``python -m bench.serving SAVED_MODEL RAW FIGURES_FILE``):

- ``TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1`` in its environment: oneDNN then reorders
  each convolution's weights once and keeps that copy, where it otherwise
  computes one image's convolutions from the weights as stored (about 2.5x
  slower, by ONEDNN_VERBOSE). Only for a process that serves: in one that
  trains, the kept copy would go stale.
- one intra-op thread: a 28x28 image is too small to share out, and handing
  each small op to a second thread cost more than it saved (pooling 20x).

TensorFlow reads both once, when it starts, hence the process. The latency in
the bench's own process (threads shared, weights as stored) is kept beside it.
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

from bench.child_process import figures_from_child

SERVER_ENVIRONMENT = {"TF_ONEDNN_ASSUME_FROZEN_WEIGHTS": "1"}


def measure_model_serving(model, directory: Path, raw_directory: Path) -> dict:
    """Export ``model`` as the export stage does, to ``directory``, and measure it."""
    from mnistpipe.serving import export_saved_model

    export_saved_model(model, directory)
    return measure_serving(directory, raw_directory)


def measure_serving(
    saved_model: Path, raw_directory: Path, batch_size: int = 1000, rounds: int = 5
) -> dict:
    """The SavedModel at ``saved_model`` on the raw test images of ``raw_directory``."""
    import numpy as np

    from mnistpipe.data import read_raw
    from mnistpipe.serving import load_serving_function

    serve = load_serving_function(saved_model)
    images, _ = read_raw(raw_directory, "test")
    batches = [images[start : start + batch_size] for start in range(0, len(images), batch_size)]
    serve(batches[0])  # Warm-up: the first call traces.
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for batch in batches:
            np.asarray(serve(batch))
        rates.append(len(images) / (time.perf_counter() - started))
    server = one_image_server(saved_model, raw_directory)
    return {
        "serving_images_per_second": statistics.median(rates),
        **server,
        "serving_single_ms_p50_shared_threads": statistics.median(_latencies(serve, images)),
    }


def _latencies(serve, images, count: int = 300) -> list[float]:
    """Milliseconds of each of ``count`` calls on one image, after ten to warm up."""
    import numpy as np

    for _ in range(10):
        serve(images[:1])
    latencies = []
    for index in range(count):
        image = images[index % len(images) : index % len(images) + 1]
        started = time.perf_counter()
        np.asarray(serve(image))
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def one_image_server(saved_model: Path, raw_directory: Path) -> dict:
    return figures_from_child(
        "bench.serving",
        [str(path.resolve()) for path in (saved_model, raw_directory)],
        SERVER_ENVIRONMENT,
        f"timing one image at a time on {saved_model}",
    )


def main(arguments: list[str]) -> int:
    """The one-image server: SavedModel, raw test images' folder, where to write the figures."""
    from mnistpipe.data import read_raw

    saved_model, raw_directory, figures_path = (Path(argument) for argument in arguments)
    if not (saved_model / "saved_model.pb").is_file():
        print(
            f"error: {saved_model} holds no saved_model.pb; expected a SavedModel", file=sys.stderr
        )
        return 1
    images, _ = read_raw(raw_directory, "test")

    import tensorflow as tf

    from mnistpipe.serving import load_serving_function

    tf.config.threading.set_intra_op_parallelism_threads(1)
    latencies = _latencies(load_serving_function(saved_model), images)
    figures = {
        "serving_single_ms_p50": statistics.median(latencies),
        "serving_single_ms_p90": statistics.quantiles(latencies, n=10)[-1],
        # How the server was set up: TensorFlow's thread count, and the environment.
        "serving_single_server": {
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            **{name: os.environ.get(name) for name in SERVER_ENVIRONMENT},
        },
    }
    figures_path.write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
