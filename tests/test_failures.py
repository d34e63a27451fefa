"""Bad input and broken runs, each stage run as DVC runs it (its own process).

Every case ends in one clear error (exit status 1, a message naming the file,
URL or params key, no traceback) and loses nothing: no half-written file at an
output path, the previous outputs untouched.
"""

import contextlib
import gzip
import hashlib
import io
import json
import os
import resource
import runpy
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnistpipe.datasets import FILE_NAMES
from mnistpipe.idx import encode_idx
from tests.conftest import REPOSITORY, set_params, synthetic_split, write_mirror

TRAIN_IMAGES = FILE_NAMES["train_images"]
TRAIN_LABELS = FILE_NAMES["train_labels"]

# Runs a stage's main() with "fashion_mnist" standing for the synthetic dataset
# (its checksums in argv[2], no system copy, no public mirrors), as conftest's
# synthetic_dataset fixture does in-process.
SYNTHETIC_DATASET_DRIVER = """
import dataclasses, json, runpy, sys
from mnistpipe.datasets import DATASETS
from mnistpipe.errors import run_stage
DATASETS["fashion_mnist"] = dataclasses.replace(
    DATASETS["fashion_mnist"],
    sha256=json.loads(sys.argv[2]),
    system_directory=None,
    public_mirrors=(),
)
run_stage(runpy.run_path(sys.argv[1])["main"])
"""


def stage_command(stage: str, synthetic_files=None) -> list[str]:
    script = str(REPOSITORY / "stages" / f"{stage}.py")
    if synthetic_files is None:
        return [sys.executable, script]
    checksums = {
        role: hashlib.sha256(synthetic_files[name]).hexdigest()
        for role, name in FILE_NAMES.items()
    }
    return [sys.executable, "-c", SYNTHETIC_DATASET_DRIVER, script, json.dumps(checksums)]


def run_stage_process(root: Path, stage: str, synthetic_files=None, preexec_fn=None):
    return subprocess.run(
        stage_command(stage, synthetic_files),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=preexec_fn,
    )


def run_stage_in_this_process(root: Path, stage: str) -> subprocess.CompletedProcess:
    """``python stages/<stage>.py`` in ``root``, run in this process; the result as run() gives it.

    For the further cases of a family whose first case ran in a process of its own:
    the same script through the same ``run_stage`` (its exit status, its stderr), less
    the five seconds a new interpreter spends importing TensorFlow. An exception the
    stage lets escape fails the test here, as its traceback would there.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    directory_before = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                runpy.run_path(str(REPOSITORY / "stages" / f"{stage}.py"), run_name="__main__")
                returncode = 0
            except SystemExit as stage_exit:
                # As the interpreter turns it into an exit status: None is 0, a message 1.
                code = stage_exit.code
                returncode = 0 if code is None else code if isinstance(code, int) else 1
    finally:
        os.chdir(directory_before)
    return subprocess.CompletedProcess(
        [stage], returncode, stdout=stdout.getvalue(), stderr=stderr.getvalue()
    )


def run_family_case(request, root: Path, stage: str) -> subprocess.CompletedProcess:
    """A parametrized family's first case in a process of its own, as DVC runs the
    stage; its other cases in this process (run_stage_in_this_process)."""
    first_case = all(index == 0 for index in request.node.callspec.indices.values())
    run = run_stage_process if first_case else run_stage_in_this_process
    return run(root, stage)


def assert_clear_error(result, *fragments: str) -> None:
    """Exit status 1 and one error message on stderr, holding each of ``fragments``.

    Warnings may come before it; the message may list several sources on lines
    of its own; nothing else is on stderr.
    """
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    message = "\n".join(lines)
    assert message.startswith("error: ") and message.count("error: ") == 1, result.stderr
    for fragment in fragments:
        assert fragment in message, result.stderr


@pytest.fixture
def project(tmp_path):
    """A project directory: the repository's params, quick settings, synthetic raw data."""
    params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    params["preprocess"]["val_split"] = 0.2
    params["train"].update(model="mlp", epochs=2, batch_size=64, learning_rate=0.003)
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def write_raw(root: Path, files: dict[str, bytes]) -> None:
    raw = root / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (raw / name).write_bytes(content)


def replace_magic(content: bytes) -> bytes:
    return b"\x00\x00\x08\x01" + content[4:]


