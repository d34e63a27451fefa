"""python -m mnistpipe.predict on PNG, JPEG and IDX files, with the synthetic dataset's export."""

import contextlib
import csv
import errno
import io
import json
import os
import signal
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mnistpipe import interrupts, paths, predict
from mnistpipe.datasets import FILE_NAMES
from mnistpipe.errors import PipelineError
from mnistpipe.idx import read_images
from mnistpipe.predict import decode_picture, jpeg_components, main, to_dataset_image
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
    assert f"error: {empty} is empty; expected a PNG, JPEG or IDX image file" in err
    assert f"error: {text} is not a PNG, JPEG or IDX image file" in err
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


def test_dark_on_light_pictures_are_inverted_unless_told_not_to():
    image = np.zeros((28, 28), dtype=np.uint8)
    image[8:20, 10:18] = 240
    np.testing.assert_array_equal(to_dataset_image(255 - image), image)
    np.testing.assert_array_equal(to_dataset_image(255 - image, invert=False), 255 - image)
    # A light-on-dark picture, as in the dataset, is left as it is.
    np.testing.assert_array_equal(to_dataset_image(image), image)


def test_any_size_is_fitted_into_28_by_28_keeping_its_proportions():
    wide = np.zeros((60, 120), dtype=np.uint8)
    wide[20:40, :] = 255
    fitted = to_dataset_image(wide)
    assert fitted.shape == (28, 28) and fitted.dtype == np.uint8
    # 120x60 becomes 28x14, centred: black bands above and below.
    assert fitted[:7].max() == 0 and fitted[-7:].max() == 0
    assert fitted[14, :].min() > 200


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


@pytest.mark.parametrize("shape", [(1, 5000), (5000, 1), (2, 57), (1, 1)])
def test_a_picture_far_longer_than_wide_still_gives_28_by_28(shape):
    # Scaled to fit, a 1x5000 strip had no rows left, and TensorFlow's resize
    # raised "output dimensions must be positive": a traceback, not a prediction.
    fitted = to_dataset_image(np.full(shape, 200, dtype=np.uint8), invert=False)
    assert fitted.shape == (28, 28) and fitted.dtype == np.uint8
    assert fitted.max() > 0


def test_a_cmyk_jpeg_is_read_as_the_same_gray_picture(capfd):
    # libjpeg converts CMYK to RGB, not to gray: it was refused as "a damaged JPEG file"
    # with TensorFlow's {{function_node ...}} in the message and libjpeg's line beside it.
    image = pytest.importorskip("PIL.Image")
    gray = np.full((56, 56), 230, dtype=np.uint8)
    gray[10:46, 18:38] = 20
    stream = io.BytesIO()
    image.fromarray(gray).convert("CMYK").save(stream, "JPEG", quality=95)
    content = stream.getvalue()
    assert jpeg_components(content) == 4

    decoded = decode_picture(Path("print.jpg"), content)

    assert decoded.shape == gray.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - gray).mean() < 2
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda good: good[:200] + b"\xff\xd9" + good[202:], "Bogus Huffman table definition"),
        (lambda good: good[:180] + bytes(range(256)) * 2, "Bogus marker length"),
    ],
    ids=["huffman-table", "marker"],
)
def test_a_damaged_jpeg_is_one_line_with_libjpegs_reason(tmp_path, capfd, damage, reason):
    picture = tf.io.encode_jpeg(np.full((40, 40, 3), 200, dtype=np.uint8)).numpy()
    path = tmp_path / "damaged.jpg"
    path.write_bytes(damage(picture))

    with pytest.raises(PipelineError) as raised:
        decode_picture(path, path.read_bytes())

    message = str(raised.value)
    assert message.startswith(f"{path} is a damaged JPEG file ({reason}; "), message
    assert "{{" not in message and "Op:" not in message and "\n" not in message
    assert capfd.readouterr().err == ""


def _standard_error_identity():
    status = os.fstat(2)
    return status.st_dev, status.st_ino


def _current_signal_mask():
    return signal.pthread_sigmask(signal.SIG_BLOCK, [])


@pytest.mark.parametrize("good", [True, False], ids=["decoded", "damaged"])
def test_a_decode_leaves_standard_error_the_signal_mask_and_descriptors_as_they_were(
    tmp_path, good
):
    picture = tf.io.encode_jpeg(np.full((40, 40, 3), 200, dtype=np.uint8)).numpy()
    content = picture if good else picture[:200] + b"\xff\xd9" + picture[202:]
    decode_picture(Path("warm-up.jpg"), picture)
    identity, mask = _standard_error_identity(), _current_signal_mask()
    descriptors = len(os.listdir("/proc/self/fd"))

    for _ in range(5):
        with contextlib.suppress(PipelineError):
            decode_picture(tmp_path / "picture.jpg", content)

    assert _standard_error_identity() == identity
    assert _current_signal_mask() == mask
    assert len(os.listdir("/proc/self/fd")) == descriptors


def test_the_capture_file_is_closed_when_standard_error_cannot_be_duplicated(monkeypatch):
    # Out of descriptors, os.dup(2) fails after the capture file was opened: it was left open.
    opened = []
    real_temporary_file = tempfile.TemporaryFile

    def temporary_file(*arguments, **keywords):
        opened.append(real_temporary_file(*arguments, **keywords))
        return opened[-1]

    def no_descriptor_left(descriptor):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(predict.tempfile, "TemporaryFile", temporary_file)
    monkeypatch.setattr(predict.os, "dup", no_descriptor_left)
    picture = tf.io.encode_jpeg(np.full((40, 40, 3), 200, dtype=np.uint8)).numpy()

    decode_picture(Path("picture.jpg"), picture)

    assert len(opened) == 1 and opened[0].closed


@pytest.mark.parametrize("swap", ["in", "back"])
def test_a_signal_during_the_stderr_swap_is_raised_with_stderr_restored(monkeypatch, swap):
    # A SIGTERM between the dup2 swaps raised Interrupted where nothing swapped
    # stderr back: the interruption's line went into the capture file.
    identity, mask = _standard_error_identity(), _current_signal_mask()
    # Kept to put stderr back should the code under test not: the tests run after
    # this one in the same worker would lose theirs.
    standard_error_before = os.dup(2)
    seen_by_handler = []

    def handler(signal_number, frame):
        seen_by_handler.append(_standard_error_identity())
        raise interrupts.Interrupted(signal_number)

    real_dup2 = os.dup2
    swaps = []

    def dup2_then_signalled(source, target):
        swaps.append(target)
        if target == 2 and swap == "back" and len(swaps) == 2:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
        real_dup2(source, target)
        if target == 2 and swap == "in" and len(swaps) == 1:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)

    picture = tf.io.encode_jpeg(np.full((40, 40, 3), 200, dtype=np.uint8)).numpy()
    handler_before = signal.signal(signal.SIGTERM, handler)
    try:
        monkeypatch.setattr(predict.os, "dup2", dup2_then_signalled)
        with pytest.raises(interrupts.Interrupted):
            decode_picture(Path("picture.jpg"), picture)
    finally:
        monkeypatch.undo()
        restored = _standard_error_identity()
        signal.signal(signal.SIGTERM, handler_before)
        os.dup2(standard_error_before, 2)
        os.close(standard_error_before)

    assert restored == identity
    assert _current_signal_mask() == mask
    if swap == "back":
        assert seen_by_handler == [identity]
