"""Ctrl-C (SIGINT) and SIGTERM in every stage and command, each run in its own process.

Each ends with one line saying what was interrupted and how to go on, exit status
130 or 143, no traceback, and no output half written.
"""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mnistpipe.interrupts import Interrupted, signals_as_interrupts
from tests.conftest import REPOSITORY
from tests.test_failures import prepare, run_stage_process, stage_command
from tests.test_gate import commit_all, git, write_metrics

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


def assert_interrupted(process: subprocess.Popen, signal_number: int, *fragments: str) -> str:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == EXIT_STATUS[signal_number], stdout + stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert f"({signal.Signals(signal_number).name})" in lines[0], stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr
    return stdout


def wait_until_reading(fifo: Path, process: subprocess.Popen) -> int:
    """Open ``fifo`` for writing once ``process`` has opened it for reading; return the fd.

    The process then blocks in its read until the signal comes: it is inside
    its main(), waiting on a file, as a stage waits on a slow disk or network.
    """
    deadline = time.monotonic() + 120
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            assert error.errno == errno.ENXIO, error
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the process never opened the file"
        time.sleep(0.05)


def as_from_a_shell() -> None:
    """A preexec_fn: the handled signals at their defaults, as a shell starts a command.

    A pytest-xdist worker ignores SIGINT, and a child inherits that; the stages
    (rightly) leave an ignored signal ignored, as under nohup.
    """
    for signal_number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signal_number, signal.SIG_DFL)


def interrupt_while_reading(command, cwd: Path, fifo: Path, signal_number: int):
    os.mkfifo(fifo)
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_shell,
    )
    try:
        writer = wait_until_reading(fifo, process)
        try:
            process.send_signal(signal_number)
            # The kernel may hand the signal to one of TensorFlow's threads: Python then
            # runs the handler once the main thread's read returns, so let it return.
            time.sleep(0.5)
        finally:
            os.close(writer)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return process


@pytest.fixture
def project(tmp_path):
    params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    params["preprocess"]["val_split"] = 0.2
    params["train"].update(model="mlp", epochs=2, batch_size=64, learning_rate=0.003)
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


@pytest.mark.parametrize(
    ("stage", "signal_number", "fragment"),
    [
        ("download", signal.SIGTERM, "run dvc repro again to fetch the rest"),
        ("preprocess", signal.SIGINT, "previous ones or none"),
        # A closed terminal: by default Python would end at once, its temporary files left.
        ("preprocess", signal.SIGHUP, "previous ones or none"),
        ("evaluate", signal.SIGTERM, "run dvc repro again"),
        ("export", signal.SIGINT, "run dvc repro again"),
    ],
)
def test_a_stage_interrupted_while_it_reads_says_so_in_one_line(
    project, stage, signal_number, fragment
):
    params = project / "params.yaml"
    text = params.read_text()
    params.unlink()
    # params.yaml as a pipe nobody writes to: the stage blocks reading it.
    process = interrupt_while_reading(stage_command(stage), project, params, signal_number)

    assert_interrupted(process, signal_number, f"error: {stage}: interrupted", fragment)
    params.unlink()
    params.write_text(text)
    assert sorted(path.name for path in project.iterdir()) == ["params.yaml"]


