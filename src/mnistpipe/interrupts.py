"""Ctrl-C (SIGINT), SIGTERM, SIGHUP, a closed output: one line or none, never a traceback.

Every file the pipeline writes appears whole or not at all, so an interrupted
stage needs no clean-up of its own: the signal only has to unwind the stack
(the temporary files go with it) and be reported. SIGTERM, which CI runners
and ``kill`` send, and SIGHUP, which a closed terminal or a dropped SSH session
sends (by default it ends Python on the spot, leaving its temporary files
behind), are turned into the same exception as Ctrl-C; the exit status is the
shell's convention, 128 + the signal's number (130 for SIGINT, 143 for
SIGTERM, 129 for SIGHUP). A standard output whose reader went away
(``| head -1``) ends a command quietly with 141, as it ends any Unix tool.
"""

import contextlib
import io
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from mnistpipe import paths

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# What a shell reports for a command whose reader went away (`| head -1`): 128 + SIGPIPE.
CLOSED_OUTPUT_STATUS = 128 + signal.SIGPIPE


class Interrupted(KeyboardInterrupt):
    """A handled signal arrived; a KeyboardInterrupt, which ``except Exception`` lets pass."""

    def __init__(self, signal_number: int):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name

    @property
    def exit_status(self) -> int:
        return 128 + self.signal_number


def as_interrupted(interruption: KeyboardInterrupt) -> Interrupted:
    """A bare KeyboardInterrupt (raised before our handler was installed) is a SIGINT."""
    if isinstance(interruption, Interrupted):
        return interruption
    return Interrupted(signal.SIGINT)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` once.

    A second signal while the first one unwinds the stack (closing files,
    removing temporary ones) is ignored, so the clean-up is not cut short by a
    traceback of its own. A signal the parent set to be ignored (``nohup``)
    stays ignored. Outside the main thread (a test runner's worker) the
    handlers cannot be installed, and the block runs as it is.

    The handler runs wherever Python happens to be, inside library code too, and
    a library may catch what it raises and raise something else (NumPy turns an
    exception raised while it warns into the TypeError it was handling). Any
    exception that leaves the block after a signal came is the signal's doing,
    so it leaves as ``Interrupted``, with the other one chained.
    """
    received: list[int] = []

    def handler(signal_number, frame):
        received.append(signal_number)
        if len(received) == 1:
            raise Interrupted(signal_number)

    previous = {}
    try:
        for signal_number in HANDLED_SIGNALS:
            if signal.getsignal(signal_number) is signal.SIG_IGN:
                continue
            previous[signal_number] = signal.signal(signal_number, handler)
    except ValueError:
        # Not the main thread: signals go to the main thread's handlers anyway.
        pass
    try:
        yield
    except Exception as casualty:
        if received:
            raise Interrupted(received[0]) from casualty
        raise
    finally:
        for signal_number, handler_before in previous.items():
            signal.signal(signal_number, handler_before)


def stage_name(main: Callable) -> str:
    """The stage a ``main()`` belongs to: the name of the script that defines it."""
    script = getattr(main, "__globals__", {}).get("__file__")
    return Path(script).stem if script else getattr(main, "__module__", "stage")


def how_to_go_on(stage: str) -> str:
    """What was done when ``stage`` was interrupted, and what to run next.

    The train stage says more (the epochs its checkpoint holds): it passes its
    own words to errors.run_stage.
    """
    if stage == "download":
        return (
            f"; no file in {paths.RAW}/ is half written (each appears once verified); "
            "run dvc repro again to fetch the rest"
        )
    if stage in ("preprocess", "train", "evaluate", "export"):
        return (
            "; its outputs are the previous ones or none, none half written; run dvc repro again"
        )
    return "; nothing was half written; run it again"


def report(what: str, interruption: KeyboardInterrupt, next_step: str) -> int:
    """Print the one-line report of an interruption; return the exit status to end with."""
    interruption = as_interrupted(interruption)
    # After a SIGHUP the terminal may be gone: the line then has nowhere to go (EIO).
    with contextlib.suppress(OSError):
        print(
            f"error: {what}: interrupted{'' if next_step.startswith(';') else ' '}{next_step} "
            f"({interruption.signal_name})",
            file=sys.stderr,
            flush=True,
        )
    return interruption.exit_status


def handled(what: str, next_step: str) -> Callable:
    """Decorate a command's ``main(argv) -> int``: an interrupt becomes one line and 130/143/129.

    A closed standard output ends it with 141 and no traceback (standard_output_guarded).
    """

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        def wrapper(*arguments, **keywords) -> int:
            try:
                with standard_output_guarded(), signals_as_interrupts():
                    return main(*arguments, **keywords)
            except KeyboardInterrupt as interruption:
                return report(what, interruption, next_step)

        wrapper.__name__ = main.__name__
        wrapper.__doc__ = main.__doc__
        wrapper.__wrapped__ = main
        return wrapper

    return decorate


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
