"""Every stage enters DVC's run-cache: params seen before restore their outputs, nothing retrains.

DVC saves a stage's run-cache entry only when each of its outs is cached or is a
stage-level metric or plot (dvc.yaml says why). These run the real `dvc repro` and
`dvc exp run` on synthetic data, in a temporary git and DVC project.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPOSITORY, set_params, use_this_virtualenv
from tests.test_pipeline import command_environment, dvc, git_commit, run
from tests.test_reproducible import synthetic_dvc_project

STAGES = ("download", "preprocess", "train", "evaluate", "export")
# What DVC 3.67 prints when it takes a stage's outputs from the run-cache
# (dvc/stage/cache.py, StageCache.restore).
CACHED = "Stage '{}' is cached - skipping run, checking out outputs"
# Every output the three model stages write, and the file that records them.
OUTPUTS = ("dvc.lock", "models", "metrics", "dvclive", "plots/predictions.csv", "plots/images")


def output_bytes(root: Path) -> dict[str, bytes]:
    files = {}
    for name in OUTPUTS:
        path = root / name
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                files[str(file.relative_to(root))] = file.read_bytes()
    return files


def assert_restored_from_the_run_cache(output: str) -> None:
    for stage in ("train", "evaluate", "export"):
        assert CACHED.format(stage) in output, output
    assert "Running stage" not in output, output


# Fast: DVC's own model of dvc.yaml, the same test `Stage.run` makes before saving an entry.
def test_every_stage_can_enter_the_run_cache():
    from dvc.repo import Repo

    with Repo(str(REPOSITORY)) as repo:
        stages = {stage.name: stage for stage in repo.index.stages}
        assert set(stages) == set(STAGES)
        for name, stage in stages.items():
            plain = [
                str(out)
                for out in stage.outs
                if not (out.use_cache or out.is_metric or out.is_plot)
            ]
            assert plain == [], f"{name}: cache: false outs that keep it out of the run-cache"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A committed run (train.epochs 2), then one of train.epochs 3 and the way back to 2."""
    root = synthetic_dvc_project(tmp_path_factory.mktemp("run_cache") / "project")
    dvc(root, "repro")
    git_commit(root, "the committed run")
    committed = output_bytes(root)

    set_params(root, "train", epochs=3)
    other = dvc(root, "repro")
    assert "Running stage 'train'" in other
    other_outputs = output_bytes(root)

    run(root, "git", "checkout", "--", "params.yaml")
    back = dvc(root, "repro")
    return root, committed, other_outputs, back


@pytest.mark.slow
def test_params_seen_before_restore_every_output_byte_for_byte(project):
    root, committed, other_outputs, back = project
    assert_restored_from_the_run_cache(back)
    assert output_bytes(root) == committed
    assert other_outputs["models/model.keras"] != committed["models/model.keras"]
    assert run(root, "git", "status", "--porcelain").stdout == ""
    assert "up to date" in dvc(root, "status")


@pytest.mark.slow
def test_an_experiment_of_params_seen_before_trains_nothing(project):
    root, committed, other_outputs, _ = project
    for epochs, expected in ((3, other_outputs), (2, committed)):
        output = dvc(root, "exp", "run", "-S", f"train.epochs={epochs}")
        assert_restored_from_the_run_cache(output)
        for name in ("metrics/evaluate.json", "metrics/export.json", "models/model.keras"):
            assert (root / name).read_bytes() == expected[name], name
    dvc(root, "checkout", "--force")


@pytest.mark.slow
def test_a_clone_that_pulls_the_run_cache_trains_nothing(project, tmp_path):
    root, committed, _, _ = project
    storage = tmp_path / "remote"
    dvc(root, "remote", "add", "--local", "storage", str(storage))
    dvc(root, "push", "--run-cache", "-r", "storage")
    assert (storage / "runs").is_dir()

    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(root), str(clone))
    dvc(clone, "remote", "add", "--local", "storage", str(storage))
    dvc(clone, "pull", "--run-cache", "-r", "storage")
    output = dvc(clone, "repro")
    assert "Running stage" not in output and "Data and pipelines are up to date." in output
    assert output_bytes(clone) == committed
    # DVC 3.67's `dvc push --run-cache` sends the entries and the outputs dvc.lock names
    # only: the runs of experiments not committed reach a teammate through the project's
    # push (the next test).


@pytest.mark.slow
def test_the_project_push_and_pull_share_the_runs_of_experiments_not_committed(project, tmp_path):
    root, _, other_outputs, _ = project
    storage = tmp_path / "team-remote"
    dvc(root, "remote", "add", "--local", "team", str(storage))
    run(root, sys.executable, "-m", "mnistpipe.remote", "push", "--remote", "team")

    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(root), str(clone))
    dvc(clone, "remote", "add", "--local", "team", str(storage))
    run(clone, sys.executable, "-m", "mnistpipe.remote", "pull", "--remote", "team", "--run-cache")
    # train.epochs=3 ran in the project but was never committed: its model, and the
    # metrics and plots git keeps (cache: false), exist only in the project's cache.
    output = dvc(clone, "exp", "run", "-S", "train.epochs=3")
    assert_restored_from_the_run_cache(output)
    assert output_bytes(clone) == other_outputs


