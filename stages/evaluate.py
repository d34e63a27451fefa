"""Stage 4: score the trained model on the test set; record whether it meets the bar."""

from mnistpipe import paths
from mnistpipe.dataset_info import read_info
from mnistpipe.errors import run_stage
from mnistpipe.evaluation import classification_report, prediction_rows
from mnistpipe.figures import confusion_matrix_figure, misclassified_figure, save_png
from mnistpipe.files import write_csv, write_json
from mnistpipe.models import load_model, probabilities, with_test_time_augmentation
from mnistpipe.params import load_params
from mnistpipe.prepared import load_split
from mnistpipe.quality import bar_verdict, judged_metrics


def main() -> str:
    params = load_params(paths.PARAMS)
    # The classes and image shape of the prepared data (dataset.json).
    info = read_info(paths.PREPARED)
    class_names = info.class_names
    model = load_model(paths.MODEL, info.image_shape, info.num_classes)
    test_images, test_labels = load_split(paths.PREPARED, "test", dataset=params["dataset"])
    # Test-time augmentation when the params ask for it (models.py): each image
    # is scored as the mean of its views, here as in the exported SavedModel.
    model = with_test_time_augmentation(
        model, params["evaluate"]["test_time_augmentation"], info.image_shape
    )

    logits = model.predict(test_images, batch_size=1000, verbose=0)
    report = classification_report(test_labels, logits, class_names)
    # Below the bar is a result, not a failure: the experiment completes and is saved,
    # and the release step and the CI gate refuse to publish it.
    min_accuracy = params["evaluate"]["min_accuracy"]
    decisive, per_class = judged_metrics(report, min_accuracy)
    write_json(paths.EVALUATE_METRICS, decisive)
    write_json(paths.CLASS_METRICS, per_class)
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
    return (
        f"evaluate: {bar_verdict(report['accuracy'], min_accuracy)}, "
        f"loss {report['loss']:.4f}, wrote {paths.EVALUATE_METRICS}, {paths.CLASS_METRICS} and "
        f"{paths.CONFUSION_MATRIX_IMAGE.parent}/"
    )


if __name__ == "__main__":
    run_stage(main)
