"""Stage 4: score the trained model on the test set; fail below evaluate.min_accuracy."""

from mnistpipe import paths
from mnistpipe.data import load_split
from mnistpipe.datasets import DATASETS
from mnistpipe.errors import PipelineError, run_stage
from mnistpipe.evaluation import classification_report, prediction_rows
from mnistpipe.files import write_csv, write_json
from mnistpipe.models import load_model
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

    min_accuracy = params["evaluate"]["min_accuracy"]
    if report["accuracy"] < min_accuracy:
        raise PipelineError(
            f"test accuracy {report['accuracy']:.4f} is below evaluate.min_accuracy "
            f"{min_accuracy:.4f} in {paths.PARAMS}"
        )
    return (
        f"evaluate: test accuracy {report['accuracy']:.4f} (gate {min_accuracy:.4f}), "
        f"loss {report['loss']:.4f}, wrote {paths.EVALUATE_METRICS}"
    )


if __name__ == "__main__":
    run_stage(main)
