"""python -m mnistpipe.predict on PNG, JPEG and IDX files, with the synthetic dataset's export."""

import csv
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mnistpipe import paths, pictures
from mnistpipe.datasets import FILE_NAMES
from mnistpipe.errors import PipelineError
from mnistpipe.idx import encode_idx, read_images
from mnistpipe.predict import ExportedClasses, light_on_dark_picture, main, read_inputs
from tests.conftest import run_stage_main


@pytest.fixture
def exported(project):
    for stage in ("download", "preprocess", "train", "evaluate", "export"):
        run_stage_main(stage)
    with open(paths.PREDICTIONS_PLOT, newline="") as stream:
        evaluated = [row["predicted"] for row in csv.DictReader(stream)]
    return project, read_images(paths.RAW / FILE_NAMES["test_images"]), evaluated


def write_png(path, image):
    path.write_bytes(tf.io.encode_png(image[..., np.newaxis]).numpy())
    return path


def as_photo(image):
    """A 28x28 light-on-dark image as a shop photo: 3x larger, RGB, dark on white, JPEG."""
    large = np.kron(255 - image, np.ones((3, 3), dtype=np.uint8))
    return tf.io.encode_jpeg(np.repeat(large[..., np.newaxis], 3, axis=2), quality=95).numpy()


def test_each_good_file_is_predicted_and_each_bad_one_named(exported, tmp_path, capsys):
    _, test_images, evaluated = exported
    png = write_png(tmp_path / "first.png", test_images[0])
    photo = tmp_path / "second.jpg"
    photo.write_bytes(as_photo(test_images[1]))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")

    status = main([str(png), str(tmp_path / "missing.png"), str(photo), str(empty), str(text)])

    out, err = capsys.readouterr()
    assert status == 1
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(png), str(photo)]
    # The top class is the one the evaluate stage found; three classes a line.
    assert lines[0].split(": ")[1].startswith(evaluated[0] + " ")
    assert lines[1].split(": ")[1].startswith(evaluated[1] + " ")
    assert all(line.count(", ") == 2 for line in lines)
    assert f"error: cannot read {tmp_path / 'missing.png'}" in err
    assert (
        f"error: {empty} is empty; expected a PNG, JPEG, BMP, GIF, WebP or IDX image file" in err
    )
    assert f"error: {text} is not an image (it starts with b'not an i')" in err
    assert "Op:" not in err
    assert "Traceback" not in err


