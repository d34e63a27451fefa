"""Fetching a dataset's four IDX files from the first source that serves them correctly.

Sources are tried in order: the user's mirrors, the system copy a Debian
package installs, then the public mirrors. Each file is verified by the
SHA-256 of its decompressed content and written decompressed, so the output is
byte-identical whichever source served it. A file appears at its output path
only once verified.
"""

import hashlib
import http.client
import shutil
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from mnistpipe.datasets import FILE_NAMES, DatasetSpec
from mnistpipe.errors import PipelineError
from mnistpipe.files import atomic_path, sha256_of_file

TIMEOUT_SECONDS = 30
# A source that keeps the connection open but sends almost nothing is given up:
# from GRACE_SECONDS on, a file must arrive at an average of MIN_BYTES_PER_SECOND
# (10 kB/s: the 26 MB of Fashion-MNIST's training images in 45 minutes), and no
# file may take longer than FILE_DEADLINE_SECONDS from one source. Then the next
# source is tried, without retrying this one.
GRACE_SECONDS = 60
MIN_BYTES_PER_SECOND = 10_000
FILE_DEADLINE_SECONDS = 3600
# More than any MNIST-like IDX file: a source that sends without end is cut off.
MAX_FILE_BYTES = 1 << 30
ATTEMPTS_PER_URL = 3
RETRY_PAUSE_SECONDS = 1.0
_CHUNK_BYTES = 1 << 16


class SourceFailed(Exception):
    """One source could not deliver one file; the reason goes into the final error."""


def sources_for(spec: DatasetSpec, mirrors: list[str]) -> list[str]:
    """All sources of ``spec`` in the order they are tried."""
    sources = list(mirrors)
    if spec.system_directory:
        sources.append(spec.system_directory)
    sources.extend(spec.public_mirrors)
    return sources


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def _open_local(source: str, file_name: str):
    """The local file for ``file_name`` in directory ``source``: gzip-compressed or plain."""
    directory = Path(source)
    if not directory.is_dir():
        raise SourceFailed("no such directory")
    for candidate in (directory / f"{file_name}.gz", directory / file_name):
        if candidate.is_file():
            try:
                return open(candidate, "rb"), candidate.stat().st_size
            except OSError as error:
                raise SourceFailed(f"cannot read {candidate}: {error.strerror}") from None
    raise SourceFailed(f"neither {file_name}.gz nor {file_name} is there")


class _Transient(SourceFailed):
    """A failure that asking again may cure: a 5xx answer, a timeout, a dropped connection."""


def _open_url(url: str):
    """An HTTP response for ``url`` and its announced length."""
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        failure = _Transient if error.code >= 500 else SourceFailed
        raise failure(f"HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise _Transient(
            "timed out" if isinstance(reason, TimeoutError) else str(reason)
        ) from None
    length = response.headers.get("Content-Length")
    return response, int(length) if length and length.isdigit() else None


def _copy_verified(
    stream,
    size: int | None,
    target: Path,
    expected_sha256: str,
    label: str,
    progress: bool,
    decompress: bool = True,
    max_bytes: int = MAX_FILE_BYTES,
) -> None:
    """Copy ``stream`` to ``target`` (gunzipped if ``decompress``), checking its SHA-256."""
    digest = hashlib.sha256()
    decompressor = None
    started, received, written = time.monotonic(), 0, 0
    # read1 returns what one socket read brings, so the rate is checked even when
    # a source sends a few bytes at a time; local files have read only.
    read = getattr(stream, "read1", stream.read)
    with (
        tqdm(
            total=size, unit="B", unit_scale=True, desc=label, disable=not progress, leave=False
        ) as bar,
        open(target, "wb") as output,
    ):
        first = True
        while True:
            try:
                chunk = read(_CHUNK_BYTES)
            except (OSError, ValueError, http.client.HTTPException) as error:
                raise _Transient(f"transfer broke off: {error!r}") from None
            if not chunk:
                break
            received += len(chunk)
            _check_pace(started, received)
            bar.update(len(chunk))
            if first:
                first = False
                if decompress and chunk.startswith(b"\x1f\x8b"):
                    decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
            if decompressor is not None:
                try:
                    chunk = decompressor.decompress(chunk)
                except zlib.error as error:
                    raise SourceFailed(f"not a valid gzip stream: {error}") from None
            written += len(chunk)
            if written > max_bytes:
                raise SourceFailed(f"sent more than {max_bytes:,} bytes; expected less")
            digest.update(chunk)
            output.write(chunk)
    if decompressor is not None and not decompressor.eof:
        raise _Transient("gzip stream ends early (truncated transfer)")
    found = digest.hexdigest()
    if found != expected_sha256:
        raise SourceFailed(
            f"content SHA-256 is {found[:12]}..., expected {expected_sha256[:12]}..."
        )


