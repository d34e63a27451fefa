"""How `make ci-report` sorts the test images a change flipped (the report: test_pipeline)."""

from mnistpipe.report import flips


def test_flips_sorts_each_changed_prediction_once():
    base = [("Bag", "Bag"), ("Bag", "Coat"), ("Coat", "Bag"), ("Bag", "Coat"), ("Bag", "Bag")]
    branch = [("Bag", "Coat"), ("Bag", "Bag"), ("Coat", "Shirt"), ("Bag", "Coat"), ("Bag", "Bag")]
    assert flips(base, branch) == {
        "right to wrong": [0],
        "wrong to right": [1],
        "wrong to another wrong": [2],
    }
