"""The default params trained with several seeds through the real train stage: mean and minimum.

A claim of test accuracy must not rest on a lucky seed. The first seed's run is
the pipeline's own (bench/pipeline_timing.py); each further seed reruns the
train and evaluate stages in the same temporary project with ``seed`` raised by
one. The validation split stays that of the first seed (preprocess is not
rerun), so the seeds differ in weight initialisation, dropout, shuffling and
augmentation only.
"""

import json
import statistics
import sys
from pathlib import Path

import yaml

from bench.pipeline_timing import timed_process


def train_more_seeds(root: Path, first_seed: int, count: int) -> list[dict]:
    """Train and evaluate seeds ``first_seed + 1`` .. ``first_seed + count - 1``."""
    params_path = root / "params.yaml"
    original = params_path.read_text()
    runs = []
    try:
        for seed in range(first_seed + 1, first_seed + count):
            params = yaml.safe_load(original)
            params["seed"] = seed
            params_path.write_text(yaml.safe_dump(params, sort_keys=False))
            print(f"seed {seed}: train and evaluate stages ...", flush=True)
            runs.append(stage_run(root, seed))
    finally:
        params_path.write_text(original)
    return runs


def stage_run(root: Path, seed: int, train_seconds: float | None = None) -> dict:
    """One seed's figures; ``train_seconds`` given when the train stage ran already."""
    if train_seconds is None:
        train_seconds, _ = timed_process([sys.executable, "stages/train.py"], root)
        timed_process([sys.executable, "stages/evaluate.py"], root)
    accuracy = json.loads((root / "metrics" / "evaluate.json").read_text())["accuracy"]
    print(f"  seed {seed}: train stage {train_seconds:.1f} s, test accuracy {accuracy:.4f}")
    return {"seed": seed, "train_seconds": train_seconds, "test_accuracy": accuracy}


def summarize_seeds(runs: list[dict], tutorial_seconds: float | None) -> dict:
    """Mean and minimum test accuracy over the seeds; the train stage against the tutorial.

    ``tutorial_seconds`` is the tutorial's whole run (its 5 epochs) in the same
    bench run, or None when the training comparison did not run.
    """
    accuracies = [run["test_accuracy"] for run in runs]
    train_seconds = statistics.mean(run["train_seconds"] for run in runs)
    summary = {
        "default_seeds": runs,
        "default_test_accuracy_mean": statistics.mean(accuracies),
        "default_test_accuracy_min": min(accuracies),
        "default_train_seconds_mean": train_seconds,
    }
    if tutorial_seconds:
        summary["default_train_to_tutorial_ratio"] = train_seconds / tutorial_seconds
    return summary