def with_label_12(content: bytes) -> bytes:
    return content[:8] + b"\x0c" + content[9:]


def images_of_14_by_56(content: bytes) -> bytes:
    images, _ = synthetic_split(600, seed=1)
    return encode_idx(images.reshape(600, 14, 56))


def one_label_short(content: bytes) -> bytes:
    _, labels = synthetic_split(600, seed=1)
    return encode_idx(labels[:-1])


@pytest.mark.parametrize(
    ("name", "damage", "fragments"),
    [
        (TRAIN_IMAGES, replace_magic, ["magic number 0x00000801; expected 0x00000803"]),
        (TRAIN_IMAGES, lambda content: content[:-100], ["implies", "bytes"]),
        (TRAIN_IMAGES, images_of_14_by_56, ["images of 14x56 pixels; expected 28x28"]),
        (TRAIN_LABELS, one_label_short, ["has 600 images but", "has 599 labels"]),
        (TRAIN_LABELS, with_label_12, ["has label 12 at index 0; expected labels 0-9"]),
    ],
    ids=["wrong-magic", "truncated", "not-28x28", "count-mismatch", "label-12"],
)
def test_bad_idx_data_stops_preprocess_before_any_training(
    request, project, synthetic_files, name, damage, fragments
):
    files = dict(synthetic_files)
    files[name] = damage(files[name])
    write_raw(project, files)

    result = run_family_case(request, project, "preprocess")

    assert_clear_error(result, name, *fragments)
    assert not (project / "data" / "prepared").exists()


def test_a_corrupt_gzip_stream_on_a_mirror_is_named_in_the_download_error(
    project, tmp_path, synthetic_files
):
    mirror = write_mirror(tmp_path / "mirror", synthetic_files)
    compressed = bytearray((mirror / f"{TRAIN_IMAGES}.gz").read_bytes())
    compressed[20:40] = b"\xff" * 20
    (mirror / f"{TRAIN_IMAGES}.gz").write_bytes(bytes(compressed))
    set_params(project, "download", mirrors=[str(mirror)])

    result = run_stage_process(project, "download", synthetic_files)

    assert_clear_error(result, f"no source served a valid {TRAIN_IMAGES}", str(mirror))
    assert "gzip" in result.stderr
    assert not (project / "data" / "raw" / TRAIN_IMAGES).exists()


@pytest.mark.parametrize(
    ("params_text", "fragments"),
    [
        ("train:\n  epochs: 0\n", ["train.epochs is 0; expected an integer >= 1"]),
        ("train:\n  batch_size: '64'\n", ["train.batch_size", "expected an integer"]),
        ("train:\n  epoch: 3\n", ["train.epoch", "did you mean train.epochs?"]),
        (
            "train:\n  model: resnet\n",
            ["train.model", "convnet, mlp, quickstart_cnn, strided_cnn"],
        ),
        ("seed: !!python/object/apply:os.system ['true']\n", ["params.yaml", "python/object"]),
    ],
    ids=["zero-epochs", "string-for-int", "typo", "unknown-model", "python-tag"],
)
def test_bad_params_stop_the_stage_with_the_key_named(request, project, params_text, fragments):
    # Each case replaces or adds one key of the project's valid params.yaml.
    params = yaml.safe_load((project / "params.yaml").read_text())
    if "!!python" in params_text:
        text = params_text + yaml.safe_dump({k: v for k, v in params.items() if k != "seed"})
    else:
        change = yaml.safe_load(params_text)
        for section, values in change.items():
            params[section].update(values)
        text = yaml.safe_dump(params, sort_keys=False)
    (project / "params.yaml").write_text(text)

    result = run_family_case(request, project, "train")

    assert_clear_error(result, *fragments)


def prepare(root: Path, synthetic_files) -> None:
    """Raw files and the preprocess stage's outputs: the set-up of the tests of later stages."""
    write_raw(root, synthetic_files)
    result = run_stage_in_this_process(root, "preprocess")
    assert result.returncode == 0, result.stderr


def test_prepared_arrays_holding_pickled_objects_are_refused(project, synthetic_files):
    prepare(project, synthetic_files)
    labels_path = project / "data" / "prepared" / "train_labels.npy"
    np.save(labels_path, np.array([{"label": 1}] * 3, dtype=object), allow_pickle=True)

    result = run_stage_process(project, "train")

    assert_clear_error(result, str(labels_path.relative_to(project)), "allow_pickle=False")


