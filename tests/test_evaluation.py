import numpy as np
import pytest

from mnistpipe.evaluation import classification_report, confusion_matrix, prediction_rows

NAMES = tuple(f"class {index}" for index in range(10))


def logits_for(predicted):
    logits = np.full((len(predicted), 10), -5.0, dtype=np.float32)
    logits[np.arange(len(predicted)), predicted] = 5.0
    return logits


def test_per_class_precision_recall_and_f1_match_a_hand_count():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 0])
    report = classification_report(labels, logits_for(predicted), NAMES)
    assert report["accuracy"] == pytest.approx(4 / 6, abs=1e-6)
    class_0 = report["per_class"]["class 0"]
    # Class 0: 2 of 3 predictions right, 2 of 3 examples found.
    assert class_0 == {
        "precision": pytest.approx(2 / 3, abs=1e-6),
        "recall": pytest.approx(2 / 3, abs=1e-6),
        "f1": pytest.approx(2 / 3, abs=1e-6),
        "support": 3,
    }
    class_1 = report["per_class"]["class 1"]
    assert (class_1["precision"], class_1["recall"]) == (pytest.approx(2 / 3, abs=1e-6), 1.0)
    # Class 2 is never predicted: precision 0 (not NaN), recall 0.
    assert report["per_class"]["class 2"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
    }
    # Absent classes score 0 and count in the macro average, as in scikit-learn.
    assert report["macro_avg"]["recall"] == pytest.approx((2 / 3 + 1) / 10, abs=1e-6)
    assert report["examples"] == 6
    assert 0 < report["loss"] < 10


def test_the_loss_is_the_mean_cross_entropy_of_the_logits():
    labels = np.array([3, 7])
    logits = np.zeros((2, 10), dtype=np.float32)
    assert classification_report(labels, logits, NAMES)["loss"] == pytest.approx(
        np.log(10), abs=1e-5
    )


def test_confusion_matrix_counts_actual_by_predicted():
    counts = confusion_matrix(np.array([1, 1, 2]), np.array([1, 2, 2]), 10)
    assert counts[1, 1] == 1 and counts[1, 2] == 1 and counts[2, 2] == 1 and counts.sum() == 3


def test_prediction_rows_name_the_classes():
    rows = prediction_rows(np.array([0, 9]), logits_for(np.array([0, 1])), NAMES)
    assert rows == [
        {"actual": "class 0", "predicted": "class 0"},
        {"actual": "class 9", "predicted": "class 1"},
    ]
