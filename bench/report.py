"""The benchmark's report: every figure printed against its goal, and bench/results.json."""

import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"

# Each figure's label, its key in bench/results.json (a dotted key reaches into
# a table), its goal, and its format. Figures of parts that did not run are skipped.
GOALS = [
    (
        "default test accuracy, mean over seeds",
        "default_test_accuracy_mean",
        ">=",
        0.940,
        "{:.4f}",
    ),
    ("default test accuracy, min over seeds", "default_test_accuracy_min", ">=", 0.930, "{:.4f}"),
    (
        "default train stage / tutorial's epochs",
        "default_train_to_tutorial_ratio",
        "<=",
        3.0,
        "{:.2f}",
    ),
    (
        "default training speed-up, issue 28 / before",
        "default_train_speedup",
        ">=",
        1.4,
        "{:.2f}",
    ),
    ("throughput ratio (quickstart_cnn / tutorial)", "throughput_ratio", ">=", 3.0, "{:.2f}"),
    (
        "time-to-accuracy ratio (tutorial / preset)",
        "preset_time_to_accuracy_ratio",
        ">=",
        5.0,
        "{:.2f}",
    ),
    ("test-time augmentation (flip) gain", "tta_gain", ">=", 0.0, "{:+.4f}"),
    (
        "TTA serving, images/s (batches of 1000)",
        "tta_serving_images_per_second",
        ">=",
        10000,
        "{:.0f}",
    ),
    ("TTA serving one image, ms (median)", "tta_serving_single_ms_p50", "<=", 2.0, "{:.2f}"),
    ("bfloat16 training speed-up per epoch", "bf16_train_speedup", ">=", 1.0, "{:.2f}"),
    ("oneDNN kernels: default training speed-up", "onednn_train_speedup", ">=", 1.0, "{:.2f}"),
    ("oneDNN kernels: serving speed-up", "onednn_serving_speedup", ">=", 1.0, "{:.2f}"),
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
    (
        "scaling: preprocess time per image, most/1x",
        "scaling.preprocess_time_growth",
        "<=",
        1.0,
        "{:.2f}",
    ),
    ("scaling: train time per image, most/1x", "scaling.train_time_growth", "<=", 1.0, "{:.2f}"),
    (
        "scaling: preprocess peak RSS, largest/1x",
        "scaling.preprocess_peak_ratio",
        "<=",
        1.25,
        "{:.2f}",
    ),
    ("scaling: train peak RSS, largest/1x", "scaling.train_peak_ratio", "<=", 1.25, "{:.2f}"),
]


def figure(results: dict, key: str):
    """The value at ``key`` (dotted for a table's entry), or None if that part did not run."""
    value = results
    for part in key.split("."):
        if not isinstance(value, dict) or value.get(part) is None:
            return None
        value = value[part]
    return value


def verdicts(results: dict) -> list[tuple[str, float, str, float, str, bool]]:
    """(label, value, relation, goal, format, met) of every goal whose figure was measured."""
    rows = []
    for label, key, relation, goal, form in GOALS:
        value = figure(results, key)
        if value is None:
            continue
        met = value >= goal if relation == ">=" else value <= goal
        rows.append((label, value, relation, goal, form, met))
    return rows


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


