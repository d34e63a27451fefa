"""The exported SavedModel's speed: images a second in batches, and one image's latency."""

import statistics
import time
from pathlib import Path


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
