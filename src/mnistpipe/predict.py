"""Classify your own images with the exported SavedModel.

    python -m mnistpipe.predict shirt.png boot.jpg
    python -m mnistpipe.predict --json data/raw/t10k-images-idx3-ubyte

PNG and JPEG files of any size and colour are turned into what the dataset's
images look like: 28x28 grayscale, light on dark. A photo of a dark object on a
light background is inverted (``--no-invert`` keeps it as it is), then scaled
to fit 28x28 and centred on black. IDX image files are predicted image by
image. A file that cannot be read gets an error naming it; the others are
still predicted, and the exit status is 1.
"""

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mnistpipe import interrupts, paths
from mnistpipe.datasets import IMAGE_SIDE
from mnistpipe.errors import PipelineError, shown, tensorflow_reason
from mnistpipe.idx import GZIP_MAGIC, IMAGES_MAGIC, MAX_IDX_BYTES, read_images

TOP = 3
_IDX_IMAGES_HEADER = IMAGES_MAGIC.to_bytes(4, "big")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
FORMATS = "a PNG, JPEG or IDX image file"
# The largest picture decoded: 8000x8000 pixels, about 256 MB as float32 while it
# is scaled. The size is read from the file's header before anything is decoded,
# so a file claiming a huge size is refused without using the memory.
MAX_IMAGE_PIXELS = 64_000_000
# JPEG start-of-frame markers (baseline, progressive, ...), which hold the size.
_JPEG_FRAME_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE}


def read_class_names(export_directory: Path) -> list[str]:
    """The class names the export stage wrote beside the SavedModel."""
    path = export_directory / paths.EXPORTED_CLASSES.name
    try:
        class_names = json.loads(path.read_text())["class_names"]
        # A list of names, one a class: a string or a number here would be taken
        # apart letter by letter, or fail further on.
        if not (isinstance(class_names, list) and all(isinstance(n, str) for n in class_names)):
            raise TypeError(f"class_names is {shown(class_names)}, not a list of names")
    # RecursionError: JSON nested thousands deep ([[[[...).
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise PipelineError(
            f"cannot read the class names from {path} ({error}); expected the export "
            "stage's output: run dvc repro first"
        ) from None
    return class_names


