"""How `make ci-report` sorts the test images a change flipped (the report: test_pipeline)."""

import re

import pytest

from mnistpipe.errors import PipelineError
from mnistpipe.report import data_params, flips, flips_section


def test_flips_sorts_each_changed_prediction_once():
    base = [("Bag", "Bag"), ("Bag", "Coat"), ("Coat", "Bag"), ("Bag", "Coat"), ("Bag", "Bag")]
    branch = [("Bag", "Coat"), ("Bag", "Bag"), ("Coat", "Shirt"), ("Bag", "Coat"), ("Bag", "Bag")]
    assert flips(base, branch) == {
        "right to wrong": [0],
        "wrong to right": [1],
        "wrong to another wrong": [2],
    }


def test_a_workspace_without_its_predictions_is_a_reason_in_the_report_not_a_traceback(
    tmp_path, monkeypatch
):
    # No plots/predictions.csv (evaluate never ran here): read_text's FileNotFoundError
    # escaped build(), which turns only a PipelineError into "Not shown: ...".
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError, match=r"cannot read plots/predictions.csv \(No such file"):
        flips_section("HEAD", tmp_path)


@pytest.mark.parametrize(
    ("lock", "fragment"),
    [
        ("stages: {download: [", "dvc.lock at main is not valid plain YAML"),
        ("- 1\n", "dvc.lock at main holds a YAML list; expected a mapping"),
        ("stages: [download]\n", "stages in dvc.lock at main is ['download']; expected"),
        ("stages:\n  preprocess: 3\n", "stages.preprocess in dvc.lock at main is 3; expected"),
    ],
)
def test_a_damaged_dvc_lock_is_a_reason_in_the_report_naming_it(lock, fragment):
    # Were yaml's ScannerError and AttributeError tracebacks out of `make ci-report`.
    with pytest.raises(PipelineError, match=re.escape(fragment)):
        data_params(lock, "dvc.lock at main")


def test_the_data_params_of_a_dvc_lock_are_read_per_stage():
    lock = (
        "schema: '2.0'\nstages:\n  download:\n    params:\n      params.yaml:\n        seed: 1\n"
    )
    assert data_params(lock, "dvc.lock") == {
        "download": {"params.yaml": {"seed": 1}},
        "preprocess": None,
    }
