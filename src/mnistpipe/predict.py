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
import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from mnistpipe import interrupts, paths
from mnistpipe.datasets import IMAGE_SIDE
from mnistpipe.errors import PipelineError
from mnistpipe.idx import GZIP_MAGIC, IMAGES_MAGIC, read_images
from mnistpipe.serving import load_serving_function, predict_in_batches

TOP = 3
_IDX_IMAGES_HEADER = IMAGES_MAGIC.to_bytes(4, "big")


def read_class_names(export_directory: Path) -> list[str]:
    """The class names the export stage wrote beside the SavedModel."""
    path = export_directory / paths.EXPORTED_CLASSES.name
    try:
        class_names = json.loads(path.read_text())["class_names"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PipelineError(
            f"cannot read the class names from {path} ({error}); expected the export "
            "stage's output: run dvc repro first"
        ) from None
    return list(class_names)


def looks_dark_on_light(image: np.ndarray) -> bool:
    """Whether the picture's border is mostly light: the object is dark on a light ground."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return float(border.mean()) > 127.5


def to_dataset_image(image: np.ndarray, invert: bool = True) -> np.ndarray:
    """A decoded grayscale picture (H, W) as a 28x28 uint8 image, light on dark."""
    image = image.astype(np.float32)
    if invert and looks_dark_on_light(image):
        image = 255.0 - image
    # Fit the longer side to 28 pixels, keep the proportions, pad with black.
    fitted = tf.image.resize_with_pad(
        image[..., np.newaxis], IMAGE_SIDE, IMAGE_SIDE, antialias=True
    )
    return np.clip(np.round(fitted.numpy()[..., 0]), 0, 255).astype(np.uint8)


def read_inputs(path: Path, invert: bool = True) -> list[tuple[str, np.ndarray]]:
    """(name, 28x28 uint8 image) for each image in the file at ``path``."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror}") from None
    if not content:
        raise PipelineError(f"{path} is empty; expected a PNG, JPEG or IDX image file")
    if content.startswith(_IDX_IMAGES_HEADER) or content.startswith(GZIP_MAGIC):
        return [(f"{path}[{index}]", image) for index, image in enumerate(read_images(path))]
    try:
        decoded = tf.io.decode_image(content, channels=1, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
        reason = error.message.splitlines()[0]
        raise PipelineError(
            f"{path} is not an image TensorFlow can decode ({reason}); "
            "expected a PNG, JPEG or IDX image file"
        ) from None
    return [(str(path), to_dataset_image(decoded.numpy()[..., 0], invert))]


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
