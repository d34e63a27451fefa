"""Turning raw IDX files into the examples the model trains on, and loading them back.

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
and the SHA-256 of each raw file read: arrays of another dataset have the same
shape, so only this record tells them apart (stages pass ``dataset=``).
"""

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mnistpipe.dataset_info import INFO_FILE, DatasetInfo, read_info, write_info
from mnistpipe.datasets import DATASETS, FILE_NAMES, IMAGE_SIDE, NUM_CLASSES
from mnistpipe.errors import PipelineError
from mnistpipe.files import atomic_directory, atomic_open, save_array, sha256_of_file
from mnistpipe.idx import (
    GZIP_MAGIC,
    IMAGES_MAGIC,
    parse_idx_header,
    read_labels,
    read_pair,
)
from mnistpipe.params import FORMATS

if TYPE_CHECKING:
    import tensorflow as tf

SPLITS = ("train", "val", "test")
# Names the TFRecord shards and their counts; its absence means the npy format.
TFRECORD_MANIFEST = "tfrecord.json"
# Names the dataset the prepared data was made from (see the module's docstring).
SOURCE_RECORD = "source.json"
# What a stage says when derived data is damaged: rebuild it, or take DVC's copy.
REBUILD = "run dvc repro --force preprocess (or dvc checkout data/prepared)"


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


def check_source(directory: str | os.PathLike, dataset: str) -> None:
    """Refuse prepared data that was not made from ``dataset`` (the params' ``dataset``).

    Arrays of MNIST and of Fashion-MNIST have the same shape, dtype and label
    range: only ``source.json`` tells them apart.
    """
    path = Path(directory) / SOURCE_RECORD
    expected = f"expected the record preprocess writes for dataset {dataset}"
    try:
        recorded = json.loads(path.read_text())["dataset"]
    except FileNotFoundError:
        raise PipelineError(
            f"{path} does not exist, so nothing says which dataset {directory} holds; "
            f"{expected}; {REBUILD}"
        ) from None
    # RecursionError: JSON nested thousands deep ([[[[...).
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, RecursionError) as error:
        raise PipelineError(f"cannot read {path} ({error!r}); {expected}; {REBUILD}") from None
    if recorded != dataset:
        raise PipelineError(
            f"{path} says the prepared data is of dataset {recorded!r}, but the params' "
            f"dataset is {dataset!r}; run dvc repro (preprocess reruns for {dataset})"
        )


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


@dataclasses.dataclass(frozen=True)
class Examples:
    """One split: a tf.data.Dataset of (image, label) in a fixed order, and its size.

    ``digest`` identifies the content (checkpoints compare it). It reads all the
    data, so it is computed on first use only: evaluating, exporting or training
    without a checkpoint never pays for it.
    """

    dataset: "tf.data.Dataset"
    count: int
    hash_content: Callable[[], str] = dataclasses.field(repr=False)

    @functools.cached_property
    def digest(self) -> str:
        return self.hash_content()


def examples_from_arrays(images: np.ndarray, labels: np.ndarray) -> Examples:
    def hash_content() -> str:
        digest = hashlib.sha256()
        for array in (images, labels):
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).data)
        return digest.hexdigest()

    import tensorflow as tf  # here, not at the top: preprocess needs none of it (docstring)

    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    return Examples(dataset, len(labels), hash_content)


def load_examples(
    directory: str | os.PathLike, split: str, dataset: str | None = None
) -> Examples:
    """A split in whichever format preprocess wrote it: npy in memory, TFRecord streamed.

    With ``dataset`` the data must have been made from it (``check_source``).
    """
    directory = Path(directory)
    if dataset is not None:
        check_source(directory, dataset)
    if not (directory / TFRECORD_MANIFEST).exists():
        return examples_from_arrays(*load_split(directory, split))
    from mnistpipe import tfrecords

    return tfrecords.read_examples(directory, split)


def load_split(
    directory: str | os.PathLike, split: str, dataset: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The preprocessed images and labels of one split as arrays, in either format.

    ``.npy`` files are loaded without pickle and checked; with ``dataset`` the
    data must have been made from it (``check_source``).
    """
    if dataset is not None:
        check_source(directory, dataset)
    if (Path(directory) / TFRECORD_MANIFEST).exists():
        from mnistpipe import tfrecords

        return tfrecords.read_arrays(Path(directory), split)
    arrays = []
    for kind in ("images", "labels"):
        path = Path(directory) / f"{split}_{kind}.npy"
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except FileNotFoundError:
            raise PipelineError(f"{path} does not exist; run dvc repro preprocess") from None
        except (OSError, ValueError, EOFError) as error:
            raise PipelineError(
                f"cannot load {path}: {error}; expected a whole .npy file as preprocess "
                f"writes; {REBUILD}"
            ) from None
    images, labels = arrays
    info = prepared_info(directory)
    # What preprocess writes; anything else would fail deep inside TensorFlow.
    shape = info.image_shape
    expected_images = f"float32 images of shape (N, {shape[0]}, {shape[1]}, {shape[2]})"
    if images.dtype != np.float32 or images.shape[1:] != shape:
        raise PipelineError(
            f"{Path(directory) / f'{split}_images.npy'} holds {images.dtype} of shape "
            f"{images.shape}; expected {expected_images} (as {INFO_FILE} says); "
            "rerun the preprocess stage"
        )
    if labels.dtype != np.int64 or labels.shape != images.shape[:1]:
        raise PipelineError(
            f"{Path(directory) / f'{split}_labels.npy'} holds {labels.dtype} of shape "
            f"{labels.shape}; expected int64 of shape ({len(images)},), one label an image; "
            "rerun the preprocess stage"
        )
    if labels.size and not (labels.min() >= 0 and labels.max() < info.num_classes):
        raise PipelineError(
            f"{Path(directory) / f'{split}_labels.npy'} holds labels from {labels.min()} to "
            f"{labels.max()}; expected labels 0-{info.num_classes - 1}; {REBUILD}"
        )
    return images, labels


# What prepared data written before dataset.json existed holds: a built-in dataset.
BUILT_IN_INFO = DatasetInfo(
    tuple(str(number) for number in range(NUM_CLASSES)), (IMAGE_SIDE, IMAGE_SIDE, 1)
)


def prepared_info(directory: str | os.PathLike) -> DatasetInfo:
    """The prepared data's class names and image shape, from its ``dataset.json``."""
    if not (Path(directory) / INFO_FILE).exists():
        return BUILT_IN_INFO
    return read_info(directory)
