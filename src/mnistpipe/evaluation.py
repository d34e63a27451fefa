"""Test-set figures: loss, accuracy, and per-class precision, recall and F1."""

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Counts[actual, predicted] over ``classes`` classes."""
    return np.bincount(
        labels.astype(np.int64) * classes + predicted.astype(np.int64),
        minlength=classes * classes,
    ).reshape(classes, classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # A class never predicted (or never present) scores 0, as scikit-learn's
    # zero_division=0 does, rather than NaN, which JSON cannot hold.
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def classification_report(
    labels: np.ndarray, logits: np.ndarray, class_names: tuple[str, ...]
) -> dict:
    """Loss, accuracy, per-class and macro-averaged precision, recall and F1 (6 decimals)."""
    predicted = np.argmax(logits, axis=1)
    counts = confusion_matrix(labels, predicted, len(class_names))
    true_positives = np.diag(counts).astype(np.float64)
    precision = _ratio(true_positives, counts.sum(axis=0).astype(np.float64))
    recall = _ratio(true_positives, counts.sum(axis=1).astype(np.float64))
    f1 = _ratio(2 * precision * recall, precision + recall)
    per_class = {
        name: {
            "precision": round(float(precision[index]), 6),
            "recall": round(float(recall[index]), 6),
            "f1": round(float(f1[index]), 6),
            "support": int(counts[index].sum()),
        }
        for index, name in enumerate(class_names)
    }
    # Imported here: the loss is Keras', and figures.py imports this module for its
    # confusion counts alone (so does the CI report through it): no TensorFlow for that.
    from mnistpipe.recipe import make_loss

    loss = float(make_loss()(labels, logits))
    return {
        "loss": round(loss, 6),
        "accuracy": round(float(np.mean(predicted == labels)), 6),
        "macro_avg": {
            "precision": round(float(precision.mean()), 6),
            "recall": round(float(recall.mean()), 6),
            "f1": round(float(f1.mean()), 6),
        },
        "per_class": per_class,
        "examples": int(len(labels)),
    }


def prediction_rows(
    labels: np.ndarray, logits: np.ndarray, class_names: tuple[str, ...]
) -> list[dict[str, str]]:
    """One row an example, actual and predicted class name, for DVC's confusion template."""
    predicted = np.argmax(logits, axis=1)
    return [
        {"actual": class_names[actual], "predicted": class_names[guess]}
        for actual, guess in zip(labels.tolist(), predicted.tolist(), strict=True)
    ]
