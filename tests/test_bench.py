"""The benchmark's bookkeeping: turn-taking between arms and the ratios it reports.

The timings themselves are never asserted; these tests feed made-up epochs.
"""

import threading

import pytest

from bench.arms import Arm
from bench.comparison import summarize_training
from bench.turns import Turns


def test_arms_take_turns_one_epoch_each_until_each_is_done():
    turns = Turns(["a", "b", "c"])
    log = []

    def arm(name, epochs):
        for epoch in range(epochs):
            turns.wait_for(name)
            log.append((name, epoch))
            turns.done(name, finished=epoch == epochs - 1)

    threads = [
        threading.Thread(target=arm, args=(name, epochs))
        for name, epochs in (("a", 2), ("b", 3), ("c", 1))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert log == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1), ("b", 2)]


def make_arm(name, seconds, accuracies, images=60000):
    arm = Arm(name, Turns([name]))
    for epoch_seconds, accuracy in zip(seconds, accuracies, strict=True):
        arm.record(epoch_seconds, images, accuracy)
    return arm


def test_ratios_are_taken_round_by_round_after_the_warm_up():
    arms = {
        # The tutorial reaches its final 0.90 at epoch 3; 20 s a steady epoch.
        "tutorial": make_arm("tutorial", [25, 20, 20, 40], [0.85, 0.88, 0.90, 0.90]),
        "quickstart_cnn": make_arm("quickstart_cnn", [9, 5, 4, 10], [0.86, 0.89, 0.90, 0.91]),
        # The default preset reaches 0.90 at epoch 2.
        "default": make_arm("default", [12, 10, 10, 20], [0.87, 0.905, 0.91, 0.92]),
    }
    summary = summarize_training({"arms": arms, "epochs": 4})
    # Rounds 2-4: 60000/5 : 60000/20 = 4, 5, 4.
    assert summary["throughput_ratio"] == pytest.approx(4.0)
    assert summary["throughput_ratio_min"] == pytest.approx(4.0)
    assert summary["throughput_ratio_max"] == pytest.approx(5.0)
    assert summary["tutorial_epochs_to_accuracy"] == 3
    assert summary["default_epochs_to_accuracy"] == 2
    assert summary["tutorial_seconds_to_accuracy"] == pytest.approx(65)
    assert summary["default_seconds_to_accuracy"] == pytest.approx(22)
    # Per round: (25 + 2 × tutorial epoch) / (12 + 1 × default epoch) = 65/22, 65/22, 105/32.
    assert summary["time_to_accuracy_ratio"] == pytest.approx(65 / 22)
    assert summary["time_to_accuracy_ratio_max"] == pytest.approx(105 / 32)
    assert summary["warm_up_seconds"]["tutorial"] == pytest.approx(5)


def test_a_default_preset_that_never_reaches_the_accuracy_scores_zero():
    arms = {
        "tutorial": make_arm("tutorial", [25, 20, 20, 20], [0.85, 0.88, 0.90, 0.91]),
        "quickstart_cnn": make_arm("quickstart_cnn", [9, 5, 5, 5], [0.86, 0.89, 0.90, 0.91]),
        "default": make_arm("default", [12, 10, 10, 10], [0.87, 0.88, 0.89, 0.90]),
    }
    summary = summarize_training({"arms": arms, "epochs": 4})
    assert summary["default_seconds_to_accuracy"] is None
    assert summary["time_to_accuracy_ratio"] == 0.0
