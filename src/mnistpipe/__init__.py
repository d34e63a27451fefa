"""Shared code of the Fashion-MNIST / MNIST DVC pipeline.

Each stage script under ``stages/`` is a short ``main()``; everything it needs
more than once (params, IDX parsing, models, metrics, atomic file writing)
lives here, once.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# TensorFlow's C++ start-up chatter (CPU feature notes, oneDNN notices) buries
# the stages' own one-line reports; keep its warnings and errors only.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI,
# AVX-512 BF16, AVX-VNNI or AMX. On plain AVX2 CPUs they are off, yet they train
# and serve the default convnet faster there, with reruns still identical
# (docs/explanation/speed.md: `python -m bench --only onednn` measures it). Set before
# TensorFlow loads; TF_ENABLE_ONEDNN_OPTS=0 in the environment still turns them
# off, and metrics/lineage.json records which kernels trained a model.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# The same bytes on every x86-64 machine (docs/explanation/reproducibility.md). oneDNN picks
# its kernels' instruction set when it runs: on an AVX-512 machine its convolutions
# add in another order than on an AVX2 one, and after 18 epochs the test accuracy
# differs (0.9310 against 0.9325). Capped at AVX2, every AVX2 or AVX-512 CPU, AMD or
# Intel, runs the same kernels. The intra-op thread count splits the sums too (the
# fused batch norm's statistics above all: 1 and 2 threads train other weights), so
# it is 2 on every machine, as on the 2-core machines the committed run comes from
# (tests/test_portable.py checks both). MNISTPIPE_PORTABLE=0 leaves both to the
# machine (faster on a big AVX-512 one: `python -m bench --only portable` prices it);
# metrics/lineage.json records which. A value already in the environment wins.
PORTABLE_INSTRUCTION_SET = "AVX2"
PORTABLE_THREADS = "2"
if os.environ.get("MNISTPIPE_PORTABLE", "1") != "0":
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", PORTABLE_INSTRUCTION_SET)
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", PORTABLE_THREADS)

__version__ = "0.1.0"

# Lines TensorFlow 2.21 logs while it loads, before absl's logging is set up, so
# that TF_CPP_MIN_LOG_LEVEL cannot hold them back (abseil/abseil-cpp#1957): an
# INFO line ("I0000 ...") and its continuation, and absl's notice about them.
_START_UP_NOTICE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|I\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\]"
    r"|To enable the following instructions:"
)


@contextlib.contextmanager
def _start_up_notices_dropped() -> Iterator[None]:
    """Within the block, file descriptor 2 goes to a file; then all but the notices go on.

    A stage's stderr then holds what matters: its own one-line error, or
    TensorFlow's real warnings.
    """
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as captured:
        saved_stderr = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not _START_UP_NOTICE.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run with the start-up notices dropped."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with _start_up_notices_dropped():
            self.loader.exec_module(module)
        # Once loaded, the module answers to its own loader, as if nothing had come between.
        module.__loader__ = module.__spec__.loader = self.loader


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as Python would, the first time anything imports it.

    Only then: the commands that never touch TensorFlow (the gate, push and pull,
    the release, the download stage) start without the seconds it takes to load.
    Keras imports it too, as its backend, so every way in is covered.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


if "tensorflow" not in sys.modules and os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0":
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
