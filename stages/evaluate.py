"""Stage 4: score the trained model on the test set; fail below evaluate.min_accuracy."""

from mnistpipe import paths
from mnistpipe.data import load_split
from mnistpipe.datasets import DATASETS
from mnistpipe.errors import PipelineError, run_stage
from mnistpipe.evaluation import classification_report, prediction_rows
from mnistpipe.figures import confusion_matrix_figure, misclassified_figure, save_png
from mnistpipe.files import write_csv, write_json
from mnistpipe.models import load_model, probabilities
from mnistpipe.params import load_params


def main() -> str:
    params = load_params(paths.PARAMS)
    class_names = DATASETS[params["dataset"]].class_names
    model = load_model(paths.MODEL)
    test_images, test_labels = load_split(paths.PREPARED, "test")

    logits = model.predict(test_images, batch_size=1000, verbose=0)
    report = classification_report(test_labels, logits, class_names)
    write_json(paths.EVALUATE_METRICS, report)
    write_csv(paths.PREDICTIONS_PLOT, prediction_rows(test_labels, logits, class_names))
    test_probabilities = probabilities(logits)
    save_png(
        confusion_matrix_figure(test_labels, test_probabilities.argmax(axis=1), class_names),
        paths.CONFUSION_MATRIX_IMAGE,
    )
    save_png(
        misclassified_figure(test_images, test_labels, test_probabilities, class_names),
        paths.MISCLASSIFIED_IMAGE,
    )

    min_accuracy = params["evaluate"]["min_accuracy"]
    if report["accuracy"] < min_accuracy:
        raise PipelineError(
            f"test accuracy {report['accuracy']:.4f} is below evaluate.min_accuracy "
            f"{min_accuracy:.4f} in {paths.PARAMS}"
        )
    return (
        f"evaluate: test accuracy {report['accuracy']:.4f} (gate {min_accuracy:.4f}), "
        f"loss {report['loss']:.4f}, wrote {paths.EVALUATE_METRICS} and "
        f"{paths.CONFUSION_MATRIX_IMAGE.parent}/"
    )


if __name__ == "__main__":
    run_stage(main)
