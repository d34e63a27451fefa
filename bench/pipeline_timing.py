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
PROJECT_FILES = (
    "dvc.yaml",
    "params.yaml",
    "stages",
    "src",
    ".dvc/config",
    ".dvcignore",
    # The train stage's lineage records its hash, and dvc.yaml lists it as a dep.
    "uv.lock",
    # preprocess depends on the image folder's place (dataset: folder) in every run.
    "data/images/README.md",
)


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


# Runs the command as its own child and prints that child's peak RSS last. Linux
# counts into a process's peak RSS the memory of whatever exec'd into it: run
# straight from the benchmark, which holds TensorFlow and models by then, every
# stage would report at least the benchmark's own size. Exec'd from this small
# launcher instead, it starts from the launcher's few MB.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
print(f"\\n{sys.argv[1]} {usage.ru_maxrss}", flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""
_PEAK_MARK = "bench-peak-rss-kb"


def timed_process(command: list[str], root: Path) -> tuple[float, float]:
    """Run ``command`` in ``root``; return its wall seconds and its peak RSS in MB."""
    # The stages call `python`: make it this interpreter.
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    started = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, _PEAK_MARK, *command],
        cwd=root,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    output = process.stdout.decode(errors="replace")
    if process.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed in {root}:\n{output}")
    # wait4 in the launcher gives the command's own peak, not the sum over its children.
    peak_kb = int(output.rstrip().rsplit(_PEAK_MARK, 1)[1])
    return seconds, peak_kb / 1024


def run_pipeline(root: Path, skip=()) -> dict:
    """Run and time each stage but those in ``skip`` (whose outputs are there already)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    seconds, peak_mb = {}, {}
    for name in STAGES:
        if name in skip:
            continue
        print(f"pipeline: {stages[name]['cmd']} ...", flush=True)
        seconds[name], peak_mb[name] = timed_process(stages[name]["cmd"].split(), root)
        print(f"  {seconds[name]:.1f} s, peak RSS {peak_mb[name]:.0f} MB", flush=True)
    dvc = [sys.executable, "-m", "dvc"]
    timed_process([*dvc, "commit", "--force", "--quiet"], root)
    noop = [timed_process([*dvc, "repro"], root)[0] for _ in range(3)]
    print(f"  dvc repro with nothing changed: {statistics.median(noop):.2f} s", flush=True)
    return {"seconds": seconds, "peak_mb": peak_mb, "noop_repro_seconds": noop}
