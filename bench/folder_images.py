"""Own images (dataset: folder), side by side in one run: ``python -m bench.folder_images``.

Three ratios, each against its goal (issue 26, point 9):

- decoding: images decoded and resized a second by preprocess's parallel decoding
  (``folder_data.decode_all``, all cores), alternated with the same images decoded
  in this process alone, on the 10x folder; goal >= 5,000 small images a second.
  On a machine busy with other work, wall time says little: twice one process's
  rate by CPU time is printed too (what two idle cores would do).
- memory: the preprocess stage's peak RSS (its own process, TFRecord format) on a
  folder of 10x the images over that on 1x; goal <= 1.2.
- training: the train stage's loop time for one epoch from TFRecord shards over that
  from in-memory npy arrays, the same images, arms alternated; goal >= 0.9 (the
  throughput ratio is the inverse of the time ratio). For the default model, and
  for the mlp, whose steps are so short that the input pipeline shows most.

The images are PNG and JPEG files of 16x16 to 64x64 pixels, RGB, drawn once from a
seeded generator: learnable (a bright square whose place is the class) so that the
training arms train on something.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from bench.pipeline_timing import copy_project, timed_process

GOALS = {"images_per_second": 5000, "peak_memory_ratio": 1.2, "tfrecord_throughput_ratio": 0.9}


def write_folder(root: Path, count: int, classes: int = 10, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for index in range(count):
        label = index % classes
        side = int(rng.integers(16, 65))
        pixels = rng.integers(0, 80, (side, side, 3), dtype=np.uint8)
        place = int(label * (side - 4) / classes)
        pixels[place : place + 4, place : place + 4] = 255
        folder = root / f"class {label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        image_format = "PNG" if index % 2 else "JPEG"
        Image.fromarray(pixels).save(folder / f"{index:07d}.{image_format.lower()}", image_format)


def decoding_rates(root: Path, rounds: int) -> dict:
    """Images a second, parallel and in one process, alternated ``rounds`` times."""
    from mnistpipe import folder_data
    from mnistpipe.image_folder import scan_folder

    entries = scan_folder(root).entries
    rates = {"parallel": [], "one_process": [], "one_process_per_cpu_second": []}
    for _ in range(rounds):
        for arm in ("parallel", "one_process"):
            workers = folder_data.worker_count if arm == "parallel" else (lambda: 1)
            original, folder_data.worker_count = folder_data.worker_count, workers
            try:
                started, cpu_started = time.perf_counter(), time.process_time()
                for _ in folder_data.decode_all(entries, (28, 28), 3, keep_pixels=True):
                    pass
                rates[arm].append(len(entries) / (time.perf_counter() - started))
                if arm == "one_process":
                    # CPU time, not wall time: what one core does however busy the
                    # machine is with other people's work.
                    cpu_seconds = time.process_time() - cpu_started
                    rates["one_process_per_cpu_second"].append(len(entries) / cpu_seconds)
            finally:
                folder_data.worker_count = original
    return {arm: statistics.median(values) for arm, values in rates.items()}


def folder_project(root: Path, images: Path, storage_format: str, model: str = "mlp") -> Path:
    copy_project(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["dataset"] = "folder"
    params["folder"].update(path=str(images), image_size=[28, 28], channels=1)
    params["preprocess"].update(format=storage_format)
    params["train"].update(model=model, epochs=1, shuffle_buffer=10000)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000, help="the 1x folder's images")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of each pair")
    parser.add_argument("--results", type=Path, default=Path("bench/folder_images.json"))
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        print(f"writing {arguments.images} and {10 * arguments.images} images ...", flush=True)
        write_folder(scratch / "1x", arguments.images)
        write_folder(scratch / "10x", 10 * arguments.images)
        # The large folder: parallel decoding is for folders where the workers'
        # start (a second or so) is small beside the decoding.
        rates = decoding_rates(scratch / "10x", arguments.rounds)
        print(f"decoding: {rates}", flush=True)
        peaks = {}
        for factor in ("1x", "10x"):
            project = folder_project(scratch / f"memory-{factor}", scratch / factor, "tfrecord")
            seconds, peak = timed_process([sys.executable, "stages/preprocess.py"], project)
            peaks[factor] = {"seconds": seconds, "peak_mb": peak}
            print(f"preprocess {factor}: {seconds:.1f} s, peak {peak:.0f} MB", flush=True)
        committed = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
        default_model = committed["train"]["model"]
        seconds, ratios = {}, {}
        for model in (default_model, "mlp"):
            projects = {
                arm: folder_project(scratch / f"train-{model}-{arm}", scratch / "10x", arm, model)
                for arm in ("npy", "tfrecord")
            }
            for project in projects.values():
                timed_process([sys.executable, "stages/preprocess.py"], project)
            epochs = {arm: [] for arm in projects}
            for _ in range(arguments.rounds):
                for arm, project in projects.items():
                    timed_process([sys.executable, "stages/train.py"], project)
                    timing = json.loads((project / "logs" / "train_timing.json").read_text())
                    epochs[arm].append(timing["train_seconds"])
                    print(f"train {model} from {arm}: {timing['train_seconds']:.1f} s", flush=True)
            seconds[model] = {arm: statistics.median(values) for arm, values in epochs.items()}
            # Round by round, as bench/speed.py takes its ratios: a drift of the machine
            # between rounds then falls on both arms of a ratio.
            ratios[model] = [
                npy / tfrecord
                for npy, tfrecord in zip(epochs["npy"], epochs["tfrecord"], strict=True)
            ]
    results = {
        "images_1x": arguments.images,
        "decoded_images": 10 * arguments.images,
        "decoding_images_per_second": rates,
        "parallel_speedup": rates["parallel"] / rates["one_process"],
        # Two cores each at one process's CPU-time rate: the goal's figure on an idle machine.
        "two_core_images_per_second_by_cpu_time": 2 * rates["one_process_per_cpu_second"],
        "preprocess": peaks,
        "peak_memory_ratio": peaks["10x"]["peak_mb"] / peaks["1x"]["peak_mb"],
        "train_epoch_seconds": seconds,
        "default_model": default_model,
        "tfrecord_throughput_ratio": statistics.median(ratios[default_model]),
        "tfrecord_throughput_ratio_by_round": ratios[default_model],
        "mlp_tfrecord_throughput_ratio": statistics.median(ratios["mlp"]),
        "mlp_tfrecord_throughput_ratio_by_round": ratios["mlp"],
        "goals": GOALS,
    }
    arguments.results.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(
        f"decoding {rates['parallel']:,.0f} images/s wall (goal >= "
        f"{GOALS['images_per_second']:,}), x{results['parallel_speedup']:.2f} over one process, "
        f"{results['two_core_images_per_second_by_cpu_time']:,.0f} on 2 cores by CPU time; "
        "preprocess peak memory 10x/1x "
        f"{results['peak_memory_ratio']:.2f} (goal <= {GOALS['peak_memory_ratio']}); train "
        f"throughput TFRecord/npy {results['tfrecord_throughput_ratio']:.2f} for {default_model} "
        f"(goal >= {GOALS['tfrecord_throughput_ratio']}), "
        f"{results['mlp_tfrecord_throughput_ratio']:.2f} for the mlp"
    )


if __name__ == "__main__":
    main()
