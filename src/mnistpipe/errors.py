"""The one exception type a user's mistake raises, and how a stage reports it."""

import contextlib
import io
import math
import os
import re
import reprlib
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

# What a shell reports for a command whose reader went away (`| head -1`): 128 + SIGPIPE.
CLOSED_OUTPUT_STATUS = 128 + signal.SIGPIPE


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
    # Imported here: interrupts needs paths, and errors is imported by everything.
    from mnistpipe import interrupts

    started = time.perf_counter()
    try:
        with standard_output_guarded(), interrupts.signals_as_interrupts():
            summary = main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt as interruption:
        stage = interrupts.stage_name(main)
        next_step = how_to_go_on() if how_to_go_on else interrupts.how_to_go_on(stage)
        status = interrupts.report(stage, interruption, next_step)
        raise SystemExit(status) from None
    with standard_output_guarded():
        print(f"{summary} ({time.perf_counter() - started:.1f} s)", flush=True)


@contextlib.contextmanager
def standard_output_guarded() -> Iterator[None]:
    """Within the block, whatever standard output is, writing to it raises no traceback.

    - A reader that stops reading (``| head -1``, a closed pager) ends the command
      as it ends ``cat``: no message, exit status 141. Python ignores SIGPIPE, so
      the write raises BrokenPipeError instead; standard output then goes to
      /dev/null, so that Python's own flush at exit fails no more. Every file is
      written whole or not at all, so stopping there loses nothing.
    - A file name that the output's encoding cannot spell (non-UTF-8 bytes, or
      ``é`` under ``PYTHONIOENCODING=ascii``) is written with backslash escapes,
      as Python writes it to standard error, rather than raising
      UnicodeEncodeError.
    - A block that ends with any other exception (a ``PipelineError``, an
      interruption, ``sys.exit``) ends with the status that exception stands for:
      what it left buffered is written first, or dropped as above when the reader
      or the terminal has gone.
    """
    stream = sys.stdout
    errors = getattr(stream, "errors", None)
    if isinstance(stream, io.TextIOWrapper) and errors == "strict":
        stream.reconfigure(errors="backslashreplace")
    try:
        yield
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        _standard_output_dropped()
        raise SystemExit(CLOSED_OUTPUT_STATUS) from None
    except BaseException:
        # The block ends otherwise (an error, an interruption, sys.exit) with output
        # perhaps still buffered (a pipe or a file is not line-buffered). Python's own
        # flush at exit would meet the gone reader (EPIPE) or the gone terminal after
        # a SIGHUP (EIO), print "Exception ignored" and exit 120, not with the
        # status this exception stands for: flush here, and drop what cannot go.
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
        except (OSError, ValueError):
            _standard_output_dropped()
        raise
    finally:
        if isinstance(stream, io.TextIOWrapper) and errors == "strict":
            with contextlib.suppress(ValueError):
                stream.reconfigure(errors=errors)


def _standard_output_dropped() -> None:
    """Point file descriptor 1 at /dev/null, so that Python's own flush at exit fails no more.

    What is still buffered then goes there: its reader, or its terminal, is gone.
    """
    with contextlib.suppress(OSError, AttributeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)


def tensorflow_reason(error: Exception) -> str:
    """A TensorFlow error's message in one line, as a user can read it.

    TensorFlow puts the failed function's name in ``{{function_node ...}}`` before
    the reason, its op's name (`` [Op:DecodeImage]``) after it, and graph context
    on the lines below: only the reason is kept.
    """
    text = re.sub(r"\{\{.*?\}\}\s*", "", getattr(error, "message", None) or str(error)).strip()
    return (text.splitlines() or [type(error).__name__])[0].split(" [Op:")[0]
