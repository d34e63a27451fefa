"""The pipeline's stages timed one by one, as `dvc repro` runs them, in a copy of the project."""

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parent.parent
STAGES = ("download", "preprocess", "train", "evaluate", "export")
# What `dvc repro` needs from the working tree; data, models and caches are rebuilt.
PROJECT_FILES = ("dvc.yaml", "params.yaml", "stages", "src", ".dvc/config", ".dvcignore")


def copy_project(destination: Path) -> None:
    for name in PROJECT_FILES:
        source = REPOSITORY / name
        target = destination / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg*"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    subprocess.run(["git", "init", "-q"], cwd=destination, check=True)


def timed_process(command: list[str], root: Path) -> tuple[float, float]:
    """Run ``command`` in ``root``; return its wall seconds and its peak RSS in MB."""
    # The stages call `python`: make it this interpreter.
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=root, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = process.stdout.read()
    # wait4 gives this child's own resource use, not the sum over all children.
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed in {root}:\n{output.decode()}")
    return seconds, usage.ru_maxrss / 1024


def run_pipeline(root: Path) -> dict:
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    seconds, peak_mb = {}, {}
    for name in STAGES:
        print(f"pipeline: {stages[name]['cmd']} ...", flush=True)
        seconds[name], peak_mb[name] = timed_process(stages[name]["cmd"].split(), root)
        print(f"  {seconds[name]:.1f} s, peak RSS {peak_mb[name]:.0f} MB", flush=True)
    dvc = [sys.executable, "-m", "dvc"]
    timed_process([*dvc, "commit", "--force", "--quiet"], root)
    noop = [timed_process([*dvc, "repro"], root)[0] for _ in range(3)]
    print(f"  dvc repro with nothing changed: {statistics.median(noop):.2f} s", flush=True)
    return {"seconds": seconds, "peak_mb": peak_mb, "noop_repro_seconds": noop}
