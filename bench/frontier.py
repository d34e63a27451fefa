"""The accuracy-for-time frontier: a named ``train`` preset for ~1x, ~3x and ~10x the tutorial.

For each preset, in one run on one machine: the TF2 quickstart's 5 epochs
(bench/reference/quickstart.py) for the time unit, then each preset trained
through ``train_from_params`` (what the train stage runs) with several seeds,
each seed giving its wall seconds, validation accuracy (on which the presets
are chosen), and test accuracy without and with flip test-time augmentation
(reported only). TTA's serving cost is the plain model's images a second over
the averaged one's, both in batches of 1,000 in this process.

``python -m bench --only frontier`` runs it (hours on two cores with 3 seeds);
``--frontier-seeds 1 --frontier-max-epochs 1 --limit 300`` proves the wiring;
``--frontier-resume RESULTS`` goes on from a run that was stopped, keeping its
tutorial time, its finished seeds and their serving costs.
"""

import statistics
import sys
import time
from pathlib import Path

# The presets: ``train`` params over params.yaml's, each pasted into
# params.yaml's train section (or given as dvc exp run -S train.KEY=VALUE).
# Chosen from the validation-split scouting of issue 28 (README.md, Speed); the
# wall multiples are estimates until `python -m bench --only frontier` measures
# them on the machine at hand. Every recipe knob is set, so a preset stays what
# it says whatever the default becomes.
FRONTIER_PRESETS = {
    # ~1x: the default convnet for 5 epochs, as many as the tutorial, which its
    # fused batch norm makes about as long as the tutorial's 5.
    "1x": {
        "model": "convnet",
        "batch_size": 128,
        "learning_rate": 0.002,
        "epochs": 5,
        "augment": "flip",
        "shift_pixels": 0,
        "label_smoothing": 0.0,
        "warmup_epochs": 0,
    },
    # ~3x: the default (params.yaml): 18 epochs with flips.
    "3x": {
        "model": "convnet",
        "batch_size": 128,
        "learning_rate": 0.002,
        "epochs": 18,
        "augment": "flip",
        "shift_pixels": 0,
        "label_smoothing": 0.0,
        "warmup_epochs": 0,
    },
    # ~10x: 40 epochs with a 1-pixel shift and label smoothing 0.1, the recipe
    # that reached 93.79% test (94.06% with flip TTA) in the scouting.
    "10x": {
        "model": "convnet",
        "batch_size": 128,
        "learning_rate": 0.002,
        "epochs": 40,
        "augment": "flip",
        "shift_pixels": 1,
        "label_smoothing": 0.1,
        "warmup_epochs": 0,
    },
}
# The goals: test accuracy (mean of the seeds) at each point.
FRONTIER_GOALS = {"1x": 0.915, "3x": 0.935, "10x": 0.940}