# `python stages/train.py`, except that once the epoch numbered in argv[2] has ended (its
# line printed, its checkpoint saved) the run says "paused" and waits up to a minute for
# the test's signal. Sent when the epoch's line was read, the signal could land while that
# epoch's checkpoint was being saved, or, on a loaded machine, after the run had finished.
# time.sleep returns to Python whichever thread the kernel hands the signal to, and
# Python then runs the handler, as it would between two batches.
PAUSED_TRAINING_DRIVER = """
import runpy, sys, time
from mnistpipe import loops

begin = loops._EpochLine.on_epoch_begin
pause_after_epoch = int(sys.argv[2])

def on_epoch_begin(self, epoch, logs=None):
    if epoch == pause_after_epoch:
        print("paused", flush=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.01)
    begin(self, epoch, logs)

loops._EpochLine.on_epoch_begin = on_epoch_begin
sys.argv = sys.argv[1:2]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def start_training(root: Path, pause_after_epoch: int) -> subprocess.Popen:
    script = str(REPOSITORY / "stages" / "train.py")
    return subprocess.Popen(
        [sys.executable, "-c", PAUSED_TRAINING_DRIVER, script, str(pause_after_epoch)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_shell,
    )


def wait_for_line(process: subprocess.Popen, prefix: str) -> list[str]:
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError("".join(lines) + process.stderr.read())


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_training_interrupted_after_an_epoch_says_where_and_the_rerun_resumes(
    project, synthetic_files, signal_number
):
    prepare(project, synthetic_files)
    yaml_params = yaml.safe_load((project / "params.yaml").read_text())
    # The run waits after epoch 2 for the signal (start_training), so it lands mid-run
    # however loaded the machine; 12 epochs, so that the resumed rerun is short.
    yaml_params["train"]["epochs"] = 12
    (project / "params.yaml").write_text(yaml.safe_dump(yaml_params, sort_keys=False))

    process = start_training(project, pause_after_epoch=2)
    try:
        seen = wait_for_line(process, "paused")
        process.send_signal(signal_number)
        stdout = "".join(seen) + assert_interrupted(
            process,
            signal_number,
            "error: train: interrupted after epoch 2;",
            "run dvc repro again to resume",
        )
    finally:
        if process.poll() is None:
            process.kill()
    finished = [line for line in stdout.splitlines() if line.startswith("epoch ")]
    stderr_epoch = int(finished[-1].split()[1].split("/")[0])
    assert stderr_epoch == 2
    assert not (project / "models").exists()
    # Only preprocess's data report is in metrics/: none of train's outputs.
    assert sorted(path.name for path in (project / "metrics").iterdir()) == [
        "data.json",
        "data_report.json",
    ]
    assert sorted(path.name for path in (project / "checkpoints").iterdir()) == ["train.npz"]
    if signal_number == signal.SIGTERM:
        return

    # The rerun goes on from the checkpoint, as after a SIGKILL.
    result = run_stage_process(project, "train")
    assert result.returncode == 0, result.stderr
    assert "train: resuming from checkpoints/train.npz after epoch" in result.stdout
    assert (project / "models" / "model.keras").is_file()


def test_predict_interrupted_says_so_in_one_line(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    command = [sys.executable, "-m", "mnistpipe.predict", "--model", str(export), "x.png"]
    process = interrupt_while_reading(command, tmp_path, export / "classes.json", signal.SIGINT)
    assert_interrupted(process, signal.SIGINT, "error: predict: interrupted", "run it again")


def test_the_gate_interrupted_says_so_in_one_line(tmp_path):
    command = [
        sys.executable,
        "-m",
        "mnistpipe.gate",
        "--against",
        "HEAD",
        "--params",
        "params.yaml",
    ]
    process = interrupt_while_reading(command, tmp_path, tmp_path / "params.yaml", signal.SIGTERM)
    assert_interrupted(process, signal.SIGTERM, "error: gate: interrupted", "run it again")


def test_a_second_signal_while_unwinding_is_ignored():
    with pytest.raises(Interrupted) as raised, signals_as_interrupts():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            # Clean-up code in a finally block: a second signal must not cut it short.
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
    assert raised.value.exit_status == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_exception_a_library_raises_in_place_of_the_interrupt_is_the_interrupt():
    # NumPy, warning while it converts an array, caught our Interrupted and raised
    # the TypeError it was handling: the stage printed a traceback (a CI failure).
    with pytest.raises(Interrupted) as raised, signals_as_interrupts():
        try:
            # SIGTERM: a pytest-xdist worker ignores SIGINT, and so does the block then.
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except Interrupted:
            raise TypeError("__array__() got an unexpected keyword argument 'copy'") from None
    assert raised.value.exit_status == 143
    assert isinstance(raised.value.__cause__, TypeError)


def test_an_exception_without_a_signal_stays_what_it_is():
    with pytest.raises(ZeroDivisionError), signals_as_interrupts():
        _ = 1 / 0


def run_with_output_gone(
    command, cwd: Path, *, gone: str = "reader", **options
) -> subprocess.CompletedProcess:
    """Run ``command`` with a standard output that has gone.

    ``gone="reader"``: a pipe whose reader has gone (``| head -c0``), writes fail
    with EPIPE; ``gone="terminal"``: a terminal that has gone (a dropped SSH
    session), writes fail with EIO.
    """
    if gone == "reader":
        kept_end, output = os.pipe()
    else:
        kept_end, output = os.openpty()
    os.close(kept_end)
    try:
        return subprocess.run(
            command,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            **options,
        )
    finally:
        os.close(output)


def run_with_stdout_closed(command, cwd: Path, **options) -> subprocess.CompletedProcess:
    return run_with_output_gone(command, cwd, **options)


def run_with_terminal_gone(command, cwd: Path, **options) -> subprocess.CompletedProcess:
    return run_with_output_gone(command, cwd, gone="terminal", **options)


@pytest.mark.parametrize("command", [["mnistpipe.gate"], ["mnistpipe.cli", "gate"]])
def test_a_command_whose_reader_went_away_ends_quietly_with_141(tmp_path, command):
    # `mnistpipe gate --against HEAD | head -1`: Python ignores SIGPIPE, so printing the
    # table raised BrokenPipeError, a traceback.
    (tmp_path / "params.yaml").write_text((REPOSITORY / "params.yaml").read_text())
    write_metrics(tmp_path, accuracy=0.92, loss=0.22)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    commit_all(tmp_path)
    result = run_with_stdout_closed(
        [sys.executable, "-m", *command, "--against", "HEAD"], tmp_path
    )
    assert result.returncode == 141, result.stderr
    assert result.stderr == ""


# A stage that printed, then stopped: with its reader or its terminal gone, what
# stayed buffered could not be written at exit ("Exception ignored ...
# BrokenPipeError", status 120 instead of the stage's own).
STAGE_THAT_PRINTED_THEN_STOPPED = """
import os, signal, sys
from mnistpipe.errors import PipelineError, run_stage

