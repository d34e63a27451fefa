"""preprocess.format: npy or sharded TFRecord, the same examples and the same training result."""

import json

import numpy as np
import pytest

from mnistpipe.data import prepare
from mnistpipe.errors import PipelineError
from mnistpipe.examples import SPLITS, TFRECORD_MANIFEST
from mnistpipe.lineage import weights_sha256
from mnistpipe.prepared import load_examples, load_split
from mnistpipe.seeding import seed_everything
from mnistpipe.training import train_from_params
from tests.conftest import settings_for, synthetic_idx_files


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The same synthetic raw data prepared in both formats; shards of uneven length."""
    root = tmp_path_factory.mktemp("formats")
    raw = root / "raw"
    raw.mkdir()
    for name, content in synthetic_idx_files(700, 100).items():
        (raw / name).write_bytes(content)
    directories = {}
    for storage_format in ("npy", "tfrecord"):
        directories[storage_format] = root / storage_format
        sizes = prepare(
            raw,
            directories[storage_format],
            0.2,
            0,
            seed=9,
            storage_format=storage_format,
            shard_size=97,
        )
        assert sizes == {"train": 560, "val": 140, "test": 100}
    return directories


def test_tfrecord_shards_are_gzip_files_named_in_a_manifest(prepared):
    directory = prepared["tfrecord"]
    manifest = json.loads((directory / TFRECORD_MANIFEST).read_text())
    assert manifest["train"]["count"] == 560
    # 560 examples at most 97 a shard: 6 shards.
    assert manifest["train"]["shards"][0] == "train-00000-of-00006.tfrecord.gz"
    assert len(manifest["train"]["shards"]) == 6
    for name in manifest["train"]["shards"]:
        assert (directory / name).read_bytes()[:2] == b"\x1f\x8b"
    assert not list(directory.glob("*.npy"))


@pytest.mark.parametrize("split", SPLITS)
def test_both_formats_hold_the_same_examples_in_the_same_order(prepared, split):
    npy_images, npy_labels = load_split(prepared["npy"], split)
    record_images, record_labels = load_split(prepared["tfrecord"], split)
    assert record_images.dtype == np.float32 and record_labels.dtype == np.int64
    np.testing.assert_array_equal(record_images, npy_images)
    np.testing.assert_array_equal(record_labels, npy_labels)


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_both_formats_train_to_the_same_weights_with_the_same_seed(prepared, loop):
    results = []
    for storage_format in ("npy", "tfrecord"):
        seed_everything(4, deterministic=True)
        train = load_examples(prepared[storage_format], "train")
        val = load_examples(prepared[storage_format], "val")
        model, history = train_from_params(settings_for("mlp", loop, epochs=2), 4, train, val)
        results.append((weights_sha256(model), history))
    assert results[0] == results[1]


def test_a_damaged_manifest_is_a_clear_error(prepared, tmp_path):
    directory = tmp_path / "prepared"
    directory.mkdir()
    (directory / TFRECORD_MANIFEST).write_text('{"train": {"count": 3}}')
    with pytest.raises(PipelineError, match=r"cannot read split 'train' from .*tfrecord.json"):
        load_examples(directory, "train")


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        ('{"train": {"count": 3, "shards": [7]}}', "(shards is [7]); expected a list"),
        ('{"train": {"count": 3, "shards": [null]}}', "(shards is [None]); expected"),
        ('{"train": {"count": 3, "shards": [["a"]]}}', "(shards is [['a']]); expected"),
        ('{"train": {"count": 3, "shards": "x.gz"}}', "(shards is 'x.gz'); expected"),
        ('{"train": {"count": 3, "shards": ["/etc/passwd"]}}', "shards is ['/etc/passwd']"),
        ('{"train": {"count": 3, "shards": [".."]}}', "shards is ['..']"),
        ('{"train": {"count": 3, "shards": []}}', "shards is []"),
        ('{"train": {"count": 1e999, "shards": ["a"]}}', "(count is inf); expected a whole"),
        (
            '{"train": {"count": 1' + "0" * 400 + ', "shards": ["a"]}}',
            "(count is 1000000000",
        ),
        ('{"train": {"count": 9223372036854775808, "shards": ["a"]}}', "2**63 - 1"),
        ('{"train": {"count": -1, "shards": ["a"]}}', "(count is -1); expected a whole"),
        ('{"train": {"count": "3", "shards": ["a"]}}', "(count is '3'); expected a whole"),
        ('{"train": [3]}', "(train is [3]); expected an object"),
        ('{"train": "3"}', "(train is '3'); expected an object"),
        ("[1]", "(it holds a JSON list); expected an object"),
        ('{"val": {}}', "(it has no 'train'); expected an object"),
        ("[" * 100_000, "RecursionError"),
    ],
)
def test_a_manifest_of_the_wrong_structure_is_a_clear_error(tmp_path, manifest, fragment):
    # Shard names that are not strings gave an unhandled TypeError (path / 7); an
    # infinite count an OverflowError; one past int64 (10**400) a ValueError; deep
    # nesting a RecursionError.
    (tmp_path / TFRECORD_MANIFEST).write_text(manifest)
    with pytest.raises(
        PipelineError, match=r"cannot read split 'train' from .*tfrecord.json"
    ) as raised:
        load_examples(tmp_path, "train")
    assert fragment in str(raised.value)


def test_switching_format_leaves_no_file_of_the_other(prepared, tmp_path):
    raw = prepared["npy"].parent / "raw"
    output = tmp_path / "prepared"
    prepare(raw, output, 0.2, 0, seed=9, storage_format="tfrecord", shard_size=1000)
    prepare(raw, output, 0.2, 0, seed=9, storage_format="npy")
    # The six arrays, the record of their source and dataset.json, nothing of the shards.
    assert sorted(path.name for path in output.iterdir() if path.suffix != ".npy") == [
        "dataset.json",
        "source.json",
    ]
    assert len(list(output.glob("*.npy"))) == 6


def test_a_shard_that_is_not_gzip_is_one_line_with_tensorflows_reason(tmp_path):
    # The reason alone: no {{function_node ...}}, [Op:...] or graph context lines.
    (tmp_path / "train-00000-of-00001.tfrecord.gz").write_bytes(b"not gzip at all" * 10)
    (tmp_path / TFRECORD_MANIFEST).write_text(
        '{"train": {"count": 3, "shards": ["train-00000-of-00001.tfrecord.gz"]}}'
    )
    with pytest.raises(PipelineError) as raised:
        load_examples(tmp_path, "train")
    message = str(raised.value)
    assert message.startswith(f"cannot read {tmp_path / 'train-00000-of-00001.tfrecord.gz'}: ")
    assert "expected GZIP TFRecord shards" in message
    assert "{{" not in message and "[Op:" not in message and "\n" not in message, message
