"""The lock (uv.lock and its hashed exports requirements/*.txt) agrees with pyproject.toml.

`make setup` installs only what requirements/<extra>.txt names, so a pin changed in
pyproject.toml without `make lock` would silently not be installed: these tests catch that.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import uv

from tests.conftest import REPOSITORY

UV = uv.find_uv_bin()
LOCK_FILES = ("pyproject.toml", "uv.lock", "requirements")
# uv prints this when the lock no longer matches pyproject.toml.
OUT_OF_DATE = "needs to be updated"


# The extras that make an environment of their own (each with `dev`), as the Makefile's
# LOCKED_EXTRAS: `make setup EXTRA=...` installs requirements/<extra>.txt.
LOCKED_EXTRAS = ("cpu", "gpu")


def export_command(extra: str) -> list[str]:
    # The exact command `make lock` runs (its header line in the file records it too).
    return [UV, "export", "--format", "requirements-txt", "--extra", extra, "--extra", "dev",
            "--no-emit-project", "--frozen"]  # fmt: skip


def run_uv(arguments: list[str], root: Path, offline: bool) -> subprocess.CompletedProcess:
    # Offline through the environment, not `--offline`: the export's header records its flags.
    environment = {**os.environ, "UV_OFFLINE": "1"} if offline else os.environ
    return subprocess.run(
        arguments, cwd=root, env=environment, capture_output=True, text=True, timeout=120
    )


def check_lock(root: Path) -> subprocess.CompletedProcess:
    """`uv lock --check`: offline when the lock still matches (no resolution needed then)."""
    result = run_uv([UV, "lock", "--check"], root, offline=True)
    # A lock that disagrees makes uv resolve again, which needs the packages' metadata: with
    # an empty cache that fails offline for want of network, so ask the registry then.
    if result.returncode != 0 and "network was disabled" in result.stderr:
        result = run_uv([UV, "lock", "--check"], root, offline=False)
    return result


def lock_disagreements(root: Path) -> list[str]:
    """What in ``root`` disagrees: uv.lock with pyproject.toml, or an export with uv.lock."""
    problems = []
    check = check_lock(root)
    if check.returncode != 0:
        problems.append(f"uv.lock: {check.stderr.strip()}")
    for extra in LOCKED_EXTRAS:
        export = root / "requirements" / f"{extra}.txt"
        fresh = run_uv(export_command(extra), root, offline=True)
        if fresh.returncode != 0:
            problems.append(f"{export}: uv export failed: {fresh.stderr.strip()}")
        elif not export.is_file():
            problems.append(f"{export}: missing")
        elif export.read_text() != fresh.stdout:
            problems.append(f"{export}: differs from a fresh `uv export` of uv.lock")
    return problems


def copy_lock(destination: Path) -> Path:
    for name in LOCK_FILES:
        source = REPOSITORY / name
        if source.is_dir():
            shutil.copytree(source, destination / name)
        else:
            shutil.copy2(source, destination / name)
    return destination


def test_committed_lock_agrees_with_pyproject():
    assert lock_disagreements(REPOSITORY) == []


def test_every_locked_package_has_a_version_and_hashes():
    # `pip install --require-hashes` refuses a file with one unhashed or unpinned line.
    for extra in LOCKED_EXTRAS:
        requirements = (REPOSITORY / "requirements" / f"{extra}.txt").read_text()
        entries = [line for line in requirements.splitlines() if line and not line[0].isspace()]
        entries = [line for line in entries if not line.startswith("#")]
        assert len(entries) > 100, extra
        for entry in entries:
            assert "==" in entry and entry.endswith("\\"), entry
        assert "-e " not in requirements and "file://" not in requirements


def test_a_pin_changed_without_make_lock_is_found(tmp_path):
    root = copy_lock(tmp_path)
    pyproject = root / "pyproject.toml"
    pinned = re.search(r'"tqdm==[^"]+"', pyproject.read_text()).group()
    # An older release that exists, so that uv can resolve it and report the lock out of date.
    assert pinned != '"tqdm==4.67.1"'
    pyproject.write_text(pyproject.read_text().replace(pinned, '"tqdm==4.67.1"'))

    problems = lock_disagreements(root)

    assert len(problems) == 1 and problems[0].startswith("uv.lock:"), problems
    assert OUT_OF_DATE in problems[0]


def test_an_export_edited_by_hand_is_found(tmp_path):
    root = copy_lock(tmp_path)
    export = root / "requirements" / "cpu.txt"
    # One hash dropped, as a hand edit or a botched merge would.
    text = export.read_text()
    first_hash = re.search(r"    --hash=sha256:[0-9a-f]{64} \\\n", text).group()
    export.write_text(text.replace(first_hash, "", 1))

    assert lock_disagreements(root) == [f"{export}: differs from a fresh `uv export` of uv.lock"]


def fake_python(directory: Path, version: str) -> Path:
    script = directory / f"python{version}"
    script.write_text(f"#!/bin/sh\necho {version}\n")
    script.chmod(0o755)
    return script


def make_setup_with(python: str, root: Path) -> subprocess.CompletedProcess:
    # The venv's target alone, in a copy: `make setup` would also run apt.
    shutil.copy2(REPOSITORY / "Makefile", root / "Makefile")
    return subprocess.run(
        ["make", "-C", str(root), ".venv/.installed", f"PYTHON={python}"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_setup_with_a_python_tensorflow_has_no_wheels_for_says_which_to_use(tmp_path):
    (tmp_path / "project").mkdir()
    root = copy_lock(tmp_path / "project")
    for python, expected in (
        (fake_python(tmp_path, "3.14"), "is Python 3.14, expected 3.11 to 3.13"),
        (tmp_path / "no-such-python", "does not run; make setup needs Python 3.11 to 3.13"),
    ):
        result = make_setup_with(str(python), root)
        assert result.returncode != 0
        assert f"error: {python} {expected}" in result.stdout, result.stdout + result.stderr
        assert not (root / ".venv").exists()


def test_requires_python_is_the_range_the_makefile_accepts():
    pyproject = (REPOSITORY / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.11,<3.14"' in pyproject
    assert "3.11|3.12|3.13)" in (REPOSITORY / "Makefile").read_text()
