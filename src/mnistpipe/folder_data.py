"""Preprocess of an image folder: decode, group exact duplicates, split, write, report.

Every image goes through ``pictures.load_picture`` (the function predict uses too),
in parallel over the machine's cores, in batches so that memory holds a batch of
pictures, not the folder. Images with the same decoded pixels form one group that
goes to one split whole, so the test set never holds a copy of a training image.
Splits are stratified by class and seeded: the test split (``folder.test_split``,
when ROOT gives no ``train/`` and ``test/``), then the validation split
(``preprocess.val_split``) from what is left for training.

The npy format keeps the pixels of the first pass and writes them as the built-in
datasets are written; the TFRecord format decodes twice (the first pass keeps only
each image's digest) and streams the second into the shards, so that its memory
stays flat however many images the folder holds.
"""

import dataclasses
import hashlib
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mnistpipe.dataset_info import DatasetInfo, write_info
from mnistpipe.errors import PipelineError
from mnistpipe.files import atomic_directory, save_array, write_json
from mnistpipe.image_folder import SHOWN, Entry, Scan, scan_folder
from mnistpipe.pictures import UnreadablePicture, read_picture

# Pictures decoded at a time: what memory holds of them in one batch (a 256x256 RGB
# picture is 192 KiB, so a batch is at most 768 MiB of them).
BATCH_IMAGES = 4096
# Pictures a worker decodes per message: fewer messages, less time in the parent.
CHUNK_IMAGES = 128
# Below this many images the worker processes cost more time than they save.
PARALLEL_FROM = 512


@dataclasses.dataclass(frozen=True)
class Decoded:
    """What decoding one file gave: its pixels (or None), digest, original size, or why not."""

    pixels: bytes | None
    digest: str | None
    size: tuple[int, int] | None
    reason: str | None


def _decode(task: tuple[str, str, tuple[int, int], int, bool]) -> Decoded:
    path, shown, image_size, channels, keep_pixels = task
    try:
        with open(path, "rb") as stream:
            content = stream.read()
        pixels, size = read_picture(content, shown, image_size, channels)
    except UnreadablePicture as error:
        return Decoded(None, None, None, error.reason)
    except OSError as error:
        return Decoded(None, None, None, f"cannot be read ({error.strerror})")
    data = pixels.tobytes()
    return Decoded(data if keep_pixels else None, hashlib.sha256(data).hexdigest(), size, None)


