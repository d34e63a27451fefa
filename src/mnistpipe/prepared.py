"""The prepared data loaded back, in whichever format preprocess wrote it.

``npy`` splits are loaded whole, without pickle, and checked against
``dataset.json`` (shape, class count); ``tfrecord`` ones are streamed by
``mnistpipe.tfrecords``, imported only for that format, so reading npy data never
loads TensorFlow. ``source.json`` beside the data names the dataset it was made
from: arrays of MNIST and Fashion-MNIST have the same shape, so only this record
tells them apart (stages pass ``dataset=``).
"""

import json
import os
from pathlib import Path

import numpy as np

from mnistpipe.dataset_info import INFO_FILE, REBUILD, prepared_info
from mnistpipe.errors import PipelineError
from mnistpipe.examples import SOURCE_RECORD, TFRECORD_MANIFEST, Examples, examples_from_arrays


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