def measure_frontier(
    root: Path,
    seeds: int = 3,
    max_epochs: int = 0,
    presets=tuple(FRONTIER_PRESETS),
    save_partial=lambda figures: None,
    resume: dict | None = None,
) -> dict:
    """The tutorial's 5 epochs, then each preset with ``seeds`` seeds; the frontier table.

    ``max_epochs`` > 0 caps every preset's epochs (a smoke run; its figures are
    then not the presets'). ``save_partial`` is given the figures so far after
    every seed: the whole run takes hours, and one stopped half way keeps them.
    ``resume`` is such a run's saved figures: its tutorial time is kept (the
    multiples stay against one measurement) and its finished seeds are not rerun.
    """
    import os

    import numpy as np

    from bench.serving import measure_model_serving
    from mnistpipe import paths
    from mnistpipe.dataset_info import read_info
    from mnistpipe.models import with_test_time_augmentation
    from mnistpipe.params import check_train_settings, load_params
    from mnistpipe.prepared import load_split
    from mnistpipe.seeding import seed_everything
    from mnistpipe.training import train_from_params

    os.chdir(root)
    params = load_params(paths.PARAMS)
    splits = {name: load_split(paths.PREPARED, name) for name in ("train", "val", "test")}
    image_shape = read_info(paths.PREPARED).image_shape
    earlier = (resume or {}).get("frontier", {})
    if resume and "frontier_tutorial_cpu_seconds" in resume:
        tutorial_seconds = resume["frontier_tutorial_seconds"]
        tutorial_cpu_seconds = resume["frontier_tutorial_cpu_seconds"]
    else:
        tutorial_seconds, tutorial_cpu_seconds = _tutorial_seconds(root, splits, params["seed"])
    print(
        f"frontier: the tutorial's 5 epochs took {tutorial_seconds:.1f} s "
        f"({tutorial_cpu_seconds:.1f} CPU s)",
        flush=True,
    )
    figures = {
        "frontier_tutorial_seconds": tutorial_seconds,
        "frontier_tutorial_cpu_seconds": tutorial_cpu_seconds,
        "frontier": {},
    }
    rows = figures["frontier"]
    settings_of, runs_of, serving_of = {}, {}, {}
    for name in presets:
        settings_of[name] = {**params["train"], **FRONTIER_PRESETS[name]}
        if max_epochs:
            settings_of[name]["epochs"] = min(settings_of[name]["epochs"], max_epochs)
        check_train_settings(settings_of[name])
        row = earlier.get(name, {})
        if row.get("settings") != {key: settings_of[name][key] for key in FRONTIER_PRESETS[name]}:
            row = {}  # a preset changed since: its earlier seeds do not count
        runs_of[name] = list(row.get("runs", []))
        if row.get("serving_images_per_second"):
            serving_of[name] = row["serving_images_per_second"]
        if runs_of[name]:
            rows[name] = summarize_preset(
                name, settings_of[name], runs_of[name], figures, serving_of.get(name)
            )
    # Seed by seed over the presets, not preset by preset: a run stopped half way
    # has every preset at as many seeds as the others, or one fewer.
    for seed in range(params["seed"], params["seed"] + seeds):
        for name in presets:
            settings, runs = settings_of[name], runs_of[name]
            if any(run["seed"] == seed for run in runs):
                continue
            seed_everything(seed, settings["deterministic"])
            started, started_cpu = time.perf_counter(), time.process_time()
            model, history = train_from_params(settings, seed, splits["train"], splits["val"])
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - started_cpu
            accuracy = {}
            for augmentation in ("none", "flip"):
                logits = with_test_time_augmentation(model, augmentation, image_shape).predict(
                    splits["test"][0], batch_size=1000, verbose=0
                )
                accuracy[augmentation] = float(
                    np.mean(np.argmax(logits, axis=1) == splits["test"][1])
                )
            runs.append(
                {
                    "seed": seed,
                    "train_seconds": seconds,
                    "train_cpu_seconds": cpu_seconds,
                    "val_accuracy": history["val_accuracy"][-1],
                    "test_accuracy": accuracy["none"],
                    "tta_test_accuracy": accuracy["flip"],
                }
            )
            print(
                f"  frontier {name} seed {seed}: {seconds:.0f} s ({cpu_seconds:.0f} CPU s), val "
                f"{runs[-1]['val_accuracy']:.4f}, test {accuracy['none']:.4f}, with flip TTA "
                f"{accuracy['flip']:.4f}",
                flush=True,
            )
            if name not in serving_of:
                # The first seed's model, served plain and with flip TTA, in this process
                # (the cost does not depend on the weights).
                serving_of[name] = {
                    augmentation: measure_model_serving(
                        with_test_time_augmentation(model, augmentation, image_shape),
                        root / "bench-exports" / f"frontier-{name}-{augmentation}" / "saved_model",
                        root / paths.RAW,
                    )["serving_images_per_second"]
                    for augmentation in ("none", "flip")
                }
            rows[name] = summarize_preset(name, settings, runs, figures, serving_of[name])
            save_partial(figures)
    return figures


def summarize_preset(
    name: str, settings: dict, runs: list[dict], tutorial: dict, serving: dict | None
) -> dict:
    """One row of the table: means and minima over the seeds, the time against the tutorial.

    Both wall and CPU seconds: on a machine that other work shares, the wall
    multiple moves with that work, the CPU one much less.
    """
    seconds = statistics.mean(run["train_seconds"] for run in runs)
    cpu_seconds = statistics.mean(run["train_cpu_seconds"] for run in runs)
    return {
        "settings": {key: settings[key] for key in FRONTIER_PRESETS[name]},
        "seeds": len(runs),
        "train_seconds": seconds,
        "train_cpu_seconds": cpu_seconds,
        "tutorial_multiple": seconds / tutorial["frontier_tutorial_seconds"],
        "tutorial_cpu_multiple": cpu_seconds / tutorial["frontier_tutorial_cpu_seconds"],
        "val_accuracy_mean": statistics.mean(run["val_accuracy"] for run in runs),
        "test_accuracy_mean": statistics.mean(run["test_accuracy"] for run in runs),
        "test_accuracy_min": min(run["test_accuracy"] for run in runs),
        "tta_test_accuracy_mean": statistics.mean(run["tta_test_accuracy"] for run in runs),
        "tta_test_accuracy_min": min(run["tta_test_accuracy"] for run in runs),
        # How many times longer flip TTA takes to serve a batch (two views an
        # image); None while the preset's seeds are still training.
        "tta_serving_cost": serving["none"] / serving["flip"] if serving else None,
        "serving_images_per_second": serving,
        "goal": FRONTIER_GOALS[name],
        "runs": runs,
    }


def _tutorial_seconds(root: Path, splits: dict, seed: int) -> tuple[float, float]:
    """Wall and CPU seconds of the tutorial's 5 epochs on the same images.

    As bench/comparison.py runs it."""
    import keras

    sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
    import quickstart

    from mnistpipe import paths
    from mnistpipe.data import read_raw

    def load_data():
        images, labels = read_raw(root / paths.RAW, "train")
        test_images, test_labels = read_raw(root / paths.RAW, "test")
        count = len(splits["train"][1]) + len(splits["val"][1])
        test_count = len(splits["test"][1])
        return (images[:count], labels[:count]), (
            test_images[:test_count],
            test_labels[:test_count],
        )

    keras.utils.set_random_seed(seed)
    started, started_cpu = time.perf_counter(), time.process_time()
    for _ in quickstart.run(load_data, EPOCHS=5):
        pass
    return time.perf_counter() - started, time.process_time() - started_cpu
