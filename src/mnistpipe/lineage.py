"""What a result came from: hashes of inputs and outputs, and the library versions."""

import hashlib
import importlib.metadata
import os
from pathlib import Path

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
    }


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
