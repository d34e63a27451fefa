"""The real `dvc repro` in a temporary copy of the repository, on a slice of real Fashion-MNIST."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPOSITORY, SYSTEM_FASHION_MNIST

pytestmark = pytest.mark.slow

PROJECT_FILES = ("dvc.yaml", "params.yaml", "stages", "src", ".dvc/config", ".dvcignore")


def dvc(root: Path, *arguments: str) -> str:
    # Stages run `python` from PATH: make it this interpreter, which has the package.
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *arguments],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"dvc {' '.join(arguments)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    if not SYSTEM_FASHION_MNIST.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (make setup installs it)")
    root = tmp_path_factory.mktemp("pipeline")
    for name in PROJECT_FILES:
        source = REPOSITORY / name
        if source.is_dir():
            shutil.copytree(
                source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["preprocess"]["limit"] = 1200
    params["train"]["epochs"] = 1
    params["evaluate"]["min_accuracy"] = 0.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    first_run = dvc(root, "repro")
    return root, first_run


def test_a_full_repro_runs_every_stage_and_writes_the_metrics(project):
    root, first_run = project
    for stage in ("download", "preprocess", "train", "evaluate", "export"):
        assert f"Running stage '{stage}'" in first_run
    train = json.loads((root / "metrics/train.json").read_text())
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(train)
    evaluate = json.loads((root / "metrics/evaluate.json").read_text())
    assert {"loss", "accuracy", "macro_avg", "per_class"} <= set(evaluate)
    assert set(evaluate["per_class"]["Ankle boot"]) == {"precision", "recall", "f1", "support"}
    export = json.loads((root / "metrics/export.json").read_text())
    assert export["argmax_disagreements"] == 0 and export["max_probability_difference"] <= 1e-5
    shown = json.loads(dvc(root, "metrics", "show", "--json"))
    assert "metrics/evaluate.json" in json.dumps(shown)


def test_a_second_repro_runs_no_stage(project):
    root, _ = project
    output = dvc(root, "repro")
    assert "Running stage" not in output
    assert "Data and pipelines are up to date." in output


def test_changing_the_gate_reruns_evaluate_but_not_train(project):
    root, _ = project
    params_path = root / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["evaluate"]["min_accuracy"] = 0.05
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    output = dvc(root, "repro")
    assert "Running stage 'evaluate'" in output
    assert "Running stage 'train'" not in output
    assert "Running stage 'preprocess'" not in output
