"""Same params and data, same bytes: every output dvc.lock records, on every rerun.

The end-to-end test runs the real `dvc repro` in two fresh clones of a project,
one after the other, and compares their dvc.lock and model files byte for byte.
"""

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from mnistpipe import paths
from mnistpipe.models import build_model, load_model, save_model
from mnistpipe.serving import export_saved_model, load_serving_function
from tests.conftest import BUILT_IN, copy_project, synthetic_idx_files
from tests.test_pipeline import dvc, git_commit


def all_bytes(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_a_saved_model_holds_no_save_time_and_no_memory_address(tmp_path):
    # mlp is Sequential: its layers share one dtype policy, which Keras names by id().
    model = build_model("mlp", dropout_rate=0.2, **BUILT_IN)
    save_model(model, tmp_path / "model.keras")

    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        entries = archive.infolist()
        metadata = json.loads(archive.read("metadata.json"))
        config = archive.read("config.json").decode()
    assert [entry.filename for entry in entries] == sorted(entry.filename for entry in entries)
    assert {entry.date_time for entry in entries} == {(1980, 1, 1, 0, 0, 0)}
    assert "date_saved" not in metadata and metadata["keras_version"]
    assert '"shared_object_id": 0' in config and '"shared_object_id": 1' not in config
    loaded = load_model(tmp_path / "model.keras", **BUILT_IN)
    for saved, original in zip(loaded.get_weights(), model.get_weights(), strict=True):
        assert np.array_equal(saved, original)


def test_two_saves_of_equal_models_give_the_same_bytes_and_leave_no_temporary_file(tmp_path):
    models = []
    for name in ("first", "second"):
        # Equal weights and layer names, new objects at new addresses: as a rerun builds it.
        keras.backend.clear_session()
        keras.utils.set_random_seed(7)
        models.append(build_model("mlp", dropout_rate=0.2, **BUILT_IN))
        save_model(models[-1], tmp_path / f"{name}.keras")

    assert (tmp_path / "first.keras").read_bytes() == (tmp_path / "second.keras").read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first.keras", "second.keras"]


def test_two_exports_of_one_model_hold_the_same_variables_and_fingerprint(tmp_path):
    model = build_model("mlp", dropout_rate=0.2, **BUILT_IN)
    save_model(model, tmp_path / "model.keras")
    # Each load draws a new random seed for Dropout, which serving never uses.
    for name in ("first", "second"):
        export_saved_model(load_model(tmp_path / "model.keras", **BUILT_IN), tmp_path / name)

    first, second = all_bytes(tmp_path / "first"), all_bytes(tmp_path / "second")
    # saved_model.pb names its functions from a per-process counter, so two exports in
    # one process differ there; the end-to-end test below compares whole exports.
    for name in ("variables/variables.data-00000-of-00001", "variables/variables.index"):
        assert first[name] == second[name], name
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    assert load_serving_function(tmp_path / "first")(images).shape == (2, 10)
    # Serving elsewhere: TensorFlow Lite converts the SavedModel as written.
    assert tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "first")).convert()


def synthetic_dvc_project(root: Path) -> Path:
    """A git and DVC project at ``root``: this repository's pipeline on synthetic data.

    The download stage cannot verify synthetic files against Fashion-MNIST's
    checksums, so data/raw is written here and recorded with `dvc commit`, as a
    finished download; `dvc repro` then runs the four other stages.
    """
    copy_project(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["preprocess"]["val_split"] = 0.2
    # mlp: a Sequential model (shared dtype policies) with Dropout (seed state), quick to train.
    params["train"].update(model="mlp", epochs=2, batch_size=32)
    params["evaluate"]["min_accuracy"] = 0.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    raw = root / paths.RAW
    raw.mkdir(parents=True)
    for name, content in synthetic_idx_files(train_count=300, test_count=60).items():
        (raw / name).write_bytes(content)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc(root, "commit", "--force", "download")
    git_commit(root, "a synthetic project")
    return root


@pytest.mark.slow
def test_two_fresh_clones_give_one_dvc_lock_and_the_same_model_bytes(tmp_path):
    first = synthetic_dvc_project(tmp_path / "first")
    # A clone, so that both run the very same commit; git holds neither the data nor
    # DVC's cache, without which DVC would count the download as not done.
    second = tmp_path / "second"
    subprocess.run(["git", "clone", "-q", str(first), str(second)], check=True)
    shutil.copytree(first / paths.RAW, second / paths.RAW)
    dvc(second, "commit", "--force", "download")
    for root in (first, second):
        # The synthetic data stays: the download stage counts as done and does not run.
        assert "Running stage 'download'" not in dvc(root, "repro")

    lock = (first / "dvc.lock").read_text()
    assert lock == (second / "dvc.lock").read_text()
    for stage in ("train", "evaluate", "export"):
        assert stage in yaml.safe_load(lock)["stages"]
    assert "train_timing" not in lock
    assert (first / paths.TRAIN_TIMING).is_file()
    assert (first / paths.MODEL).read_bytes() == (second / paths.MODEL).read_bytes()
    assert all_bytes(first / paths.EXPORT) == all_bytes(second / paths.EXPORT)
