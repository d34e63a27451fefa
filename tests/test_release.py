"""The bar judges, the release step publishes: dvc exp run, the gate, GTO, dvc artifacts get.

One git+DVC repository on the small synthetic dataset: the five stages run here,
in-process (the synthetic checksums are only known to this process), and `dvc commit`
records them; then the real `dvc`, `gto` and `mnistpipe` commands run on it.
"""

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnistpipe import paths
from mnistpipe.datasets import DATASETS, FILE_NAMES
from mnistpipe.idx import read_labels
from tests.conftest import (
    REPOSITORY,
    copy_project,
    run_stage_main,
    synthetic_idx_files,
    write_mirror,
)

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
IDENTITY = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
}


def run(cwd: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        **IDENTITY,
        # Stages run `python` from PATH; outside a repository DVC would ask to send analytics.
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    result = subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def dvc(cwd: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, "-m", "dvc", *arguments, check=check)


def mnistpipe(cwd: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, str(BIN / "mnistpipe"), *arguments, check=check)


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """A committed run of the pipeline (quickstart_cnn, 2 epochs, 600 synthetic images)."""
    root = tmp_path_factory.mktemp("release") / "project"
    copy_project(root)
    params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    files = synthetic_idx_files()
    params["download"]["mirrors"] = [str(write_mirror(root.parent / "mirror", files))]
    params["preprocess"]["val_split"] = 0.2
    params["train"].update(model="quickstart_cnn", epochs=2, batch_size=32, learning_rate=0.003)
    params["evaluate"]["min_accuracy"] = 0.8
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        # As conftest's synthetic_dataset, for the whole module: these checksums, no other source.
        checksums = {
            role: hashlib.sha256(files[name]).hexdigest() for role, name in FILE_NAMES.items()
        }
        spec = dataclasses.replace(
            DATASETS["fashion_mnist"], sha256=checksums, system_directory=None, public_mirrors=()
        )
        patch.setitem(DATASETS, "fashion_mnist", spec)
        for stage in ("download", "preprocess", "train", "evaluate", "export"):
            run_stage_main(stage)
    run(root, "git", "init", "-q")
    dvc(root, "commit", "--force")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "the base run")
    assert dvc(root, "status", "--json").stdout.strip() == "{}"
    return root


def experiments(shown: list) -> list[dict]:
    return [
        experiment["data"]
        for entry in shown
        for experiment_range in entry.get("experiments") or []
        for experiment in experiment_range["revs"]
    ]


def test_an_experiment_below_the_bar_completes_is_saved_and_the_gate_refuses_it(repository):
    # Fifteen SGD steps this small leave the model near chance (about 10%), far below 0.8.
    # (Not 1e-7: DVC writes it to params.yaml as 1e-07, which YAML reads as a string.)
    result = dvc(
        repository, "exp", "run", "--name", "slow",
        "-S", "train.epochs=1", "-S", "train.optimizer=sgd", "-S", "train.learning_rate=0.0001",
    )  # fmt: skip
    assert "Running stage 'export'" in result.stdout
    assert "slow" in dvc(repository, "exp", "list").stdout
    (saved,) = experiments(json.loads(dvc(repository, "exp", "show", "--json").stdout))
    evaluate = saved["metrics"]["metrics/evaluate.json"]["data"]
    assert evaluate["meets_min_accuracy"] is False and evaluate["min_accuracy"] == 0.8
    # The table a person reads: no per-class columns, no lineage hashes.
    assert "per_class" not in evaluate and "metrics/classes.json" not in saved["metrics"]
    assert "metrics/lineage.json" not in saved["metrics"]
    card = (repository / "models/export/MODEL_CARD.md").read_text()
    assert "Quality bar: **not met**" in card

    gate = mnistpipe(repository, "gate", "--against", "HEAD", check=False)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    figure = f"{evaluate['accuracy']:.4f}"
    assert f"gate failed: test accuracy {figure} is below evaluate.min_accuracy 0.8000" in (
        gate.stderr
    )
    # Restoring the committed run, as docs/how-to/resume.md says for a pulled run.
    run(repository, "git", "checkout", "HEAD", "--", ".")
    dvc(repository, "checkout", "--force")
    assert run(repository, "git", "status", "--porcelain").stdout == ""
    assert dvc(repository, "status", "--json").stdout.strip() == "{}"


def test_after_a_failed_experiment_git_checkout_and_dvc_checkout_restore_the_workspace(
    repository,
):
    model = (repository / paths.MODEL).read_bytes()
    failed = dvc(repository, "exp", "run", "-S", "train.epochs=0", check=False)
    assert failed.returncode != 0 and "error: train.epochs is 0" in failed.stdout + failed.stderr
    run(repository, "git", "checkout", "HEAD", "--", ".")
    dvc(repository, "checkout", "--force")
    assert run(repository, "git", "status", "--porcelain").stdout == ""
    assert dvc(repository, "status", "--json").stdout.strip() == "{}"
    assert (repository / paths.MODEL).read_bytes() == model


def test_release_refuses_an_uncommitted_workspace(repository):
    params = repository / "params.yaml"
    committed = params.read_text()
    params.write_text(committed.replace("min_accuracy: 0.8", "min_accuracy: 0.5"))
    try:
        result = mnistpipe(repository, "release", "1.0.0", check=False)
    finally:
        params.write_text(committed)
    assert result.returncode == 1
    assert result.stderr.startswith("error: params.yaml differ from the last commit")
    assert len(result.stderr.splitlines()) == 1
    assert run(repository, "git", "tag").stdout == ""


def test_a_released_version_and_stage_are_fetched_by_dvc_artifacts_get_and_predicted_with(
    repository, tmp_path
):
    result = mnistpipe(repository, "release", "1.0.0", "--stage", "prod")
    assert "release: classifier@v1.0.0, stage prod (test accuracy" in result.stdout
    tags = run(repository, "git", "tag").stdout.split()
    assert "classifier@v1.0.0" in tags and any(tag.startswith("classifier#prod") for tag in tags)

    # A user elsewhere: the version by its tag, and whatever is in prod.
    dvc(tmp_path, "artifacts", "get", str(repository), "classifier", "--rev", "v1.0.0", "-o", "v1")
    dvc(tmp_path, "artifacts", "get", str(repository), "classifier", "--stage", "prod", "-o", "p")
    for fetched in ("v1", "p"):
        assert (tmp_path / fetched / "saved_model" / "saved_model.pb").is_file()
    assert (tmp_path / "v1" / "MODEL_CARD.md").read_text() == (
        repository / paths.MODEL_CARD
    ).read_text()

    test_images = repository / paths.RAW / "t10k-images-idx3-ubyte"
    predicted = mnistpipe(tmp_path, "predict", "--model", "v1", "--json", str(test_images))
    top = [
        prediction["top"][0]["index"] for prediction in json.loads(predicted.stdout)["predictions"]
    ]
    labels = read_labels(repository / paths.RAW / "t10k-labels-idx1-ubyte").tolist()
    accuracy = sum(guess == label for guess, label in zip(top, labels, strict=True)) / len(labels)
    evaluate = json.loads((repository / paths.EVALUATE_METRICS).read_text())
    assert round(accuracy, 6) == evaluate["accuracy"]

    again = mnistpipe(repository, "release", "1.0.0", check=False)
    assert again.returncode == 1
    assert again.stderr == (
        "error: gto register classifier failed: 'classifier' is already registered in this "
        "commit with version 'v1.0.0'\n"
    )
