"""The data report: what preprocess found in the data, for people and the model card.

Two files in ``metrics/``, both written by preprocess: ``data.json``, the figure
that ``dvc metrics show`` lists beside the model's (the exact duplicates), and
``data_report.json``, the whole report with its summary figures: per class and
split the image counts, the images skipped and why, the images that were resized,
the exact duplicates (the same decoded pixels) and the hidden or stray entries that
were left out.

For the built-in datasets the splits are the published ones, unchanged; the report
counts the test images whose pixels also occur in the training set: none in
Fashion-MNIST as served since 31 August 2017 (the 10 that zalandoresearch/fashion-mnist#44
found were replaced by its pull request #45), 0 by this count too.
"""

import hashlib
import os

import numpy as np

from mnistpipe.files import write_json

SPLITS = ("train", "val", "test")


def summary(report: dict) -> dict:
    """The report's figures: its ``summary``, and ``data.json``'s ``SHOWN_FIGURES``."""
    duplicates = report["duplicates"]
    return {
        "images": sum(report["images"].values()),
        "classes": len(report["counts"]),
        "skipped": len(report["skipped"]),
        "resized": report["resized"]["images"],
        "duplicates": duplicates["images"],
        "test_in_train": duplicates["test_in_train"],
    }


# The one figure `dvc metrics show` lists (metrics/data.json): its table stays within 15
# columns (the path and the training and test figures take 14), so the others go into
# the report's own "summary", which the model card quotes.
SHOWN_FIGURES = ("duplicates",)


def write_reports(metrics_path: str | os.PathLike, report_path: str | os.PathLike, report: dict):
    figures = summary(report)
    write_json(report_path, {**report, "summary": figures})
    write_json(metrics_path, {key: figures[key] for key in SHOWN_FIGURES})


def builtin_report(
    class_names: tuple[str, ...], splits: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict:
    """The report of a built-in dataset's splits (split → uint8 images, labels), as written."""
    counts = {
        name: {split: int(np.sum(splits[split][1] == label)) for split in SPLITS}
        for label, name in enumerate(class_names)
    }
    digests = {
        split: [hashlib.sha256(image.tobytes()).digest() for image in images]
        for split, (images, _) in splits.items()
    }
    groups: dict[bytes, list[tuple[str, int]]] = {}
    for split in SPLITS:
        for digest, label in zip(digests[split], splits[split][1], strict=True):
            groups.setdefault(digest, []).append((split, int(label)))
    duplicate_groups = [members for members in groups.values() if len(members) > 1]
    trained_on = set(digests["train"]) | set(digests["val"])
    return {
        "counts": counts,
        "images": {split: len(splits[split][1]) for split in SPLITS},
        "skipped": [],
        "resized": {"images": 0, "by_class": {name: 0 for name in class_names}},
        "duplicates": {
            "groups": len(duplicate_groups),
            "images": sum(len(members) - 1 for members in duplicate_groups),
            "straddling_splits": sum(
                1 for members in duplicate_groups if len({split for split, _ in members}) > 1
            ),
            "conflicting_labels": sum(
                1 for members in duplicate_groups if len({label for _, label in members}) > 1
            ),
            "test_in_train": sum(1 for digest in digests["test"] if digest in trained_on),
            "examples": [],
        },
        "ignored": {"entries": 0, "paths": []},
    }
