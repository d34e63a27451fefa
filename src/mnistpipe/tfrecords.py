"""The prepared splits as TFRecord shards (``preprocess.format: tfrecord``): writing, reading.

Each split is GZIP-compressed shards of ``tf.train.Example`` (uint8 pixels, an
int64 label), example ``i`` in shard ``i mod n``, named with their counts and
SHA-256 in ``tfrecord.json``; tf.data reads them back a few records at a time,
in the original order. This is the one module of the data's that needs
TensorFlow: ``mnistpipe.data`` and ``mnistpipe.prepared`` import it only for this
format, so the default npy preprocess never pays TensorFlow's import (about 5 of its 7 seconds).
"""

import contextlib
import hashlib
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from mnistpipe.dataset_info import INFO_FILE, REBUILD, DatasetInfo, prepared_info
from mnistpipe.errors import PipelineError, tensorflow_reason
from mnistpipe.examples import TFRECORD_MANIFEST, Examples
from mnistpipe.files import atomic_open, sha256_of_file

_COMPRESSION = "GZIP"
# TensorFlow counts a dataset's examples (its cardinality) in an int64.
_MAX_COUNT = 2**63 - 1


@contextlib.contextmanager
def failed_writes_as_os_errors():
    """TensorFlow reports a failed write (a full disk) as its own error, "PATH; REASON".

    Raised as an OSError instead, ``files.atomic_directory`` reports it as it
    reports any other failed write, and removes the half-written directory.
    """
    try:
        yield
    except tf.errors.OpError as error:
        raise OSError(None, error.message.rsplit("; ", 1)[-1]) from error


