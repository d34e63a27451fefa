"""The benchmark's bookkeeping (turns, ratios, summaries, the report) and its machinery end to end.

The timings themselves are never asserted; the bookkeeping tests feed made-up
epochs, and the end-to-end run uses a few hundred synthetic images.
"""

import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from bench.__main__ import main as bench_main
from bench.__main__ import parse_arguments
from bench.arms import Arm
from bench.comparison import FAST_PRESET, summarize_training
from bench.onednn import measure_onednn, summarize_onednn
from bench.pipeline_timing import timed_process
from bench.report import bfloat16_verdict, report, verdicts
from bench.scaling import summarize_scaling
from bench.seeds import summarize_seeds
from bench.serving import SERVER_ENVIRONMENT, measure_serving, one_image_server
from bench.turns import Turns
from mnistpipe.cli import one_line_argument_errors
from tests.conftest import synthetic_idx_files


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


def tutorial_arm():
    # Reaches its final 0.90 at epoch 3, after 65 s; 20 s a steady epoch, 5 s of warm-up.
    return make_arm("tutorial", [25, 20, 20, 40], [0.85, 0.88, 0.90, 0.90])


def test_throughput_ratios_are_taken_round_by_round_after_the_warm_up():
    arms = {
        "tutorial": tutorial_arm(),
        "quickstart_cnn": make_arm("quickstart_cnn", [9, 5, 4, 10], [0.86, 0.89, 0.90, 0.91]),
    }
    summary = summarize_training({"arms": arms, "epochs": 4})
    # Rounds 2-4: 60000/5 : 60000/20 = 4, 5, 4.
    assert summary["throughput_ratio"] == pytest.approx(4.0)
    assert summary["throughput_ratio_min"] == pytest.approx(4.0)
    assert summary["throughput_ratio_max"] == pytest.approx(5.0)
    assert summary["tutorial_seconds"] == pytest.approx(105)
    assert summary["warm_up_seconds"]["tutorial"] == pytest.approx(5)
    assert "preset_time_to_accuracy_ratio" not in summary


def test_the_preset_ratio_is_wall_seconds_with_warm_ups_and_is_also_given_without():
    arms = {
        "tutorial": tutorial_arm(),
        # 6 s with 4 s of warm-up, then 2 s: 0.905 after its second epoch, 8 s in all.
        "preset": make_arm("preset", [6, 2], [0.89, 0.905]),
    }
    summary = summarize_training({"arms": arms, "epochs": 4})
    assert summary["tutorial_seconds_to_accuracy"] == pytest.approx(65)
    assert summary["preset_seconds_to_accuracy"] == pytest.approx(8)
    assert summary["preset_epochs_to_accuracy"] == 2
    assert summary["preset_time_to_accuracy_ratio"] == pytest.approx(65 / 8)
    assert summary["preset_time_to_accuracy_ratio_uses"] == "wall seconds, warm-up included"
    # Without the warm-ups: (65 - 5) / (8 - 4).
    assert summary["preset_time_to_accuracy_ratio_without_warm_up"] == pytest.approx(15)
    assert summary["preset"] == FAST_PRESET


def test_a_preset_that_never_reaches_the_accuracy_scores_zero():
    arms = {"tutorial": tutorial_arm(), "preset": make_arm("preset", [6, 2], [0.80, 0.89])}
    summary = summarize_training({"arms": arms, "epochs": 4})
    assert summary["preset_seconds_to_accuracy"] is None
    assert summary["preset_time_to_accuracy_ratio"] == 0.0


def test_bfloat16_speedup_is_taken_round_by_round_with_both_accuracies():
    arms = {
        "float32": make_arm("float32", [10, 4, 4], [0.80, 0.85, 0.90]),
        "bfloat16": make_arm("bfloat16", [12, 2, 4], [0.80, 0.84, 0.899]),
    }
    summary = summarize_training({"arms": arms, "epochs": 5})
    # Rounds 2 and 3: 4/2 and 4/4.
    assert summary["bf16_train_speedup"] == pytest.approx(1.5)
    assert summary["bf16_train_speedup_min"] == pytest.approx(1.0)
    assert summary["float32_test_accuracy"] == 0.90
    assert summary["bf16_test_accuracy"] == 0.899
    assert bfloat16_verdict(summary).startswith("worth adopting")
    slower = {**summary, "bf16_train_speedup": 0.4}
    assert bfloat16_verdict(slower).startswith("not adopted: 0.40x")
    less_accurate = {**summary, "bf16_test_accuracy": 0.89}
    assert "0.0100 less test accuracy" in bfloat16_verdict(less_accurate)