# Here for this module's small project, which runs the export (shared to stay fast).
@pytest.mark.slow
def test_the_export_parity_shows_as_it_is_in_plain_dvc_metrics_show(project):
    root, committed, _, _ = project
    difference = json.loads(committed["metrics/export.json"])["max_probability_difference_ppm"]
    # DVC rounds every figure to 5 decimal places: as a probability (about 1e-7 here,
    # 1e-6 with the default params) the largest difference showed as 0.0.
    shown = dvc(root, "metrics", "show", "metrics/export.json", "--md")
    assert round(difference, 5) > 0, difference
    assert f"| {round(difference, 5)} " in shown, shown
    assert "| 10.0 " in shown, shown  # The tolerance, in the same unit.


def experiments_table(root: Path, columns: int) -> str:
    """`mnistpipe experiments` (what `make experiments` runs) in a terminal this wide."""
    environment = {**command_environment(), "COLUMNS": str(columns)}
    result = subprocess.run(
        [sys.executable, "-m", "mnistpipe.cli", "experiments"],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return result.stdout


@pytest.mark.slow
def test_the_experiments_and_a_queued_sweep_fit_80_and_120_columns(project):
    root, _, other_outputs, _ = project
    dvc(root, "exp", "run", "-S", "train.epochs=3", "-n", "three-epochs")
    dvc(root, "exp", "run", "--queue", "-S", "train.learning_rate=0.001,0.004")
    evaluation = json.loads(other_outputs["metrics/evaluate.json"])
    try:
        for columns in (80, 120):
            table = experiments_table(root, columns)
            lines = table.splitlines()
            assert all(len(line) <= columns for line in lines), table
            assert lines[0].split() == ["Experiment", "test", "acc", "loss", "macro", "F1"] + [
                "bar",
                "val",
                "acc",
            ]
            figures = (
                rf"^  three-epochs +{evaluation['accuracy']:.4f} +{evaluation['loss']:.4f} +"
                rf"{evaluation['macro_avg']['f1']:.4f} +(met|not met) +\d\.\d{{4}}$"
            )
            assert re.search(figures, table, re.M), table
            assert "      train.epochs=3" in lines, table
            assert len(re.findall(r"^  \S+ +queued$", table, re.M)) == 2, table
            assert "train.learning_rate=0.001" in table and "train.learning_rate=0.004" in table
            assert not re.search(r"[0-9a-f]{20}", table), "a column of hashes"
    finally:
        dvc(root, "queue", "remove", "--all")
        run(root, "git", "checkout", "--", ".")
        dvc(root, "checkout", "--force")


def documented_way_back() -> list[str]:
    """The commands the docs give to get back after a failed experiment, as typed."""
    text = (REPOSITORY / "docs" / "how-to" / "resume.md").read_text()
    section = text[text.index("## After a failed `dvc exp run`") :]
    block = section[section.index("```sh\n") + len("```sh\n") : section.index("```\n", 10)]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_the_documented_way_back_works_in_a_fresh_clone_with_no_remote_after_its_own_make_run(
    project, tmp_path
):
    root, _, _, _ = project
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(root), str(clone))
    # The committed run was made on another machine: its dvc.lock names a model and
    # metrics that no cache here holds (there is no remote).
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    for out in lock["stages"]["train"]["outs"]:
        out["md5"] = "0" * 32
    (clone / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    git_commit(clone, "a run made elsewhere")
    # The downloaded data, as the project fixture recorded it (synthetic: no download).
    shutil.copytree(root / "data/raw", clone / "data/raw")
    dvc(clone, "commit", "--force", "download")
    use_this_virtualenv(clone)
    run(clone, "make", "--no-print-directory", "run")
    model = (clone / "models/model.keras").read_bytes()
    locked = (clone / "dvc.lock").read_text()

    failed = run(
        clone, sys.executable, "-m", "dvc", "exp", "run", "-S", "train.epochs=0", check=False
    )
    assert failed.returncode != 0
    output = "".join(run(clone, "bash", "-c", command).stdout for command in documented_way_back())
    assert "Running stage" not in output, output
    assert run(clone, "git", "diff", "--stat", "HEAD", "--", "params.yaml").stdout == ""
    assert (clone / "models/model.keras").read_bytes() == model
    assert (clone / "dvc.lock").read_text() == locked
    assert "up to date" in dvc(clone, "status")
