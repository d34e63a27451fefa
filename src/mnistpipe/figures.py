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


def confusion_matrix_figure(labels, predicted, class_names) -> Figure:
    """Counts of each (actual, predicted) pair, the diagonal being the correct ones."""
    counts = confusion_matrix(labels, predicted)
    figure = Figure(figsize=(8, 7), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8)
    ticks = range(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("actual class")
    axes.set_title(f"Confusion matrix ({len(labels)} test images)")
    threshold = counts.max() / 2
    for actual, row in enumerate(counts):
        for guess, count in enumerate(row):
            colour = "white" if count > threshold else "black"
            axes.text(guess, actual, str(count), ha="center", va="center", color=colour, size=8)
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
        axes.imshow(np.squeeze(images[index]), cmap="gray", vmin=0.0, vmax=1.0)
        axes.set_title(
            f"true: {class_names[labels[index]]}\n"
            f"predicted: {class_names[guess]} {probabilities[index, guess]:.0%}",
            size=8,
        )
    if not len(chosen):
        figure.text(0.5, 0.5, "no misclassified images", ha="center")
    return figure


def save_png(figure: Figure, path: str | os.PathLike) -> None:
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=100, metadata={"Software": None})