def _check_pace(started: float, received: int) -> None:
    """Give a source up when it is far too slow (see MIN_BYTES_PER_SECOND)."""
    elapsed = time.monotonic() - started
    if elapsed > FILE_DEADLINE_SECONDS:
        raise SourceFailed(
            f"too slow: {received:,} bytes in {elapsed:.0f} s, over the limit of "
            f"{FILE_DEADLINE_SECONDS} s a file"
        )
    if elapsed > GRACE_SECONDS and received < MIN_BYTES_PER_SECOND * elapsed:
        raise SourceFailed(
            f"too slow: {received:,} bytes in {elapsed:.0f} s, below the minimum average of "
            f"{MIN_BYTES_PER_SECOND:,} bytes/s"
        )


def fetch_file(
    sources: list[str], file_name: str, expected_sha256: str, target: Path, progress: bool = True
) -> str:
    """Put the verified, decompressed ``file_name`` at ``target``; return the source used.

    A file already at ``target`` with the right content is kept as it is.
    Raises ``PipelineError`` listing every source and why it failed.
    """
    if target.is_file() and sha256_of_file(target) == expected_sha256:
        return "already present"
    failures = []
    for source in sources:
        location = f"{source.rstrip('/')}/{file_name}.gz" if is_url(source) else source
        attempts = ATTEMPTS_PER_URL if is_url(source) else 1
        for attempt in range(1, attempts + 1):
            try:
                with atomic_path(target) as temporary:
                    if is_url(source):
                        stream, size = _open_url(location)
                    else:
                        stream, size = _open_local(source, file_name)
                    with stream:
                        _copy_verified(
                            stream,
                            size,
                            temporary,
                            expected_sha256,
                            file_name,
                            progress and is_url(source),
                        )
                return location
            except _Transient as reason:
                if attempt == attempts:
                    failures.append(f"  {location}: {reason} (after {attempts} attempts)")
                else:
                    time.sleep(RETRY_PAUSE_SECONDS * attempt)
            except SourceFailed as reason:
                failures.append(f"  {location}: {reason}")
                break
    raise PipelineError(
        f"no source served a valid {file_name} (to {target}); tried:\n" + "\n".join(failures)
    )


def download_dataset(
    spec: DatasetSpec, mirrors: list[str], output_directory: Path, progress: bool = True
) -> dict[str, str]:
    """Fetch the four IDX files of ``spec`` into ``output_directory``; return file → source.

    Anything else in ``output_directory`` (a file of another dataset, a leftover)
    is removed, so the directory holds exactly the four verified files.
    """
    output_directory.mkdir(parents=True, exist_ok=True)
    sources = sources_for(spec, mirrors)
    served_by = {}
    for role, file_name in FILE_NAMES.items():
        served_by[file_name] = fetch_file(
            sources, file_name, spec.sha256[role], output_directory / file_name, progress
        )
    for leftover in output_directory.iterdir():
        if leftover.name not in served_by:
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
    return served_by


# An archive of images may be far larger than an IDX file.
MAX_ARCHIVE_BYTES = 256 << 30


def fetch_archive(url: str, expected_sha256: str, target: Path, progress: bool = True) -> str:
    """Put the archive at ``url`` (http, https, or a path) at ``target``, verified by its SHA-256.

    The bytes are checked as they are, not decompressed: the SHA-256 is the one
    ``sha256sum`` gives for the archive file. Transient failures are retried as
    fetch_file retries them. Returns ``url``; raises ``PipelineError`` with the reason.
    """
    if "://" not in url:
        # A local archive file, named by its path.
        url = Path(url).resolve().as_uri()
    attempts = ATTEMPTS_PER_URL if is_url(url) else 1
    for attempt in range(1, attempts + 1):
        try:
            with atomic_path(target) as temporary:
                stream, size = _open_url(url)
                with stream:
                    _copy_verified(
                        stream,
                        size,
                        temporary,
                        expected_sha256,
                        target.name,
                        progress and is_url(url),
                        decompress=False,
                        max_bytes=MAX_ARCHIVE_BYTES,
                    )
            return url
        except _Transient as reason:
            if attempt == attempts:
                failure = f"{reason} (after {attempts} attempts)"
                break
            time.sleep(RETRY_PAUSE_SECONDS * attempt)
        except SourceFailed as reason:
            failure = str(reason)
            break
    raise PipelineError(
        f"cannot fetch folder.path {url}: {failure}; expected the archive whose SHA-256 is "
        "folder.sha256"
    )
