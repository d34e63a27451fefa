"""Reading IDX files, the format MNIST and Fashion-MNIST are published in.

An IDX file is a big-endian header (magic number, then one 32-bit size per
dimension) followed by the raw bytes. Images are magic 0x00000803 with three
dimensions (count, rows, columns); labels are 0x00000801 with one.
"""

import gzip
import os
import struct
import zlib

import numpy as np

from mnistpipe.datasets import IMAGE_SIDE, NUM_CLASSES
from mnistpipe.errors import PipelineError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: str | os.PathLike) -> bytes:
    """The IDX content of ``path``, decompressing it if it is gzip-compressed."""
    try:
        with open(path, "rb") as stream:
            content = stream.read()
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror}") from None
    if content.startswith(GZIP_MAGIC):
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError, zlib.error) as error:
            raise PipelineError(f"{path} is not a valid gzip stream: {error}") from None
    return content


def parse_idx(content: bytes, source: str, magic: int) -> np.ndarray:
    """Parse IDX ``content`` into a uint8 array, checking magic number and body length."""
    dimensions = magic & 0xFF
    header_bytes = 4 + 4 * dimensions
    if len(content) < header_bytes:
        raise PipelineError(
            f"{source} is {len(content)} bytes; expected an IDX header of {header_bytes} bytes"
        )
    (found_magic,) = struct.unpack(">I", content[:4])
    if found_magic != magic:
        raise PipelineError(
            f"{source} has magic number 0x{found_magic:08x}; expected 0x{magic:08x}"
        )
    shape = struct.unpack(f">{dimensions}I", content[4:header_bytes])
    expected_bytes = header_bytes + int(np.prod(shape))
    if len(content) != expected_bytes:
        raise PipelineError(
            f"{source} is {len(content)} bytes; its header {shape} implies {expected_bytes} bytes"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header_bytes).reshape(shape)


def read_images(path: str | os.PathLike) -> np.ndarray:
    """Images as uint8 of shape (N, 28, 28)."""
    images = parse_idx(read_bytes(path), str(path), IMAGES_MAGIC)
    if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise PipelineError(
            f"{path} holds images of {images.shape[1]}x{images.shape[2]} pixels; "
            f"expected {IMAGE_SIDE}x{IMAGE_SIDE}"
        )
    return images


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Labels as uint8 of shape (N,), each in 0-9."""
    labels = parse_idx(read_bytes(path), str(path), LABELS_MAGIC)
    if labels.size and labels.max() >= NUM_CLASSES:
        position = int(np.argmax(labels >= NUM_CLASSES))
        raise PipelineError(
            f"{path} has label {labels[position]} at index {position}; "
            f"expected labels 0-{NUM_CLASSES - 1}"
        )
    return labels


def read_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike):
    """Images and labels of one split, checked to have the same count."""
    images, labels = read_images(images_path), read_labels(labels_path)
    if len(images) != len(labels):
        raise PipelineError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels; "
            "expected the same count"
        )
    return images, labels


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array (used to write test fixtures and exports)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x00000800 | array.ndim
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()
