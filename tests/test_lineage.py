"""Lineage: hashes of the data directory and of trained weights."""

import keras

from mnistpipe.lineage import directory_sha256, onednn_kernels, weights_sha256
from mnistpipe.models import build_model
from tests.conftest import BUILT_IN


def test_a_directory_hash_covers_names_and_contents(tmp_path):
    (tmp_path / "a").write_bytes(b"1")
    first = directory_sha256(tmp_path)
    assert directory_sha256(tmp_path) == first
    (tmp_path / "a").write_bytes(b"2")
    second = directory_sha256(tmp_path)
    (tmp_path / "a").rename(tmp_path / "b")
    assert len({first, second, directory_sha256(tmp_path)}) == 3


def test_the_weights_hash_changes_with_any_weight():
    keras.utils.set_random_seed(1)
    model = build_model("mlp", 0.0, **BUILT_IN)
    before = weights_sha256(model)
    assert weights_sha256(model) == before
    kernel = model.weights[0]
    kernel.assign(kernel.numpy() + 1e-3)
    assert weights_sha256(model) != before


def test_the_kernels_record_is_none_where_tensorflow_cannot_tell(monkeypatch):
    # A TensorFlow without the internal module must not fail a finished training.
    from tensorflow.python.util import _pywrap_util_port

    assert onednn_kernels() is True  # mnistpipe turned them on before TensorFlow loaded
    monkeypatch.delattr(_pywrap_util_port, "IsMklEnabled")
    assert onednn_kernels() is None
