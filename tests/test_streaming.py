"""TFRecord preprocessing streams the raw images: its memory does not grow with the data."""

import sys

import numpy as np

from bench.pipeline_timing import timed_process
from mnistpipe.datasets import FILE_NAMES
from mnistpipe.idx import encode_idx
from tests.conftest import synthetic_split

PREPARE = (
    "import sys; from mnistpipe.data import prepare; "
    "prepare(sys.argv[1], sys.argv[2], 0.1, 0, 42, 'tfrecord', 10000)"
)


def write_raw(directory, train_count):
    images, labels = synthetic_split(1000, seed=1)
    repeats = train_count // 1000
    directory.mkdir()
    arrays = {
        "train_images": np.tile(images, (repeats, 1, 1)),
        "train_labels": np.tile(labels, repeats),
        "test_images": images[:100],
        "test_labels": labels[:100],
    }
    for role, array in arrays.items():
        (directory / FILE_NAMES[role]).write_bytes(encode_idx(array))
    return directory


def test_tfrecord_preprocess_memory_does_not_grow_with_the_training_set(tmp_path):
    peaks = {}
    for count in (6_000, 60_000):
        raw = write_raw(tmp_path / f"raw-{count}", count)
        command = [sys.executable, "-c", PREPARE, str(raw), str(tmp_path / f"prepared-{count}")]
        _, peaks[count] = timed_process(command, tmp_path)
    # 54,000 more images are 42 MB of pixels: holding them (or a copy of the
    # training split) would add that much or more; streamed, a chunk is held.
    assert peaks[60_000] - peaks[6_000] < 25, peaks
