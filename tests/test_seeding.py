"""Seeding: the same seed gives the same weights and history, with either loop."""

import pytest

from mnistpipe.lineage import weights_sha256
from tests.test_loops import run_training


@pytest.mark.parametrize(
    ("model", "loop"),
    [
        ("quickstart_cnn", "fit"),
        ("quickstart_cnn", "custom"),
        # The fast preset's model: BatchNorm statistics are state too.
        ("strided_cnn", "fit"),
        ("strided_cnn", "custom"),
    ],
)
def test_the_same_seed_gives_the_same_weights(model, loop):
    first, first_history = run_training(model, loop, epochs=1)
    second, second_history = run_training(model, loop, epochs=1)
    assert weights_sha256(first) == weights_sha256(second)
    assert first_history == second_history


def test_another_seed_gives_other_weights():
    first, _ = run_training("mlp", "fit", epochs=1, seed=1)
    second, _ = run_training("mlp", "fit", epochs=1, seed=2)
    assert weights_sha256(first) != weights_sha256(second)