def main():
    print("a line nobody reads", end="")
    if sys.argv[1] == "error":
        raise PipelineError("params.yaml: train.epochs is 0; expected a positive integer")
    if sys.argv[1] == "exit":
        sys.exit(3)
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    signal.pause()

run_stage(main)
"""
STOPPED = "error: stage: interrupted; nothing was half written; run it again"


def run_stage_that_printed_then_stopped(tmp_path, how, run=run_with_stdout_closed):
    script = tmp_path / "stage.py"
    script.write_text(STAGE_THAT_PRINTED_THEN_STOPPED)
    # Under PYTHONUNBUFFERED (as the tests run) nothing stays buffered: without it,
    # a pipe is block-buffered, as it is for a user.
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    # The signals at their defaults: under nohup (a CI run started with it) SIGHUP
    # is ignored, the stage leaves it so, and it would wait in pause() for ever.
    return run(
        [sys.executable, str(script), how], tmp_path, env=environment, preexec_fn=as_from_a_shell
    )


@pytest.mark.parametrize(
    ("how", "status", "stderr"),
    [
        ("error", 1, "error: params.yaml: train.epochs is 0; expected a positive integer\n"),
        ("SIGTERM", 143, f"{STOPPED} (SIGTERM)\n"),
        ("SIGINT", 130, f"{STOPPED} (SIGINT)\n"),
        ("exit", 3, ""),
    ],
)
def test_a_stage_that_stops_after_printing_to_a_gone_reader_ends_with_its_own_status(
    tmp_path, how, status, stderr
):
    result = run_stage_that_printed_then_stopped(tmp_path, how)
    assert result.returncode == status, result.stderr
    assert result.stderr == stderr


def test_a_stage_hung_up_on_with_output_buffered_for_a_gone_terminal_ends_with_129(tmp_path):
    result = run_stage_that_printed_then_stopped(tmp_path, "SIGHUP", run=run_with_terminal_gone)
    assert result.returncode == 129, result.stderr
    assert result.stderr == f"{STOPPED} (SIGHUP)\n"


def test_a_stage_whose_reader_went_away_ends_quietly_and_writes_nothing_half(
    project, synthetic_files
):
    prepare(project, synthetic_files)
    result = run_with_stdout_closed(stage_command("train", synthetic_files), project)
    assert result.returncode == 141, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    # Stopped at its first line, the epoch's: no model, and no temporary file left.
    assert not (project / "models" / "model.keras").exists()
    assert not list(project.glob("models/.*"))


def test_release_interrupted_says_so_in_one_line(tmp_path):
    command = [sys.executable, "-m", "mnistpipe.release", "1.0.0"]
    process = interrupt_while_reading(command, tmp_path, tmp_path / "dvc.yaml", signal.SIGINT)
    assert_interrupted(process, signal.SIGINT, "error: release: interrupted", "run it again")
