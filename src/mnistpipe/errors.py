"""The one exception type a user's mistake raises, and how a stage reports it."""

import sys
import time
from collections.abc import Callable


class PipelineError(Exception):
    """A problem the user can fix: bad params, bad data, an unreachable source.

    The message names the file, URL or params key, what was found and what was
    expected. Stages print it on one line, without a traceback.
    """


def run_stage(main: Callable[[], str], how_to_go_on: Callable[[], str] | None = None) -> None:
    """Run a stage's ``main()`` and turn its outcome into a one-line report and an exit code.

    ``main`` returns a one-line summary of what it wrote. A ``PipelineError``
    becomes ``error: ...`` on stderr and exit status 1. Ctrl-C (SIGINT) or
    SIGTERM becomes one line saying where the stage stopped and how to go on,
    and exit status 130 or 143 (``how_to_go_on``, if given, says how, else the
    stage's generic words). Anything else is a bug and keeps its traceback.
    """
    # Imported here: interrupts needs paths, and errors is imported by everything.
    from mnistpipe import interrupts

    started = time.perf_counter()
    try:
        with interrupts.signals_as_interrupts():
            summary = main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt as interruption:
        stage = interrupts.stage_name(main)
        next_step = how_to_go_on() if how_to_go_on else interrupts.how_to_go_on(stage)
        status = interrupts.report(stage, interruption, next_step)
        raise SystemExit(status) from None
    print(f"{summary} ({time.perf_counter() - started:.1f} s)", flush=True)