def test_json_output_ranks_three_classes_for_every_image_of_an_idx_file(exported, capsys):
    _, test_images, evaluated = exported
    idx_file = paths.RAW / FILE_NAMES["test_images"]

    assert main(["--json", str(idx_file)]) == 0

    document = json.loads(capsys.readouterr().out)
    predictions = document["predictions"]
    assert document["errors"] == []
    assert len(predictions) == len(test_images)
    assert predictions[5]["file"] == f"{idx_file}[5]"
    assert [prediction["top"][0]["class"] for prediction in predictions] == evaluated
    for prediction in predictions:
        probabilities = [entry["probability"] for entry in prediction["top"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)


def as_png(image):
    """A (H, W) or (H, W, 3) uint8 image as PNG bytes."""
    return tf.io.encode_png(image if image.ndim == 3 else image[..., np.newaxis]).numpy()


def test_dark_on_light_pictures_are_inverted_for_a_built_in_export_unless_told_not_to():
    image = np.zeros((28, 28), dtype=np.uint8)
    image[8:20, 10:18] = 240
    fitted = light_on_dark_picture(as_png(255 - image), Path("photo.png"), (28, 28, 1))
    np.testing.assert_array_equal(fitted[..., 0], image)
    built_in = ExportedClasses([str(n) for n in range(10)], (28, 28, 1), True)
    path = Path(tempfile.mkdtemp()) / "photo.png"
    path.write_bytes(as_png(255 - image))
    np.testing.assert_array_equal(read_inputs(path, built_in)[0][1][..., 0], image)
    np.testing.assert_array_equal(
        read_inputs(path, built_in, invert=False)[0][1][..., 0], 255 - image
    )
    # A light-on-dark picture, as in the dataset, is left as it is.
    np.testing.assert_array_equal(
        light_on_dark_picture(as_png(image), Path("p.png"), (28, 28, 1))[..., 0], image
    )


def test_a_model_of_ones_own_images_gets_pictures_exactly_as_preprocess_made_them(tmp_path):
    # A dark-on-light picture is not inverted: a folder's images are taken as they are,
    # through the very function preprocess used.
    picture = np.full((30, 50, 3), 250, dtype=np.uint8)
    picture[10:20, 5:30] = (200, 10, 10)
    path = tmp_path / "photo.png"
    path.write_bytes(as_png(picture))
    folder = ExportedClasses(["a", "b", "c"], (16, 24, 3), False)
    ((name, image),) = read_inputs(path, folder)
    assert name == str(path)
    np.testing.assert_array_equal(
        image, pictures.load_picture(path.read_bytes(), path, (16, 24), 3)
    )
    assert image.shape == (16, 24, 3) and image[8, 12].tolist() != [5, 245, 245]


def test_any_size_is_fitted_keeping_its_proportions_with_black_padding():
    wide = np.zeros((60, 120), dtype=np.uint8)
    wide[20:40, :] = 255
    fitted = light_on_dark_picture(as_png(wide), Path("wide.png"), (28, 28, 1))[..., 0]
    assert fitted.shape == (28, 28) and fitted.dtype == np.uint8
    # 120x60 becomes 28x14, centred: black bands above and below.
    assert fitted[:7].max() == 0 and fitted[-7:].max() == 0
    assert fitted[14, :].min() > 200


def test_an_idx_file_for_a_model_of_another_image_shape_is_one_line(tmp_path):
    idx_file = tmp_path / "images-idx3-ubyte"
    idx_file.write_bytes(encode_idx(np.zeros((2, 28, 28), dtype=np.uint8)))
    with pytest.raises(PipelineError) as caught:
        read_inputs(idx_file, ExportedClasses(["a", "b"], (32, 32, 3), False))
    assert str(caught.value) == (
        f"{idx_file} is an IDX file of 28x28 grayscale images, but the model takes 32x32 "
        "images of 3 channels; expected a picture file (PNG, JPEG, BMP, GIF or WebP)"
    )


def test_a_missing_export_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["any.png"]) == 1
    assert "error: cannot read the class names from models/export/classes.json" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "content",
    ['{"class_names": "TShirt"}', '{"class_names": 7}', '{"class_names": [1, 2]}', "[" * 100_000],
    ids=["a-string", "a-number", "numbers", "nested"],
)
def test_class_names_that_are_not_a_list_of_names_are_a_clear_error(
    tmp_path, capsys, monkeypatch, content
):
    # A string was split into letters (a class called "T"), 7 a TypeError traceback
    # after the check, and JSON nested thousands deep a RecursionError traceback.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "export").mkdir(parents=True)
    (tmp_path / "models" / "export" / "classes.json").write_text(content)
    assert main(["any.png"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: cannot read the class names from models/export/classes.json")
    assert error.count("\n") == 1, error


@pytest.mark.parametrize(
    "content",
    [
        '{"class_names": ["a", "b"], "image_shape": [28, 28]}',
        '{"class_names": ["a", "b"], "image_shape": [28, 28, 4]}',
        '{"class_names": ["a", "b"], "image_shape": [28, 28, 1], "invert_dark_on_light": 1}',
    ],
    ids=["two-sides", "four-channels", "invert-not-a-boolean"],
)
def test_an_image_shape_that_is_not_height_width_channels_is_a_clear_error(
    tmp_path, capsys, monkeypatch, content
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "export").mkdir(parents=True)
    (tmp_path / "models" / "export" / "classes.json").write_text(content)
    assert main(["any.png"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: cannot read the class names from models/export/classes.json")
    assert error.count("\n") == 1, error