def worker_count() -> int:
    """The cores this process may run on (a container's share, not the host's)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def decode_all(
    entries: list[Entry], image_size: tuple[int, int], channels: int, keep_pixels: bool
) -> Iterator[Decoded]:
    """Each entry decoded, in order; in parallel processes for a large folder."""
    tasks = (
        (str(entry.path), entry.relative_path, tuple(image_size), channels, keep_pixels)
        for entry in entries
    )
    workers = worker_count()
    if len(entries) < PARALLEL_FROM or workers == 1:
        yield from map(_decode, tasks)
        return
    # forkserver, not fork: the parent may have loaded TensorFlow (TFRecord format),
    # whose threads do not survive a fork.
    context = multiprocessing.get_context("forkserver")
    with context.Pool(workers) as pool:
        batch = []
        for task in tasks:
            batch.append(task)
            if len(batch) == BATCH_IMAGES:
                yield from pool.imap(_decode, batch, chunksize=CHUNK_IMAGES)
                batch = []
        yield from pool.imap(_decode, batch, chunksize=CHUNK_IMAGES)


@dataclasses.dataclass
class Plan:
    """Where each readable image goes, and what the data report says about the folder."""

    split_of: list[str | None]
    report: dict


def plan_splits(
    scan: Scan,
    decoded: list[Decoded],
    image_size: tuple[int, int],
    test_split: float,
    val_split: float,
    seed: int,
    on_unreadable: str,
    root: Path,
) -> Plan:
    """Assign each image a split (None: skipped), grouping exact duplicates; the report."""
    unreadable = [
        (entry.relative_path, result.reason)
        for entry, result in zip(scan.entries, decoded, strict=True)
        if result.reason is not None
    ]
    if unreadable and on_unreadable == "stop":
        shown = "; ".join(f"{root / path} {reason}" for path, reason in unreadable[:SHOWN])
        more = f" (and {len(unreadable) - SHOWN} more)" if len(unreadable) > SHOWN else ""
        raise PipelineError(
            f"{len(unreadable)} unreadable image(s) in {root}: {shown}{more}; expected "
            "PNG, JPEG, BMP, GIF or WebP images (remove or fix them, or set "
            "folder.on_unreadable: skip to leave them out)"
        )
    # Exact duplicates: a group is the images with one digest, led by its first path.
    groups: dict[str, list[int]] = {}
    for index, result in enumerate(decoded):
        if result.digest is not None:
            groups.setdefault(result.digest, []).append(index)
    split_of: list[str | None] = [None] * len(decoded)
    rng = np.random.default_rng(seed)
    if scan.given_splits:
        for index, entry in enumerate(scan.entries):
            if decoded[index].digest is not None:
                split_of[index] = entry.given_split
        # Within the given train split, duplicates are grouped for the validation split.
        train_groups: dict[str, list[int]] = {}
        for index in range(len(decoded)):
            if split_of[index] == "train":
                train_groups.setdefault(decoded[index].digest, []).append(index)
        _carve(list(train_groups.values()), scan, split_of, "train", "val", val_split, rng)
    else:
        every = list(groups.values())
        for index in (index for group in every for index in group):
            split_of[index] = "train"
        _carve(every, scan, split_of, "train", "test", test_split, rng)
        train_groups = [group for group in every if split_of[group[0]] == "train"]
        _carve(train_groups, scan, split_of, "train", "val", val_split, rng)
    for split in ("train", "val", "test"):
        if split not in split_of:
            raise PipelineError(
                f"{root} leaves no image for the {split} split; expected more images (at "
                "least two distinct ones a class) or a larger preprocess.val_split"
            )
    trained_on = {
        decoded[index].digest for index, split in enumerate(split_of) if split in ("train", "val")
    }
    test_in_train = sum(
        1
        for index, split in enumerate(split_of)
        if split == "test" and decoded[index].digest in trained_on
    )
    duplicate_groups = [group for group in groups.values() if len(group) > 1]
    straddling = [
        group for group in duplicate_groups if len({split_of[index] for index in group}) > 1
    ]
    conflicting = [
        group
        for group in duplicate_groups
        if len({scan.entries[index].label for index in group}) > 1
    ]
    counts = {name: {split: 0 for split in ("train", "val", "test")} for name in scan.class_names}
    resized = {name: 0 for name in scan.class_names}
    for index, entry in enumerate(scan.entries):
        if split_of[index] is not None:
            counts[scan.class_names[entry.label]][split_of[index]] += 1
            if decoded[index].size != tuple(image_size):
                resized[scan.class_names[entry.label]] += 1
    report = {
        "counts": counts,
        "images": {
            split: sum(per_class[split] for per_class in counts.values())
            for split in ("train", "val", "test")
        },
        "skipped": [{"path": path, "reason": reason} for path, reason in unreadable],
        "resized": {"images": sum(resized.values()), "by_class": resized},
        "duplicates": {
            "groups": len(duplicate_groups),
            "images": sum(len(group) - 1 for group in duplicate_groups),
            "straddling_splits": len(straddling),
            "conflicting_labels": len(conflicting),
            "test_in_train": test_in_train,
            "examples": [
                [scan.entries[index].relative_path for index in group]
                for group in duplicate_groups[:SHOWN]
            ],
        },
        "ignored": {"entries": len(scan.ignored), "paths": scan.ignored},
    }
    return Plan(split_of, report)


def _carve(
    groups: list[list[int]],
    scan: Scan,
    split_of: list[str | None],
    source: str,
    target: str,
    fraction: float,
    rng: np.random.Generator,
) -> None:
    """Move a seeded ``fraction`` of each class's duplicate groups from ``source`` to ``target``.

    Stratified: each class gives its own share, rounded, and keeps at least one group
    where it has one; groups go whole, so duplicates never straddle the two.
    """
    by_class: dict[int, list[list[int]]] = {}
    for group in sorted(groups, key=lambda group: group[0]):
        by_class.setdefault(scan.entries[group[0]].label, []).append(group)
    for label in range(len(scan.class_names)):
        members = by_class.get(label, [])
        if not members:
            continue
        moved = min(len(members) - 1, max(1, round(len(members) * fraction)))
        for position in rng.permutation(len(members))[:moved]:
            for index in members[position]:
                split_of[index] = target


def check_classes(scan: Scan, decoded: list[Decoded], root: Path) -> None:
    """Each class needs two distinct readable images: one to train on, one to test."""
    for label, name in enumerate(scan.class_names):
        digests = {
            decoded[index].digest
            for index, entry in enumerate(scan.entries)
            if entry.label == label and decoded[index].digest is not None
        }
        if len(digests) < 2:
            raise PipelineError(
                f"class {name!r} in {root} holds {len(digests)} distinct readable image(s); "
                "expected at least two (one to train on, one to test)"
            )


def prepare_folder(
    root: str | os.PathLike,
    output_directory: str | os.PathLike,
    image_size: tuple[int, int],
    channels: int,
    test_split: float,
    val_split: float,
    seed: int,
    on_unreadable: str = "stop",
    storage_format: str = "npy",
    shard_size: int = 10_000,
    source: dict | None = None,
) -> tuple[dict[str, int], dict]:
    """Write the folder's splits into ``output_directory``; the split sizes and data report.

    ``source`` (what the folder came from) goes into ``source.json`` beside the data.
    """
    from mnistpipe.examples import SOURCE_RECORD

    root = Path(root)
    scan = scan_folder(root)
    keep_pixels = storage_format == "npy"
    decoded = list(decode_all(scan.entries, image_size, channels, keep_pixels))
    check_classes(scan, decoded, root)
    plan = plan_splits(scan, decoded, image_size, test_split, val_split, seed, on_unreadable, root)
    shape = (image_size[0], image_size[1], channels)
    with atomic_directory(output_directory) as directory:
        if keep_pixels:
            _write_arrays(directory, scan, decoded, plan.split_of, shape)
        else:
            _write_shards(directory, scan, plan.split_of, image_size, channels, shard_size)
        write_info(directory, DatasetInfo(scan.class_names, shape))
        write_json(directory / SOURCE_RECORD, {"dataset": "folder", **(source or {})})
    sizes = {split: plan.split_of.count(split) for split in ("train", "val", "test")}
    return sizes, plan.report


def _write_arrays(directory: Path, scan, decoded, split_of, shape) -> None:
    for split in ("train", "val", "test"):
        indices = [index for index, name in enumerate(split_of) if name == split]
        images = np.empty((len(indices), *shape), dtype=np.uint8)
        for row, index in enumerate(indices):
            images[row] = np.frombuffer(decoded[index].pixels, np.uint8).reshape(shape)
        labels = np.array([scan.entries[index].label for index in indices], dtype=np.int64)
        # The same float32 division as data.scale_images: the same bits as built-in data.
        save_array(directory / f"{split}_images.npy", images.astype(np.float32) / np.float32(255))
        save_array(directory / f"{split}_labels.npy", labels)


def _write_shards(directory, scan, split_of, image_size, channels, shard_size) -> None:
    from mnistpipe import tfrecords

    shape = (image_size[0], image_size[1], channels)
    kept = [index for index, split in enumerate(split_of) if split is not None]
    entries = [scan.entries[index] for index in kept]
    with tfrecords.failed_writes_as_os_errors():
        writers = {
            split: tfrecords.ShardWriter(directory, split, split_of.count(split), shard_size)
            for split in ("train", "val", "test")
        }
        for index, result in zip(
            kept, decode_all(entries, image_size, channels, keep_pixels=True), strict=True
        ):
            if result.pixels is None:
                raise PipelineError(
                    f"{scan.entries[index].path} changed while preprocess read it "
                    f"({result.reason}); expected the folder to stay as it is during preprocess"
                )
            image = np.frombuffer(result.pixels, np.uint8).reshape(shape)
            writers[split_of[index]].write(image, scan.entries[index].label)
        manifest = {split: writer.close() for split, writer in writers.items()}
    tfrecords.write_manifest(directory, manifest)
