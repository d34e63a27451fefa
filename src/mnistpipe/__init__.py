"""Shared code of the Fashion-MNIST / MNIST DVC pipeline.

Each stage script under ``stages/`` is a short ``main()``; everything it needs
more than once (params, IDX parsing, models, metrics, atomic file writing)
lives here, once.
"""

import os
import re
import sys
import tempfile

# TensorFlow's C++ start-up chatter (CPU feature notes, oneDNN notices) buries
# the stages' own one-line reports; keep its warnings and errors only.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# Lines TensorFlow 2.21 logs while it loads, before absl's logging is set up, so
# that TF_CPP_MIN_LOG_LEVEL cannot hold them back (abseil/abseil-cpp#1957): an
# INFO line ("I0000 ...") and its continuation, and absl's notice about them.
_START_UP_NOTICE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|I\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\]"
    r"|To enable the following instructions:"
)


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its INFO start-up notices dropped, its other output kept.

    A stage's stderr then holds what matters: its own one-line error, or
    TensorFlow's real warnings.
    """
    if "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as captured:
        saved_stderr = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401 (imported for its side effect: loaded once)
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not _START_UP_NOTICE.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


_import_tensorflow_quietly()
