"""Turning raw IDX files into the arrays the model trains on, and loading them back.

Preprocessing follows the TF2 quickstart: pixels scaled to [0, 1] as float32
with a channel axis added, giving (N, 28, 28, 1). Arrays are stored as plain
``.npy`` files: no pickle, and the same array always gives the same bytes.
"""

import os
from pathlib import Path

import numpy as np

from mnistpipe.datasets import FILE_NAMES, IMAGE_SIDE
from mnistpipe.errors import PipelineError
from mnistpipe.files import save_array
from mnistpipe.idx import read_pair

SPLITS = ("train", "val", "test")


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
    count = len(images)
    val_count = int(round(count * fraction))
    if not 0 < val_count < count:
        raise PipelineError(
            f"preprocess.val_split {fraction} of {count} training examples leaves "
            f"{val_count} for validation and {count - val_count} for training; expected both > 0"
        )
    is_val = np.zeros(count, dtype=bool)
    is_val[np.random.default_rng(seed).permutation(count)[:val_count]] = True
    return images[~is_val], labels[~is_val], images[is_val], labels[is_val]


def prepare(
    raw_directory: str | os.PathLike,
    output_directory: str | os.PathLike,
    val_split: float,
    limit: int,
    seed: int,
) -> dict[str, int]:
    """Read, validate, scale and split the raw data; write one ``.npy`` per array.

    ``limit`` > 0 keeps only the first ``limit`` training and ``limit // 6`` test
    examples (the datasets' 6:1 ratio), for quick runs. Returns the split sizes.
    """
    train_images, train_labels = read_raw(raw_directory, "train")
    test_images, test_labels = read_raw(raw_directory, "test")
    if limit:
        train_images, train_labels = train_images[:limit], train_labels[:limit]
        test_count = max(1, limit // 6)
        test_images, test_labels = test_images[:test_count], test_labels[:test_count]
    train_images, train_labels, val_images, val_labels = split_validation(
        train_images, train_labels, val_split, seed
    )
    arrays = {
        "train": (train_images, train_labels),
        "val": (val_images, val_labels),
        "test": (test_images, test_labels),
    }
    output_directory = Path(output_directory)
    for split, (images, labels) in arrays.items():
        save_array(output_directory / f"{split}_images.npy", scale_images(images))
        save_array(output_directory / f"{split}_labels.npy", labels.astype(np.int64))
    return {split: len(labels) for split, (_, labels) in arrays.items()}


def load_split(directory: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The preprocessed images and labels of one split, loaded without pickle and checked."""
    arrays = []
    for kind in ("images", "labels"):
        path = Path(directory) / f"{split}_{kind}.npy"
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except (OSError, ValueError) as error:
            raise PipelineError(
                f"cannot load {path}: {error}; rerun the preprocess stage"
            ) from None
    images, labels = arrays
    # What preprocess writes; anything else would fail deep inside TensorFlow.
    expected_images = f"float32 images of shape (N, {IMAGE_SIDE}, {IMAGE_SIDE}, 1)"
    if images.dtype != np.float32 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE, 1):
        raise PipelineError(
            f"{Path(directory) / f'{split}_images.npy'} holds {images.dtype} of shape "
            f"{images.shape}; expected {expected_images}; rerun the preprocess stage"
        )
    if labels.dtype != np.int64 or labels.shape != images.shape[:1]:
        raise PipelineError(
            f"{Path(directory) / f'{split}_labels.npy'} holds {labels.dtype} of shape "
            f"{labels.shape}; expected int64 of shape ({len(images)},), one label an image; "
            "rerun the preprocess stage"
        )
    return images, labels
