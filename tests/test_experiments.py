"""`mnistpipe experiments`: `dvc exp show --json` as lines that fit 80 columns."""

import re

from mnistpipe.experiments import render, rows


def commit(rev, name, accuracy, epochs, experiments=()):
    return {
        "rev": rev,
        "name": name,
        "data": {
            "metrics": {
                "metrics/evaluate.json": {
                    "data": {
                        "accuracy": accuracy,
                        "loss": 0.2033,
                        "macro_avg": {"f1": 0.93226, "precision": 0.9, "recall": 0.9},
                        "meets_min_accuracy": accuracy >= 0.9,
                        "min_accuracy": 0.9,
                    }
                },
                "dvclive/metrics.json": {"data": {"eval": {"accuracy": 0.9355}, "step": 17}},
            },
            "params": {"params.yaml": {"data": {"seed": 42, "train": {"epochs": epochs}}}},
            "deps": {"data/prepared": {"hash": "ab29398e3d1e526f41756af7e177d712.dir"}},
        },
        "experiments": list(experiments),
    }


def test_each_experiment_is_a_line_of_decisive_figures_and_the_params_that_differ():
    saved = commit("5cb518c" + "0" * 33, "two-epochs", 0.8772, 1)
    queued = {"rev": "f" * 40, "name": None, "data": {"params": saved["data"]["params"]}}
    shown = [
        commit("workspace", None, 0.9325, 18),
        commit(
            "c" * 40,
            "main",
            0.9325,
            18,
            experiments=[
                {"name": "one-epoch", "revs": [saved]},
                {"name": "sport-slue", "executor": {"state": "queued"}, "revs": [queued]},
            ],
        ),
    ]
    for width in (80, 120):
        text = render(rows(shown), width)
        lines = text.splitlines()
        assert all(len(line) <= 80 for line in lines), text
        assert re.search(r"^  one-epoch +0\.8772 +0\.2033 +0\.9323 +not met +0\.9355$", text, re.M)
        assert re.search(r"^main +0\.9325 .* met +0\.9355$", text, re.M)
        assert "      train.epochs=1" in lines
        assert re.search(r"^  sport-slue +queued$", text, re.M)
        # No column of hashes, and no param that is the same as its commit's.
        assert not re.search(r"[0-9a-f]{20}", text) and "seed" not in text