def looks_dark_on_light(image: np.ndarray) -> bool:
    """Whether the picture's border is mostly light: the object is dark on a light ground."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return float(border.mean()) > 127.5


def to_dataset_image(image: np.ndarray, invert: bool = True) -> np.ndarray:
    """A decoded grayscale picture (H, W) as a 28x28 uint8 image, light on dark."""
    image = image.astype(np.float32)
    if invert and looks_dark_on_light(image):
        image = 255.0 - image
    # A picture more than 28 times longer than wide (a 1x5000 strip) would be
    # scaled to no rows at all, which TensorFlow refuses: first pad its short
    # side with black to 1/28 of the long one, so that it keeps one row.
    long_side = max(image.shape)
    image = np.pad(
        image,
        [(0, max(0, -(-long_side // IMAGE_SIDE) - side)) for side in image.shape],
    )
    # Fit the longer side to 28 pixels, keep the proportions, pad with black.
    import tensorflow as tf  # here, not above: `mnistpipe predict --help` loads no TensorFlow

    fitted = tf.image.resize_with_pad(
        image[..., np.newaxis], IMAGE_SIDE, IMAGE_SIDE, antialias=True
    )
    return np.clip(np.round(fitted.numpy()[..., 0]), 0, 255).astype(np.uint8)


def _jpeg_frame(content: bytes) -> bytes | None:
    """A JPEG's start-of-frame segment: precision, height, width, components, ...; or None."""
    position = 2
    while position + 9 <= len(content):
        if content[position] != 0xFF:
            return None
        marker = content[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        length = int.from_bytes(content[position + 2 : position + 4], "big")
        if marker in _JPEG_FRAME_MARKERS:
            return content[position + 4 : position + 2 + max(length, 7)]
        position += 2 + length
    return None


def image_size(content: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's or JPEG's header, or None when the header has none."""
    if content.startswith(_PNG_SIGNATURE):
        if len(content) >= 24 and content[12:16] == b"IHDR":
            return int.from_bytes(content[16:20], "big"), int.from_bytes(content[20:24], "big")
        return None
    frame = _jpeg_frame(content)
    if frame is None:
        return None
    return int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")


def jpeg_components(content: bytes) -> int | None:
    """How many colour components a JPEG holds: 1 gray, 3 YCbCr or RGB, 4 CMYK or YCCK."""
    frame = _jpeg_frame(content)
    return frame[5] if frame is not None and len(frame) > 5 else None


# TensorFlow's own log lines ("W0000 00:00:... local_rendezvous.cc:412] ...").
_TENSORFLOW_LOG_LINE = re.compile(r"[IWEF]\d{4} ")


def _block_handled_signals() -> None:
    """Hold SIGINT, SIGTERM and SIGHUP back until the mask is set back.

    A signal that comes meanwhile stays pending and is delivered (its handler
    raising ``Interrupted``) when it is. Python runs the handler of a signal
    that came just before at once, so this call may itself raise.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, interrupts.HANDLED_SIGNALS)


@contextlib.contextmanager
def _native_messages_kept(kept: list[str]) -> Iterator[None]:
    """Within the block, what C code (libjpeg, libpng) writes to standard error goes to ``kept``.

    A damaged picture makes libjpeg print its reason ("Bogus Huffman table
    definition") and TensorFlow a log line, each on a line of its own beside the
    one ``error:`` line; kept instead, the reason goes into that line.

    A handled signal coming between the swaps of file descriptor 2 would raise
    ``Interrupted`` where nothing swaps it back, and the interruption's line
    would go into the capture file, lost. The signals are held back while it is
    swapped, so one is raised inside the block that swaps back, or once stderr is
    back; and that block swaps back from wherever it was stopped, because the
    mask holds only this thread's signals: one sent to the process may land on
    one of TensorFlow's threads, its handler still run here at once.
    """
    # Read before anything is opened or changed: the mask every exit sets back.
    mask_before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    capture = None
    try:
        sys.stderr.flush()
        capture = tempfile.TemporaryFile()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        # No file to keep them in (out of descriptors, say): they are shown, as
        # before, and the capture file, if it was opened, is not left open.
        if capture is not None:
            capture.close()
        capture = None
    if capture is None:
        yield
        return
    with capture:
        try:
            _block_handled_signals()
            os.dup2(capture.fileno(), 2)
            # A signal held back during the swap is raised here, and the finally
            # below swaps stderr back.
            signal.pthread_sigmask(signal.SIG_SETMASK, mask_before)
            yield
        finally:
            try:
                _block_handled_signals()
            finally:
                try:
                    # Run whatever line a signal stopped the block at, even one
                    # before the swap: swapping back twice does no harm.
                    os.dup2(saved, 2)
                    os.close(saved)
                    capture.seek(0)
                    kept += capture.read().decode("utf-8", "replace").splitlines()
                finally:
                    # A signal held back during the swap back is raised now, with
                    # stderr restored for its one line.
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask_before)


