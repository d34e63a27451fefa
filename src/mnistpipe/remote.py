"""``dvc push`` and ``dvc pull`` whose failure is one line naming the remote.

``python -m mnistpipe.remote push [--remote NAME]`` (``make push``) runs the real
``dvc push`` with its output shown as it comes. When DVC fails (the server is
down, refuses the credentials, the connection drops half way) it prints its own
several-line report; this prints, last, one ``error:`` line that names the
remote and its URL, what DVC said and what to do. A push that stopped half way
leaves only whole files on the remote (DVC uploads each file before naming it
in the cache), so running it again sends the rest.
"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from mnistpipe.commands import run_dvc
from mnistpipe.errors import PipelineError
from mnistpipe.interrupts import standard_output_guarded

ACTIONS = {"push": "to", "pull": "from"}


def describe(name: str | None, action: str = "push") -> str:
    """``'NAME' (URL)`` for the remote ``name``, or for the default remote when None."""
    # Outside a DVC repository `dvc config --list` still exits 0, with the system and
    # global levels only: a remote set globally would be pushed to from a folder that
    # has nothing to push, and no remote at all read as "no default remote is set".
    # `dvc root` is what fails there.
    root = run_dvc("root")
    if root.returncode != 0:
        raise PipelineError(
            f"{Path.cwd()}: {dvc_reason(root.stdout + root.stderr)}; expected a DVC "
            "repository: run it in the project's folder (or one under it), or make one "
            "with `dvc init`"
        )
    # `dvc config --list` prints each level's settings in turn, one KEY=VALUE a line:
    # system, global, repo, then local. Read into one dict, a key's last line wins,
    # which is DVC's own precedence (local over repo over global over system).
    # Not `dvc remote list`: its table wraps a URL longer than the terminal is wide
    # onto the next line (80 columns when the output is not a terminal).
    listing = run_dvc("config", "--list")
    if listing.returncode != 0:
        # Not "has: none": the remotes are unknown, and DVC's reason says why.
        raise PipelineError(
            f"`dvc config --list` failed: {dvc_reason(listing.stdout + listing.stderr)}; "
            "expected the DVC repository's settings (run it in the project's folder)"
        )
    settings = dict(line.partition("=")[::2] for line in listing.stdout.splitlines())
    remotes = {
        key.removeprefix("remote.").removesuffix(".url"): url
        for key, url in settings.items()
        if key.startswith("remote.") and key.endswith(".url")
    }
    known = ", ".join(sorted(remotes)) or "none"
    if name is None:
        name = settings.get("core.remote", "")
        if not name:
            raise PipelineError(
                f"no default DVC remote is set (`dvc remote list` has: {known}); expected one "
                "added with `dvc remote add -d NAME URL` (README, Working as a team), or "
                "made the default with `dvc remote default NAME`, or named with --remote NAME "
                f"(make {action} REMOTE=NAME)"
            )
    if name not in remotes:
        raise PipelineError(f"no DVC remote named {name!r} (`dvc remote list` has: {known})")
    return f"{name!r} ({remotes[name]})"


def dvc_reason(output: str) -> str:
    """The gist of DVC's failure: its last ``ERROR:`` line, without the boilerplate."""
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    reason = errors[-1] if errors else (output.strip().splitlines() or ["no output"])[-1]
    reason = re.sub(r"^ERROR:\s*(unexpected error - )?", "", reason)
    return reason.split(" - ", 1)[-1].strip() if reason.startswith("failed to") else reason


# What DVC says when a directory's listing on the remote is not JSON: the object a
# push killed half way left there, cut short (WebDAV and S3 servers keep what arrived).
_HALF_WRITTEN = re.compile(r"object (\w+\.dir) is corrupted")


def _run_dvc_streamed(command: list[str]) -> tuple[int, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "dvc", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    for line in process.stdout:
        # Shown as it comes: a long transfer is not silent.
        print(line, end="", flush=True)
        output.append(line)
    return process.wait(), "".join(output)


def _remove_half_written(remote: str | None, oid: str) -> bool:
    """Delete the remote's copy of ``oid`` if this repository's cache holds a good one."""
    from dvc.repo import Repo

    with Repo() as repo:
        try:
            json.loads(Path(repo.cache.repo.oid_to_path(oid)).read_text())
        except (OSError, ValueError):
            return False  # The local copy is the broken one: not the remote's to mend.
        odb = repo.cloud.get_remote_odb(remote, "push")
        odb.fs.rm(odb.oid_to_path(oid))
    return True


def transfer(action: str, remote: str | None, jobs: int | None = None) -> None:
    """Run ``dvc push``/``dvc pull``; raise a ``PipelineError`` naming the remote if it fails.

    A push that finds a directory listing cut short on the remote (a push killed
    half way left it) deletes that one object and pushes again, once.
    """
    where = describe(remote, action)
    command = [action, *(["--remote", remote] if remote else [])]
    command += ["--jobs", str(jobs)] if jobs else []
    status, output = _run_dvc_streamed(command)
    half_written = _HALF_WRITTEN.search(output) if status and action == "push" else None
    if half_written and _remove_half_written(remote, half_written.group(1)):
        print(
            f"warning: removed {half_written.group(1)}, cut short on remote {where} by an "
            "interrupted push; pushing again",
            file=sys.stderr,
            flush=True,
        )
        status, output = _run_dvc_streamed(command)
    if status != 0:
        raise PipelineError(
            f"dvc {action} {ACTIONS[action]} remote {where} failed: "
            f"{dvc_reason(output)}; "
            f"expected the server to be reachable and to accept the credentials in "
            f".dvc/config.local (`dvc remote modify --local`); run `make {action}` again once "
            f"it is: what was already sent is not sent twice"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnistpipe.remote", description=__doc__)
    parser.add_argument("action", choices=sorted(ACTIONS))
    parser.add_argument(
        "-r", "--remote", metavar="NAME", help="the DVC remote (default: the default)"
    )
    parser.add_argument("--jobs", type=int, metavar="N", help="parallel transfers (DVC's -j)")
    arguments = parser.parse_args(argv)
    try:
        with standard_output_guarded():
            transfer(arguments.action, arguments.remote, arguments.jobs)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"error: dvc {arguments.action} interrupted; run it again: what was sent stays",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