def test_a_non_finite_loss_exits_non_zero_and_writes_no_model(project, synthetic_files):
    prepare(project, synthetic_files)
    # Pixels near float32's largest value overflow the first layer: the loss is
    # NaN from the first step, whatever the weights.
    images_path = project / "data" / "prepared" / "train_images.npy"
    images = np.load(images_path, allow_pickle=False)
    np.save(images_path, images * np.float32(3e38), allow_pickle=False)

    result = run_stage_process(project, "train")

    assert_clear_error(result, "training diverged", "after epoch 1", "expected a finite loss")
    assert "epoch 1/2" not in result.stdout
    assert not (project / "models").exists()
    # Only what preprocess wrote (the data report), nothing of train's.
    assert {path.name for path in (project / "metrics").iterdir()} <= {
        "data.json",
        "data_report.json",
    }
    assert not (project / "checkpoints").exists()


def limit_file_size(size_bytes: int):
    """A preexec_fn under which writing a file beyond ``size_bytes`` fails like a full disk."""

    def limit():
        # Without SIGXFSZ ignored the kernel would kill the process instead of
        # failing the write with EFBIG.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size_bytes, size_bytes))

    return limit


def test_a_full_disk_while_the_model_is_written_leaves_the_previous_outputs(
    project, synthetic_files
):
    prepare(project, synthetic_files)
    assert run_stage_process(project, "train").returncode == 0
    outputs = [
        Path("models/model.keras"),
        Path("metrics/train.json"),
        Path("logs/train_timing.json"),
    ]
    before = {path: (project / path).read_bytes() for path in outputs}
    set_params(project, "train", epochs=3)

    # 64 KiB: far less than the model (about 1.2 MB), more than any metrics file.
    result = run_stage_process(project, "train", preexec_fn=limit_file_size(64 * 1024))

    assert_clear_error(
        result, "could not write models/model.keras: File too large", "is as it was"
    )
    # The checkpoint could not be written either: a warning, and training went on.
    assert "warning: no checkpoint after epoch 1: could not write checkpoints/" in result.stderr
    assert {path: (project / path).read_bytes() for path in outputs} == before
    assert sorted(path.name for path in (project / "models").iterdir()) == ["model.keras"]


WRITE_JSON_UNDER_A_FULL_DISK = """
import sys
from mnistpipe.errors import run_stage
from mnistpipe.files import write_json
def main():
    write_json(sys.argv[1], {"values": list(range(10_000))})
run_stage(main)
"""


