"""Turning the built-in datasets' raw IDX files into prepared data (``prepared`` loads it back).

Preprocessing follows the TF2 quickstart: pixels scaled to [0, 1] as float32
with a channel axis added, giving (N, 28, 28, 1). ``preprocess.format`` picks
the storage:

- ``npy``: one plain ``.npy`` file per array, loaded into memory whole. No
  pickle, and the same array always gives the same bytes.
- ``tfrecord``: each split in GZIP-compressed TFRecord shards of uint8 pixels,
  read by tf.data a few records at a time, so the data need not fit in memory
  and may live wherever TensorFlow's file system reaches (``gs://``, ``s3://``).
  Example ``i`` goes to shard ``i mod n``, and tf.data's interleave reads the
  shards in parallel and round-robin, which gives back the original order: the
  same seeded shuffle then makes the same batches as from ``.npy``
  (``mnistpipe.tfrecords``, loaded only for this format: preprocessing to npy
  never loads TensorFlow).

Either way ``source.json`` beside the data names the dataset it was made from
and the SHA-256 of each raw file read (``prepared.check_source`` reads it).
"""

import json
import os
from pathlib import Path

import numpy as np

from mnistpipe.dataset_info import BUILT_IN_INFO, DatasetInfo, write_info
from mnistpipe.datasets import DATASETS, FILE_NAMES, IMAGE_SIDE
from mnistpipe.errors import PipelineError
from mnistpipe.examples import SOURCE_RECORD
from mnistpipe.files import atomic_directory, atomic_open, save_array, sha256_of_file
from mnistpipe.idx import (
    GZIP_MAGIC,
    IMAGES_MAGIC,
    parse_idx_header,
    read_labels,
    read_pair,
)
from mnistpipe.params import FORMATS


