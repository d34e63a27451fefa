"""Files from somewhere else, sizes beyond reason, corrupt derived data, stalled sources.

Stage cases run the stage in its own process, as DVC runs it: one ``error:``
line naming the file, what it holds and what was expected, no traceback.
"""

import dataclasses
import gzip
import hashlib
import http.server
import json
import re
import struct
import threading
import time
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from mnistpipe import download, gate, idx, predict, release
from mnistpipe.data import prepare
from mnistpipe.dataset_info import DatasetInfo, write_info
from mnistpipe.datasets import DATASETS, FILE_NAMES
from mnistpipe.errors import PipelineError
from mnistpipe.inputs import read_json_object
from mnistpipe.models import build_mlp
from tests.conftest import REPOSITORY, synthetic_split, write_mirror
from tests.test_failures import (
    assert_clear_error,
    run_family_case,
    run_stage_in_this_process,
    run_stage_process,
    write_raw,
)

PREPARED = Path("data/prepared")


@pytest.fixture
def project(tmp_path, synthetic_files):
    """A project with prepared synthetic data (written in-process: no stage to wait for)."""
    params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    params["preprocess"]["val_split"] = 0.2
    params["train"].update(model="mlp", epochs=1, batch_size=64)
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_raw(root, synthetic_files)
    return root


def prepare_in(root: Path, storage_format: str = "npy", shard_size: int = 10_000) -> None:
    prepare(
        root / "data/raw", root / PREPARED, 0.2, 0, 42, storage_format, shard_size, "fashion_mnist"
    )


def save_model(root: Path, model: keras.Model) -> Path:
    path = root / "models" / "model.keras"
    path.parent.mkdir(exist_ok=True)
    model.save(path)
    return path


def other_input_model() -> keras.Model:
    return keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )


def five_class_model() -> keras.Model:
    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(5)]
    )


@pytest.mark.parametrize(
    ("make_model", "fragments"),
    [
        (other_input_model, ["takes inputs of shape (32, 32, 3)", "(28, 28, 1)"]),
        (five_class_model, ["gives outputs of shape (5,)", "10 logits"]),
    ],
    ids=["other-input", "other-classes"],
)
def test_a_model_that_does_not_fit_the_dataset_stops_evaluate(
    request, project, make_model, fragments
):
    prepare_in(project)
    save_model(project, make_model())

    result = run_family_case(request, project, "evaluate")

    assert_clear_error(result, "models/model.keras", *fragments, "dvc repro --force train")
    assert not (project / "metrics").exists()


def test_a_model_file_cut_short_names_the_file_and_the_way_back(project):
    prepare_in(project)
    path = save_model(project, build_mlp((28, 28, 1), 10, 0.2))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    result = run_stage_process(project, "evaluate")

    assert_clear_error(
        result, "models/model.keras is not a complete .keras file", "dvc repro --force train"
    )


def test_a_truncated_npy_stops_train_naming_the_file(project):
    prepare_in(project)
    path = project / PREPARED / "train_images.npy"
    path.write_bytes(path.read_bytes()[:1000])

    # In this process: a cut-short model and a damaged shard are this family's own-process cases.
    result = run_stage_in_this_process(project, "train")

    assert_clear_error(
        result, "cannot load data/prepared/train_images.npy", "dvc repro --force preprocess"
    )
    assert not (project / "models").exists()


