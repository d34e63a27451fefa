"""An export folder is checked whole before predict, release or the bench use it."""

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from mnistpipe import predict
from mnistpipe.errors import PipelineError
from mnistpipe.export_check import load_export
from mnistpipe.idx import encode_idx
from mnistpipe.serving import export_saved_model
from tests.conftest import synthetic_split

CLASS_NAMES = [f"class {index}" for index in range(10)]
# The line the export stage's model card lists its files on (model_card.py).
CARD = (
    "# Model card\n\n## Model\n\n- Files: `saved_model/` (TensorFlow SavedModel, signature "
    "`serving_default`: `images`, uint8 of shape (N, 28, 28)), `model.keras` (the trained "
    "Keras model; load with `safe_mode=True`), `classes.json` (class names by index).\n"
)


@pytest.fixture(scope="module")
def made_export(tmp_path_factory):
    """An export folder as the export stage writes it, of a model of one layer."""
    directory = tmp_path_factory.mktemp("export") / "export"
    directory.mkdir()
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    export_saved_model(model, directory / "saved_model")
    model.save(directory / "model.keras")
    (directory / "classes.json").write_text(json.dumps({"class_names": CLASS_NAMES}))
    (directory / "MODEL_CARD.md").write_text(CARD)
    return directory


@pytest.fixture
def export(made_export, tmp_path):
    """A copy of the export, for a test to break."""
    return shutil.copytree(made_export, tmp_path / "export")


def error_lines(directory, **options) -> list[str]:
    with pytest.raises(PipelineError) as raised:
        load_export(directory, **options)
    return f"error: {raised.value}".splitlines()


def test_a_whole_export_gives_its_classes_shape_and_serving_function(export):
    checked = load_export(export, image_shape=(28, 28))
    assert checked.class_names == CLASS_NAMES
    assert checked.image_shape == (28, 28)
    images, _ = synthetic_split(3, seed=5)
    assert checked.serve(images).shape == (3, 10)


def test_predict_with_fewer_class_names_than_outputs_is_one_line(export, tmp_path, capsys):
    # Two names for ten outputs: top_classes indexed past the list, an IndexError
    # traceback after the model had run.
    (export / "classes.json").write_text(json.dumps({"class_names": ["a", "b"]}))
    images, _ = synthetic_split(4, seed=6)
    idx = tmp_path / "images-idx3-ubyte"
    idx.write_bytes(encode_idx(images))

    status = predict.main(["--model", str(export), str(idx)])

    out, err = capsys.readouterr()
    assert status == 1 and out == ""
    assert err == (
        f"error: {export / 'classes.json'}: names 2 classes; expected 10, one per output of "
        f"{export / 'saved_model'}; run `dvc repro export` (or `make pull`) to make the "
        "export again\n"
    )


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda e: (e / "model.keras").unlink(), "model.keras: missing; expected it, as "),
        (
            lambda e: shutil.rmtree(e / "saved_model"),
            "saved_model: missing; expected it, as ",
        ),
        (
            lambda e: (e / "saved_model" / "variables" / "variables.index").unlink(),
            "variables.index: missing; expected the SavedModel's variables/variables.index",
        ),
        (
            lambda e: (e / "saved_model" / "saved_model.pb").write_bytes(b"\x08cut short"),
            "saved_model: cannot load the SavedModel",
        ),
        (
            lambda e: (e / "classes.json").write_text(
                json.dumps({"class_names": [*CLASS_NAMES, "one too many"]})
            ),
            "classes.json: names 11 classes; expected 10, one per output of ",
        ),
        (
            lambda e: (e / "classes.json").write_text(json.dumps({"class_names": ["a"] * 10})),
            "classes.json: class_names is ",
        ),
        (lambda e: (e / "MODEL_CARD.md").unlink(), "MODEL_CARD.md: cannot read it"),
        (
            lambda e: (e / "MODEL_CARD.md").write_text("# A card of no files\n"),
            "MODEL_CARD.md: no 'Files:' line",
        ),
    ],
    ids=[
        "no-keras-model",
        "no-saved-model",
        "no-variables",
        "saved-model-cut-short",
        "more-class-names",
        "repeated-class-names",
        "no-card",
        "card-without-files",
    ],
)
def test_each_mismatch_is_one_line_naming_the_file(export, damage, expected):
    damage(export)
    lines = error_lines(export)
    assert len(lines) == 1, lines
    assert str(export) in lines[0] and expected in lines[0], lines


def test_images_the_reader_sends_must_fit_the_signature(export):
    lines = error_lines(export, image_shape=(32, 32, 3))
    assert lines == [
        f"error: {export / 'saved_model'}: the signature takes images shaped (28, 28); "
        "expected (32, 32, 3), the images this reader sends; run `dvc repro export` (or "
        "`make pull`) to make the export again"
    ]


def test_a_signature_of_floats_and_too_few_classes_gives_a_line_for_each(export):
    # Another program's SavedModel in the export's place: float32 images in, 3 outputs.
    @tf.function(input_signature=[tf.TensorSpec((None, 28, 28), tf.float32, name="images")])
    def serve(images):
        return {"probabilities": tf.zeros((tf.shape(images)[0], 3))}

    module = tf.Module()
    module.serve = serve
    shutil.rmtree(export / "saved_model")
    tf.saved_model.save(module, str(export / "saved_model"), signatures={"serving_default": serve})

    lines = error_lines(export)

    assert len(lines) == 2, lines
    assert all(line.startswith("error: ") for line in lines)
    assert "'images' are float32; expected uint8" in lines[0]
    assert "classes.json: names 10 classes; expected 3" in lines[1]


def test_a_whole_export_predicts_as_before(export, tmp_path, capsys):
    images, _ = synthetic_split(2, seed=7)
    idx = tmp_path / "images-idx3-ubyte"
    idx.write_bytes(encode_idx(images))
    assert predict.main(["--json", "--model", str(export), str(idx)]) == 0
    document = json.loads(capsys.readouterr().out)
    expected = load_export(export).serve(images).argmax(axis=1)
    assert [row["top"][0]["index"] for row in document["predictions"]] == list(expected)
    assert np.isfinite([row["top"][0]["probability"] for row in document["predictions"]]).all()
