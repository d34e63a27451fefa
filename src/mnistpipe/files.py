"""Writing files so that they appear whole or not at all, and hashing them."""

import contextlib
import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from mnistpipe.errors import PipelineError

_CHUNK_BYTES = 1 << 20


def sha256_of_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _umask() -> int:
    """The process's umask, read where Linux shows it, else set and set back."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_if_created(path: Path, directory: bool = False) -> None:
    """Give what mkstemp/mkdtemp made (0600, 0700) the mode open() or mkdir() would have.

    Otherwise a model exported for a server running as another user, or data a
    teammate's account reads, could be read by this user alone. Read at each call,
    the umask decides, as it decides for a plain write.

    A directory made inside a setgid one (a shared group's ``chmod 2775``) gets
    the setgid bit from the kernel, as mkdir() gives it; chmod() would drop it, and
    the files written in it later would get the writer's group, not the shared one.
    """
    mode = (0o777 if directory else 0o666) & ~_umask()
    if directory:
        mode |= os.stat(path).st_mode & stat.S_ISGID
    os.chmod(path, mode)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only on success.

    The temporary file lives in the same directory, so the final ``os.replace``
    is atomic: a reader sees the old file or the new one, never half of one.
    On any error the temporary file is removed and ``path`` is left untouched;
    a failed write (a full disk, a read-only directory) becomes a
    ``PipelineError`` that says so.
    ``suffix`` is for writers that insist on an extension (Keras wants ``.keras``).
    """
    path = Path(path)
    with _reported_write_failure(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent
        )
        os.close(handle)
        temporary = Path(temporary_name)
        try:
            _as_if_created(temporary)
            yield temporary
            _fsync_file(temporary)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def _reported_write_failure(path: Path) -> Iterator[None]:
    # The OSError names the temporary file, if any; the user needs the real path.
    try:
        yield
    except OSError as error:
        state = "is as it was" if path.exists() else "was not written"
        raise PipelineError(
            f"could not write {path}: {error.strerror or error}; "
            f"expected room and permission to write there ({path} {state})"
        ) from error


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """``open()`` for writing whose result appears at ``path`` only once closed successfully."""
    with atomic_path(path) as temporary, open(temporary, mode) as stream:
        yield stream


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces the directory ``path`` on success."""
    path = Path(path)
    with _reported_write_failure(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            _as_if_created(temporary, directory=True)
            yield temporary
            for file in temporary.rglob("*"):
                if file.is_file():
                    _fsync_file(file)
            # Directories cannot be swapped in one atomic step: move the old one aside
            # first, so that a crash leaves either the old or the new one in place.
            previous = path.with_name(f".{path.name}.old")
            if previous.exists():
                shutil.rmtree(previous)
            if path.exists():
                os.replace(path, previous)
            os.replace(temporary, path)
            shutil.rmtree(previous, ignore_errors=True)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


def _json_ready(value: Any, key_path: str) -> Any:
    """Convert NumPy scalars to Python ones and refuse NaN or infinity, which JSON cannot hold."""
    if isinstance(value, dict):
        return {str(key): _json_ready(item, f"{key_path}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item, f"{key_path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key_path} is {value}; metrics must be finite numbers")
    return value


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write ``data`` as JSON with sorted keys and a trailing newline, atomically.

    Sorted keys and a fixed layout make the bytes depend only on the values, so
    two runs with the same results give byte-identical files.
    """
    text = json.dumps(
        _json_ready(data, Path(path).name), indent=2, sort_keys=True, allow_nan=False
    )
    with atomic_open(path) as stream:
        stream.write(text + "\n")


def save_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save one array as ``.npy`` (no pickle, no timestamps: same array, same bytes)."""
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        np.save(stream, np.ascontiguousarray(array), allow_pickle=False)


def directory_size_bytes(path: str | os.PathLike) -> int:
    return sum(file.stat().st_size for file in Path(path).rglob("*") if file.is_file())


def write_csv(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` (dicts with the same keys) as CSV with a header line, atomically."""
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    columns = list(rows[0])
    with atomic_open(path, "w") as stream:
        stream.write(",".join(columns) + "\n")
        for row in rows:
            stream.write(",".join(str(row[column]) for column in columns) + "\n")