def test_a_flipped_byte_in_a_tfrecord_shard_stops_train_naming_the_shard(project):
    prepare_in(project, "tfrecord", shard_size=100)
    shard = sorted((project / PREPARED).glob("train-*.tfrecord.gz"))[1]
    content = bytearray(shard.read_bytes())
    content[len(content) // 2] ^= 0xFF
    shard.write_bytes(bytes(content))

    result = run_stage_process(project, "train")

    assert_clear_error(
        result, str(shard.relative_to(project)), "damaged", "dvc repro --force preprocess"
    )
    assert not (project / "models").exists()


def test_tfrecord_shards_of_another_image_size_stop_train(project, tmp_path):
    from mnistpipe.tfrecords import write_tfrecords

    images, labels = synthetic_split(60, seed=3)
    wide = np.zeros((60, 32, 32), dtype=np.uint8)
    wide[:, :28, :28] = images
    prepared = project / PREPARED
    prepared.mkdir(parents=True)
    write_tfrecords(prepared, {split: (wide, labels) for split in ("train", "val", "test")}, 100)
    (prepared / "source.json").write_text('{"dataset": "fashion_mnist", "raw_sha256": {}}')

    # In this process: another dataset's arrays are this family's own-process case (train).
    result = run_stage_in_this_process(project, "train")

    assert_clear_error(
        result,
        "data/prepared/train-00000-of-00001.tfrecord.gz",
        "image of 1024 bytes",
        "expected 28x28x1 = 784 bytes",
    )


@pytest.mark.parametrize(
    ("stage", "storage_format"), [("train", "npy"), ("train", "tfrecord"), ("evaluate", "npy")]
)
def test_prepared_data_of_another_dataset_is_refused(project, stage, storage_format):
    # MNIST's arrays have Fashion-MNIST's shape, dtype and labels: only the
    # record preprocess writes beside them tells which dataset they are.
    prepare(project / "data/raw", project / PREPARED, 0.2, 0, 42, storage_format, 10_000, "mnist")
    save_model(project, build_mlp((28, 28, 1), 10, 0.2))
    outputs_before = sorted(path.name for path in project.rglob("*"))

    # Each stage's first case (npy) in a process of its own, as DVC runs it; tfrecord in this one.
    run = run_stage_process if storage_format == "npy" else run_stage_in_this_process
    result = run(project, stage)

    assert_clear_error(
        result, "data/prepared/source.json", "dataset 'mnist'", "dataset is 'fashion_mnist'"
    )
    assert sorted(path.name for path in project.rglob("*")) == outputs_before


def test_prepared_arrays_without_their_source_record_are_refused(project):
    prepare_in(project)
    (project / PREPARED / "source.json").unlink()

    result = run_stage_process(project, "train")

    assert_clear_error(
        result, "data/prepared/source.json does not exist", "dvc repro --force preprocess"
    )


def test_a_source_record_nested_too_deeply_is_refused(tmp_path):
    # json.loads ran out of stack: a RecursionError traceback instead of this line.
    from mnistpipe.prepared import check_source

    (tmp_path / "source.json").write_text("[" * 100_000)
    with pytest.raises(PipelineError, match=r"cannot read .*source.json \(RecursionError"):
        check_source(tmp_path, "fashion_mnist")


def test_preprocess_refuses_raw_files_of_another_known_dataset(project, monkeypatch):
    raw = project / "data/raw"
    checksums = {
        role: hashlib.sha256((raw / name).read_bytes()).hexdigest()
        for role, name in FILE_NAMES.items()
    }
    monkeypatch.setitem(
        DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"], sha256=checksums)
    )

    with pytest.raises(PipelineError, match=r"data/raw holds the mnist files.*fashion_mnist"):
        prepare(raw, project / PREPARED, 0.2, 0, 42, "npy", 10_000, "fashion_mnist")
    assert not (project / PREPARED).exists()


def test_the_source_record_names_the_dataset_and_each_raw_file(project):
    prepare_in(project)

    record = json.loads((project / PREPARED / "source.json").read_text())
    raw = project / "data/raw"
    assert record == {
        "dataset": "fashion_mnist",
        "raw_sha256": {
            role: hashlib.sha256((raw / name).read_bytes()).hexdigest()
            for role, name in FILE_NAMES.items()
        },
    }


def test_a_limit_beyond_the_data_is_refused(project):
    with pytest.raises(PipelineError, match=r"preprocess.limit is 100000 .* holds 600"):
        prepare(project / "data/raw", project / PREPARED, 0.2, 100_000, 42)


def test_an_idx_header_claiming_absurd_counts_is_refused_without_allocating():
    # 4 billion images of 4 billion x 4 billion pixels: NumPy's int64 product overflows.
    content = struct.pack(">IIII", idx.IMAGES_MAGIC, 2**32 - 1, 2**32 - 1, 2**32 - 1)
    with pytest.raises(PipelineError, match="header .* implies .* do not match the file"):
        idx.parse_idx(content + bytes(100), "bogus", idx.IMAGES_MAGIC)


def test_a_gzip_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "MAX_IDX_BYTES", 1 << 20)
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(bytes(4 << 20)))
    with pytest.raises(PipelineError, match="decompresses to more than 1,048,576 bytes"):
        idx.read_bytes(path)


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