def test_seeds_give_mean_and_minimum_and_the_train_stage_against_the_tutorial():
    runs = [
        {"seed": 42, "train_seconds": 300.0, "test_accuracy": 0.942},
        {"seed": 43, "train_seconds": 320.0, "test_accuracy": 0.938},
        {"seed": 44, "train_seconds": 310.0, "test_accuracy": 0.946},
    ]
    summary = summarize_seeds(runs, tutorial_seconds=100.0)
    assert summary["default_test_accuracy_mean"] == pytest.approx(0.942)
    assert summary["default_test_accuracy_min"] == 0.938
    assert summary["default_train_to_tutorial_ratio"] == pytest.approx(3.1)
    assert summary["default_seeds"] == runs
    assert "default_train_to_tutorial_ratio" not in summarize_seeds(runs, None)


def test_scaling_compares_time_per_image_and_peak_memory_with_the_smallest_size():
    def row(factor, preprocess_seconds, preprocess_mb, train_seconds, train_mb):
        return {
            "factor": factor,
            "training_images": 60000 * factor,
            "preprocess_seconds": preprocess_seconds,
            "preprocess_peak_rss_mb": preprocess_mb,
            "train_stage_seconds": train_seconds + 5,
            "train_seconds_per_epoch": train_seconds,
            "train_peak_rss_mb": train_mb,
        }

    summary = summarize_scaling(
        [row(1, 10, 500, 20, 800), row(4, 36, 1000, 100, 820), row(10, 100, 2500, 200, 900)]
    )
    # Per image against 1x: preprocess 0.9 and 1.0 (linear); train 1.25 at 4x.
    assert summary["preprocess_time_growth"] == pytest.approx(1.0)
    assert summary["train_time_growth"] == pytest.approx(1.25)
    assert summary["preprocess_peak_ratio"] == pytest.approx(5.0)
    assert summary["train_peak_ratio"] == pytest.approx(900 / 800)
    assert summary["largest_factor"] == 10


def test_the_report_gives_each_measured_figure_against_its_goal_and_skips_the_rest(
    capsys, tmp_path
):
    results = {
        "cpu_model": "test CPU",
        "default_test_accuracy_mean": 0.945,
        "default_test_accuracy_min": 0.92,
        "scaling": {"train_peak_ratio": 1.5},
    }
    rows = {row[0]: row for row in verdicts(results)}
    assert rows["default test accuracy, mean over seeds"][-1] is True
    assert rows["default test accuracy, min over seeds"][-1] is False
    assert rows["scaling: train peak RSS, largest/1x"][-1] is False
    assert len(rows) == 3
    report(results, tmp_path / "results.json")
    printed = capsys.readouterr().out
    assert "0.9450 >=    0.94 ok" in printed
    assert "1.50 <=    1.25 MISSED" in printed
    assert "serving" not in printed