def test_a_full_disk_while_metrics_are_written_leaves_the_previous_file(tmp_path):
    metrics = tmp_path / "metrics" / "evaluate.json"
    metrics.parent.mkdir()
    metrics.write_text('{"accuracy": 0.93}\n')

    result = subprocess.run(
        [sys.executable, "-c", WRITE_JSON_UNDER_A_FULL_DISK, str(metrics)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_file_size(1024),
    )

    assert_clear_error(result, f"could not write {metrics}: File too large")
    assert metrics.read_text() == '{"accuracy": 0.93}\n'
    assert list(metrics.parent.iterdir()) == [metrics]


def test_a_download_killed_mid_file_is_completed_correctly_by_the_next_run(
    project, http_server, synthetic_files
):
    body = gzip.compress(synthetic_files[TRAIN_IMAGES], compresslevel=1, mtime=0)
    half_sent = threading.Event()
    released = threading.Event()

    def stall():
        half_sent.set()
        released.wait(timeout=60)

    http_server.serve_dropped(f"/data/{TRAIN_IMAGES}.gz", body, after_half=stall)
    set_params(project, "download", mirrors=[f"{http_server.url}/data/"])
    raw = project / "data" / "raw"
    process = subprocess.Popen(
        stage_command("download", synthetic_files),
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert half_sent.wait(timeout=120)
        # Wait until part of the file is on disk, under its temporary name.
        deadline = time.monotonic() + 30
        while not any(path.stat().st_size for path in raw.glob(f".{TRAIN_IMAGES}.*")):
            assert time.monotonic() < deadline, "the download never wrote its temporary file"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        released.set()
        if process.poll() is None:
            process.kill()
    assert not (raw / TRAIN_IMAGES).exists()

    for name, content in synthetic_files.items():
        http_server.serve_bytes(f"/data/{name}.gz", gzip.compress(content, mtime=0))
    result = run_stage_process(project, "download", synthetic_files)

    assert result.returncode == 0, result.stderr
    # The four verified files and nothing else: the partial file is gone.
    assert {path.name: path.read_bytes() for path in raw.iterdir()} == synthetic_files


def test_a_mirror_that_is_not_http_or_a_directory_is_refused(project):
    set_params(project, "download", mirrors=["ftp://example.org/mnist/"])
    result = run_stage_process(project, "download")
    assert_clear_error(result, "download.mirrors", "ftp://example.org/mnist/", "http")
    assert not (project / "data").exists()


def test_stages_that_succeed_leave_stderr_empty(project, synthetic_files):
    # TensorFlow's start-up INFO lines would otherwise come first on stderr, above
    # any error; they are dropped when mnistpipe imports TensorFlow.
    write_raw(project, synthetic_files)
    for stage in ("preprocess", "train", "evaluate", "export"):
        result = run_stage_process(project, stage)
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", f"{stage}:\n{result.stderr}"


def test_a_full_disk_while_tfrecord_shards_are_written_leaves_the_previous_data(
    project, synthetic_files
):
    prepare(project, synthetic_files)
    prepared = project / "data" / "prepared"
    before = {path.name: path.read_bytes() for path in prepared.iterdir()}
    set_params(project, "preprocess", format="tfrecord", shard_size=100)

    result = run_stage_process(project, "preprocess", preexec_fn=limit_file_size(20_000))

    assert_clear_error(result, "could not write data/prepared: File too large", "is as it was")
    assert {path.name: path.read_bytes() for path in prepared.iterdir()} == before
    assert sorted(path.name for path in prepared.parent.iterdir()) == ["prepared", "raw"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_written_whole_get_the_mode_a_plain_write_gives(tmp_path, umask):
    # mkstemp and mkdtemp make 0600 files and 0700 directories: models/export and
    # data/prepared could be read by this user alone (a server running as another
    # user could not load the model).
    from mnistpipe.files import atomic_directory, atomic_path, save_array, write_json

    before = os.umask(umask)
    try:
        plain_file = tmp_path / "plain.txt"
        plain_file.write_text("x")
        plain_directory = tmp_path / "plain"
        plain_directory.mkdir()
        write_json(tmp_path / "metrics.json", {"accuracy": 0.9})
        save_array(tmp_path / "images.npy", np.zeros(3))
        with atomic_path(tmp_path / "model.keras", suffix=".keras") as temporary:
            temporary.write_bytes(b"model")
        with atomic_directory(tmp_path / "export") as temporary:
            (temporary / "classes.json").write_text("{}")
    finally:
        os.umask(before)

    def mode(path):
        return oct(path.stat().st_mode & 0o7777)

    assert mode(plain_file) == oct(0o666 & ~umask)
    for name in ("metrics.json", "images.npy", "model.keras", "export/classes.json"):
        assert mode(tmp_path / name) == mode(plain_file), name
    assert mode(tmp_path / "export") == mode(plain_directory) == oct(0o777 & ~umask)


def test_a_directory_written_whole_in_a_setgid_directory_keeps_the_shared_group(tmp_path):
    # In a shared directory (chmod 2775, a team's group) mkdir() makes a setgid
    # directory, so what is written in it later gets the team's group; the chmod
    # giving mkdtemp's 0700 directory its mode had dropped that bit.
    from mnistpipe.files import atomic_directory

    # A group other than the writer's own, as a team's is: root may give any; anyone
    # else only one of the groups they are in.
    others = [group for group in os.getgroups() if group != os.getgid()]
    if os.geteuid() == 0:
        others.append(os.getgid() + 4242)
    if not others:
        pytest.skip("the user running the tests is in no group but their own")
    group = others[-1]
    shared = tmp_path / "models"
    shared.mkdir()
    os.chown(shared, -1, group)
    os.chmod(shared, 0o2775)
    (shared / "plain").mkdir()
    with atomic_directory(shared / "export") as temporary:
        (temporary / "classes.json").write_text("{}")
    (shared / "export" / "written-later.txt").write_text("x")

    export = shared / "export"
    assert export.stat().st_mode & stat.S_ISGID
    assert export.stat().st_mode & 0o7777 == (shared / "plain").stat().st_mode & 0o7777
    for path in (export, export / "classes.json", export / "written-later.txt"):
        assert path.stat().st_gid == group, path