def scale_images(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) → float32 (N, 28, 28, 1) in [0, 1].

    Dividing in float32 (the tutorial's ``/ 255.0`` gives float64) halves the
    memory and is exactly what the exported model's serving graph does.
    """
    return (images.astype(np.float32) / np.float32(255.0))[..., np.newaxis]


def read_raw(raw_directory: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images and labels of the ``train`` or ``test`` split from the raw IDX files."""
    raw_directory = Path(raw_directory)
    return read_pair(
        raw_directory / FILE_NAMES[f"{split}_images"],
        raw_directory / FILE_NAMES[f"{split}_labels"],
    )


def split_validation(images: np.ndarray, labels: np.ndarray, fraction: float, seed: int):
    """Carve a seeded random ``fraction`` of the training set out as validation data.

    Returns ``(train_images, train_labels, val_images, val_labels)``; both parts
    keep the original order of the examples they hold.
    """
    is_val = validation_mask(len(images), fraction, seed)
    return images[~is_val], labels[~is_val], images[is_val], labels[is_val]


def validation_mask(count: int, fraction: float, seed: int) -> np.ndarray:
    """True for the seeded random ``fraction`` of ``count`` examples held out for validation."""
    val_count = int(round(count * fraction))
    if not 0 < val_count < count:
        raise PipelineError(
            f"preprocess.val_split {fraction} of {count} training examples leaves "
            f"{val_count} for validation and {count - val_count} for training; expected both > 0"
        )
    is_val = np.zeros(count, dtype=bool)
    is_val[np.random.default_rng(seed).permutation(count)[:val_count]] = True
    return is_val


def prepare(
    raw_directory: str | os.PathLike,
    output_directory: str | os.PathLike,
    val_split: float,
    limit: int,
    seed: int,
    storage_format: str = "npy",
    shard_size: int = 10_000,
    dataset: str | None = None,
) -> dict[str, int]:
    """Read, validate and split the raw data; write it in ``storage_format``.

    ``limit`` > 0 keeps only the first ``limit`` training and ``limit // 6`` test
    examples (the datasets' 6:1 ratio), for quick runs. ``shard_size`` is the
    number of examples a TFRecord shard holds at most. ``dataset`` (the params'
    ``dataset``) is recorded in ``source.json``; raw files of another known
    dataset are refused. Returns the split sizes.
    """
    if storage_format not in FORMATS:
        raise PipelineError(
            f"preprocess.format is {storage_format!r}; expected one of: {', '.join(FORMATS)}"
        )
    source = _source_record(Path(raw_directory), dataset)
    if storage_format == "tfrecord":
        with atomic_directory(output_directory) as directory:
            sizes = _prepare_tfrecords(
                Path(raw_directory), directory, val_split, limit, seed, shard_size
            )
            _write_source_record(directory, source)
            return sizes
    arrays = raw_splits(raw_directory, val_split, limit, seed)
    # One directory swap: switching formats leaves no file of the other behind.
    with atomic_directory(output_directory) as directory:
        for split, (images, labels) in arrays.items():
            save_array(directory / f"{split}_images.npy", scale_images(images))
            save_array(directory / f"{split}_labels.npy", labels.astype(np.int64))
        _write_source_record(directory, source)
    return {split: len(labels) for split, (_, labels) in arrays.items()}


def raw_splits(
    raw_directory: str | os.PathLike, val_split: float, limit: int, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split → (uint8 images, uint8 labels) of a built-in dataset, as ``prepare`` splits it."""
    train_images, train_labels = read_raw(raw_directory, "train")
    test_images, test_labels = read_raw(raw_directory, "test")
    if limit > len(train_labels):
        raise PipelineError(
            f"preprocess.limit is {limit} but {Path(raw_directory)} holds {len(train_labels)} "
            f"training examples; expected 0 (all of them) or at most {len(train_labels)}"
        )
    if limit:
        train_images, train_labels = train_images[:limit], train_labels[:limit]
        test_count = max(1, limit // 6)
        test_images, test_labels = test_images[:test_count], test_labels[:test_count]
    train_images, train_labels, val_images, val_labels = split_validation(
        train_images, train_labels, val_split, seed
    )
    return {
        "train": (train_images, train_labels),
        "val": (val_images, val_labels),
        "test": (test_images, test_labels),
    }


def _source_record(raw_directory: Path, dataset: str | None) -> dict:
    """What ``source.json`` holds: the dataset and the SHA-256 of each raw file.

    Raw files that are exactly another known dataset's (MNIST's where the params
    say Fashion-MNIST) are refused here, before anything is written. Files that
    are no known dataset's (a subset, synthetic data, more data of one's own) pass.
    """
    checksums = {}
    for role, name in FILE_NAMES.items():
        path = raw_directory / name
        if not path.is_file():
            raise PipelineError(f"{path} does not exist; run dvc repro download")
        checksums[role] = sha256_of_file(path)
    if dataset is not None:
        for other in DATASETS.values():
            if other.name != dataset and other.sha256 == checksums:
                raise PipelineError(
                    f"{raw_directory} holds the {other.name} files, but the params' dataset is "
                    f"{dataset}; run dvc repro download (or set dataset: {other.name})"
                )
    return {"dataset": dataset, "raw_sha256": checksums}


def _write_source_record(directory: Path, source: dict) -> None:
    """``source.json``, and ``dataset.json``: the class names and the 28x28x1 shape."""
    with atomic_open(directory / SOURCE_RECORD) as stream:
        json.dump(source, stream, indent=2, sort_keys=True)
        stream.write("\n")
    dataset = DATASETS.get(source["dataset"])
    # Raw files of no named dataset (tests' synthetic ones) still hold ten classes.
    class_names = dataset.class_names if dataset else BUILT_IN_INFO.class_names
    write_info(directory, DatasetInfo(class_names, BUILT_IN_INFO.image_shape))


# Images read from a raw file at a time by the streamed TFRecord preprocess.
_CHUNK_IMAGES = 10_000


def _prepare_tfrecords(
    raw_directory: Path, directory: Path, val_split: float, limit: int, seed: int, shard_size
) -> dict[str, int]:
    """prepare() for TFRecord, streamed: the raw images are read a chunk at a time.

    Memory holds the labels and a chunk of images, not the training set (bench/,
    the scaling table): example by example, in the raw files' order, each goes to
    its split's next shard, so the shards are those write_tfrecords writes.
    """
    from mnistpipe import tfrecords

    train_labels = read_labels(raw_directory / FILE_NAMES["train_labels"])
    test_labels = read_labels(raw_directory / FILE_NAMES["test_labels"])
    label_counts = {"train": len(train_labels), "test": len(test_labels)}
    if limit > len(train_labels):
        raise PipelineError(
            f"preprocess.limit is {limit} but {raw_directory} holds {len(train_labels)} "
            f"training examples; expected 0 (all of them) or at most {len(train_labels)}"
        )
    if limit:
        train_labels, test_labels = train_labels[:limit], test_labels[: max(1, limit // 6)]
    is_val = validation_mask(len(train_labels), val_split, seed)
    splits = {
        "train": int(np.sum(~is_val)),
        "val": int(np.sum(is_val)),
        "test": len(test_labels),
    }
    # Both image files are checked before any shard is written.
    train_chunks = _image_chunks(raw_directory, "train", label_counts["train"], len(train_labels))
    test_chunks = _image_chunks(raw_directory, "test", label_counts["test"], len(test_labels))
    with tfrecords.failed_writes_as_os_errors():
        writers = {
            split: tfrecords.ShardWriter(directory, split, count, shard_size)
            for split, count in splits.items()
        }
        for start, images in train_chunks:
            for offset, image in enumerate(images):
                index = start + offset
                split = "val" if is_val[index] else "train"
                writers[split].write(image, train_labels[index])
        for start, images in test_chunks:
            for offset, image in enumerate(images):
                writers["test"].write(image, test_labels[start + offset])
        manifest = {split: writer.close() for split, writer in writers.items()}
    tfrecords.write_manifest(directory, manifest)
    return splits


def _image_chunks(raw_directory: Path, split: str, label_count: int, count: int):
    """(start, uint8 images) of the first ``count`` images of a split's raw file, by chunks.

    The file is checked as read_pair checks it; an uncompressed file (as the
    download stage stores them) is then read a chunk at a time, a gzip one whole.
    """
    path = raw_directory / FILE_NAMES[f"{split}_images"]
    labels_path = raw_directory / FILE_NAMES[f"{split}_labels"]
    try:
        with open(path, "rb") as stream:
            header = stream.read(16)
        size = path.stat().st_size
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror}") from None
    if header.startswith(GZIP_MAGIC):
        images = read_pair(path, labels_path)[0][:count]
        return (
            (start, images[start : start + _CHUNK_IMAGES])
            for start in range(0, count, _CHUNK_IMAGES)
        )
    # The header and the file's real length: parse_idx's checks, without reading the body.
    shape = parse_idx_header(header, str(path), IMAGES_MAGIC, size)
    if shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise PipelineError(
            f"{path} holds images of {shape[1]}x{shape[2]} pixels; "
            f"expected {IMAGE_SIDE}x{IMAGE_SIDE}"
        )
    if shape[0] != label_count:
        raise PipelineError(
            f"{path} has {shape[0]} images but {labels_path} has {label_count} labels; "
            "expected the same count"
        )
    return _read_chunks(path, len(header), count)


def _read_chunks(path: Path, header_bytes: int, count: int):
    with open(path, "rb") as stream:
        stream.seek(header_bytes)
        for start in range(0, count, _CHUNK_IMAGES):
            chunk = min(_CHUNK_IMAGES, count - start)
            pixels = np.fromfile(stream, dtype=np.uint8, count=chunk * IMAGE_SIDE * IMAGE_SIDE)
            yield start, pixels.reshape(chunk, IMAGE_SIDE, IMAGE_SIDE)
