"""Pictures of the evaluation, for DVC's image plots: the confusion matrix, the worst mistakes.

Drawn with Matplotlib's Agg backend (no display needed) through ``Figure``
objects rather than pyplot, so nothing global is left behind. The same results
give the same PNG bytes: no timestamps, no software version in the metadata.
"""

import os

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from mnistpipe.evaluation import confusion_matrix
from mnistpipe.files import atomic_path

matplotlib.use("Agg")

MISCLASSIFIED_SHOWN = 16
# Up to this many classes each cell shows its count (ten classes: 100 numbers).
COUNTS_SHOWN_UP_TO = 20
# Up to this many classes the axes name every class; beyond, 80 names a side
# would overlap into a black band, so the ticks are Matplotlib's own, class
# indices (classes.json names them), and the title says so.
NAMES_SHOWN_UP_TO = 60
# Long class names are cut to this many characters on the axes.
NAME_CHARACTERS = 24


def _short(name: str) -> str:
    # Cut in the middle: names often share a beginning ("class 12", "class 13")
    # or an end, rarely both.
    if len(name) <= NAME_CHARACTERS:
        return name
    head = (NAME_CHARACTERS - 1) // 2
    return name[:head] + "…" + name[len(name) - (NAME_CHARACTERS - 1 - head) :]


def confusion_matrix_figure(labels, predicted, class_names) -> Figure:
    """Counts of each (actual, predicted) pair, the diagonal being the correct ones.

    Readable at any class count: the counts are written in the cells up to
    COUNTS_SHOWN_UP_TO classes, the names on the axes up to NAMES_SHOWN_UP_TO;
    a thousand classes give the colour map alone, with class indices on the axes.
    """
    classes = len(class_names)
    counts = confusion_matrix(labels, predicted, classes)
    # A little larger for a few dozen names; the same 8x7 inches for ten classes.
    side = 8 if classes <= COUNTS_SHOWN_UP_TO else 11
    figure = Figure(figsize=(side, side - 1), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8)
    title = f"Confusion matrix ({len(labels)} test images)"
    if classes <= NAMES_SHOWN_UP_TO:
        ticks = range(classes)
        names = [_short(name) for name in class_names]
        # Smaller names once they are many; Matplotlib's own size for a few.
        size = {} if classes <= COUNTS_SHOWN_UP_TO else {"size": 6}
        axes.set_xticks(ticks, names, rotation=45, ha="right", **size)
        axes.set_yticks(ticks, names, **size)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("actual class")
    else:
        axes.set_xlabel("predicted class (index in classes.json)")
        axes.set_ylabel("actual class (index in classes.json)")
        title = f"Confusion matrix ({len(labels)} test images, {classes} classes)"
    axes.set_title(title)
    if classes <= COUNTS_SHOWN_UP_TO:
        threshold = counts.max() / 2
        for actual, row in enumerate(counts):
            for guess, count in enumerate(row):
                colour = "white" if count > threshold else "black"
                axes.text(
                    guess, actual, str(count), ha="center", va="center", color=colour, size=8
                )
    return figure


def most_confident_mistakes(labels, probabilities, count=MISCLASSIFIED_SHOWN) -> np.ndarray:
    """Indices of the wrongly classified images, the most confident mistakes first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    # A stable sort: equal confidences keep the test set's order, so reruns agree.
    return wrong[np.argsort(-confidence, kind="stable")][:count]


def misclassified_figure(images, labels, probabilities, class_names) -> Figure:
    """A grid of the most confidently misclassified images with true and predicted names."""
    chosen = most_confident_mistakes(labels, probabilities)
    columns = 4
    rows = max(1, -(-len(chosen) // columns))
    figure = Figure(figsize=(2.3 * columns, 2.6 * rows), layout="constrained")
    figure.suptitle("Most confident mistakes on the test set")
    for position in range(rows * columns):
        axes = figure.add_subplot(rows, columns, position + 1)
        axes.set_axis_off()
        if position >= len(chosen):
            continue
        index = chosen[position]
        guess = int(probabilities[index].argmax())
        image = images[index]
        if image.shape[-1] == 1:
            axes.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
        else:
            # RGB in [0, 1], as preprocess scaled it: Matplotlib shows it as it is.
            axes.imshow(image, vmin=0.0, vmax=1.0)
        axes.set_title(
            f"true: {_short(class_names[labels[index]])}\n"
            f"predicted: {_short(class_names[guess])} {probabilities[index, guess]:.0%}",
            size=8,
        )
    if not len(chosen):
        figure.text(0.5, 0.5, "no misclassified images", ha="center")
    return figure


def save_png(figure: Figure, path: str | os.PathLike) -> None:
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=100, metadata={"Software": None})
