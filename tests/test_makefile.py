"""The Makefile's small promises: help shows values, ci-report sets up, lock keeps times."""

import shutil
import subprocess

from tests.conftest import REPOSITORY, use_this_virtualenv


def make(root, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(root), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_help_shows_the_values_of_the_variables_not_their_names():
    shown = make(REPOSITORY, "help", "REPORT=weekly.md", "BASE=develop").stdout
    assert "$(" not in shown
    assert "against BASE=develop into weekly.md and ci-report/" in shown
    assert "make experiments" in shown


def test_ci_report_sets_up_first_in_a_clone_without_a_virtualenv(tmp_path):
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPOSITORY / name, tmp_path / name)
    shutil.copytree(REPOSITORY / "requirements", tmp_path / "requirements")
    planned = make(tmp_path, "-n", "ci-report").stdout
    assert "-m venv .venv" in planned
    assert planned.index("-m venv .venv") < planned.index("dvc repro")


def test_a_lock_that_changes_nothing_leaves_every_file_setup_depends_on_as_it_was(tmp_path):
    shutil.copy2(REPOSITORY / "Makefile", tmp_path / "Makefile")
    shutil.copy2(REPOSITORY / "uv.lock", tmp_path / "uv.lock")
    (tmp_path / ".git" / "info").mkdir(parents=True)
    use_this_virtualenv(tmp_path)
    watched = [tmp_path / "pyproject.toml", tmp_path / "uv.lock"]
    watched += sorted((tmp_path / "requirements").glob("*.txt"))
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in watched}
    make(tmp_path, "lock")
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in watched} == before
    assert not list((tmp_path / "requirements").glob("*.tmp"))
    # And so setup has nothing to do.
    assert "pip install" not in make(tmp_path, "-n", "setup").stdout
