"""Classify your own images with the exported SavedModel.

    python -m mnistpipe.predict shirt.png boot.jpg
    python -m mnistpipe.predict --json data/raw/t10k-images-idx3-ubyte

A picture (PNG, JPEG, BMP, GIF or WebP, any size and colour) becomes what the
model was trained on by ``pictures.load_picture``, the function preprocess
converts a folder's images with, at the image size and channels the export
declares (``classes.json``): serving cannot drift from training. The built-in
datasets' models are the exception that proves it: their images are light on
dark, so for them a photo of a dark object on a light background is inverted
first (``--no-invert`` keeps it as it is); a model trained on a folder takes
pictures as they are. IDX image files (28x28 grayscale) are predicted image by
image. A file that cannot be read gets an error naming it; the others are still
predicted, and the exit status is 1.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import ImageOps

from mnistpipe import interrupts, paths, pictures
from mnistpipe.errors import PipelineError
from mnistpipe.export_check import IDX_IMAGE_SHAPE, ExportedClasses, load_export
from mnistpipe.idx import GZIP_MAGIC, IMAGES_MAGIC, MAX_IDX_BYTES, read_images

TOP = 3
_IDX_IMAGES_HEADER = IMAGES_MAGIC.to_bytes(4, "big")
FORMATS = "a PNG, JPEG, BMP, GIF, WebP or IDX image file"


def looks_dark_on_light(image: np.ndarray) -> bool:
    """Whether the picture's border is mostly light: the object is dark on a light ground."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return float(border.mean()) > 127.5


def light_on_dark_picture(
    content: bytes, source: Path, image_shape: tuple[int, int, int]
) -> np.ndarray:
    """A picture for a built-in dataset's model: inverted if dark on light, then fitted.

    pictures.load_picture's own steps, with the inversion before the fit so that
    the padding stays black, as the datasets' background is.
    """
    height, width, channels = image_shape
    image = pictures.to_eight_bit(pictures.decode(content, source), channels)
    if looks_dark_on_light(np.asarray(image)):
        image = ImageOps.invert(image)
    fitted = pictures.fit(image, height, width)
    return np.asarray(fitted, dtype=np.uint8).reshape(height, width, channels)


def read_inputs(
    path: Path, exported: ExportedClasses, invert: bool = True
) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 (H, W, C) image) for each image in the file at ``path``, as the model takes."""
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
        if exported.image_shape != IDX_IMAGE_SHAPE:
            height, width, channels = exported.image_shape
            raise PipelineError(
                f"{path} is an IDX file of 28x28 grayscale images, but the model takes "
                f"{height}x{width} images of {channels} channel{'s' * (channels > 1)}; "
                "expected a picture file (PNG, JPEG, BMP, GIF or WebP)"
            )
        return [
            (f"{path}[{index}]", image[..., np.newaxis])
            for index, image in enumerate(read_images(path))
        ]
    if invert and exported.invert_dark_on_light:
        return [(str(path), light_on_dark_picture(content, path, exported.image_shape))]
    height, width, channels = exported.image_shape
    return [(str(path), pictures.load_picture(content, path, (height, width), channels))]


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
    parser.add_argument(
        "files", nargs="+", type=Path, help="PNG, JPEG, BMP, GIF, WebP or IDX image files"
    )
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
        help="do not invert dark-on-light pictures (a built-in dataset's model inverts them "
        "by default; a model of one's own images never does)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    options = parser.parse_args(arguments)

    try:
        # Here, not at the top: `mnistpipe predict --help` loads no TensorFlow.
        from mnistpipe.serving import predict_in_batches

        # The whole folder checked first: classes.json against the model's outputs, the
        # signature against the images classes.json declares, the files the card lists.
        export = load_export(options.model)
        exported, serve = export.classes, export.serve
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    results, failures = [], []
    for path in options.files:
        try:
            inputs = read_inputs(path, exported, options.invert)
        except PipelineError as error:
            failures.append({"file": str(path), "error": str(error)})
            print(f"error: {error}", file=sys.stderr)
            continue
        probabilities = predict_in_batches(serve, np.stack([image for _, image in inputs]))
        for (name, _), row in zip(inputs, probabilities, strict=True):
            results.append({"file": name, "top": top_classes(row, exported.class_names)})

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
