"""DVC's experiments as a table that a terminal of 80 columns shows whole.

    mnistpipe experiments        (make experiments)

`dvc exp show` gives every param, metric and dependency hash a column of its own:
at 80 or 120 columns its table collapses into "…", and its options cannot keep the
params that differ without the hashes beside them. This reads `dvc exp show --json`
and prints a line for each commit and experiment with the figures that decide
(test accuracy, loss, macro F1, the bar; the validation accuracy, on which to
choose), and under it the params that differ from the commit it was run from.
Queued and running experiments are listed with their state.
"""

import argparse
import json
import shutil
import sys
import textwrap

from mnistpipe import paths
from mnistpipe.commands import run_dvc
from mnistpipe.errors import PipelineError

# (heading, file, key, width): the figures that decide, each a column.
FIGURES = (
    ("test acc", paths.EVALUATE_METRICS.as_posix(), "accuracy", 8),
    ("loss", paths.EVALUATE_METRICS.as_posix(), "loss", 7),
    ("macro F1", paths.EVALUATE_METRICS.as_posix(), "macro_avg.f1", 8),
    ("bar", paths.EVALUATE_METRICS.as_posix(), "meets_min_accuracy", 7),
    ("val acc", paths.LIVE_METRICS.as_posix(), "eval.accuracy", 7),
)
NAME_WIDTH = 26
# The params a row's are compared with, and shown under it when they differ.
PARAMS_FILE = paths.PARAMS.as_posix()


def flat(mapping: dict, prefix: str = "") -> dict:
    """``{"train": {"epochs": 2}}`` as ``{"train.epochs": 2}``."""
    items = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            items.update(flat(value, f"{prefix}{key}."))
        else:
            items[f"{prefix}{key}"] = value
    return items


def file_data(data: dict, section: str, path: str) -> dict:
    return flat((((data.get(section) or {}).get(path) or {}).get("data")) or {})


def figure_text(value: object, key: str) -> str:
    if value is None:
        return "-"
    if key == "meets_min_accuracy":
        return "met" if value is True else "not met" if value is False else str(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def param_text(key: str, value: object) -> str:
    return f"{key}={json.dumps(value) if isinstance(value, (list, dict, str)) else value}"


def rows(shown: list) -> list[dict]:
    """One row a commit and an experiment: name, depth, state, figures, params that differ."""
    table = []
    commits = [entry for entry in shown if entry.get("rev") != "workspace"]
    head_params = file_data(commits[0].get("data") or {}, "params", PARAMS_FILE) if commits else {}
    for entry in shown:
        data = entry.get("data") or {}
        params = file_data(data, "params", PARAMS_FILE)
        is_workspace = entry.get("rev") == "workspace"
        table.append(row(entry, "workspace" if is_workspace else None, 0, params, head_params))
        for experiment_range in entry.get("experiments") or []:
            executor = experiment_range.get("executor") or {}
            for experiment in experiment_range.get("revs") or []:
                name = experiment_range.get("name") or experiment.get("name")
                table.append(row(experiment, name, 1, None, params, executor.get("state")))
    return table


def row(entry, name, depth, params, baseline, state=None) -> dict:
    data = entry.get("data") or {}
    if params is None:
        params = file_data(data, "params", PARAMS_FILE)
    figures = []
    for _, path, key, _ in FIGURES:
        figures.append(figure_text(file_data(data, "metrics", path).get(key), key))
    differ = [
        param_text(key, value) for key, value in params.items() if baseline.get(key) != value
    ]
    if entry.get("error"):
        state = state or "failed"
    return {
        "name": name or entry.get("name") or str(entry.get("rev", ""))[:7],
        "depth": depth,
        "state": state if state not in (None, "success") else None,
        "figures": figures,
        "params": sorted(differ),
    }


def render(table: list[dict], width: int) -> str:
    """The table as text no wider than ``width`` (at least 70 columns)."""
    width = max(width, 70)
    heading = f"{'Experiment':<{NAME_WIDTH}}" + "".join(
        f" {title:>{size}}" for title, _, _, size in FIGURES
    )
    lines = [heading, "-" * min(len(heading), width)]
    for entry in table:
        name = ("  " * entry["depth"] + entry["name"])[:NAME_WIDTH]
        if entry["state"]:
            figures = f" {entry['state']}"
        else:
            figures = "".join(
                f" {text:>{size}}"
                for text, (_, _, _, size) in zip(entry["figures"], FIGURES, strict=True)
            )
        lines.append(f"{name:<{NAME_WIDTH}}{figures}".rstrip())
        if entry["params"]:
            indent = " " * (2 * entry["depth"] + 4)
            lines.extend(
                textwrap.wrap(
                    ", ".join(entry["params"]),
                    width=width,
                    initial_indent=indent,
                    subsequent_indent=indent,
                    break_on_hyphens=False,
                )
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mnistpipe experiments",
        description=(
            "The commits and experiments of `dvc exp show`, a line each with test accuracy, "
            "loss, macro F1, the bar and validation accuracy, and under it the params that "
            "differ from its commit."
        ),
    )
    parser.add_argument(
        "--all-commits", action="store_true", help="every commit's experiments, not HEAD's only"
    )
    arguments = parser.parse_args(argv)
    command = ["exp", "show", "--json", *(["--all-commits"] if arguments.all_commits else [])]
    result = run_dvc(*command)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise PipelineError(f"dvc {' '.join(command)} failed: {last}")
    try:
        shown = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise PipelineError(f"dvc exp show --json printed no JSON ({error})") from None
    if not isinstance(shown, list):
        raise PipelineError("dvc exp show --json printed no list of commits")
    print(render(rows(shown), shutil.get_terminal_size().columns))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
