"""A part of the bench that runs in a Python process of its own, its figures sent back in a file.

TensorFlow reads some settings once, when it loads (TF_ENABLE_ONEDNN_OPTS,
TF_ONEDNN_ASSUME_FROZEN_WEIGHTS, its thread pools), so the parts that compare
them run each setting in a process of its own: ``python -m MODULE ARGUMENTS...
FIGURES_FILE``, the module writing its figures to the file named last.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_REPOSITORY = Path(__file__).resolve().parent.parent


def figures_from_child(
    module: str, arguments: list[str], environment: dict[str, str], what: str
) -> dict:
    """Run ``module`` with ``arguments`` and ``environment`` added to this one's; its figures.

    The figures come back in a file, not on standard output: oneDNN's and
    TensorFlow's C code may write there too (ONEDNN_VERBOSE), and flush it after
    Python's last line. A child that fails ends the bench with one line naming
    ``what`` it was, its exit status and the last line of its standard error.
    """
    with tempfile.TemporaryDirectory() as scratch:
        figures_path = Path(scratch) / "figures.json"
        completed = subprocess.run(
            [sys.executable, "-m", module, *arguments, str(figures_path)],
            cwd=_REPOSITORY,
            env={**os.environ, **environment},
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode == 0 and figures_path.is_file():
            return json.loads(figures_path.read_text())
    # Its last line says why (a stage-style error, or an exception's own line).
    reason = (completed.stderr.strip().splitlines() or ["no message"])[-1]
    sys.exit(f"bench: {what} failed with exit status {completed.returncode}: {reason}")
