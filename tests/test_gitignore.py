"""The repository's .gitignore keeps a virtual environment out of git, however it is made."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY


@pytest.mark.parametrize("kind", ["directory", "symlink"])
def test_a_venv_folder_or_symlink_is_ignored(tmp_path, kind):
    # `/.venv/` matched only a directory: a `.venv` that is a symlink to an
    # environment kept elsewhere (a common set-up) showed as untracked.
    shutil.copy(REPOSITORY / ".gitignore", tmp_path / ".gitignore")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    venv = tmp_path / ".venv"
    if kind == "symlink":
        environment = tmp_path.parent / f"{tmp_path.name}-environment"
        environment.mkdir()
        venv.symlink_to(environment)
    else:
        venv.mkdir()
        (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ".venv" not in status, status
    assert Path(tmp_path / ".venv").exists()
