"""`python -m bench` (make bench): run the benchmark and report every figure against its goal."""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

import bench
from bench.arithmetic import peak
from bench.comparison import ARMS_OF_PART, compare_training, summarize_training
from bench.frontier import measure_frontier
from bench.onednn import measure_onednn, measure_portable
from bench.pipeline_timing import REPOSITORY, copy_project, run_pipeline, timed_process
from bench.report import RESULTS, cpu_model, report, rounded
from bench.scaling import FACTORS, measure_scaling
from bench.seeds import stage_run, summarize_seeds, train_more_seeds
from bench.serving import measure_model_serving, measure_serving
from bench.speed import ARMS as SPEED_ARMS
from bench.speed import measure_speed
from bench.test_time_augmentation import measure_test_time_augmentation
from mnistpipe import interrupts
from mnistpipe.cli import one_line_argument_errors
from mnistpipe.errors import PipelineError
from mnistpipe.export_check import load_export
from mnistpipe.params import check_params, load_params

# The parts of a run, in the order they run; --only picks some.
# pipeline: every stage as dvc repro runs it, and the export's serving speed;
# seeds: the default trained with more seeds; tta: test-time augmentation on the
# default model; training, preset, bf16: the training arms (bench/comparison.py);
# onednn: the default's training and serving and the tutorial's training with
# TensorFlow's oneDNN kernels off and on (bench/onednn.py); scaling: cost at
# 1x, 4x, 10x the training set; portable: the kernels that give the same bytes on every
# machine (AVX2, 1, 2 or 4 threads) against the machine's own (bench/onednn.py); speed:
# the default's training before and after each speed change, alternated process by
# process, with its GFLOP/s (bench/speed.py).
# frontier: the accuracy-for-time presets, each with several seeds (hours on
# two cores), so only when --only names it (bench/frontier.py).
PARTS = (
    "pipeline",
    "tta",
    *ARMS_OF_PART,
    "onednn",
    "portable",
    "speed",
    "scaling",
    "seeds",
    "frontier",
)
DEFAULT_PARTS = tuple(part for part in PARTS if part != "frontier")
# Parts that measure the model the pipeline's train stage wrote.
NEEDS_TRAINED_MODEL = {"pipeline", "tta", "seeds"}


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=bench.__doc__.split("\n")[0]
    )
    parser.add_argument("--epochs", type=int, default=5, help="the tutorial's epochs (default 5)")
    parser.add_argument(
        "--seeds", type=int, default=1, help="seeds of the default params (default 1)"
    )
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_PARTS),
        help=f"comma-separated parts of {PARTS} (default all but frontier)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=0,
        help="preprocess.limit: N training images only, for a smoke run (default 0: all)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="change a param of the measured project (as dvc exp run -S), e.g. train.epochs=2",
    )
    parser.add_argument(
        "--bf16-epochs", type=int, default=3, help="epochs of the bfloat16 comparison (default 3)"
    )
    parser.add_argument(
        "--bf16-images",
        type=int,
        default=0,
        help="train the bfloat16 comparison on the first N training images (default 0: all)",
    )
    parser.add_argument(
        "--onednn-rounds",
        type=int,
        default=2,
        help="rounds of the oneDNN comparison, one process off and one on each (default 2)",
    )
    parser.add_argument(
        "--onednn-images",
        type=int,
        default=12000,
        help="training images of the oneDNN comparison's epochs (default 12000)",
    )
    parser.add_argument(
        "--speed-rounds",
        type=int,
        default=3,
        help="rounds of the speed comparison, one process an arm each (default 3)",
    )
    parser.add_argument(
        "--speed-images",
        type=int,
        default=12000,
        help="training images of the speed comparison's epochs (default 12000)",
    )
    parser.add_argument(
        "--speed-steps",
        type=int,
        default=60,
        help="steps of each arm in the step-alternated speed comparison (default 60)",
    )
    parser.add_argument(
        "--speed-arms",
        default=",".join(SPEED_ARMS),
        help=f"comma-separated arms of the speed comparison, the first the baseline "
        f"(default {','.join(SPEED_ARMS)})",
    )
    parser.add_argument(
        "--frontier-seeds",
        type=int,
        default=3,
        help="seeds of each frontier preset (default 3)",
    )
    parser.add_argument(
        "--frontier-max-epochs",
        type=int,
        default=0,
        help="cap every frontier preset's epochs, for a smoke run (default 0: no cap)",
    )
    parser.add_argument(
        "--frontier-resume",
        type=Path,
        help="a results file of a stopped frontier run to go on from (its finished seeds kept)",
    )
    parser.add_argument(
        "--scaling-factors",
        default=",".join(map(str, FACTORS)),
        help="sizes of the scaling table, times the training set (default 1,4,10)",
    )
    parser.add_argument(
        "--raw", type=Path, help="a directory of the four IDX files to use instead of downloading"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write results")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    arguments = parser.parse_args(argv)
    # compare_training works inside the temporary project: paths given are from here.
    arguments.results = arguments.results.resolve()
    if arguments.raw is not None:
        arguments.raw = arguments.raw.resolve()
    arguments.parts = [part.strip() for part in arguments.only.split(",") if part.strip()]
    unknown = sorted(set(arguments.parts) - set(PARTS))
    if unknown:
        parser.error(f"--only names {', '.join(unknown)}; expected some of {', '.join(PARTS)}")
    # oneDNN's bfloat16 kernels need AVX-512 BF16 (or AMX): under the portable kernels' cap
    # (mnistpipe/__init__, ONEDNN_MAX_CPU_ISA=AVX2) it aborts the process instead.
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if "bf16" in arguments.parts and cap.startswith(("SSE", "AVX2", "AVX_")):
        if arguments.only != ",".join(DEFAULT_PARTS):
            parser.error(
                f"--only bf16 needs oneDNN's bfloat16 kernels (AVX-512 BF16), which "
                f"ONEDNN_MAX_CPU_ISA={cap} leaves out: run it with MNISTPIPE_PORTABLE=0"
            )
        print(f"bench: bf16 left out: ONEDNN_MAX_CPU_ISA={cap} (MNISTPIPE_PORTABLE=0 runs it)")
        arguments.parts.remove("bf16")
    if arguments.epochs < 2:
        parser.error("--epochs must be at least 2: one warm-up epoch and one round")
    if arguments.bf16_epochs < 2:
        parser.error("--bf16-epochs must be at least 2: one warm-up epoch and one round")
    if arguments.bf16_images < 0:
        parser.error("--bf16-images must be 0 (all) or a number of images")
    if arguments.onednn_rounds < 1 or arguments.onednn_images < 1:
        parser.error("--onednn-rounds and --onednn-images must be at least 1")
    if min(arguments.speed_rounds, arguments.speed_images, arguments.speed_steps) < 1:
        parser.error("--speed-rounds, --speed-images and --speed-steps must be at least 1")
    arguments.speed_arm_names = [name.strip() for name in arguments.speed_arms.split(",")]
    if not set(arguments.speed_arm_names) <= set(SPEED_ARMS) or len(arguments.speed_arm_names) < 2:
        parser.error(
            f"--speed-arms is {arguments.speed_arms!r}; expected two or more of "
            f"{', '.join(SPEED_ARMS)}"
        )
    if arguments.frontier_seeds < 1 or arguments.frontier_max_epochs < 0:
        parser.error("--frontier-seeds must be at least 1 and --frontier-max-epochs at least 0")
    arguments.frontier_resume_figures = None
    if arguments.frontier_resume is not None:
        try:
            figures = json.loads(arguments.frontier_resume.read_text())
        except (OSError, ValueError, RecursionError) as error:
            parser.error(f"--frontier-resume {arguments.frontier_resume}: {error}")
        if not isinstance(figures, dict) or not isinstance(figures.get("frontier"), dict):
            parser.error(f"--frontier-resume {arguments.frontier_resume}: no frontier table in it")
        arguments.frontier_resume_figures = figures
    if arguments.seeds < 1:
        parser.error("--seeds must be at least 1")
    try:
        arguments.factors = [int(factor) for factor in arguments.scaling_factors.split(",")]
    except ValueError:
        parser.error(f"--scaling-factors is {arguments.scaling_factors!r}; expected e.g. 1,4,10")
    if sorted(arguments.factors) != arguments.factors or min(arguments.factors) < 1:
        parser.error("--scaling-factors must be increasing whole numbers from 1 up")
    if arguments.limit < 0:
        parser.error(f"--limit is {arguments.limit}; expected 0 (all) or a number of images")
    if arguments.raw is not None and not arguments.raw.is_dir():
        parser.error(
            f"--raw {arguments.raw} is not a directory; expected one holding the IDX files"
        )
    if not arguments.results.parent.is_dir():
        parser.error(
            f"--results {arguments.results}: {arguments.results.parent} is not a directory; "
            "expected the results file's folder to exist (the first part is saved there)"
        )
    arguments.params = measured_params(parser, arguments)
    return arguments


def measured_params(parser: argparse.ArgumentParser, arguments) -> dict:
    """The repository's params.yaml with --limit and each --set, checked before any work."""
    try:
        # Checked as the stages check it: a broken params.yaml is one line, not a
        # traceback from the first key looked up in it.
        params = load_params(REPOSITORY / "params.yaml")
    except PipelineError as error:
        parser.error(str(error))
    params["preprocess"]["limit"] = arguments.limit
    for change in arguments.set:
        key, equals, value = change.partition("=")
        section, _, name = key.partition(".")
        # seed and dataset are values, not sections: `name in 42` raised a TypeError
        # and `"as" in "fashion_mnist"` matched a substring, then assigning failed.
        if (
            not equals
            or not name
            or not isinstance(params.get(section), dict)
            or name not in params[section]
        ):
            parser.error(
                f"--set {shortened(change)}: expected SECTION.KEY=VALUE, a key of params.yaml"
            )
        try:
            params[section][name] = yaml.safe_load(value)
        # Not only YAMLError: a 10000-level [[[...]]] exhausts the recursion limit,
        # and PyYAML's own conversions raise ValueError (an integer of more than 4300
        # digits, a date such as 2020-13-45).
        except (yaml.YAMLError, ValueError, RecursionError) as error:
            parser.error(
                f"--set {shortened(change)}: {' '.join(str(error).split())}; expected a YAML value"
            )
    try:
        check_params(params, "--set")
    except PipelineError as error:
        parser.error(str(error))
    return params


def shortened(change: str, length: int = 80) -> str:
    """The --set argument as an error quotes it: the start of a value thousands of
    characters long is enough to recognise it, and keeps the error one readable line
    (a line break in it is shown as \\n)."""
    one_line = "\\n".join(change.splitlines())
    if len(one_line) <= length:
        return one_line
    return f"{one_line[:length]}... ({len(change)} characters)"


# Ctrl-C or a SIGTERM ends a run of an hour with one line, as the stages do; every
# part finished is already in the results file (saved after each), and the
# temporary project goes.
@interrupts.handled("bench", "; the results file keeps the parts already measured; run it again")
def main(argv=None) -> int | None:
    arguments = parse_arguments(argv)
    parts = arguments.parts
    root = Path(tempfile.mkdtemp(prefix="mnistpipe-bench-"))
    # The CPU's kind (AVX2 or AVX-512) and float32 peak, beside every arm's GFLOP/s.
    results = {"cpu_model": cpu_model(), **peak(), "bench_parts": parts, "part_seconds": {}}

    def timed(part, function, *args, **options):
        started = time.perf_counter()
        figures = function(*args, **options)
        results["part_seconds"][part] = time.perf_counter() - started
        print(f"bench: {part} took {results['part_seconds'][part]:.0f} s", flush=True)
        return figures

    try:
        copy_project(root)
        set_up_project(root, arguments)
        params = yaml.safe_load((root / "params.yaml").read_text())
        if NEEDS_TRAINED_MODEL & set(parts):
            results.update(timed("pipeline", pipeline_figures, root, arguments.raw is not None))
            save(results, arguments.results)
        else:
            prepare_data(root, arguments.raw is not None)
        if "tta" in parts:
            results.update(timed("tta", measure_test_time_augmentation, root))
            save(results, arguments.results)
        arm_parts = [part for part in parts if part in ARMS_OF_PART]
        if arm_parts:
            training = timed(
                "training arms",
                compare_training,
                root,
                arguments.epochs,
                arm_parts,
                arguments.bf16_epochs,
                arguments.bf16_images,
            )
            results.update(summarize_training(training))
            if "bf16" in arm_parts:
                results.update(
                    {
                        f"bf16_{key}": value
                        for key, value in measure_model_serving(
                            training["arms"]["bfloat16"].model,
                            root / "bench-exports" / "bfloat16" / "saved_model",
                            root / "data" / "raw",
                        ).items()
                    }
                )
            save(results, arguments.results)
        if "onednn" in parts:
            results.update(
                timed(
                    "onednn",
                    measure_onednn,
                    root,
                    arguments.onednn_rounds,
                    arguments.onednn_images,
                )
            )
            save(results, arguments.results)
        if "portable" in parts:
            results.update(
                timed(
                    "portable",
                    measure_portable,
                    root,
                    arguments.onednn_rounds,
                    arguments.onednn_images,
                )
            )
            save(results, arguments.results)
        if "speed" in parts:
            results.update(
                timed(
                    "speed",
                    measure_speed,
                    root,
                    arguments.speed_rounds,
                    arguments.speed_images,
                    arguments.speed_arm_names,
                    arguments.speed_steps,
                )
            )
            save(results, arguments.results)
        if "scaling" in parts:
            results["scaling"] = timed(
                "scaling",
                measure_scaling,
                root / "data" / "raw",
                root,
                arguments.factors,
                arguments.limit,
            )
            save(results, arguments.results)
        if "frontier" in parts:
            results.update(
                timed(
                    "frontier",
                    measure_frontier,
                    root,
                    arguments.frontier_seeds,
                    arguments.frontier_max_epochs,
                    save_partial=lambda figures: save({**results, **figures}, arguments.results),
                    resume=arguments.frontier_resume_figures,
                )
            )
            save(results, arguments.results)
        if "seeds" in parts or "pipeline" in parts:
            runs = [stage_run(root, params["seed"], results["stage_seconds"]["train"])]
            if arguments.seeds > 1:
                runs += timed("seeds", train_more_seeds, root, params["seed"], arguments.seeds)
            results.update(summarize_seeds(runs, results.get("tutorial_seconds")))
        save(results, arguments.results)
        report(results, arguments.results)
    finally:
        if arguments.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def set_up_project(root: Path, arguments) -> None:
    """The temporary project's params for this run, and its raw data if given."""
    (root / "params.yaml").write_text(yaml.safe_dump(arguments.params, sort_keys=False))
    if arguments.raw is not None:
        shutil.copytree(arguments.raw, root / "data" / "raw")


def prepare_data(root: Path, have_raw: bool) -> None:
    """Download (unless given) and preprocess only: what the training arms and scaling need."""
    if not have_raw:
        timed_process([sys.executable, "stages/download.py"], root)
    # In this process: the data is all these parts need, and a stage process
    # would cost one more TensorFlow start.
    from mnistpipe.data import prepare
    from mnistpipe.params import load_params

    params = load_params(root / "params.yaml")
    prepare(
        root / "data" / "raw",
        root / "data" / "prepared",
        val_split=params["preprocess"]["val_split"],
        limit=params["preprocess"]["limit"],
        seed=params["seed"],
        storage_format=params["preprocess"]["format"],
        shard_size=params["preprocess"]["shard_size"],
        dataset=params["dataset"],
    )


def pipeline_figures(root: Path, have_raw: bool) -> dict:
    pipeline = run_pipeline(root, skip=("download",) if have_raw else ())
    try:
        # The export the pipeline made, checked whole before its speed is measured.
        load_export(root / "models" / "export")
    except PipelineError as error:
        raise SystemExit(f"error: {error}") from None
    serving = measure_serving(root / "models" / "export" / "saved_model", root / "data" / "raw")
    evaluation = json.loads((root / "metrics" / "evaluate.json").read_text())
    return {
        "default_test_accuracy": evaluation["accuracy"],
        "default_train_seconds": pipeline["seconds"]["train"],
        "noop_repro_seconds": statistics.median(pipeline["noop_repro_seconds"]),
        "preprocess_seconds": pipeline["seconds"]["preprocess"],
        "evaluate_export_seconds": pipeline["seconds"]["evaluate"] + pipeline["seconds"]["export"],
        "train_peak_rss_mb": pipeline["peak_mb"]["train"],
        "stage_seconds": pipeline["seconds"],
        "stage_peak_rss_mb": pipeline["peak_mb"],
        **serving,
    }


def save(results: dict, path: Path) -> None:
    """Written after every part, so that a run stopped half way keeps what it measured."""
    from mnistpipe.files import write_json

    write_json(path, rounded(results))


if __name__ == "__main__":
    # A bad argument is one line, as for the `mnistpipe` commands (the same mechanism).
    with one_line_argument_errors("python -m bench"):
        status = main()
    raise SystemExit(status)
