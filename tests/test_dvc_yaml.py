"""dvc.yaml declares what each stage really depends on, so DVC reruns exactly what changed."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPOSITORY

PACKAGE = REPOSITORY / "src" / "mnistpipe"
STAGES = ("download", "preprocess", "train", "evaluate", "export")


def module_path(name: str) -> Path:
    """The file of module ``name`` (``mnistpipe`` or ``mnistpipe.x``) in src/mnistpipe/."""
    if name == "mnistpipe":
        return PACKAGE / "__init__.py"
    return PACKAGE / (name.removeprefix("mnistpipe.").replace(".", "/") + ".py")


def imported_modules(path: Path) -> set[str]:
    """The mnistpipe modules ``path`` imports, directly or through other mnistpipe modules."""
    found: set[Path] = set()
    pending = [path]
    while pending:
        for node in ast.walk(ast.parse(pending.pop().read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mnistpipe"):
                # `from mnistpipe import paths` imports the package and its module paths.
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if not name.startswith("mnistpipe"):
                    continue
                # Importing a submodule runs the package's __init__ first.
                for module in (module_path("mnistpipe"), module_path(name)):
                    if module.is_file() and module not in found:
                        found.add(module)
                        pending.append(module)
    return {module.relative_to(REPOSITORY).as_posix() for module in found}


@pytest.fixture(scope="module")
def stages():
    return yaml.safe_load((REPOSITORY / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_lists_its_script_and_every_shared_module_it_imports(stages, stage):
    script = f"stages/{stage}.py"
    deps = set(stages[stage]["deps"])
    assert stages[stage]["cmd"] == f"python {script}"
    assert script in deps
    needed = imported_modules(REPOSITORY / script)
    assert needed - deps == set(), f"{stage} imports modules dvc.yaml does not list"
    listed_modules = {dep for dep in deps if dep.startswith("src/")}
    assert listed_modules - needed == set(), f"{stage} lists modules it does not import"


# Every JSON file of figures the pipeline writes, all kept in git.
FIGURES_FILES = (
    "metrics/data.json",
    "metrics/data_report.json",
    "dvclive/metrics.json",
    "metrics/train.json",
    "metrics/evaluate.json",
    "metrics/export.json",
    "metrics/classes.json",
    "metrics/lineage.json",
)


def metrics_shown(*targets: str) -> dict[str, dict]:
    """`dvc metrics show --json` in this repository: each file's figures, by path."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "metrics", "show", "--json", *targets],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    shown = json.loads(result.stdout)[""]["data"]
    return {path: file["data"] for path, file in shown.items()}


def flat_keys(figures: dict, prefix: str = "") -> set[str]:
    """The dotted names of the figures; lists (the data report's paths) are no figures."""
    keys = set()
    for key, value in figures.items():
        if isinstance(value, dict):
            keys |= flat_keys(value, f"{prefix}{key}.")
        elif not isinstance(value, list):
            keys.add(f"{prefix}{key}")
    return keys


def test_the_figures_files_are_kept_in_git_as_stage_metrics_or_plots(stages):
    declared = {}
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for out in stage.get(kind, []):
                if isinstance(out, dict):
                    path, settings = next(iter(out.items()))
                    declared[path] = (kind, settings.get("cache", True))
    for path in FIGURES_FILES:
        kind, cache = declared[path]
        # Kept in git (cache: false), and still in the run-cache (a metric or a plot).
        assert cache is False and kind in ("metrics", "plots"), path


def test_dvc_metrics_show_is_at_most_15_columns_and_every_figure_is_still_shown():
    if not all((REPOSITORY / path).is_file() for path in FIGURES_FILES):
        pytest.skip("the committed run's figures files are not in this checkout")
    table = metrics_shown()
    columns = {key for figures in table.values() for key in flat_keys(figures)}
    assert 1 + len(columns) <= 15, sorted(columns)  # the Path column, then one per figure
    assert {"accuracy", "loss", "macro_avg.f1", "meets_min_accuracy", "eval.accuracy"} <= columns
    for path in FIGURES_FILES:
        on_disk = flat_keys(json.loads((REPOSITORY / path).read_text()))
        shown = metrics_shown(path)[path]
        assert flat_keys(shown) == on_disk, f"`dvc metrics show {path}` loses figures"


def test_the_export_parity_of_the_committed_run_shows_as_it_is_at_dvc_s_5_places():
    export = REPOSITORY / "metrics/export.json"
    if not export.is_file():
        pytest.skip("the committed run's metrics/export.json is not in this checkout")
    figure = json.loads(export.read_text())["max_probability_difference_ppm"]
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "metrics", "show", "metrics/export.json", "--md"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    # In parts per million, a difference of about 1e-6 keeps its digits (as a
    # probability DVC showed it as 0.0).
    assert 0 < round(figure, 5) <= 10
    assert f"| {round(figure, 5)} " in result.stdout, result.stdout
