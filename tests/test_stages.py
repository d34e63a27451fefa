"""Each stage's main() in turn, in a temporary project, on a small synthetic dataset."""

import json
import runpy

import numpy as np
import pytest
import tensorflow as tf
import yaml

from mnistpipe import paths
from mnistpipe.datasets import DATASETS, FILE_NAMES
from mnistpipe.errors import PipelineError
from mnistpipe.serving import load_serving_function
from tests.conftest import REPOSITORY, set_params, write_mirror


def run_stage_main(name):
    return runpy.run_path(str(REPOSITORY / "stages" / f"{name}.py"), run_name="test")["main"]()


@pytest.fixture
def project(tmp_path, monkeypatch, synthetic_dataset, synthetic_files):
    """A project directory with params for a quick run and a local mirror of the synthetic data."""
    mirror = write_mirror(tmp_path / "mirror", synthetic_files)
    params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    params["download"]["mirrors"] = [str(mirror)]
    params["preprocess"]["val_split"] = 0.2
    params["train"].update(model="quickstart_cnn", epochs=2, batch_size=32, learning_rate=0.003)
    params["evaluate"]["min_accuracy"] = 0.8
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(root)
    return root


def test_the_five_stages_run_in_turn_and_write_their_outputs(project, synthetic_files):
    assert "4 verified files" in run_stage_main("download")
    assert sorted(path.name for path in paths.RAW.iterdir()) == sorted(synthetic_files)

    run_stage_main("preprocess")
    images = np.load(paths.PREPARED / "train_images.npy", allow_pickle=False)
    val_labels = np.load(paths.PREPARED / "val_labels.npy", allow_pickle=False)
    assert images.shape == (480, 28, 28, 1) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() == 1.0
    assert len(val_labels) == 120

    run_stage_main("train")
    train_metrics = json.loads(paths.TRAIN_METRICS.read_text())
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "epochs", "lineage"} <= set(
        train_metrics
    )
    assert (
        paths.HISTORY_PLOT.read_text().splitlines()[0]
        == "epoch,loss,accuracy,val_loss,val_accuracy"
    )
    assert len(paths.HISTORY_PLOT.read_text().splitlines()) == 3
    assert paths.MODEL.is_file()
    # The resume point goes once the outputs are written: a forced rerun starts over.
    assert not paths.CHECKPOINT.exists()

    run_stage_main("evaluate")
    report = json.loads(paths.EVALUATE_METRICS.read_text())
    assert report["accuracy"] >= 0.8
    assert list(report["per_class"]) == sorted(DATASETS["fashion_mnist"].class_names)
    assert report["per_class"]["Ankle boot"]["support"] == 10
    assert {"precision", "recall", "f1"} == set(report["macro_avg"])
    assert paths.PREDICTIONS_PLOT.read_text().splitlines()[0] == "actual,predicted"

    run_stage_main("export")
    export_metrics = json.loads(paths.EXPORT_METRICS.read_text())
    assert export_metrics["argmax_disagreements"] == 0
    assert export_metrics["max_probability_difference"] <= 1e-5
    assert export_metrics["exported_accuracy"] == report["accuracy"]
    assert paths.EXPORTED_KERAS.read_bytes() == paths.MODEL.read_bytes()

    # A client sends raw uint8 pixels and gets probabilities back.
    serve = load_serving_function(paths.EXPORTED_SAVED_MODEL)
    raw = np.frombuffer(synthetic_files[FILE_NAMES["test_images"]], np.uint8, offset=16)
    probabilities = serve(raw.reshape(-1, 28, 28)[:5])
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    signature = tf.saved_model.load(str(paths.EXPORTED_SAVED_MODEL)).signatures["serving_default"]
    assert signature.structured_input_signature[1]["images"].dtype == tf.uint8


def test_evaluate_fails_below_the_gate_with_both_numbers(project):
    # A learning rate this small leaves the model near chance (about 10%).
    set_params(project, "train", epochs=1, learning_rate=1e-7)
    for stage in ("download", "preprocess", "train"):
        run_stage_main(stage)
    with pytest.raises(
        PipelineError, match=r"test accuracy 0\.\d{4} is below evaluate.min_accuracy 0\.8000"
    ):
        run_stage_main("evaluate")


def test_export_refuses_a_model_that_disagrees_with_its_export(project, monkeypatch):
    for stage in ("download", "preprocess", "train", "evaluate"):
        run_stage_main(stage)
    import mnistpipe.serving as serving

    def skewed(model, directory):
        original_export(model, directory)
        # Perturb the trained model after export so the two no longer agree.
        for weight in model.weights:
            weight.assign(weight + 0.5)

    original_export = serving.export_saved_model
    monkeypatch.setattr(serving, "export_saved_model", skewed)
    with pytest.raises(PipelineError, match="disagrees with the trained model"):
        run_stage_main("export")
    # The failed export left nothing at the output path.
    assert not paths.EXPORT.exists()


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_training_twice_gives_byte_identical_metrics_and_weights(project, loop):
    set_params(project, "train", loop=loop)
    run_stage_main("download")
    run_stage_main("preprocess")
    runs = []
    for _ in range(2):
        run_stage_main("train")
        run_stage_main("evaluate")
        runs.append(
            (
                paths.TRAIN_METRICS.read_bytes(),
                paths.EVALUATE_METRICS.read_bytes(),
                paths.HISTORY_PLOT.read_bytes(),
            )
        )
    assert runs[0] == runs[1]
    lineage = json.loads(runs[0][0])["lineage"]
    assert len(lineage["weights_sha256"]) == 64 and len(lineage["data_sha256"]) == 64
    assert set(lineage["versions"]) == {"tensorflow", "keras", "dvc"}


def test_the_stages_run_on_tfrecord_shards_as_on_npy(project):
    set_params(project, "preprocess", format="tfrecord", shard_size=100)
    run_stage_main("download")
    assert run_stage_main("preprocess").endswith("as tfrecord")
    assert sorted(path.name for path in paths.PREPARED.glob("train-*")) == [
        f"train-{index:05d}-of-00005.tfrecord.gz" for index in range(5)
    ]
    run_stage_main("train")
    run_stage_main("evaluate")
    assert json.loads(paths.EVALUATE_METRICS.read_text())["accuracy"] >= 0.8
    run_stage_main("export")
    assert json.loads(paths.EXPORT_METRICS.read_text())["argmax_disagreements"] == 0
