"""The training recipe: learning-rate schedules, optimizers, loss, precision."""

import keras
import numpy as np
import pytest

from mnistpipe.recipe import (
    dtype_policy,
    make_learning_rate,
    make_loss,
    make_optimizer,
    optimizer_from_settings,
)
from tests.conftest import settings_for


def test_cosine_decays_from_the_initial_rate_to_zero_over_the_run():
    schedule = make_learning_rate(0.01, "cosine", 100)
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(50)) == pytest.approx(0.005, rel=1e-3)
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-9)


def test_a_constant_rate_is_the_number_itself():
    assert make_learning_rate(0.003, "constant", 100) == 0.003


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("adam", keras.optimizers.Adam),
        ("sgd", keras.optimizers.SGD),
        ("rmsprop", keras.optimizers.RMSprop),
    ],
)
def test_each_optimizer_is_the_one_named(name, kind):
    assert isinstance(make_optimizer(name, 0.01), kind)


def test_sgd_uses_momentum():
    assert make_optimizer("sgd", 0.01).momentum == 0.9


def test_the_loss_takes_logits():
    logits = np.array([[10.0, 0.0], [0.0, 10.0]], dtype=np.float32)
    assert float(make_loss()(np.array([0, 1]), logits)) < 1e-3


def test_the_schedule_spans_every_step_of_every_epoch():
    optimizer = optimizer_from_settings(settings_for("mlp", "fit", epochs=4), steps_per_epoch=10)
    assert optimizer.learning_rate is not None
    schedule = optimizer._learning_rate
    assert schedule.decay_steps == 40


def test_mixed_precision_scales_the_loss_and_builds_float16_layers():
    settings = settings_for("mlp", "fit", mixed_precision=True)
    assert isinstance(optimizer_from_settings(settings, 10), keras.optimizers.LossScaleOptimizer)
    assert dtype_policy(True) == "mixed_float16"
    assert dtype_policy(False) == "float32"


def test_a_warm_up_rises_linearly_to_the_rate_then_the_schedule_follows():
    cosine = make_learning_rate(0.01, "cosine", 100, warmup_steps=10)
    assert float(cosine(0)) == pytest.approx(0.0, abs=1e-9)
    assert float(cosine(5)) == pytest.approx(0.005, rel=1e-3)
    assert float(cosine(10)) == pytest.approx(0.01, rel=1e-3)
    assert float(cosine(55)) == pytest.approx(0.005, rel=1e-3)
    assert float(cosine(100)) == pytest.approx(0.0, abs=1e-9)
    constant = make_learning_rate(0.01, "constant", 100, warmup_steps=10)
    assert float(constant(5)) == pytest.approx(0.005, rel=1e-3)
    assert float(constant(90)) == pytest.approx(0.01, rel=1e-3)


def test_warmup_epochs_count_whole_epochs_of_steps():
    settings = settings_for("mlp", "fit", epochs=4, warmup_epochs=1.5)
    schedule = optimizer_from_settings(settings, steps_per_epoch=10)._learning_rate
    assert schedule.warmup_steps == 15
    assert schedule.decay_steps == 25


def test_label_smoothing_trains_towards_the_smoothed_targets():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]], dtype=np.float32)
    labels = np.array([0, 1])
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    targets = np.full((2, 3), 0.1 / 3) + 0.9 * np.eye(3)[labels]
    expected = -(targets * log_probabilities).sum(axis=1)
    smoothed = make_loss(reduction=None, label_smoothing=0.1)(labels, logits)
    np.testing.assert_allclose(np.asarray(smoothed), expected, rtol=1e-5)
    plain = make_loss(reduction=None)(labels, logits)
    np.testing.assert_allclose(np.asarray(plain), -log_probabilities[[0, 1], labels], rtol=1e-5)
