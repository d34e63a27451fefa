"""The quality gate: compare the workspace's metrics with those committed at a git revision.

    python -m mnistpipe.gate --against main [--tolerance evaluate.accuracy=0.01 ...]

A metric is named ``FILE.KEY``: ``evaluate.macro_avg.f1`` is the key
``macro_avg.f1`` of ``metrics/evaluate.json``. Tolerances (how much each metric
may get *worse*) come from ``gate.tolerances`` in params.yaml, overridden or
extended by ``--tolerance``. Prints a Markdown table (metric, base, now, change,
verdict) and exits 1 when any metric got worse by more than its tolerance or
the workspace's test accuracy is below evaluate.min_accuracy (the bar judges an
experiment; the gate refuses to let one below it through), 2 on an error
(unknown revision, missing metric).
"""

import argparse
import sys
from pathlib import Path

from mnistpipe import interrupts, paths
from mnistpipe.commands import run_command
from mnistpipe.errors import PipelineError, shown
from mnistpipe.inputs import finite_number, parse_json_object, read_text
from mnistpipe.params import Tolerances, load_params
from mnistpipe.quality import bar_verdict, meets_bar

# For these metrics smaller is better; for every other one, larger is better.
LOWER_IS_BETTER_SUFFIXES = ("loss", "disagreements", "difference")

# Where a metrics file's keys lived in revisions committed before it existed: the
# per-class figures were part of metrics/evaluate.json until they got a file of their own.
FORMER_HOMES = {paths.CLASS_METRICS: paths.EVALUATE_METRICS}

# What a metrics file, committed or in the workspace, must hold.
METRICS_EXPECTED = "a JSON object of metrics"


def metric_file(metric: str) -> Path:
    return paths.METRICS / f"{metric.split('.', 1)[0]}.json"


def lower_is_better(metric: str) -> bool:
    return metric.rsplit(".", 1)[-1].endswith(LOWER_IS_BETTER_SUFFIXES)


def check_revision(revision: str) -> None:
    if (
        run_command("git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").returncode
        != 0
    ):
        raise PipelineError(f"revision {revision!r} does not exist in this git repository")


def read_committed(revision: str, path: Path) -> dict:
    """The JSON file ``path`` as committed at ``revision``, read from git itself."""
    committed = run_command("git", "show", f"{revision}:{path.as_posix()}")
    if committed.returncode != 0 and path in FORMER_HOMES:
        return read_committed(revision, FORMER_HOMES[path])
    if committed.returncode != 0:
        raise PipelineError(f"{path} does not exist at revision {revision!r}")
    return parse_json_object(committed.stdout, f"{path} at {revision}", METRICS_EXPECTED)


def read_workspace(path: Path) -> dict:
    text = read_text(
        path,
        "the JSON metrics dvc repro writes",
        missing=f"{path} does not exist in the workspace; run dvc repro",
    )
    return parse_json_object(text, str(path), METRICS_EXPECTED)


def lookup(metrics: dict, metric: str, source: str) -> float:
    value = metrics
    for part in metric.split(".")[1:]:
        if not isinstance(value, dict) or part not in value:
            raise PipelineError(f"metric {metric} does not exist in {source}")
        value = value[part]
    # finite_number, not math.isfinite: an integer past float's range (10**400)
    # makes math.isfinite raise OverflowError.
    number = finite_number(value)
    if number is None:
        raise PipelineError(
            f"metric {metric} in {source} is {shown(value)}; expected a finite number"
        )
    return number


def compare(tolerances: dict[str, float], revision: str) -> list[dict]:
    """One row per metric: base and current value, change, and whether it passes."""
    check_revision(revision)
    # Several metrics share a file: read each file once from git and once from disk.
    files = {}
    for path in sorted({metric_file(metric) for metric in tolerances}):
        files[path] = (read_committed(revision, path), read_workspace(path))
    rows = []
    for metric, tolerance in sorted(tolerances.items()):
        path = metric_file(metric)
        base_metrics, workspace_metrics = files[path]
        base = lookup(base_metrics, metric, f"{path} at {revision}")
        now = lookup(workspace_metrics, metric, f"{path} in the workspace")
        change = now - base
        worsening = change if lower_is_better(metric) else -change
        rows.append(
            {
                "metric": metric,
                "base": base,
                "now": now,
                "change": change,
                "tolerance": tolerance,
                "passed": worsening <= tolerance + 1e-12,
            }
        )
    return rows


def bar_check(min_accuracy: float) -> tuple[bool, str]:
    """Whether the workspace's model meets evaluate.min_accuracy, and the words saying so."""
    accuracy = lookup(
        read_workspace(paths.EVALUATE_METRICS), "evaluate.accuracy", str(paths.EVALUATE_METRICS)
    )
    return meets_bar(accuracy, min_accuracy), bar_verdict(accuracy, min_accuracy)


def markdown_table(rows: list[dict], revision: str) -> str:
    lines = [
        f"Quality gate against `{revision}`",
        "",
        "| metric | base | now | change | verdict |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        direction = "lower is better" if lower_is_better(row["metric"]) else "higher is better"
        verdict = "pass" if row["passed"] else "**FAIL**"
        lines.append(
            f"| {row['metric']} | {row['base']:.6g} | {row['now']:.6g} | {row['change']:+.6g} "
            f"| {verdict} (tolerance {row['tolerance']:g}, {direction}) |"
        )
    return "\n".join(lines)


def parse_tolerance(text: str) -> tuple[str, float]:
    """``METRIC=NUMBER`` from the command line, checked by the same rule as gate.tolerances."""
    metric, separator, value = text.partition("=")
    try:
        if not separator:
            raise ValueError
        tolerance = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--tolerance {text!r}: expected METRIC=NUMBER, e.g. evaluate.accuracy=0.005"
        ) from None
    try:
        return next(iter(Tolerances().check("--tolerance", {metric: tolerance}).items()))
    except PipelineError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@interrupts.handled("gate", "; nothing was written; run it again")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnistpipe.gate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--against",
        required=True,
        metavar="REV",
        help="git revision whose committed metrics are the base",
    )
    parser.add_argument(
        "--tolerance",
        action="append",
        default=[],
        type=parse_tolerance,
        metavar="METRIC=NUMBER",
        help="how much METRIC may get worse",
    )
    parser.add_argument(
        "--params", default=str(paths.PARAMS), help="the params file with gate.tolerances"
    )
    arguments = parser.parse_args(argv)
    try:
        params = load_params(arguments.params)
        tolerances = dict(params["gate"]["tolerances"])
        tolerances.update(dict(arguments.tolerance))
        if not tolerances:
            raise PipelineError(
                "no metric to gate: gate.tolerances in params.yaml is empty "
                "and no --tolerance was given"
            )
        rows = compare(tolerances, arguments.against)
        meets, verdict = bar_check(params["evaluate"]["min_accuracy"])
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown_table(rows, arguments.against))
    print(f"\nQuality bar: {'pass' if meets else '**FAIL**'}, {verdict}")
    failed = [row["metric"] for row in rows if not row["passed"]]
    if failed:
        print(f"\ngate failed: {', '.join(failed)} got worse than allowed", file=sys.stderr)
    if not meets:
        print(f"\ngate failed: {verdict}", file=sys.stderr)
    return 1 if failed or not meets else 0


if __name__ == "__main__":
    raise SystemExit(main())
