"""Reading IDX files, the format MNIST and Fashion-MNIST are published in.

An IDX file is a big-endian header (magic number, then one 32-bit size per
dimension) followed by the raw bytes. Images are magic 0x00000803 with three
dimensions (count, rows, columns); labels are 0x00000801 with one.
"""

import math
import os
import struct
import zlib

import numpy as np

from mnistpipe.datasets import IMAGE_SIDE, NUM_CLASSES
from mnistpipe.errors import PipelineError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"
# The largest IDX content read: 1 GiB, twenty times Fashion-MNIST's training
# images. A gzip stream that decompresses to more (a "zip bomb", a wrong file)
# is refused before it fills the memory.
MAX_IDX_BYTES = 1 << 30


def read_bytes(path: str | os.PathLike) -> bytes:
    """The IDX content of ``path``, decompressing it if it is gzip-compressed."""
    try:
        with open(path, "rb") as stream:
            content = stream.read()
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror}") from None
    if content.startswith(GZIP_MAGIC):
        try:
            content = _decompress_bounded(content)
        except (OSError, EOFError, zlib.error) as error:
            raise PipelineError(f"{path} is not a valid gzip stream: {error}") from None
        if content is None:
            raise PipelineError(
                f"{path} decompresses to more than {MAX_IDX_BYTES:,} bytes; expected an IDX "
                "file of an MNIST-like dataset"
            )
    if len(content) > MAX_IDX_BYTES:
        raise PipelineError(
            f"{path} is {len(content):,} bytes; expected an IDX file of at most "
            f"{MAX_IDX_BYTES:,} bytes"
        )
    return content


def _decompress_bounded(content: bytes) -> bytes | None:
    """The gzip ``content`` decompressed, or None if that is more than MAX_IDX_BYTES."""
    decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    result = decompressor.decompress(content, MAX_IDX_BYTES + 1)
    if len(result) > MAX_IDX_BYTES:
        return None
    if not decompressor.eof:
        raise EOFError("the gzip stream ends early")
    return result


def parse_idx(content: bytes, source: str, magic: int) -> np.ndarray:
    """Parse IDX ``content`` into a uint8 array, checking magic number and body length."""
    shape = parse_idx_header(content, source, magic, len(content))
    header_bytes = 4 + 4 * len(shape)
    return np.frombuffer(content, dtype=np.uint8, offset=header_bytes).reshape(shape)


def parse_idx_header(header: bytes, source: str, magic: int, total_bytes: int) -> tuple:
    """The shape an IDX header declares, checked against its magic and the file's ``total_bytes``.

    ``header`` holds at least the header's bytes, so that a large file can be
    checked before it is read in pieces (data.py's streamed TFRecord preprocess).
    """
    dimensions = magic & 0xFF
    header_bytes = 4 + 4 * dimensions
    if total_bytes < header_bytes or len(header) < header_bytes:
        raise PipelineError(
            f"{source} is {total_bytes} bytes; expected an IDX header of {header_bytes} bytes"
        )
    (found_magic,) = struct.unpack(">I", header[:4])
    if found_magic != magic:
        raise PipelineError(
            f"{source} has magic number 0x{found_magic:08x}; expected 0x{magic:08x}"
        )
    shape = struct.unpack(f">{dimensions}I", header[4:header_bytes])
    # math.prod on Python integers: NumPy's int64 product overflows on absurd
    # headers (3 x 4 billion) and could then seem to match the file's length.
    expected_bytes = header_bytes + math.prod(shape)
    if total_bytes != expected_bytes:
        raise PipelineError(
            f"{source} is {total_bytes} bytes; its header {shape} implies {expected_bytes} bytes "
            "(the counts in the header do not match the file)"
        )
    return shape


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
