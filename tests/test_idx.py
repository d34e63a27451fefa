import gzip
import hashlib
import struct

import numpy as np
import pytest

from mnistpipe.datasets import DATASETS, FILE_NAMES
from mnistpipe.errors import PipelineError
from mnistpipe.idx import encode_idx, read_bytes, read_images, read_labels, read_pair
from tests.conftest import SHARED_MNIST, synthetic_split


def test_images_and_labels_round_trip_plain_and_gzipped(tmp_path):
    images, labels = synthetic_split(30, seed=0)
    (tmp_path / "images").write_bytes(encode_idx(images))
    (tmp_path / "labels.gz").write_bytes(gzip.compress(encode_idx(labels)))
    read_images_, read_labels_ = read_pair(tmp_path / "images", tmp_path / "labels.gz")
    np.testing.assert_array_equal(read_images_, images)
    np.testing.assert_array_equal(read_labels_, labels)
    assert read_images_.dtype == np.uint8 and read_images_.shape == (30, 28, 28)


def _write(tmp_path, content, name="file"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_a_wrong_magic_number_is_refused(tmp_path):
    images, _ = synthetic_split(3, seed=0)
    content = bytearray(encode_idx(images))
    content[3] = 0x01
    path = _write(tmp_path, bytes(content))
    with pytest.raises(PipelineError, match=r"has magic number 0x00000801; expected 0x00000803"):
        read_images(path)


def test_a_truncated_body_is_refused(tmp_path):
    images, _ = synthetic_split(3, seed=0)
    path = _write(tmp_path, encode_idx(images)[:-10])
    with pytest.raises(PipelineError, match=r"its header \(3, 28, 28\) implies 2368 bytes"):
        read_images(path)


def test_a_file_shorter_than_its_header_is_refused(tmp_path):
    path = _write(tmp_path, b"\x00\x00")
    with pytest.raises(PipelineError, match="expected an IDX header"):
        read_labels(path)


def test_images_that_are_not_28_by_28_are_refused(tmp_path):
    path = _write(tmp_path, encode_idx(np.zeros((2, 32, 32), dtype=np.uint8)))
    with pytest.raises(PipelineError, match="images of 32x32 pixels; expected 28x28"):
        read_images(path)


def test_a_label_outside_0_to_9_is_refused(tmp_path):
    path = _write(tmp_path, encode_idx(np.array([1, 2, 12, 3], dtype=np.uint8)))
    with pytest.raises(PipelineError, match="has label 12 at index 2; expected labels 0-9"):
        read_labels(path)


def test_counts_that_disagree_are_refused(tmp_path):
    images, labels = synthetic_split(5, seed=0)
    images_path = _write(tmp_path, encode_idx(images), "images")
    labels_path = _write(tmp_path, encode_idx(labels[:4]), "labels")
    with pytest.raises(PipelineError, match="has 5 images but .* has 4 labels"):
        read_pair(images_path, labels_path)


def test_a_corrupt_gzip_stream_is_refused(tmp_path):
    compressed = bytearray(gzip.compress(encode_idx(np.zeros(100, dtype=np.uint8))))
    compressed[15:25] = b"\xff" * 10
    path = _write(tmp_path, bytes(compressed), "labels.gz")
    with pytest.raises(PipelineError, match="labels.gz is not a valid gzip stream"):
        read_labels(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(PipelineError, match="cannot read .*absent"):
        read_images(tmp_path / "absent")


def test_encode_writes_the_standard_header():
    assert encode_idx(np.zeros((2, 28, 28), dtype=np.uint8))[:16] == struct.pack(
        ">IIII", 0x803, 2, 28, 28
    )


@pytest.mark.skipif(
    not SHARED_MNIST.is_dir(), reason="shared/datasets/mnist is not beside the repository"
)
def test_the_real_mnist_files_parse_and_match_their_published_checksums():
    spec = DATASETS["mnist"]
    for role in ("test_images", "test_labels", "train_labels"):
        content = read_bytes(SHARED_MNIST / f"{FILE_NAMES[role]}.gz")
        assert hashlib.sha256(content).hexdigest() == spec.sha256[role]
    images, labels = read_pair(
        SHARED_MNIST / "t10k-images-idx3-ubyte.gz", SHARED_MNIST / "t10k-labels-idx1-ubyte.gz"
    )
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    # The well-known MNIST test-set class counts.
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    train_labels = read_labels(SHARED_MNIST / "train-labels-idx1-ubyte.gz")
    assert train_labels.shape == (60000,) and train_labels[:5].tolist() == [5, 0, 4, 1, 9]
