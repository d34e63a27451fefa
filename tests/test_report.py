"""`make ci-report` on a branch with a changed param: tables, pictures, flipped test images."""

import csv
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from mnistpipe.report import flips
from tests.conftest import set_params
from tests.test_pipeline import git_commit, run
from tests.test_remote import dvc, make_project


def predictions(path) -> list[tuple[str, str]]:
    with open(path, newline="") as stream:
        return [(row["actual"], row["predicted"]) for row in csv.DictReader(stream)]


def test_flips_sorts_each_changed_prediction_once():
    base = [("Bag", "Bag"), ("Bag", "Coat"), ("Coat", "Bag"), ("Bag", "Coat"), ("Bag", "Bag")]
    branch = [("Bag", "Coat"), ("Bag", "Bag"), ("Coat", "Shirt"), ("Bag", "Coat"), ("Bag", "Bag")]
    assert flips(base, branch) == {
        "right to wrong": [0],
        "wrong to right": [1],
        "wrong to another wrong": [2],
    }


@pytest.mark.slow
def test_ci_report_on_a_branch_has_tables_pictures_and_the_flips(tmp_path):
    root = make_project(tmp_path / "project")
    dvc(root, "repro")
    git_commit(root, "the base run")
    base_predictions = tmp_path / "base_predictions.csv"
    shutil.copy(root / "plots/predictions.csv", base_predictions)
    run(root, "git", "checkout", "-q", "-b", "lower-learning-rate")
    set_params(root, "train", learning_rate=0.001)
    set_params(root, "gate", tolerances={"evaluate.accuracy": 1.0, "evaluate.loss": 100.0})

    result = run(root, "make", "--no-print-directory", "ci-report", "BASE=main", check=False)

    report = (root / "ci-report.md").read_text()
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\| params\.yaml +\| train\.learning_rate +\| 0\.003 +\| 0\.001 +\|", report)
    assert "## Metrics against `main`" in report and "| evaluate.accuracy |" in report
    pictures = dict(re.findall(r"!\[([^\]]+)\]\((ci-report/[^)]+\.png)\)", report))
    for title in ("Accuracy", "Loss", "Confusion matrix"):
        assert title in pictures, report
    opened = {}
    for title, path in pictures.items():
        with Image.open(root / path) as image:
            opened[title] = np.asarray(image.convert("RGB"))
        assert opened[title].shape[0] > 100 and opened[title].shape[1] > 100
    base_matrix = opened["confusion matrix, base (main)"]
    branch_matrix = opened["confusion matrix, branch"]
    assert base_matrix.shape != branch_matrix.shape or (base_matrix != branch_matrix).any()

    base, branch = predictions(base_predictions), predictions(root / "plots/predictions.csv")
    right_to_wrong = sum(b == a and n != a for (a, b), (_, n) in zip(base, branch, strict=True))
    wrong_to_right = sum(b != a and n == a for (a, b), (_, n) in zip(base, branch, strict=True))
    assert right_to_wrong + wrong_to_right > 0, "the changed param flipped no test image"
    assert f"| right to wrong | {right_to_wrong} |" in report
    assert f"| wrong to right | {wrong_to_right} |" in report
    with Image.open(root / pictures["test images that flipped"]) as sheet:
        assert sheet.size[0] > 500
