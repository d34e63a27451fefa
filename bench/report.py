"""The benchmark's report: every figure printed against its goal, and bench/results.json."""

import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"

# Each figure's label, its key in bench/results.json, and its goal.
GOALS = [
    ("default test accuracy", "default_test_accuracy", ">=", 0.930, "{:.4f}"),
    ("default train stage, s", "default_train_seconds", "<=", 480, "{:.1f}"),
    ("throughput ratio (quickstart_cnn / tutorial)", "throughput_ratio", ">=", 3.0, "{:.2f}"),
    (
        "time-to-accuracy ratio (tutorial / default)",
        "time_to_accuracy_ratio",
        ">=",
        5.0,
        "{:.2f}",
    ),
    ("no-op dvc repro, s", "noop_repro_seconds", "<=", 3.0, "{:.2f}"),
    ("preprocess, s", "preprocess_seconds", "<=", 10.0, "{:.1f}"),
    ("evaluate + export, s", "evaluate_export_seconds", "<=", 60.0, "{:.1f}"),
    ("train peak RSS, MB", "train_peak_rss_mb", "<=", 1536, "{:.0f}"),
    (
        "serving, images/s (batches of 1000)",
        "serving_images_per_second",
        ">=",
        10000,
        "{:.0f}",
    ),
    ("serving one image, ms (median)", "serving_single_ms_p50", "<=", 2.0, "{:.2f}"),
]


def cpu_model() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def report(results: dict) -> None:
    print(f"\nCPU: {results['cpu_model']}")
    print(f"{'figure':<46} {'measured':>10} {'goal':>10}")
    for label, key, relation, goal, form in GOALS:
        value = results[key]
        met = value >= goal if relation == ">=" else value <= goal
        print(
            f"{label:<46} {form.format(value):>10} {relation}{goal:>8} {'ok' if met else 'MISSED'}"
        )
    print(
        f"throughput ratio min {results['throughput_ratio_min']:.2f}, "
        f"max {results['throughput_ratio_max']:.2f}; time-to-accuracy ratio "
        f"min {results['time_to_accuracy_ratio_min']:.2f}, "
        f"max {results['time_to_accuracy_ratio_max']:.2f}"
    )
    print(
        f"images/s: tutorial {results['tutorial_images_per_second']:.0f}, quickstart_cnn "
        f"{results['quickstart_images_per_second']:.0f} "
        f"({results['quickstart_gflops']:.0f} GFLOP/s of training arithmetic), default "
        f"{results['default_images_per_second']:.0f}"
    )
    print(
        f"tutorial's final test accuracy {results['tutorial_final_test_accuracy']:.4f}: "
        f"tutorial reached it after {results['tutorial_seconds_to_accuracy']:.1f} s "
        f"(epoch {results['tutorial_epochs_to_accuracy']}), default after "
        f"{results['default_seconds_to_accuracy'] or float('nan'):.1f} s "
        f"(epoch {results['default_epochs_to_accuracy']}); quickstart_cnn ended at "
        f"{results['quickstart_final_test_accuracy']:.4f}"
    )
    warm_up = ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in results["warm_up_seconds"].items()
    )
    print(f"warm-up (first epoch over a steady one): {warm_up}")
    print(f"wrote {RESULTS}")


def rounded(value):
    """Floats to 4 decimals, for a results file people read."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value
