"""The one exception type a user's mistake raises, and how a stage reports it."""

import math
import re
import reprlib
import sys
import time
from collections.abc import Callable
from typing import Any

# interrupts imports nothing of errors: the stage runner below sits above it.
from mnistpipe import interrupts


class PipelineError(Exception):
    """A problem the user can fix: bad params, bad data, an unreachable source.

    The message names the file, URL or params key, what was found and what was
    expected. Stages print it on one line, without a traceback.
    """


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 2, 60, 60
_SHOWN.maxlist = _SHOWN.maxdict = _SHOWN.maxtuple = _SHOWN.maxset = 4


def shown(value: Any) -> str:
    """``value`` as an error message shows it: short, whatever YAML or JSON made of it.

    A YAML alias can expand to millions of nested items and an integer can have
    more digits than Python will print (10**5000 written out); neither may
    flood or break the message.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"{'a negative' if value < 0 else 'an'} integer of about {digits} digits"
    return _SHOWN.repr(value)


def run_stage(main: Callable[[], str], how_to_go_on: Callable[[], str] | None = None) -> None:
    """Run a stage's ``main()`` and turn its outcome into a one-line report and an exit code.

    ``main`` returns a one-line summary of what it wrote. A ``PipelineError``
    becomes ``error: ...`` on stderr and exit status 1. Ctrl-C (SIGINT) or
    SIGTERM becomes one line saying where the stage stopped and how to go on,
    and exit status 130 or 143 (``how_to_go_on``, if given, says how, else the
    stage's generic words). Anything else is a bug and keeps its traceback.
    """
    started = time.perf_counter()
    try:
        with interrupts.standard_output_guarded(), interrupts.signals_as_interrupts():
            summary = main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt as interruption:
        stage = interrupts.stage_name(main)
        next_step = how_to_go_on() if how_to_go_on else interrupts.how_to_go_on(stage)
        status = interrupts.report(stage, interruption, next_step)
        raise SystemExit(status) from None
    with interrupts.standard_output_guarded():
        print(f"{summary} ({time.perf_counter() - started:.1f} s)", flush=True)


def tensorflow_reason(error: Exception) -> str:
    """A TensorFlow error's message in one line, as a user can read it.

    TensorFlow puts the failed function's name in ``{{function_node ...}}`` before
    the reason, its op's name (`` [Op:DecodeImage]``) after it, and graph context
    on the lines below: only the reason is kept.
    """
    text = re.sub(r"\{\{.*?\}\}\s*", "", getattr(error, "message", None) or str(error)).strip()
    return (text.splitlines() or [type(error).__name__])[0].split(" [Op:")[0]
