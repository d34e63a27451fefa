"""train.distribute and train.mixed_precision: strategies, two workers on 127.0.0.1, refusals."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest
import tensorflow as tf
import yaml

from mnistpipe.data import prepare
from mnistpipe.distribute import cluster_wait_seconds, make_strategy
from mnistpipe.errors import PipelineError
from mnistpipe.params import check_train_settings
from mnistpipe.seeding import seed_everything
from mnistpipe.training import train_from_params
from tests.conftest import REPOSITORY, settings_for, small_splits, synthetic_idx_files

WORKER_SECONDS = 240


def settings_with(**changes):
    return settings_for("mlp", "custom", augment="none", **changes)


def test_multi_worker_with_model_fit_is_refused_naming_the_upstream_bug():
    with pytest.raises(PipelineError, match=r"keras-team/keras#20585.*train.loop: custom"):
        check_train_settings(settings_for("mlp", "fit", distribute="multi_worker"))


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a GPU is present")
def test_mixed_precision_without_a_gpu_is_refused():
    with pytest.raises(PipelineError, match="train.mixed_precision is true but TensorFlow sees"):
        check_train_settings(settings_with(mixed_precision=True))


@pytest.mark.parametrize(
    ("tf_config", "message"),
    [
        (None, "TF_CONFIG is not set"),
        ("{not json", "TF_CONFIG is '{not json'; expected JSON with cluster.worker"),
        ('{"cluster": {"worker": ["a:1"]}}', "expected JSON with cluster.worker"),
        (
            '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
            "TF_CONFIG task.index is 2; expected 0 to 1",
        ),
        # Each was a traceback: len(5), int(1e999), and the recursion of json.loads.
        (
            '{"cluster": {"worker": 5}, "task": {"type": "worker", "index": 0}}',
            "expected JSON with cluster.worker",
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1e999}}',
            "task.index \\(a whole number\\)",
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": true}}',
            "expected JSON with cluster.worker",
        ),
        ("[" * 100_000, "TF_CONFIG is '\\[\\[\\[.*'; expected JSON"),
    ],
    ids=[
        "unset",
        "not-json",
        "no-task",
        "index-out-of-range",
        "workers-not-a-list",
        "infinite-index",
        "boolean-index",
        "nested",
    ],
)
def test_a_missing_or_malformed_tf_config_is_refused(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(PipelineError, match=message):
        make_strategy("multi_worker")


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_mirrored_strategy_trains_with_both_loops(loop):
    # On a machine without GPUs MirroredStrategy has one replica, on the CPU.
    seed_everything(3, deterministic=True)
    strategy = tf.distribute.MirroredStrategy()
    model, history = train_from_params(
        settings_for("mlp", loop, distribute="mirrored"), 3, *small_splits(), strategy=strategy
    )
    assert model.distribute_strategy is strategy
    assert history["val_accuracy"][-1] >= 0.9


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_mixed_precision_computes_in_float16_and_still_learns(monkeypatch, loop):
    # float16 runs on a CPU too, only slowly: pretend a GPU is there to get past
    # the refusal and check what the option does.
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    seed_everything(3, deterministic=True)
    model, history = train_from_params(
        settings_for("mlp", loop, mixed_precision=True), 3, *small_splits()
    )
    assert model.layers[1].compute_dtype == "float16"
    assert all(weight.dtype == "float32" for weight in model.weights)
    assert model(small_splits()[1][0][:2]).dtype == "float32"
    assert history["val_accuracy"][-1] >= 0.9
    # The policy was only in force while the model was built.
    assert keras.config.dtype_policy().name == "float32"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


@pytest.fixture
def cluster(tmp_path):
    """Two project directories, one a host, with the same params and prepared data."""
    params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    params["train"].update(
        model="mlp", epochs=3, batch_size=64, loop="custom", distribute="multi_worker"
    )
    files = synthetic_idx_files(1200, 200)
    roots = []
    for index in range(2):
        root = tmp_path / f"host{index}"
        raw = root / "data" / "raw"
        raw.mkdir(parents=True)
        for name, content in files.items():
            (raw / name).write_bytes(content)
        prepare(
            raw,
            root / "data" / "prepared",
            val_split=0.2,
            limit=0,
            seed=42,
            dataset=params["dataset"],
        )
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        roots.append(root)
    return roots


def start_workers(roots: list[Path], workers_in_cluster=None, **environment):
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers_in_cluster or len(roots))]
    workers = []
    for index, root in enumerate(roots):
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        workers.append(
            subprocess.Popen(
                [sys.executable, str(REPOSITORY / "stages" / "train.py")],
                cwd=root,
                env={**os.environ, "TF_CONFIG": json.dumps(tf_config), **environment},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return workers


def finish(worker: subprocess.Popen, seconds: float) -> tuple[int, str, str]:
    try:
        stdout, stderr = worker.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        worker.kill()
        stdout, stderr = worker.communicate()
        pytest.fail(f"a worker did not finish in {seconds} s:\n{stdout}\n{stderr}")
    return worker.returncode, stdout, stderr


def stop_all(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()


def test_two_workers_train_together_and_only_the_chief_writes(cluster):
    workers = start_workers(cluster)
    try:
        results = [finish(worker, WORKER_SECONDS) for worker in workers]
    finally:
        stop_all(workers)
    for returncode, stdout, stderr in results:
        assert returncode == 0, stdout + stderr
    chief, other = cluster
    assert "wrote models/model.keras" in results[0][1]
    assert "the chief writes outputs" in results[1][1]
    metrics = json.loads((chief / "dvclive" / "metrics.json").read_text())
    assert metrics["eval"]["accuracy"] >= 0.9
    assert (chief / "models" / "model.keras").is_file()
    assert sorted(path.name for path in other.iterdir()) == ["data", "params.yaml"]
    # Both replicas took the same steps: their epoch lines agree to the digit.
    epoch_lines = [
        [line.split(" (")[0] for line in stdout.splitlines() if line.startswith("epoch ")]
        for _, stdout, _ in results
    ]
    assert len(epoch_lines[0]) == 3 and epoch_lines[0] == epoch_lines[1]


def test_losing_a_worker_ends_the_run_with_a_clear_error_not_a_hang(cluster):
    for root in cluster:
        params_path = root / "params.yaml"
        params = yaml.safe_load(params_path.read_text())
        params["train"]["epochs"] = 200
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    workers = start_workers(cluster)
    try:
        chief, other = workers
        # Wait for the first finished epoch, so the cluster is up and training.
        line = ""
        deadline = time.monotonic() + WORKER_SECONDS
        while not line.startswith("epoch 1/"):
            assert chief.poll() is None and time.monotonic() < deadline, "no first epoch"
            line = chief.stdout.readline()
        other.send_signal(signal.SIGKILL)
        # Bounded: TensorFlow's heartbeats notice the loss in about ten seconds.
        returncode, _, stderr = finish(chief, 120)
    finally:
        stop_all(workers)
    assert returncode == 1
    assert "Traceback" not in stderr
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: lost contact with a worker of the cluster TF_CONFIG")
    assert "/job:worker/replica:0/task:1" in last_line
    assert not (cluster[0] / "models").exists()


def test_a_worker_that_never_arrives_ends_the_start_up_with_a_clear_error(cluster):
    # Worker 1 of two is never started; worker 0 gives up after the bound.
    (chief,) = start_workers(cluster[:1], 2, MNISTPIPE_CLUSTER_WAIT_SECONDS="5")
    try:
        returncode, _, stderr = finish(chief, 120)
    finally:
        stop_all([chief])
    assert returncode == -signal.SIGKILL
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "error: not every worker of the cluster TF_CONFIG describes (2 workers, this is "
        "worker 0) joined within 5 s (MNISTPIPE_CLUSTER_WAIT_SECONDS); expected each of them "
        "to be started with its own TF_CONFIG and to reach the others' host:port"
    )
    assert sorted(path.name for path in cluster[0].iterdir()) == ["data", "params.yaml"]


@pytest.mark.parametrize("value", ["0", "-3", "soon", "inf"])
def test_a_wait_that_is_not_a_number_of_seconds_is_refused(monkeypatch, value):
    monkeypatch.setenv("MNISTPIPE_CLUSTER_WAIT_SECONDS", value)
    with pytest.raises(PipelineError, match="MNISTPIPE_CLUSTER_WAIT_SECONDS is"):
        cluster_wait_seconds()
