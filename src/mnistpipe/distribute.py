"""Training on several devices or hosts with tf.distribute, as ``train.distribute`` says.

- ``none``: TensorFlow's default strategy, one device.
- ``mirrored``: ``MirroredStrategy``, every GPU of this host (or the CPU alone).
- ``multi_worker``: ``MultiWorkerMirroredStrategy`` across the hosts that the
  standard ``TF_CONFIG`` environment variable describes.

The global batch size stays ``train.batch_size``: tf.data splits each batch
between the replicas and the gradients are summed across them, so every step
averages over the same examples as on one device and the learning rate needs no
scaling. Only the chief writes the model and the metrics.
"""

import contextlib
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import tensorflow as tf

from mnistpipe.errors import PipelineError, shown
from mnistpipe.params import STRATEGIES

# How long a collective operation (all-reduce) may wait for the other workers
# before failing: a lost worker then ends the run with an error, not a hang.
COLLECTIVE_TIMEOUT_SECONDS = 60
# How long a worker waits at start-up for every other worker in TF_CONFIG to join,
# unless the environment variable says otherwise (a cluster whose hosts start slowly).
CLUSTER_WAIT_SECONDS = 300.0
CLUSTER_WAIT_VARIABLE = "MNISTPIPE_CLUSTER_WAIT_SECONDS"


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy ``train.distribute`` names. Create it before any other TensorFlow work.

    MultiWorkerMirroredStrategy configures collective ops, which TensorFlow
    allows only before its runtime has started.
    """
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        cluster = read_tf_config()
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS
        )
        seconds = cluster_wait_seconds()
        message = (
            f"not every worker of the cluster TF_CONFIG describes ({cluster}) joined within "
            f"{seconds:g} s ({CLUSTER_WAIT_VARIABLE}); expected each of them to be started "
            "with its own TF_CONFIG and to reach the others' host:port"
        )
        try:
            with _watchdog(seconds, message):
                return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            raise PipelineError(
                f"cannot join the cluster TF_CONFIG describes ({cluster}): {error}"
            ) from None
    raise PipelineError(f"train.distribute is {name!r}; expected one of: {', '.join(STRATEGIES)}")


def cluster_wait_seconds() -> float:
    """How long a worker waits at start-up for the others: CLUSTER_WAIT_VARIABLE, else 300 s."""
    text = os.environ.get(CLUSTER_WAIT_VARIABLE)
    if text is None:
        return CLUSTER_WAIT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise PipelineError(
            f"{CLUSTER_WAIT_VARIABLE} is {text!r}; expected a number of seconds above 0"
        )
    return seconds


# The watchdog: it waits for its standard input to close (the strategy is up, or
# this process ended) and, if that takes longer than the bound, reports and ends it.
_WATCHDOG = """
import os, select, signal, sys
pid, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
if not select.select([sys.stdin], [], [], seconds)[0]:
    print("error: " + message, file=sys.stderr, flush=True)
    os.kill(pid, signal.SIGKILL)
"""


@contextlib.contextmanager
def _watchdog(seconds: float, message: str) -> Iterator[None]:
    """End this process with ``error: message`` unless the block is done within ``seconds``.

    TensorFlow waits up to an hour for every worker to register, in C++ that
    holds the interpreter, so that no Python timer or signal handler can run
    meanwhile: only another process can end the wait. Nothing has been written
    by then, so there is nothing to undo; the exit status is SIGKILL's.
    """
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(seconds), message],
        stdin=subprocess.PIPE,
    )
    try:
        yield
    finally:
        watchdog.stdin.close()
        watchdog.wait()


def read_tf_config() -> str:
    """Check that TF_CONFIG describes a cluster and this task; return a short description."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise PipelineError(
            "train.distribute is multi_worker but TF_CONFIG is not set; expected the JSON "
            'that names the cluster and this task, e.g. {"cluster": {"worker": '
            '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        task_type, index = task["type"], task["index"]
        # What TensorFlow's resolver takes, checked here so that nothing it would
        # trip over later (a worker count of 5, an index of 1e999 or true, a string
        # type of 7) becomes a traceback: hosts as strings, a whole index.
        if not (
            isinstance(workers, list)
            and workers
            and all(isinstance(worker, str) for worker in workers)
            and isinstance(task_type, str)
            and isinstance(index, int)
            and not isinstance(index, bool)
        ):
            raise TypeError("cluster.worker, task.type or task.index of another type")
    # RecursionError: JSON nested thousands deep ([[[[...).
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise PipelineError(
            f"TF_CONFIG is {shown(text)}; expected JSON with cluster.worker (a non-empty list "
            f"of host:port strings), task.type (a string) and task.index (a whole number) "
            f"({shown(error)})"
        ) from None
    if task_type == "worker" and not 0 <= index < len(workers):
        raise PipelineError(
            f"TF_CONFIG task.index is {index}; expected 0 to {len(workers) - 1}, "
            f"one of the {len(workers)} workers in cluster.worker"
        )
    return f"{len(workers)} workers, this is {task_type} {index}"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this task writes the outputs: the only one, the chief, or worker 0 if no chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Have each worker keep every n-th batch of the same seeded order.

    tf.data's default (AUTO) shards by file and falls back to this for data held
    in memory; saying so avoids its warning, and both formats shard alike.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


# What TensorFlow raises on the surviving workers when one stops: its heartbeats
# stop (UnavailableError) or a collective operation times out.
_LOST_WORKER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
)


@contextlib.contextmanager
def reported_worker_loss(strategy: tf.distribute.Strategy) -> Iterator[None]:
    """Turn a lost worker into a one-line error on the workers still running."""
    if getattr(strategy, "cluster_resolver", None) is None:
        yield
        return
    try:
        yield
    except _LOST_WORKER_ERRORS as error:
        # TensorFlow's message starts with the failed function's name in {{...}}
        # and goes on for lines; its first two lines name the lost task.
        text = re.sub(r"\{\{.*?\}\}\s*", "", error.message).strip()
        reason = " ".join(line.strip() for line in text.splitlines()[:2])
        raise PipelineError(
            f"lost contact with a worker of the cluster TF_CONFIG describes: {reason}; "
            "expected every worker to run to the end (restart them all to train again)"
        ) from None
