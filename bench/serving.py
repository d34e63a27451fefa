"""The exported SavedModel's speed: images a second in batches, and one image's latency."""

import statistics
import time
from pathlib import Path


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
