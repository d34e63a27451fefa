"""Train, evaluate, export and predict on prepared data of one's own: 3 RGB classes, 20x24.

The prepared data is written here as preprocess writes it for a folder (npy
arrays, dataset.json, source.json), so these tests exercise the model side
alone: the model built from dataset.json, the figures and metrics named by its
classes, the export's (N, H, W, 3) signature, its TensorFlow Lite conversion,
the model card, and predict through pictures.load_picture.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
import yaml

import mnistpipe.params
from mnistpipe import paths, pictures
from mnistpipe.data import scale_images
from mnistpipe.dataset_info import DatasetInfo, write_info
from mnistpipe.examples import SOURCE_RECORD
from mnistpipe.figures import confusion_matrix_figure, misclassified_figure
from mnistpipe.files import save_array
from mnistpipe.predict import main
from mnistpipe.serving import load_serving_function
from tests.conftest import REPOSITORY, run_stage_main

CLASS_NAMES = ("red square", "green bar", "blue dot")
IMAGE_SHAPE = (20, 24, 3)


def coloured_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB images on a light ground: class k is a dark patch strong in channel k."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(CLASS_NAMES)
    images = rng.integers(200, 256, size=(count, *IMAGE_SHAPE), dtype=np.uint8)
    for image, label in zip(images, labels, strict=True):
        patch = np.full(3, 20, dtype=np.uint8)
        patch[label] = 230
        image[5:15, 6:18] = patch
    return images, labels.astype(np.int64)


@pytest.fixture
def own_images_project(tmp_path, monkeypatch):
    """A project whose data/prepared holds 3-class RGB images, with params for a quick run."""
    params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    params["train"].update(model="strided_cnn", epochs=2, batch_size=16, learning_rate=0.01)
    params["evaluate"].update(min_accuracy=0.5, test_time_augmentation="flip")
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(root)
    # The params' dataset is "folder" (the data side's params section; this keeps the
    # test independent of how that section is checked).
    load_params = mnistpipe.params.load_params
    monkeypatch.setattr(
        mnistpipe.params, "load_params", lambda path: {**load_params(path), "dataset": "folder"}
    )
    paths.PREPARED.mkdir(parents=True)
    for split, (count, seed) in {"train": (90, 1), "val": (15, 2), "test": (15, 3)}.items():
        images, labels = coloured_images(count, seed)
        save_array(paths.PREPARED / f"{split}_images.npy", scale_images(images)[..., 0])
        save_array(paths.PREPARED / f"{split}_labels.npy", labels)
    (paths.PREPARED / SOURCE_RECORD).write_text(json.dumps({"dataset": "folder"}))
    write_info(paths.PREPARED, DatasetInfo(CLASS_NAMES, IMAGE_SHAPE))
    # The data report's figures, as preprocess writes them for a folder.
    paths.METRICS.mkdir()
    summary = {"images": 120, "classes": 3, "skipped": 0, "duplicates": 2}
    (paths.METRICS / "data_report.json").write_text(json.dumps({"summary": summary}))
    return root


def test_an_rgb_model_of_three_classes_is_trained_evaluated_exported_and_predicted(
    own_images_project, tmp_path, capsys
):
    for stage in ("train", "evaluate", "export"):
        run_stage_main(stage)

    per_class = json.loads(paths.CLASS_METRICS.read_text())["per_class"]
    assert sorted(per_class) == sorted(CLASS_NAMES)
    exported = json.loads(paths.EXPORTED_CLASSES.read_text())
    assert exported == {
        "dataset": "folder",
        "class_names": list(CLASS_NAMES),
        "image_shape": list(IMAGE_SHAPE),
        "invert_dark_on_light": False,
    }
    assert json.loads(paths.EXPORT_METRICS.read_text())["argmax_disagreements"] == 0
    for figure in (paths.CONFUSION_MATRIX_IMAGE, paths.MISCLASSIFIED_IMAGE):
        assert figure.read_bytes().startswith(b"\x89PNG")

    # The signature: raw uint8 (N, 20, 24, 3) in, three probabilities out.
    signature = tf.saved_model.load(str(paths.EXPORTED_SAVED_MODEL)).signatures["serving_default"]
    spec = signature.structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, *IMAGE_SHAPE]
    test_images = np.round(np.load(paths.PREPARED / "test_images.npy") * 255).astype(np.uint8)
    serve = load_serving_function(paths.EXPORTED_SAVED_MODEL)
    served = serve(test_images[:4])
    assert served.shape == (4, 3)

    # TensorFlow Lite converts the export and gives the same probabilities.
    converter = tf.lite.TFLiteConverter.from_saved_model(str(paths.EXPORTED_SAVED_MODEL))
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    (input_detail,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(input_detail["index"], [4, *IMAGE_SHAPE])
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_detail["index"], test_images[:4])
    interpreter.invoke()
    lite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(lite, served, atol=1e-5)

    card = paths.MODEL_CARD.read_text()
    assert "`images`, uint8 of shape (N, 20, 24, 3), raw RGB pixels" in card
    assert "0 red square, 1 green bar, 2 blue dot." in card
    assert "20x24 RGB" in card and "Fashion" not in card
    assert "The data report of preprocess (its summary;" in card
    assert "| duplicates | 2 |" in card
    assert "Every input gets one of the three classes" in card

    # predict: a larger photo of a green bar on a white ground, fitted by load_picture
    # as preprocess fits a folder's images (never inverted), gives the export's answer.
    photo = np.full((60, 96, 3), 255, dtype=np.uint8)
    photo[15:45, 24:72] = (20, 230, 20)
    path = tmp_path / "green bar.png"
    path.write_bytes(tf.io.encode_png(photo).numpy())
    capsys.readouterr()
    assert main(["--json", str(path)]) == 0
    (prediction,) = json.loads(capsys.readouterr().out)["predictions"]
    expected = serve(pictures.load_picture(path.read_bytes(), path, (20, 24), 3)[np.newaxis])[0]
    top = prediction["top"][0]
    assert top["index"] == int(expected.argmax())
    assert top["probability"] == pytest.approx(float(expected.max()), abs=1e-6)
    assert top["class"] == CLASS_NAMES[top["index"]]


def test_a_model_of_one_image_size_refuses_data_of_another_in_one_line(own_images_project):
    run_stage_main("train")
    write_info(paths.PREPARED, DatasetInfo(CLASS_NAMES, (20, 24, 1)))
    images = np.zeros((15, 20, 24, 1), dtype=np.float32)
    save_array(paths.PREPARED / "test_images.npy", images)
    from mnistpipe.errors import PipelineError

    with pytest.raises(PipelineError, match=r"model.keras takes inputs of shape \(20, 24, 3\)"):
        run_stage_main("evaluate")


def test_the_figures_stay_readable_with_a_thousand_classes_and_show_rgb_images():
    rng = np.random.default_rng(0)
    names = tuple(f"class number {index} with a long name" for index in range(1000))
    labels = rng.integers(0, 1000, size=3000)
    predicted = np.where(rng.random(3000) < 0.7, labels, rng.integers(0, 1000, size=3000))
    figure = confusion_matrix_figure(labels, predicted, names)
    axes = figure.axes[0]
    # No count in the cells and no name on the axes: a million labels would be a black square.
    assert len(axes.texts) == 0
    assert all(label.get_text() != names[0] for label in axes.get_xticklabels())
    assert "1000 classes" in axes.get_title()
    few = confusion_matrix_figure(labels % 3, predicted % 3, CLASS_NAMES).axes[0]
    assert [label.get_text() for label in few.get_xticklabels()] == list(CLASS_NAMES)
    assert len(few.texts) == 9

    images, image_labels = coloured_images(6, seed=4)
    probabilities = np.full((6, 3), 0.1)
    probabilities[np.arange(6), (image_labels + 1) % 3] = 0.8
    grid = misclassified_figure(
        scale_images(images)[..., 0], image_labels, probabilities, CLASS_NAMES
    )
    shown = [axes.images[0].get_array() for axes in grid.axes if axes.images]
    assert len(shown) == 6 and shown[0].shape == IMAGE_SHAPE
