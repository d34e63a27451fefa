"""How `make ci-report` sorts the test images a change flipped (the report: test_pipeline)."""

import pytest

from mnistpipe.errors import PipelineError
from mnistpipe.report import flips, flips_section


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
