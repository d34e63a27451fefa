"""Each stage's main() in turn, in a temporary project, on a small synthetic dataset."""

import json
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from mnistpipe import paths
from mnistpipe.datasets import DATASETS, FILE_NAMES
from mnistpipe.errors import PipelineError
from mnistpipe.files import sha256_of_file
from mnistpipe.serving import load_serving_function
from tests.conftest import REPOSITORY, run_stage_main, set_params


def test_the_five_stages_run_in_turn_and_write_their_outputs(project, synthetic_files):
    shutil.copy(REPOSITORY / "uv.lock", project / "uv.lock")
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
    assert set(train_metrics) == {"best_val_accuracy", "epochs", "parameters"}
    # Hashes and versions would flood `dvc metrics show`: they have a file of their own.
    assert "lineage" not in train_metrics
    lineage = json.loads(paths.LINEAGE.read_text())
    assert lineage["environment_lock_sha256"] == sha256_of_file(REPOSITORY / "uv.lock")
    assert lineage["onednn_kernels"] is True  # mnistpipe turns them on (test_startup.py)
    # dvclive's log: the last epoch's figures, and a row an epoch for each curve.
    live_metrics = json.loads(paths.LIVE_METRICS.read_text())
    assert set(live_metrics) == {"train", "eval", "step"} and live_metrics["step"] == 1
    assert set(live_metrics["eval"]) == {"loss", "accuracy"}
    for split in ("train", "eval"):
        for figure in ("loss", "accuracy"):
            rows = (paths.LIVE / "plots/metrics" / split / f"{figure}.tsv").read_text()
            assert rows.splitlines()[0] == f"step\t{figure}"
            assert [row.split("\t")[0] for row in rows.splitlines()[1:]] == ["0", "1"]
    assert not (paths.LIVE / "dvc.yaml").exists() and not (paths.LIVE / "report.md").exists()
    assert paths.MODEL.is_file()
    # The resume point goes once the outputs are written: a forced rerun starts over.
    assert not paths.CHECKPOINT.exists()

    run_stage_main("evaluate")
    report = json.loads(paths.EVALUATE_METRICS.read_text())
    assert report["accuracy"] >= 0.8
    assert report["min_accuracy"] == 0.8 and report["meets_min_accuracy"] is True
    # The table a person reads: the figures that decide, not forty per-class ones.
    assert set(report) == {
        "loss", "accuracy", "macro_avg", "examples", "min_accuracy", "meets_min_accuracy"
    }  # fmt: skip
    per_class = json.loads(paths.CLASS_METRICS.read_text())["per_class"]
    assert list(per_class) == sorted(DATASETS["fashion_mnist"].class_names)
    assert per_class["Ankle boot"]["support"] == 10
    assert {"precision", "recall", "f1"} == set(report["macro_avg"])
    assert paths.PREDICTIONS_PLOT.read_text().splitlines()[0] == "actual,predicted"
    for picture in (paths.CONFUSION_MATRIX_IMAGE, paths.MISCLASSIFIED_IMAGE):
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    run_stage_main("export")
    export_metrics = json.loads(paths.EXPORT_METRICS.read_text())
    assert export_metrics["argmax_disagreements"] == 0
    assert export_metrics["max_probability_difference_ppm"] <= 10
    assert export_metrics["exported_accuracy"] == report["accuracy"]
    assert paths.EXPORTED_KERAS.read_bytes() == paths.MODEL.read_bytes()
    assert json.loads(paths.EXPORTED_CLASSES.read_text())["class_names"][9] == "Ankle boot"
    card = paths.MODEL_CARD.read_text()
    for heading in ("Model", "Data", "Training params", "Metrics", "Export parity", "Lineage"):
        assert f"\n## {heading}\n" in card
    assert "## Intended use" in card and "## Limits" in card
    assert " ppm (parts per million; tolerance 10 ppm);" in card
    assert DATASETS["fashion_mnist"].sha256["test_images"] in card
    assert f"accuracy **{report['accuracy']:.4f}**" in card
    assert lineage["weights_sha256"] in card
    assert f"Environment lock (`uv.lock`) SHA-256: `{lineage['environment_lock_sha256']}`" in card
    assert "- TensorFlow's kernels: oneDNN, instruction set at most AVX2, 2 threads" in card
    assert f"Quality bar: met. The test accuracy {report['accuracy']:.4f} meets" in card
    assert "| 9 | Ankle boot |" in card

    # A client sends raw uint8 pixels and gets probabilities back.
    serve = load_serving_function(paths.EXPORTED_SAVED_MODEL)
    raw = np.frombuffer(synthetic_files[FILE_NAMES["test_images"]], np.uint8, offset=16)
    probabilities = serve(raw.reshape(-1, 28, 28)[:5])
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    signature = tf.saved_model.load(str(paths.EXPORTED_SAVED_MODEL)).signatures["serving_default"]
    assert signature.structured_input_signature[1]["images"].dtype == tf.uint8
    assert list(signature.structured_outputs) == ["probabilities"]


def test_below_the_bar_evaluate_and_export_complete_and_say_so_with_both_numbers(project):
    # A learning rate this small leaves the model near chance (about 10%).
    set_params(project, "train", epochs=1, learning_rate=1e-7)
    for stage in ("download", "preprocess", "train"):
        run_stage_main(stage)
    summary = run_stage_main("evaluate")
    assert re.search(r"test accuracy 0\.\d{4} is below evaluate.min_accuracy 0\.8000", summary)
    report = json.loads(paths.EVALUATE_METRICS.read_text())
    assert report["accuracy"] < 0.8 and report["meets_min_accuracy"] is False
    run_stage_main("export")
    card = paths.MODEL_CARD.read_text()
    assert (
        f"Quality bar: **not met**. The test accuracy {report['accuracy']:.4f} is below "
        "evaluate.min_accuracy 0.8000" in card
    )


def test_export_refuses_a_model_that_disagrees_with_its_export(project, monkeypatch):
    for stage in ("download", "preprocess", "train", "evaluate"):
        run_stage_main(stage)
    import mnistpipe.serving as serving

    def skewed(model, directory, **shape):
        original_export(model, directory, **shape)
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
                paths.LIVE_METRICS.read_bytes(),
                paths.LINEAGE.read_bytes(),
                paths.CLASS_METRICS.read_bytes(),
                *(path.read_bytes() for path in sorted(paths.LIVE.rglob("*.tsv"))),
            )
        )
    assert runs[0] == runs[1]
    lineage = json.loads(runs[0][3])
    assert len(lineage["weights_sha256"]) == 64 and len(lineage["data_sha256"]) == 64
    assert set(lineage["versions"]) == {"tensorflow", "keras", "dvc"}
    # This project has no uv.lock: the lineage says so rather than hash another one.
    assert lineage["environment_lock_sha256"] is None


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