def test_a_stage_peak_memory_is_its_own_not_the_benchmark_s(tmp_path):
    # 400 MB in this process, as the benchmark holds TensorFlow and models when it
    # times the later stages; the child allocates about 40 MB.
    held = np.ones(400 * 2**20 // 8)
    held[::4096] = 2.0
    child = "import numpy; a = numpy.ones(40 * 2**20 // 8); a[::512] = 2"
    _, peak_mb = timed_process([sys.executable, "-c", child], tmp_path)
    assert 40 < peak_mb < 300
    del held


def synthetic_raw(tmp_path) -> Path:
    """The four IDX files of 300 training and 60 test images, in tmp_path/raw."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, content in synthetic_idx_files(300, 60).items():
        (raw / name).write_bytes(content)
    return raw


def run_bench(tmp_path, monkeypatch, *options) -> dict:
    """``python -m bench`` on 300 synthetic training images, in this process; its results."""
    raw = synthetic_raw(tmp_path)
    # The benchmark works inside its temporary project; come back here afterwards.
    monkeypatch.chdir(tmp_path)
    results_path = tmp_path / "results.json"
    bench_main(["--raw", str(raw), "--results", str(results_path), *options])
    return json.loads(results_path.read_text())


def test_the_training_arms_run_end_to_end_on_tiny_data(tmp_path, monkeypatch, capsys):
    # The small mlp keeps the tutorial's arm quick; the preset is its own.
    results = run_bench(
        tmp_path, monkeypatch, "--only", "preset", "--epochs", "2", "--set", "train.model=mlp"
    )
    assert set(results["part_seconds"]) == {"training arms"}
    assert results["preset"]["model"] == FAST_PRESET["model"]
    assert len(results["seconds_per_epoch"]["tutorial"]) == 2
    assert len(results["seconds_per_epoch"]["preset"]) == FAST_PRESET["epochs"]
    assert results["preset_time_to_accuracy_ratio"] >= 0
    printed = capsys.readouterr().out
    assert "time-to-accuracy ratio (tutorial / preset)" in printed
    assert "default test accuracy" not in printed


def test_the_bfloat16_arm_needs_the_machines_own_kernels(tmp_path, monkeypatch, capsys):
    # oneDNN aborts the process on bfloat16 under the portable AVX2 cap: refused in one line.
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    with pytest.raises(SystemExit) as exit_:
        parse_arguments(["--only", "bf16"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "ONEDNN_MAX_CPU_ISA=AVX2 leaves out: run it with MNISTPIPE_PORTABLE=0" in error
    # Asked for every default part, the bench leaves it out and says so.
    assert "bf16" not in parse_arguments([]).parts
    assert "bf16 left out" in capsys.readouterr().out


def test_the_scaling_table_runs_end_to_end_on_tiny_data(tmp_path, monkeypatch, capsys):
    results = run_bench(
        tmp_path,
        monkeypatch,
        "--only",
        "scaling",
        "--scaling-factors",
        "1,2",
        "--set",
        "train.model=mlp",
    )
    rows = results["scaling"]["rows"]
    assert [row["training_images"] for row in rows] == [300, 600]
    assert all(row["preprocess_peak_rss_mb"] > 0 and row["train_peak_rss_mb"] > 0 for row in rows)
    assert results["scaling"]["params"]["preprocess"]["format"] == "tfrecord"
    assert "scaling: train peak RSS, largest/1x" in capsys.readouterr().out


def test_the_onednn_comparison_runs_each_setting_in_a_process_of_its_own(
    tmp_path, monkeypatch, capsys
):
    results = run_bench(
        tmp_path,
        monkeypatch,
        "--only",
        "onednn",
        "--onednn-rounds",
        "1",
        "--onednn-images",
        "100",
        "--set",
        "train.model=mlp",
    )
    assert set(results["part_seconds"]) == {"onednn"}
    # Each arm checked that TensorFlow ran the kernels it was asked for.
    assert [arm["onednn_kernels"] for arm in results["onednn_rounds"]["off"]] == [False]
    assert [arm["onednn_kernels"] for arm in results["onednn_rounds"]["on"]] == [True]
    assert results["onednn_images"] == 100
    for figure in ("train", "serving", "tutorial"):
        assert results[f"onednn_{figure}_speedup"] > 0
    printed = capsys.readouterr().out
    assert "oneDNN kernels: default training speed-up" in printed
    assert "the second of 2 epochs on 100 images" in printed
    assert results["onednn_single_image_latency_ratio"] > 0


def test_the_portable_kernels_are_priced_against_the_machines_own_in_processes_of_their_own(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    results = run_bench(
        tmp_path,
        monkeypatch,
        "--only",
        "portable",
        "--onednn-rounds",
        "1",
        "--onednn-images",
        "100",
        "--set",
        "train.model=mlp",
    )
    assert set(results["part_seconds"]) == {"portable"}
    rounds = results["portable_rounds"]
    assert [arm["same_bytes_everywhere"] for arm in rounds["portable"]] == [True]
    assert [arm["same_bytes_everywhere"] for arm in rounds["machine's own"]] == [False]
    for figure in ("train", "serving"):
        assert results[f"portable_{figure}_speed_ratio"] > 0
    assert "portable kernels / the machine's own, 1 rounds" in capsys.readouterr().out


def test_the_onednn_summary_takes_ratios_inside_rounds_and_sees_reruns_that_differ():
    def arm(train, serving, tutorial, weights, latency=1.0):
        return {
            "images": 100,
            "train_images_per_second": train,
            "serving_images_per_second": serving,
            "serving_single_ms_p50": latency,
            "tutorial_images_per_second": tutorial,
            "weights_sha256": weights,
        }

    arms = {
        "off": [arm(100, 1000, 50, "a"), arm(50, 500, 50, "a"), arm(100, 1000, 100, "a")],
        "on": [arm(200, 1500, 50, "b", 2.0), arm(150, 500, 100, "b"), arm(100, 2000, 100, "b")],
    }
    summary = summarize_onednn(arms)
    assert summary["onednn_train_speedup"] == 2.0  # rounds 2.0, 3.0, 1.0
    assert (summary["onednn_train_speedup_min"], summary["onednn_train_speedup_max"]) == (1, 3)
    assert summary["onednn_serving_speedup"] == 1.5
    assert summary["onednn_tutorial_speedup"] == 1.0
    assert summary["onednn_single_image_latency_ratio"] == 1.0  # rounds 2.0, 1.0, 1.0
    assert summary["onednn_images"] == 100
    assert summary["onednn_reruns_identical"] is True
    arms["on"][2]["weights_sha256"] = "c"
    assert summarize_onednn(arms)["onednn_reruns_identical"] is False


def test_an_interrupted_bench_ends_with_one_line_and_its_exit_status(
    tmp_path, monkeypatch, capsys
):
    import bench.__main__

    def interrupted(*arguments):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench.__main__, "measure_onednn", interrupted)
    raw = synthetic_raw(tmp_path)
    monkeypatch.chdir(tmp_path)
    status = bench_main(["--raw", str(raw), "--results", "results.json", "--only", "onednn"])
    assert status == 130
    error = capsys.readouterr().err
    assert error.startswith("error: bench: interrupted; the results file keeps"), error
    assert error.count("\n") == 1, error


def test_a_failing_onednn_arm_ends_the_bench_with_one_line_naming_it(tmp_path):
    # No project there: the arm's process fails; its last line of stderr says why.
    with pytest.raises(SystemExit) as stopped:
        measure_onednn(tmp_path, rounds=1, images=10)
    message = str(stopped.value.code)
    assert message.startswith("bench: the oneDNN off arm (TF_ENABLE_ONEDNN_OPTS=0) fail"), message
    assert "\n" not in message and "params.yaml" in message, message


def test_one_image_is_timed_in_a_process_set_up_as_a_one_image_server(tmp_path):
    import keras

    from mnistpipe.models import build_model
    from mnistpipe.serving import export_saved_model
    from tests.conftest import BUILT_IN

    keras.utils.set_random_seed(3)
    export_saved_model(build_model("mlp", 0.1, **BUILT_IN), tmp_path / "saved_model")
    figures = measure_serving(tmp_path / "saved_model", synthetic_raw(tmp_path), rounds=1)
    assert figures["serving_single_server"] == {
        "intra_op_threads": 1,
        **SERVER_ENVIRONMENT,
    }
    assert figures["serving_images_per_second"] > 0
    assert 0 < figures["serving_single_ms_p50"] <= figures["serving_single_ms_p90"]
    assert figures["serving_single_ms_p50_shared_threads"] > 0


def test_a_one_image_server_that_fails_ends_the_bench_with_one_line(tmp_path):
    with pytest.raises(
        SystemExit, match=r"timing one image .* exit status 1: error: .* no saved_"
    ):
        one_image_server(tmp_path / "no_model", synthetic_raw(tmp_path))


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["--only", "nope"], "--only names nope; expected some of pipeline"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--limit", "-1"], "--limit is -1; expected 0 (all) or a number of images"),
        (["--set", "train.epochs"], "--set train.epochs: expected SECTION.KEY=VALUE"),
        (["--set", "train.epoch=3"], "--set train.epoch=3: expected SECTION.KEY=VALUE"),
        (["--set", "train.epochs=0"], "train.epochs is 0; expected an integer >= 1"),
        (["--set", "train.epochs=["], "--set train.epochs=[: while parsing"),
        # seed and dataset are values, not sections (a TypeError traceback before).
        (["--set", "seed.x=1"], "--set seed.x=1: expected SECTION.KEY=VALUE"),
        (["--set", "dataset.as=1"], "--set dataset.as=1: expected SECTION.KEY=VALUE"),
        # Values PyYAML fails on with RecursionError and ValueError, not YAMLError.
        (["--set", "train.epochs=" + "[" * 10000], "maximum recursion depth exceeded"),
        (["--set", "train.epochs=" + "1" * 5000], "Exceeds the limit (4300 digits)"),
        (["--set", "train.epochs=2020-13-45"], "month must be in 1..12; expected a YAML value"),
        # A line break in the argument is shown escaped: the error stays one line.
        (["--set", "train.ep\nochs=3"], "--set train.ep\\nochs=3: expected SECTION.KEY=VALUE"),
        (["--raw", "/nonexistent"], "--raw /nonexistent is not a directory"),
        (["--results", "/nonexistent/dir/x.json"], "/nonexistent/dir is not a directory"),
    ],
)
def test_a_bad_argument_is_one_line_and_status_2_before_any_work(
    tmp_path, monkeypatch, capsys, arguments, fragment
):
    # --limit -1 and --set without '=' failed after the download (exit 1), --raw
    # nonexistent with a FileNotFoundError traceback, --results after the first part.
    monkeypatch.setattr("tempfile.mkdtemp", lambda **_: pytest.fail("the bench started work"))
    with pytest.raises(SystemExit) as exited, one_line_argument_errors("python -m bench"):
        bench_main(arguments)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: python -m bench: "), error
    assert fragment in error, error
    # A value thousands of characters long is quoted by its start only.
    assert len(error) < 500, error


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("train: [1, 2]\n", "params.yaml"),
        ("seed: 42\n", "params.yaml"),
        ("{{{", "params.yaml"),
    ],
    ids=["a-list-for-a-section", "sections-missing", "not-yaml"],
)
def test_a_broken_params_yaml_is_one_line_and_status_2_before_any_work(
    tmp_path, monkeypatch, capsys, content, fragment
):
    # The bench read params.yaml raw: the first section looked up in it was a
    # TypeError or KeyError traceback.
    (tmp_path / "params.yaml").write_text(content)
    monkeypatch.setattr("bench.__main__.REPOSITORY", tmp_path)
    monkeypatch.setattr("tempfile.mkdtemp", lambda **_: pytest.fail("the bench started work"))
    with pytest.raises(SystemExit) as exited, one_line_argument_errors("python -m bench"):
        bench_main([])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: python -m bench: "), error
    assert fragment in error, error


def test_training_flops_are_counted_from_the_layers_and_the_peak_from_the_cpu():
    from bench.arithmetic import peak, training_flops_per_image
    from mnistpipe.models import build_quickstart_cnn

    # Forward, input and weight gradients of Conv2D(32, 3), Dense(128), Dense(10),
    # less the first layer's input gradient, two FLOPs a multiply-add.
    macs = 26 * 26 * 9 * 32 + 26 * 26 * 32 * 128 + 128 * 10
    assert training_flops_per_image(build_quickstart_cnn((28, 28, 1), 10)) == 2 * (
        3 * macs - 26 * 26 * 9 * 32
    )
    cpuinfo = "model name\t: AMD EPYC\ncpu MHz\t\t: 2500.000\nflags\t\t: sse2 avx2 avx512f\n"
    figures = peak(cpuinfo, cores=2, isa_cap="")
    assert (figures["cpu_kind"], figures["peak_gflops"]) == ("AVX-512", 2 * 2.5 * 2 * 16 * 2)
    # oneDNN capped at AVX2 cannot use the wider vectors: the AVX2 peak.
    assert peak(cpuinfo, cores=2, isa_cap="AVX2")["peak_gflops"] == 2 * 2.5 * 2 * 8 * 2
    avx2_only = cpuinfo.replace(" avx512f", "")
    assert peak(avx2_only, cores=2, isa_cap="")["cpu_kind"] == "AVX2"


def test_the_speed_summary_takes_each_arm_s_ratio_to_the_first_inside_each_round():
    from bench.speed import summarize_speed

    def run(rate, weights):
        return {
            "images": 100,
            "epoch_seconds": 100 / rate,
            "validation_seconds": 10 / rate,
            "train_images_per_second": rate,
            "train_images_per_cpu_second": rate / 2,
            "train_flops_per_image": 45e6,
            "gflops": rate * 0.05,
            "peak": {"peak_gflops": 100.0, "cpu_kind": "AVX2"},
            "weights_sha256": weights,
        }

    summary = summarize_speed(
        {
            "before": [run(100, "a"), run(50, "a"), run(100, "a")],
            "default": [run(150, "b"), run(100, "b"), run(300, "c")],
        }
    )
    default = summary["speed_arms"]["default"]
    assert (default["speedup"], default["speedup_min"], default["speedup_max"]) == (2, 1.5, 3)
    assert summary["default_train_speedup"] == 2
    assert default["cpu_time_speedup"] == 2
    assert default["share_of_peak"] == 7.5 / 100
    assert default["validation_share"] == pytest.approx(0.1)
    assert summary["speed_arms"]["before"]["reruns_identical"] is True
    assert default["reruns_identical"] is False
    assert summary["cpu_kind"] == "AVX2"


def test_the_speed_comparison_runs_each_arm_in_a_process_of_its_own(tmp_path, monkeypatch, capsys):
    results = run_bench(
        tmp_path,
        monkeypatch,
        "--only",
        "speed",
        "--speed-rounds",
        "1",
        "--speed-images",
        "100",
        "--speed-arms",
        "before,default",
        "--speed-steps",
        "2",
    )
    assert set(results["speed_arms"]) == {"before", "default"}
    assert results["speed_arms"]["default"]["gflops"] > 0
    assert results["cpu_kind"] in ("AVX2", "AVX-512", "SSE")
    assert results["step_arms"]["fused_batch_norm"]["steps"] == 2
    assert "default training speed-up, issue 28 / before" in capsys.readouterr().out


def test_a_frontier_row_gives_mean_and_minimum_over_seeds_and_the_wall_against_the_tutorial():
    from bench.frontier import FRONTIER_PRESETS, summarize_preset

    def run(seconds, val, test, flipped):
        return {
            "train_seconds": seconds,
            "train_cpu_seconds": seconds * 2,
            "val_accuracy": val,
            "test_accuracy": test,
            "tta_test_accuracy": flipped,
        }

    settings = {**FRONTIER_PRESETS["3x"], "optimizer": "adam"}
    row = summarize_preset(
        "3x",
        settings,
        [run(300, 0.93, 0.932, 0.935), run(330, 0.94, 0.938, 0.941)],
        {"frontier_tutorial_seconds": 105.0, "frontier_tutorial_cpu_seconds": 315.0},
        {"none": 6000.0, "flip": 3000.0},
    )
    assert row["tutorial_multiple"] == 3.0
    assert row["tutorial_cpu_multiple"] == 2.0
    assert row["test_accuracy_mean"] == pytest.approx(0.935)
    assert (row["test_accuracy_min"], row["tta_test_accuracy_min"]) == (0.932, 0.935)
    assert row["tta_serving_cost"] == 2.0
    # The row names the preset's own settings, as a user pastes them into params.yaml.
    assert row["settings"] == FRONTIER_PRESETS["3x"]
    assert row["goal"] == 0.935


def test_the_default_train_params_are_the_3x_frontier_preset():
    from bench.frontier import FRONTIER_PRESETS
    from mnistpipe.params import load_params

    train = load_params(Path(__file__).resolve().parent.parent / "params.yaml")["train"]
    assert {key: train[key] for key in FRONTIER_PRESETS["3x"]} == FRONTIER_PRESETS["3x"]
