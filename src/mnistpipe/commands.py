"""Running git, dvc and gto beside the pipeline, with a bounded wait and a one-line error."""

import subprocess
import sys

from mnistpipe.errors import PipelineError

# Long enough for `dvc plots diff` or `dvc status` on a slow disk; short enough that
# a tool stuck on a lock or a prompt ends the command with an error, not a hang.
TIMEOUT_SECONDS = 300


def run_command(*command: str, timeout: float = TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
    """Run ``command`` with its output captured; a missing tool or a wait too long is an error."""
    try:
        # errors="replace": a file git shows or a tool's message need not be UTF-8; the
        # readers of the text (JSON, YAML) then report what they could not parse.
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise PipelineError(
            f"{command[0]} is not installed; expected it on PATH (make setup installs it)"
        ) from None
    except subprocess.TimeoutExpired:
        raise PipelineError(
            f"`{' '.join(command)}` did not finish in {timeout:g} s; expected it to end "
            "(is another git or dvc command holding the repository's lock?)"
        ) from None


def run_dvc(*arguments: str, timeout: float = TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
    """``dvc ARGUMENTS`` with this interpreter's DVC, as run_command runs it."""
    return run_command(sys.executable, "-m", "dvc", *arguments, timeout=timeout)