class ShardWriter:
    """One split's TFRecord shards, open together: the split's example i goes to shard i mod n."""

    def __init__(self, directory: Path, split: str, count: int, shard_size: int):
        self.directory, self.count = directory, count
        shard_count = max(1, -(-count // shard_size))
        self.names = [
            f"{split}-{index:05d}-of-{shard_count:05d}.tfrecord.gz" for index in range(shard_count)
        ]
        options = tf.io.TFRecordOptions(compression_type=_COMPRESSION)
        self.writers = [
            tf.io.TFRecordWriter(str(directory / name), options) for name in self.names
        ]
        self.written = 0

    def write(self, image: np.ndarray, label) -> None:
        # Round-robin: shard k holds examples k, k + n, k + 2n, ...
        self.writers[self.written % len(self.writers)].write(_example(image, label))
        self.written += 1

    def close(self) -> dict:
        """Close the shards; the split's manifest entry."""
        for writer in self.writers:
            writer.close()
        # Each shard's SHA-256, so that a reader notices a damaged shard before
        # TensorFlow fails on it half way through an epoch.
        checksums = {name: sha256_of_file(self.directory / name) for name in self.names}
        return {"count": self.count, "shards": self.names, "sha256": checksums}


def write_tfrecords(directory: Path, arrays: dict, shard_size: int) -> None:
    """Each split of ``arrays`` (split → (uint8 images, labels)) as shards, and the manifest."""
    manifest = {}
    with failed_writes_as_os_errors():
        for split, (images, labels) in arrays.items():
            writer = ShardWriter(directory, split, len(labels), shard_size)
            for image, label in zip(images, labels, strict=True):
                writer.write(image, label)
            manifest[split] = writer.close()
    write_manifest(directory, manifest)


def write_manifest(directory: Path, manifest: dict) -> None:
    with atomic_open(directory / TFRECORD_MANIFEST) as stream:
        json.dump(manifest, stream, indent=2, sort_keys=True)
        stream.write("\n")


def _example(image: np.ndarray, label) -> bytes:
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


# Records parsed together (bench/folder_images.py: train throughput from shards).
PARSE_CHUNK = 1024
_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def _parser(image_shape: tuple[int, int, int]):
    """A function from a batch of serialized examples to (float32 images, labels)."""

    def parse_examples(records):
        examples = tf.io.parse_example(records, _FEATURES)
        pixels = tf.io.decode_raw(examples["image"], tf.uint8)
        # The same float32 division as data.scale_images: the same bits as the npy format.
        images = tf.cast(tf.reshape(pixels, (-1, *image_shape)), tf.float32) / 255.0
        return images, examples["label"]

    return parse_examples


def read_examples(directory: Path, split: str) -> Examples:
    """A split's shards, checked against the manifest, as a tf.data.Dataset in order."""
    info = prepared_info(directory)
    entry = _read_manifest(directory / TFRECORD_MANIFEST, split, info)
    shards = [str(directory / name) for name in entry["shards"]]
    records = tf.data.Dataset.from_tensor_slices(shards).interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type=_COMPRESSION),
        # All shards at once, one record from each in turn: the original order.
        cycle_length=len(shards),
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    # Parsed PARSE_CHUNK records at a time, then one example at a time again: one
    # parse_single_example a record cost tf.data more than decompressing and
    # training on it (an epoch of the mlp at half the npy format's speed).
    dataset = (
        records.batch(PARSE_CHUNK)
        .map(_parser(info.image_shape), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .unbatch()
    )
    # tf.data cannot know how many records files hold; telling it makes Keras run
    # each epoch exactly as over in-memory arrays (and fails loudly if it is wrong).
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(entry["count"]))

    def hash_content() -> str:
        # This split's shards only: the other splits' files are not its content.
        digest = hashlib.sha256()
        for name in entry["shards"]:
            checksum = entry["sha256"].get(name) or sha256_of_file(directory / name)
            digest.update(name.encode() + b"\0" + bytes.fromhex(checksum))
        return digest.hexdigest()

    return Examples(dataset, entry["count"], hash_content)


def read_arrays(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split's shards as in-memory arrays: float32 images (N, H, W, C), int64 labels."""
    examples = read_examples(directory, split)
    try:
        images, labels = next(iter(examples.dataset.batch(max(1, examples.count))))
    except tf.errors.OpError as error:
        raise PipelineError(
            f"cannot read the {split} shards in {directory}: {tensorflow_reason(error)}; {REBUILD}"
        ) from None
    return images.numpy(), labels.numpy()


def _read_manifest(path: Path, split: str, info: DatasetInfo) -> dict:
    manifest_written = "the manifest preprocess writes; rerun the preprocess stage"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:
        raise PipelineError(
            f"cannot read split {split!r} from {path} ({error!r}); expected {manifest_written}"
        ) from None
    entry = manifest.get(split) if isinstance(manifest, dict) else None
    if not isinstance(entry, dict):
        if not isinstance(manifest, dict):
            found = f"it holds a JSON {type(manifest).__name__}"
        elif split not in manifest:
            found = f"it has no {split!r}"
        else:
            found = f"{split} is {entry!r:.60}"
        raise PipelineError(
            f"cannot read split {split!r} from {path} ({found}); expected an object "
            f"with the split's count, shards and sha256: {manifest_written}"
        )
    count, shards = entry.get("count"), entry.get("shards")
    # TensorFlow holds a count as an int64: a larger one (JSON allows 10**400) was
    # a ValueError traceback from assert_cardinality ("out-of-range integer").
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MAX_COUNT:
        raise PipelineError(
            f"cannot read split {split!r} from {path} (count is {count!r:.60}); expected a "
            f"whole number from 0 to 2**63 - 1: {manifest_written}"
        )
    # Plain file names beside the manifest: a name that is not a string, or a path that
    # leads elsewhere (/etc/passwd, ../x), is no shard preprocess wrote.
    if (
        not isinstance(shards, list)
        or not shards
        or not all(isinstance(name, str) and name and Path(name).name == name for name in shards)
        or any(name in (".", "..") for name in shards)
    ):
        raise PipelineError(
            f"cannot read split {split!r} from {path} (shards is {shards!r:.60}); expected a "
            f"list of the shards' file names beside it: {manifest_written}"
        )
    for name in shards:
        if not (path.parent / name).is_file():
            raise PipelineError(f"{path} names {name}, which is not there; {REBUILD}")
    # Manifests written before the checksums were recorded have none: those
    # shards are checked by TensorFlow's own CRCs only, as they were.
    checksums = entry.get("sha256") or {}
    if not isinstance(checksums, dict):
        raise PipelineError(
            f"{path} has sha256 {checksums!r}; expected shard → SHA-256; {REBUILD}"
        )
    for name in shards:
        expected = checksums.get(name)
        if expected is None:
            continue
        found = sha256_of_file(path.parent / name)
        if found != expected:
            raise PipelineError(
                f"{path.parent / name} has SHA-256 {found[:12]}..., but {path} says "
                f"{str(expected)[:12]}...: the shard is damaged; {REBUILD}"
            )
    if shards:
        _check_first_record(path.parent / shards[0], info)
    return {"count": count, "shards": shards, "sha256": checksums}


def _check_first_record(shard: Path, info: DatasetInfo) -> None:
    """The shard's first example must be an image of dataset.json's shape with a known label."""
    try:
        for record in tf.data.TFRecordDataset(str(shard), _COMPRESSION).take(1):
            example = tf.io.parse_single_example(record, _FEATURES)
            pixels, label = len(example["image"].numpy()), int(example["label"])
    except tf.errors.OpError as error:
        raise PipelineError(
            f"cannot read {shard}: {tensorflow_reason(error)}; expected GZIP TFRecord shards of "
            f"tf.train.Example (image, label) as preprocess writes; {REBUILD}"
        ) from None
    height, width, channels = info.image_shape
    if pixels != height * width * channels or not 0 <= label < info.num_classes:
        raise PipelineError(
            f"{shard} holds an image of {pixels} bytes with label {label}; expected "
            f"{height}x{width}x{channels} = {height * width * channels} bytes (as {INFO_FILE} "
            f"says) and a label 0-{info.num_classes - 1}; {REBUILD}"
        )
