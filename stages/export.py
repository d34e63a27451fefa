"""Stage 5: export a SavedModel that takes raw uint8 images, and prove it matches the model."""

import shutil

import numpy as np

from mnistpipe import paths
from mnistpipe.data import load_split, read_raw
from mnistpipe.errors import run_stage
from mnistpipe.files import atomic_directory, directory_size_bytes, write_json
from mnistpipe.models import load_model
from mnistpipe.serving import PARITY_TOLERANCE, export_saved_model, parity


def main() -> str:
    model = load_model(paths.MODEL)
    test_images, test_labels = load_split(paths.PREPARED, "test")
    # The preprocessed test set is the first examples of the raw one (all of
    # them unless preprocess.limit is set): feed the export the same ones, raw.
    raw_images = read_raw(paths.RAW, "test")[0][: len(test_labels)]

    with atomic_directory(paths.EXPORT) as export_directory:
        export_saved_model(model, export_directory / paths.EXPORTED_SAVED_MODEL.name)
        shutil.copyfile(paths.MODEL, export_directory / paths.EXPORTED_KERAS.name)
        # Check the export before it replaces the previous one: the client's view
        # (raw uint8 pixels) against the trained model on preprocessed pixels.
        figures = parity(
            model, export_directory / paths.EXPORTED_SAVED_MODEL.name, raw_images, test_images
        )

    accuracy = float(np.mean(figures["predictions"].argmax(axis=1) == test_labels))
    write_json(
        paths.EXPORT_METRICS,
        {
            "argmax_disagreements": figures["argmax_disagreements"],
            "max_probability_difference": figures["max_probability_difference"],
            "parity_tolerance": PARITY_TOLERANCE,
            "exported_accuracy": round(accuracy, 6),
            # In MiB to two places: the graph's bytes vary by a few between identical
            # exports (generated function names), and metrics must not.
            "saved_model_mib": round(directory_size_bytes(paths.EXPORTED_SAVED_MODEL) / 2**20, 2),
            "test_examples": len(test_labels),
        },
    )
    return (
        f"export: {paths.EXPORTED_SAVED_MODEL} agrees with the model on {len(test_labels)} "
        f"test images (max difference {figures['max_probability_difference']:.1e}), "
        f"accuracy {accuracy:.4f}"
    )


if __name__ == "__main__":
    run_stage(main)