def report(results: dict, results_path: Path = RESULTS) -> None:
    print(f"\nCPU: {results['cpu_model']}")
    if results.get("peak_gflops"):
        print(
            f"CPU kind {results['cpu_kind']}, float32 peak {results['peak_gflops']:.0f} GFLOP/s "
            f"({results['peak_assumption']}; oneDNN capped at {results['peak_isa_cap']})"
        )
    print(f"{'figure':<46} {'measured':>10} {'goal':>10}")
    for label, value, relation, goal, form, met in verdicts(results):
        print(
            f"{label:<46} {form.format(value):>10} {relation}{goal:>8} {'ok' if met else 'MISSED'}"
        )
    if "serving_single_ms_p50_shared_threads" in results:
        print(
            "one image at a time, ms (median): in a process set up as a one-image server "
            f"(bench/serving.py) {results['serving_single_ms_p50']:.2f}, in the bench's own "
            f"{results['serving_single_ms_p50_shared_threads']:.2f}"
            + (
                f"; with flip TTA {results['tta_serving_single_ms_p50']:.2f} and "
                f"{results['tta_serving_single_ms_p50_shared_threads']:.2f}"
                if "tta_serving_single_ms_p50_shared_threads" in results
                else ""
            )
        )
    if "throughput_ratio" in results:
        print(
            f"throughput ratio min {results['throughput_ratio_min']:.2f}, "
            f"max {results['throughput_ratio_max']:.2f}; images/s: tutorial "
            f"{results['tutorial_images_per_second']:.0f}, quickstart_cnn "
            f"{results['quickstart_images_per_second']:.0f} "
            f"({results['quickstart_gflops']:.0f} GFLOP/s of training arithmetic); "
            f"quickstart_cnn ended at {results['quickstart_final_test_accuracy']:.4f}"
        )
    if "default_seeds" in results:
        seeds = ", ".join(
            f"{run['seed']}: {run['test_accuracy']:.4f} in {run['train_seconds']:.0f} s"
            for run in results["default_seeds"]
        )
        tutorial = results.get("tutorial_seconds")
        print(
            f"default params by seed: {seeds}; the tutorial's "
            f"{results.get('tutorial_epochs', '?')} epochs took "
            f"{tutorial or float('nan'):.1f} s"
        )
    if "preset_time_to_accuracy_ratio" in results:
        print(
            f"tutorial's final test accuracy {results['tutorial_final_test_accuracy']:.4f}: "
            f"tutorial reached it after {results['tutorial_seconds_to_accuracy']:.1f} s "
            f"(epoch {results['tutorial_epochs_to_accuracy']}), preset after "
            f"{results['preset_seconds_to_accuracy'] or float('nan'):.1f} s "
            f"(epoch {results['preset_epochs_to_accuracy']}; it ended at "
            f"{results['preset_final_test_accuracy']:.4f}); the ratio uses "
            f"{results['preset_time_to_accuracy_ratio_uses']}; without warm-ups "
            f"{results['preset_time_to_accuracy_ratio_without_warm_up']:.2f}"
        )
    if "bf16_train_speedup" in results:
        print(
            f"bfloat16 against float32, {results['precision_epochs']} epochs of the default "
            f"on {results['precision_training_images']} training images: "
            f"speed-up min {results['bf16_train_speedup_min']:.2f}, max "
            f"{results['bf16_train_speedup_max']:.2f}; test accuracy float32 "
            f"{results['float32_test_accuracy']:.4f}, bfloat16 "
            f"{results['bf16_test_accuracy']:.4f}"
            + (
                f"; bfloat16 serving {results['bf16_serving_images_per_second']:.0f} images/s, "
                f"one image {results['bf16_serving_single_ms_p50']:.2f} ms"
                if "bf16_serving_images_per_second" in results
                else ""
            )
        )
        print(f"bfloat16 verdict: {bfloat16_verdict(results)}")
    if "onednn_train_speedup" in results:
        print(
            f"oneDNN kernels on / off, {len(results['onednn_rounds']['on'])} rounds of one "
            f"process per setting, the second of 2 epochs on {results['onednn_images']} "
            "images: "
            + ", ".join(
                f"{label} {results[f'onednn_{figure}_speedup']:.2f}x (min "
                f"{results[f'onednn_{figure}_speedup_min']:.2f}, max "
                f"{results[f'onednn_{figure}_speedup_max']:.2f})"
                for label, figure in (
                    ("default training", "train"),
                    ("its serving", "serving"),
                    ("the tutorial's training", "tutorial"),
                )
            )
            + f"; one image's serving latency {results['onednn_single_image_latency_ratio']:.2f}x"
            + "; reruns identical within each setting: "
            + ("yes" if results["onednn_reruns_identical"] else "NO")
        )
    if "portable_train_speed_ratio" in results:
        print(
            f"portable kernels / the machine's own, {len(results['portable_rounds']['portable'])}"
            f" rounds of one process per setting, the second of 2 epochs on "
            f"{results['portable_images']} images: "
            + ", ".join(
                f"{label} {results[f'portable_{figure}_speed_ratio']:.2f}x (min "
                f"{results[f'portable_{figure}_speed_ratio_min']:.2f}, max "
                f"{results[f'portable_{figure}_speed_ratio_max']:.2f})"
                for label, figure in (("default training", "train"), ("its serving", "serving"))
            )
            + "; the same weights as the machine's own kernels: "
            + (
                "yes (this machine runs the portable ones anyway)"
                if results["portable_same_weights_as_own"]
                else "no (its own kernels add in another order)"
            )
        )
    if "speed_arms" in results:
        print(
            f"training speed, the default's second epoch on {results['speed_images']} images "
            "with its validation pass, one process an arm, alternated:"
        )
        for name, arm in results["speed_arms"].items():
            share = arm["share_of_peak"]
            print(
                f"  {name:<28} {arm['speedup']:.2f}x (min {arm['speedup_min']:.2f}, max "
                f"{arm['speedup_max']:.2f}; by CPU time {arm['cpu_time_speedup']:.2f}x), "
                f"{arm['train_images_per_second']:.0f} images/s, "
                f"{arm['gflops']:.1f} GFLOP/s"
                + (f" ({share:.0%} of peak)" if share is not None else "")
                + f", validation {arm['validation_share']:.0%} of the epoch, reruns identical: "
                + ("yes" if arm["reruns_identical"] else "NO")
            )
    if "step_arms" in results:
        print(
            "training steps alternated one by one in one process, per-image speed-up over the "
            "first (median step; 10th-percentile step): "
            + ", ".join(
                f"{name} {arm['speedup']:.2f}x; {arm['speedup_p10']:.2f}x"
                for name, arm in results["step_arms"].items()
            )
        )
    if "frontier" in results:
        print(
            "frontier (the tutorial's 5 epochs took "
            f"{results['frontier_tutorial_seconds']:.1f} s, "
            f"{results['frontier_tutorial_cpu_seconds']:.1f} CPU s; x tutorial by wall and by "
            "CPU time; test accuracy mean / min over seeds, chosen on validation):"
        )
        print(
            f"  {'preset':<6} {'x wall':>7} {'x CPU':>6} {'val':>7} {'test':>15} {'flip TTA':>15} "
            f"{'TTA serving cost':>16} {'goal':>6}"
        )
        for name, row in results["frontier"].items():
            met = "ok" if row["test_accuracy_mean"] >= row["goal"] else "MISSED"
            serving_cost = row["tta_serving_cost"]
            print(
                f"  {name:<6} {row['tutorial_multiple']:>7.2f} "
                f"{row['tutorial_cpu_multiple']:>6.2f} "
                f"{row['val_accuracy_mean']:>7.4f} "
                f"{row['test_accuracy_mean']:.4f}/{row['test_accuracy_min']:.4f} "
                f"{row['tta_test_accuracy_mean']:>7.4f}/{row['tta_test_accuracy_min']:.4f} "
                f"{f'{serving_cost:.2f}x' if serving_cost else 'unmeasured':>16} "
                f"{row['goal']:>6.3f} {met} "
                f"({row['seeds']} seeds)"
            )
    if results.get("gflops_per_arm"):
        print(
            "training arms, GFLOP/s: "
            + ", ".join(f"{name} {rate:.1f}" for name, rate in results["gflops_per_arm"].items())
        )
    if "scaling" in results:
        print("scaling (TFRecord, 1 epoch):")
        print(
            f"  {'factor':>6} {'images':>9} {'preprocess s':>12} {'MB':>6} "
            f"{'train epoch s':>13} {'MB':>6}"
        )
        for row in results["scaling"].get("rows", []):
            print(
                f"  {row['factor']:>5}x {row['training_images']:>9} "
                f"{row['preprocess_seconds']:>12.1f} {row['preprocess_peak_rss_mb']:>6.0f} "
                f"{row['train_seconds_per_epoch']:>13.1f} {row['train_peak_rss_mb']:>6.0f}"
            )
    if results.get("warm_up_seconds"):
        warm_up = ", ".join(
            f"{name} {seconds:.1f} s" for name, seconds in results["warm_up_seconds"].items()
        )
        print(f"warm-up (first epoch over a steady one): {warm_up}")
    if results.get("part_seconds"):
        parts = ", ".join(
            f"{name} {seconds:.0f} s" for name, seconds in results["part_seconds"].items()
        )
        print(f"time by part: {parts}")
    print(f"wrote {results_path}")


def bfloat16_verdict(results: dict) -> str:
    """Whether mixed_bfloat16 is worth adopting: faster at equal accuracy (within 0.2 points)."""
    speedup = results["bf16_train_speedup"]
    accuracy_loss = results["float32_test_accuracy"] - results["bf16_test_accuracy"]
    if speedup <= 1.0:
        return f"not adopted: {speedup:.2f}x the float32 speed, no faster"
    if accuracy_loss > 0.002:
        return f"not adopted: {speedup:.2f}x faster but {accuracy_loss:.4f} less test accuracy"
    return f"worth adopting: {speedup:.2f}x faster at equal accuracy"


def rounded(value):
    """Floats to 4 decimals, for a results file people read."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value
