"""Cost against the size of the data: preprocess and one epoch of training at 1x, 4x and 10x.

Each size gets its own temporary project whose ``data/raw`` holds the training
set repeated ``factor`` times (the test set as it is), with
``preprocess.format: tfrecord``. The preprocess and train stages run there,
each in its own process, so that ``wait4`` gives each one's own peak memory.
"""

import json
import shutil
import sys
from pathlib import Path

import yaml

from bench.pipeline_timing import copy_project, timed_process

FACTORS = (1, 4, 10)
# TFRecord shards streamed by tf.data, with a shuffle buffer of a fixed size:
# train.shuffle_buffer 0 would hold the whole training set in memory, which is
# what docs/how-to/scale-out.md, "Data larger than memory", tells users not to do.
SCALING_PARAMS = {
    "preprocess": {"format": "tfrecord", "limit": 0},
    "train": {"epochs": 1, "shuffle_buffer": 10000},
}


def measure_scaling(raw_directory: Path, root: Path, factors=FACTORS, limit: int = 0) -> dict:
    """The scaling table: one row a factor, each from its own project under ``root``.

    ``limit`` > 0 takes the first ``limit`` training images as the 1x set (smoke runs).
    """
    from mnistpipe.data import read_raw
    from mnistpipe.datasets import FILE_NAMES
    from mnistpipe.idx import encode_idx

    train_images, train_labels = read_raw(raw_directory, "train")
    if limit:
        train_images, train_labels = train_images[:limit], train_labels[:limit]
    rows = []
    for factor in factors:
        project = root / f"scaling-{factor}x"
        copy_project(project)
        raw = project / "data" / "raw"
        raw.mkdir(parents=True)
        for role in ("test_images", "test_labels"):
            shutil.copy(raw_directory / FILE_NAMES[role], raw / FILE_NAMES[role])
        (raw / FILE_NAMES["train_images"]).write_bytes(encode_idx(_repeated(train_images, factor)))
        (raw / FILE_NAMES["train_labels"]).write_bytes(encode_idx(_repeated(train_labels, factor)))
        _set_params(project / "params.yaml")
        print(f"scaling {factor}x: {len(train_labels) * factor} training images ...", flush=True)
        preprocess_seconds, preprocess_mb = timed_process(
            [sys.executable, "stages/preprocess.py"], project
        )
        train_stage_seconds, train_mb = timed_process([sys.executable, "stages/train.py"], project)
        timing = json.loads((project / "logs" / "train_timing.json").read_text())
        rows.append(
            {
                "factor": factor,
                "training_images": len(train_labels) * factor,
                "preprocess_seconds": preprocess_seconds,
                "preprocess_peak_rss_mb": preprocess_mb,
                "train_stage_seconds": train_stage_seconds,
                # One epoch: the training loop's own time, without starting TensorFlow.
                "train_seconds_per_epoch": timing["train_seconds"],
                "train_peak_rss_mb": train_mb,
            }
        )
        print(
            f"  preprocess {preprocess_seconds:.1f} s, {preprocess_mb:.0f} MB; train epoch "
            f"{timing['train_seconds']:.1f} s (stage {train_stage_seconds:.1f} s), "
            f"{train_mb:.0f} MB",
            flush=True,
        )
        shutil.rmtree(project, ignore_errors=True)
    return summarize_scaling(rows)


def _repeated(array, factor: int):
    import numpy as np

    return np.concatenate([array] * factor)


def _set_params(params_path: Path) -> None:
    params = yaml.safe_load(params_path.read_text())
    for section, values in SCALING_PARAMS.items():
        params[section].update(values)
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))


def summarize_scaling(rows: list[dict]) -> dict:
    """The table and its verdicts, relative to the smallest size.

    Time grows at most linearly when each size's time per image is at most the
    smallest size's: ``*_time_growth`` is the largest such ratio (<= 1 is the
    goal). ``*_peak_ratio`` is the largest size's peak memory over the smallest's.
    """
    first, last = rows[0], rows[-1]

    def time_growth(key: str) -> float:
        return max(
            (row[key] / row["training_images"]) / (first[key] / first["training_images"])
            for row in rows
        )

    return {
        "rows": rows,
        "params": SCALING_PARAMS,
        "preprocess_time_growth": time_growth("preprocess_seconds"),
        "train_time_growth": time_growth("train_seconds_per_epoch"),
        "preprocess_peak_ratio": last["preprocess_peak_rss_mb"] / first["preprocess_peak_rss_mb"],
        "train_peak_ratio": last["train_peak_rss_mb"] / first["train_peak_rss_mb"],
        "largest_factor": last["factor"],
    }
