"""What a result came from: hashes of inputs and outputs, and the library versions."""

import hashlib
import importlib.metadata
import os
from pathlib import Path

import keras
import numpy as np

from mnistpipe import paths
from mnistpipe.files import sha256_of_file


def directory_sha256(directory: str | os.PathLike) -> str:
    """One SHA-256 over every file in ``directory`` (names and contents, in sorted order)."""
    digest = hashlib.sha256()
    for file in sorted(Path(directory).rglob("*")):
        if file.is_file():
            digest.update(file.relative_to(directory).as_posix().encode() + b"\0")
            digest.update(bytes.fromhex(sha256_of_file(file)))
    return digest.hexdigest()


def lineage(weights_sha256: str, prepared: str | os.PathLike) -> dict:
    """What a trained model came from, as metrics/lineage.json and the model card record it.

    One dict, built here only: the model card and anyone adding a hash read the same keys.
    """
    return {
        "weights_sha256": weights_sha256,
        "data_sha256": directory_sha256(prepared),
        "versions": library_versions(),
        "environment_lock_sha256": environment_lock_sha256(paths.ENVIRONMENT_LOCK),
        "onednn_kernels": onednn_kernels(),
        "portable_kernels": portable_kernels(),
    }


def portable_kernels() -> dict:
    """The kernels' instruction set and thread count, as mnistpipe/__init__ fixes them.

    ``same_bytes_everywhere`` says whether another x86-64 machine gives this run's bytes:
    the instruction set capped at AVX2 and the portable thread count.
    """
    from mnistpipe import PORTABLE_INSTRUCTION_SET, PORTABLE_THREADS

    instruction_set = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() or "the machine's own"
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS", "") or "the machine's own"
    return {
        "max_instruction_set": instruction_set,
        "threads": threads,
        "same_bytes_everywhere": (
            instruction_set == PORTABLE_INSTRUCTION_SET and threads == PORTABLE_THREADS
        ),
    }


def onednn_kernels() -> bool | None:
    """Whether TensorFlow runs its oneDNN kernels in this process; None where it cannot say.

    They give other (equally good) floating-point results than TensorFlow's own kernels,
    so two runs are comparable byte for byte only where this agrees (see mnistpipe/__init__).
    TensorFlow tells it only through an internal module (pinned with TensorFlow in uv.lock);
    a TensorFlow without it must not fail a finished training, so the record is then None.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def environment_lock_sha256(lock: str | os.PathLike) -> str | None:
    """The SHA-256 of uv.lock, or None where the project has none.

    The library versions name three packages; the lock names every one, by version and hash.
    It is uv.lock rather than the requirements/<extra>.txt that `make setup` installed because
    each of those is exported from it (tests/test_lock.py checks they agree), and the versions
    say which one: tensorflow-cpu comes from requirements/cpu.txt, tensorflow from gpu.txt.
    """
    lock = Path(lock)
    return sha256_of_file(lock) if lock.is_file() else None


def library_versions() -> dict[str, str]:
    return {
        package: importlib.metadata.version(distribution)
        for package, distribution in (
            ("tensorflow", _tensorflow_distribution()),
            ("keras", "keras"),
            ("dvc", "dvc"),
        )
    }


def _tensorflow_distribution() -> str:
    # The CPU-only and the full build install under different distribution names.
    for name in ("tensorflow", "tensorflow-cpu"):
        try:
            importlib.metadata.version(name)
            return name
        except importlib.metadata.PackageNotFoundError:
            continue
    return "tensorflow"


def weights_sha256(model: keras.Model) -> str:
    """A fingerprint of the trained weights, to prove two runs gave the same model."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()