# What classes.json says of a Fashion-MNIST export.
_BUILT_IN_EXPORT = predict.ExportedClasses([str(n) for n in range(10)], (28, 28, 1), True)


def test_predict_refuses_a_picture_of_huge_dimensions_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    # The header and the first chunk of pixel data: Pillow reads the size from them.
    pixels = b"IDAT" + zlib.compress(bytes(100))
    idat = struct.pack(">I", len(pixels) - 4) + pixels + struct.pack(">I", zlib.crc32(pixels))
    path.write_bytes(png_header(100_000, 100_000) + idat)
    with pytest.raises(PipelineError, match=r"huge.png is too large to decode \(Image size"):
        predict.read_inputs(path, _BUILT_IN_EXPORT)
    # Within Pillow's own bound, pictures.MAX_IMAGE_PIXELS refuses it before its pixels.
    path.write_bytes(png_header(9_000, 9_000) + idat)
    with pytest.raises(PipelineError, match=r"PNG image of 9000x9000 pixels, more than 64,000"):
        predict.read_inputs(path, _BUILT_IN_EXPORT)


def test_predict_on_a_file_that_is_not_an_image_names_the_formats_of_its_help(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a picture")
    with pytest.raises(PipelineError) as raised:
        predict.read_inputs(path, _BUILT_IN_EXPORT)
    message = str(raised.value)
    assert (
        "is not an image" in message and "expected a PNG, JPEG, BMP, GIF or WebP image" in message
    )
    damaged = tmp_path / "damaged.png"
    # Pixel data that is not zlib data, in a chunk of its own (its CRC right).
    chunk = b"IDATgarbage"
    damaged.write_bytes(
        png_header(28, 28) + struct.pack(">I", 7) + chunk + struct.pack(">I", zlib.crc32(chunk))
    )
    with pytest.raises(PipelineError) as raised:
        predict.read_inputs(damaged, _BUILT_IN_EXPORT)
    assert "is a damaged image" in str(raised.value)
    assert "\n" not in str(raised.value)


class _Trickle(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the name http.server calls)
        self.send_response(200)
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        try:
            while not self.server.stopping.is_set():
                self.wfile.write(b"\x1f")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    def log_message(self, *args):
        pass


def test_a_source_that_trickles_is_given_up_and_the_next_one_serves(
    tmp_path, monkeypatch, synthetic_files, synthetic_dataset
):
    monkeypatch.setattr(download, "GRACE_SECONDS", 1.0)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    server.stopping = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        trickle = f"http://127.0.0.1:{server.server_address[1]}/"
        mirror = write_mirror(tmp_path / "mirror", synthetic_files)
        name = "train-labels-idx1-ubyte"
        started = time.monotonic()
        source = download.fetch_file(
            [trickle, str(mirror)],
            name,
            synthetic_dataset.sha256["train_labels"],
            tmp_path / name,
            progress=False,
        )
        assert source == str(mirror)
        assert time.monotonic() - started < 20
        with pytest.raises(PipelineError, match="too slow: .* below the minimum average"):
            download.fetch_file([trickle], name, "0" * 64, tmp_path / "other", progress=False)
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


def write_card_metrics(root: Path) -> None:
    """The metrics files the export stage's model card reads, as train and evaluate write them."""
    class_names = DATASETS["fashion_mnist"].class_names
    figures = {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 10}
    files = {
        "metrics/train.json": {"best_val_accuracy": 0.9, "epochs": 1, "parameters": 101770},
        "metrics/evaluate.json": {
            "accuracy": 0.9,
            "loss": 0.3,
            "min_accuracy": 0.9,
            "meets_min_accuracy": True,
            "examples": 100,
            "macro_avg": {"precision": 0.9, "recall": 0.9, "f1": 0.9},
        },
        "metrics/classes.json": {"per_class": {name: figures for name in class_names}},
        "metrics/lineage.json": {
            "weights_sha256": "0" * 64,
            "data_sha256": "0" * 64,
            "environment_lock_sha256": None,
            "versions": {"tensorflow": "2", "keras": "3", "dvc": "3"},
        },
        "dvclive/metrics.json": {
            "train": {"loss": 0.3, "accuracy": 0.9},
            "eval": {"loss": 0.3, "accuracy": 0.9},
            "step": 0,
        },
    }
    for name, content in files.items():
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_text(json.dumps(content))
    # What export reads first: the prepared data's classes and image shape.
    (root / "data" / "prepared").mkdir(parents=True, exist_ok=True)
    write_info(root / "data" / "prepared", DatasetInfo(class_names, (28, 28, 1)))


@pytest.mark.parametrize(
    ("name", "damage", "fragment"),
    [
        ("evaluate", lambda metrics: metrics.pop("min_accuracy"), "has no min_accuracy"),
        ("evaluate", lambda metrics: metrics.update(accuracy="high"), "has accuracy 'high'"),
        ("evaluate", lambda metrics: metrics.update(macro_avg=[]), "has no macro_avg.f1"),
        ("classes", lambda metrics: metrics["per_class"].pop("Bag"), "has no per_class.Bag."),
        ("train", lambda metrics: metrics.pop("parameters"), "has no parameters"),
        ("lineage", lambda metrics: metrics.update(versions=[]), "has no versions.tensorflow"),
    ],
    ids=["no-bar", "text-accuracy", "no-f1", "no-class", "no-parameters", "versions-list"],
)
def test_metrics_the_model_card_needs_missing_stop_export_naming_file_and_key(
    project, name, damage, fragment
):
    # A JSON object without a key the card reads was a KeyError or TypeError half way
    # through the card; now export says which file lacks what before it exports anything.
    write_card_metrics(project)
    path = project / "metrics" / f"{name}.json"
    metrics = json.loads(path.read_text())
    damage(metrics)
    path.write_text(json.dumps(metrics))

    result = run_stage_in_this_process(project, "export")

    writer = "evaluate" if name in ("evaluate", "classes") else "train"
    assert_clear_error(result, f"metrics/{name}.json {fragment}", f"dvc repro --force {writer}")
    assert not (project / "models").exists()


@pytest.mark.parametrize(
    ("write", "fragment"),
    [
        (lambda path: path.write_bytes(b"\xff\xfe{}"), "cannot read metrics/evaluate.json"),
        (lambda path: path.mkdir(), "cannot read metrics/evaluate.json (Is a directory)"),
        (lambda path: path.write_text('{"accuracy": NaN}'), "NaN is not a number JSON allows"),
        (lambda path: path.write_text('{"accuracy": 1e999}'), "evaluate.accuracy"),
        (lambda path: path.write_text("[0.93]"), "holds a JSON list"),
        # json.loads raises RecursionError, not ValueError, some thousand arrays deep.
        (lambda path: path.write_text("[" * 100000), "metrics/evaluate.json is not valid JSON"),
    ],
    ids=["not-utf-8", "directory", "nan", "infinity", "list", "nested"],
)
def test_a_damaged_workspace_metrics_file_is_one_gate_error(
    tmp_path, monkeypatch, capsys, write, fragment
):
    from tests.test_gate import commit_all, git, write_metrics

    (tmp_path / "params.yaml").write_text((REPOSITORY / "params.yaml").read_text())
    write_metrics(tmp_path, accuracy=0.92, loss=0.22)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    commit_all(tmp_path)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "metrics" / "evaluate.json"
    path.unlink()
    write(path)

    assert gate.main(["--against", "HEAD"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and fragment in error, error


@pytest.mark.parametrize(
    ("written", "shown"),
    [("1" + "0" * 400, "an integer of about 401 digits"), ("1e999", "inf")],
    ids=["huge-integer", "infinity"],
)
@pytest.mark.parametrize("key", ["accuracy", "examples"], ids=["number", "required"])
def test_a_number_beyond_floats_range_in_a_json_object_is_one_error_naming_file_and_key(
    tmp_path, written, shown, key
):
    # An integer written out past float's range passed the check, and the float() of
    # the code that read it raised OverflowError: a traceback.
    path = tmp_path / "evaluate.json"
    path.write_text(f'{{"accuracy": 0.9, "examples": 10, "{key}": {written}}}')

    with pytest.raises(PipelineError) as raised:
        read_json_object(path, "evaluate", required=("examples",), numbers=("accuracy",))

    assert str(raised.value) == (
        f"{path} has {key} {shown}; expected a finite number; "
        f"run dvc repro --force evaluate (or dvc checkout {path})"
    )


def test_a_required_key_is_checked_for_presence_not_as_a_number(tmp_path):
    # The finite-number check took a required flag's true for a number (bool is an
    # int) and refused it: "has meets_min_accuracy True; expected a finite number".
    path = tmp_path / "evaluate.json"
    path.write_text('{"accuracy": 0.9, "meets_min_accuracy": true}')
    value = read_json_object(
        path, "evaluate", required=("meets_min_accuracy",), numbers=("accuracy",)
    )
    assert value["meets_min_accuracy"] is True


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{}", "metrics/evaluate.json has no accuracy"),
        ('{"accuracy": "0.95"}', "metrics/evaluate.json has accuracy '0.95'; expected a number"),
        ("\xff", "metrics/evaluate.json is not valid JSON"),
    ],
)
def test_release_reads_the_bar_from_a_checked_metrics_file(
    tmp_path, monkeypatch, content, fragment
):
    (tmp_path / "params.yaml").write_text((REPOSITORY / "params.yaml").read_text())
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "evaluate.json").write_text(content, encoding="latin-1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError, match=re.escape(fragment)):
        release.check_bar()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"artifacts: [1, 2]\n", "artifacts in dvc.yaml is [1, 2]; expected a mapping of"),
        (b"artifacts:\n  classifier: 1\n", "artifacts.classifier in dvc.yaml is 1; expected"),
        (b"[1]\n", "dvc.yaml holds a YAML list; expected a mapping"),
        (b"artifacts: {a: [\n", "dvc.yaml is not valid plain YAML (while parsing"),
        (b"!!python/object:os.system {}\n", "dvc.yaml is not valid plain YAML (could not"),
        (b"\xff\xfe", "dvc.yaml is not UTF-8 text"),
        (None, "cannot read dvc.yaml: Is a directory"),
    ],
    ids=["artifacts-list", "entry-int", "list", "malformed", "python-tag", "not-utf-8", "dir"],
)
def test_release_refuses_a_dvc_yaml_it_cannot_read_naming_it(
    tmp_path, monkeypatch, capsys, content, fragment
):
    # Were AttributeError ('list' object has no attribute 'items') and yaml's own traceback.
    monkeypatch.chdir(tmp_path)
    if content is None:
        (tmp_path / "dvc.yaml").mkdir()
    else:
        (tmp_path / "dvc.yaml").write_bytes(content)
    assert release.main(["1.0.0"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and fragment in error, error


def test_a_file_where_the_checkpoints_folder_goes_does_not_fail_training(project):
    # `checkpoints` as a file: the run trained and wrote its outputs, then removing
    # checkpoints/train.npz raised NotADirectoryError, a traceback and exit status 1.
    prepare_in(project)
    (project / "checkpoints").write_text("not a folder")

    result = run_stage_in_this_process(project, "train")

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "warning: could not remove the checkpoint checkpoints/train.npz" in result.stderr
    assert (project / "models" / "model.keras").is_file()
