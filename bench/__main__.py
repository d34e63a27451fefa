"""`python -m bench` (make bench): run the benchmark and report every figure against its goal."""

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

import bench
from bench.comparison import QUICKSTART_PARAMS, compare_training, summarize_training
from bench.pipeline_timing import copy_project, run_pipeline
from bench.report import RESULTS, cpu_model, report, rounded
from bench.serving import measure_serving


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=bench.__doc__.split("\n")[0]
    )
    parser.add_argument("--epochs", type=int, default=5, help="the tutorial's epochs (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    arguments = parser.parse_args(argv)
    if arguments.epochs < 4:
        parser.error("--epochs must be at least 4: one warm-up epoch and three rounds")

    from mnistpipe.files import write_json

    root = Path(tempfile.mkdtemp(prefix="mnistpipe-bench-"))
    try:
        copy_project(root)
        pipeline = run_pipeline(root)
        training = summarize_training(compare_training(root, arguments.epochs))
        serving = measure_serving(root)
        evaluation = json.loads((root / "metrics" / "evaluate.json").read_text())
        results = {
            "cpu_model": cpu_model(),
            "default_test_accuracy": evaluation["accuracy"],
            "default_train_seconds": pipeline["seconds"]["train"],
            "noop_repro_seconds": statistics.median(pipeline["noop_repro_seconds"]),
            "preprocess_seconds": pipeline["seconds"]["preprocess"],
            "evaluate_export_seconds": pipeline["seconds"]["evaluate"]
            + pipeline["seconds"]["export"],
            "train_peak_rss_mb": pipeline["peak_mb"]["train"],
            "stage_seconds": pipeline["seconds"],
            "stage_peak_rss_mb": pipeline["peak_mb"],
            "quickstart_params": QUICKSTART_PARAMS,
            **training,
            **serving,
        }
        write_json(RESULTS, rounded(results))
        report(results)
    finally:
        if arguments.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
