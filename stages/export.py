"""Stage 5: export a SavedModel that takes raw uint8 images, and prove it matches the model."""

import shutil

import numpy as np

from mnistpipe import paths
from mnistpipe.dataset_info import read_info
from mnistpipe.datasets import DATASETS
from mnistpipe.errors import run_stage
from mnistpipe.files import atomic_directory, atomic_open, directory_size_bytes, write_json
from mnistpipe.model_card import model_card, read_card_metrics, read_data_summary
from mnistpipe.models import load_model, with_test_time_augmentation
from mnistpipe.params import load_params
from mnistpipe.prepared import load_split
from mnistpipe.serving import PARITY_TOLERANCE, export_saved_model, parity


def main() -> str:
    params = load_params(paths.PARAMS)
    info = read_info(paths.PREPARED)
    card_metrics = read_card_metrics(info.class_names)
    data_summary = read_data_summary()
    model = load_model(paths.MODEL, info.image_shape, info.num_classes)
    test_images, test_labels = load_split(paths.PREPARED, "test", dataset=params["dataset"])
    # Test-time augmentation when the params ask for it (models.py): each image
    # is scored as the mean of its views, here as in the exported SavedModel.
    model = with_test_time_augmentation(
        model, params["evaluate"]["test_time_augmentation"], info.image_shape
    )
    # The client's pixels: preprocess divided uint8 pixels by 255 in float32, which
    # times 255, rounded, gives back exactly (the raw IDX images, or the pictures as
    # pictures.load_picture made them).
    raw_images = np.round(test_images * np.float32(255.0)).astype(np.uint8)

    with atomic_directory(paths.EXPORT) as export_directory:
        saved_model = export_directory / paths.EXPORTED_SAVED_MODEL.name
        export_saved_model(model, saved_model, image_shape=info.image_shape)
        shutil.copyfile(paths.MODEL, export_directory / paths.EXPORTED_KERAS.name)
        # Check the export before it replaces the previous one: the client's view
        # (raw uint8 pixels) against the trained model on preprocessed pixels.
        figures = parity(model, saved_model, raw_images, test_images)
        accuracy = float(np.mean(figures["predictions"].argmax(axis=1) == test_labels))
        export_metrics = {
            "argmax_disagreements": figures["argmax_disagreements"],
            # In parts per million: `dvc metrics show` rounds every figure to 5 decimal
            # places, which shows a difference of about 1e-6 as 0.0; in ppm it shows as it
            # is (1.07288), the tolerance beside it in the same unit.
            "max_probability_difference_ppm": figures["max_probability_difference"] * 1e6,
            "parity_tolerance_ppm": round(PARITY_TOLERANCE * 1e6, 6),
            "exported_accuracy": round(accuracy, 6),
            # In MiB to two places, the size a reader wants; the bytes themselves are
            # the same at every export of one model (serving.export_saved_model).
            "saved_model_mib": round(directory_size_bytes(saved_model) / 2**20, 2),
            "test_examples": len(test_labels),
        }
        # What a client needs beside the graph: the names of the outputs, the image
        # shape (what mnistpipe predict fits a picture to), and the card.
        write_json(
            export_directory / paths.EXPORTED_CLASSES.name,
            {
                "dataset": params["dataset"],
                "class_names": list(info.class_names),
                "image_shape": list(info.image_shape),
                # The built-in datasets are light on dark, so predict inverts a
                # dark-on-light photo for them; a folder's images are taken as they are.
                "invert_dark_on_light": params["dataset"] in DATASETS,
            },
        )
        with atomic_open(export_directory / paths.MODEL_CARD.name) as stream:
            stream.write(
                model_card(
                    params["dataset"],
                    info,
                    params,
                    *card_metrics,
                    export_metrics,
                    data_summary,
                )
            )
    write_json(paths.EXPORT_METRICS, export_metrics)
    return (
        f"export: {paths.EXPORTED_SAVED_MODEL} agrees with the model on {len(test_labels)} "
        f"test images (max difference {figures['max_probability_difference']:.1e}), "
        f"accuracy {accuracy:.4f}; wrote {paths.MODEL_CARD}"
    )


if __name__ == "__main__":
    run_stage(main)