def decode_picture(path: Path, content: bytes) -> np.ndarray:
    """A PNG or JPEG file as a grayscale (H, W) uint8 array, its size checked first."""
    if not content.startswith((_PNG_SIGNATURE, _JPEG_SIGNATURE)):
        raise PipelineError(
            f"{path} is not {FORMATS} (it starts with {content[:8]!r}); expected {FORMATS}"
        )
    kind = "PNG" if content.startswith(_PNG_SIGNATURE) else "JPEG"
    size = image_size(content)
    if size is None:
        raise PipelineError(f"{path} is a {kind} file without a readable size; expected {FORMATS}")
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise PipelineError(
            f"{path} is a {kind} image of {width}x{height} pixels; expected at most "
            f"{MAX_IMAGE_PIXELS:,} pixels (8000x8000): scale it down first"
        )
    # TensorFlow's JPEG decoder (libjpeg) turns CMYK (and YCCK, as print shops and Photoshop
    # save) into RGB, not into gray ("Unsupported color conversion request"): those go through RGB.
    channels = 3 if kind == "JPEG" and jpeg_components(content) == 4 else 1
    import tensorflow as tf  # here, not above: `mnistpipe predict --help` loads no TensorFlow

    messages: list[str] = []
    try:
        with _native_messages_kept(messages):
            decoded = tf.io.decode_image(content, channels=channels, expand_animations=False)
            if channels == 3:
                decoded = tf.image.rgb_to_grayscale(decoded)
    except tf.errors.OpError as error:
        native = [line for line in messages if line and not _TENSORFLOW_LOG_LINE.match(line)]
        reason = "; ".join([*native[:1], tensorflow_reason(error)])
        raise PipelineError(
            f"{path} is a damaged {kind} file ({reason}); expected {FORMATS}"
        ) from None
    # A picture that decoded with warnings (extraneous bytes): they are shown as they were.
    if messages:
        print("\n".join(messages), file=sys.stderr, flush=True)
    return decoded.numpy()[..., 0]


def read_inputs(path: Path, invert: bool = True) -> list[tuple[str, np.ndarray]]:
    """(name, 28x28 uint8 image) for each image in the file at ``path``."""
    try:
        # Checked before reading: a file far larger than any image is not read whole.
        if path.is_file() and path.stat().st_size > MAX_IDX_BYTES:
            raise PipelineError(
                f"{path} is {path.stat().st_size:,} bytes; expected {FORMATS} of at most "
                f"{MAX_IDX_BYTES:,} bytes"
            )
        content = path.read_bytes()
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror}") from None
    if not content:
        raise PipelineError(f"{path} is empty; expected {FORMATS}")
    if content.startswith(_IDX_IMAGES_HEADER) or content.startswith(GZIP_MAGIC):
        return [(f"{path}[{index}]", image) for index, image in enumerate(read_images(path))]
    return [(str(path), to_dataset_image(decode_picture(path, content), invert))]


def top_classes(probabilities: np.ndarray, class_names: list[str], count: int = TOP) -> list:
    order = np.argsort(-probabilities, kind="stable")[:count]
    return [
        {
            "class": class_names[index],
            "index": int(index),
            "probability": float(probabilities[index]),
        }
        for index in order
    ]


@interrupts.handled("predict", "; nothing was written; run it again")
def main(arguments: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnistpipe.predict",
        description="Print the top classes of each image, as the exported model sees it.",
    )
    parser.add_argument("files", nargs="+", type=Path, help="PNG, JPEG or IDX image files")
    parser.add_argument(
        "--model",
        type=Path,
        default=paths.EXPORT,
        help=f"the export stage's directory (default: {paths.EXPORT})",
    )
    parser.add_argument(
        "--no-invert",
        dest="invert",
        action="store_false",
        help="do not invert dark-on-light pictures (they are inverted by default)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    options = parser.parse_args(arguments)
    # Imported after the arguments are read: `--help` and a bad argument answer at once,
    # without loading TensorFlow (seconds).
    from mnistpipe.serving import load_serving_function, predict_in_batches

    try:
        class_names = read_class_names(options.model)
        serve = load_serving_function(options.model / paths.EXPORTED_SAVED_MODEL.name)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    results, failures = [], []
    for path in options.files:
        try:
            inputs = read_inputs(path, options.invert)
        except PipelineError as error:
            failures.append({"file": str(path), "error": str(error)})
            print(f"error: {error}", file=sys.stderr)
            continue
        probabilities = predict_in_batches(serve, np.stack([image for _, image in inputs]))
        for (name, _), row in zip(inputs, probabilities, strict=True):
            results.append({"file": name, "top": top_classes(row, class_names)})

    if options.json:
        print(json.dumps({"predictions": results, "errors": failures}, indent=2))
    else:
        for result in results:
            ranked = ", ".join(
                f"{entry['class']} {entry['probability']:.3f}" for entry in result["top"]
            )
            print(f"{result['file']}: {ranked}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
