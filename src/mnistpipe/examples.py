"""A prepared folder's parts: its splits, the names of its record files, and one split as examples.

The modules that write prepared data (``data``, ``folder_data``, ``tfrecords``) and
the one that reads it back (``prepared``) share these; nothing here loads
TensorFlow until a split is turned into a tf.data.Dataset.
"""

import dataclasses
import functools
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

SPLITS = ("train", "val", "test")
# Names the TFRecord shards and their counts; its absence means the npy format.
TFRECORD_MANIFEST = "tfrecord.json"
# Names the dataset the prepared data was made from (``prepared.check_source``).
SOURCE_RECORD = "source.json"


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
