"""The quality bar (evaluate.min_accuracy): it judges a model, it does not stop a run.

As TFX's Evaluator "blesses" a model and only its Pusher refuses an unblessed one,
evaluate records whether the model meets the bar and every stage still runs, so an
experiment below it is saved with its metrics; what publishes a model (the release
step, the CI gate) refuses one below it. No TensorFlow here: the gate and the release
step import this, and they must start fast.
"""


def meets_bar(accuracy: float, min_accuracy: float) -> bool:
    """Whether a test accuracy reaches evaluate.min_accuracy: the one rule everything uses."""
    return accuracy >= min_accuracy


def bar_verdict(accuracy: float, min_accuracy: float) -> str:
    """The words that name the figure and the bar, for the stage, the card and the gate."""
    relation = "meets" if meets_bar(accuracy, min_accuracy) else "is below"
    return f"test accuracy {accuracy:.4f} {relation} evaluate.min_accuracy {min_accuracy:.4f}"


def judged_metrics(report: dict, min_accuracy: float) -> tuple[dict, dict]:
    """A classification report split in two: the figures that decide, and the per-class ones.

    The first becomes metrics/evaluate.json, the columns of `dvc metrics show` and
    `dvc exp show` (with the bar and whether the model meets it); ten classes times four
    figures would bury them, so the second becomes metrics/classes.json.
    """
    decisive = {key: value for key, value in report.items() if key != "per_class"}
    decisive["min_accuracy"] = min_accuracy
    decisive["meets_min_accuracy"] = meets_bar(report["accuracy"], min_accuracy)
    return decisive, {"per_class": report["per_class"]}
