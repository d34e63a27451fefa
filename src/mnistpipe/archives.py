"""An archive of images (a .zip or .tar.gz), unpacked safely, and where the images then are.

Python's own readers do the reading (zipfile, tarfile); what is written here is the
checking they leave to their caller. Every member is checked before anything is
written: a plain relative path that stays inside the target (no ``/etc/x``, no
``../x``), a regular file or a folder (no symbolic or hard link, no device, no
pipe), and at most ``MAX_FILES`` files and ``MAX_UNPACKED_BYTES`` in all, so that
an archive bomb is refused before it fills the disk. The target appears whole or
not at all (``files.atomic_directory``).
"""

import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from mnistpipe.download import fetch_archive
from mnistpipe.errors import PipelineError
from mnistpipe.files import atomic_directory, write_json
from mnistpipe.image_folder import UNPACKED
from mnistpipe.inputs import read_json_object
from mnistpipe.params import is_archive

MAX_FILES = 10_000_000
MAX_UNPACKED_BYTES = 256 << 30
_COPY_BYTES = 1 << 20
# In data/raw/: what was unpacked there (the archive's URL and SHA-256), or which
# directory preprocess reads in place.
RECORD = "folder.json"


def download_folder(settings: dict, raw_directory: Path, progress: bool = True) -> str:
    """The download stage for ``dataset: folder``; returns what it did, in one line."""
    raw_directory.mkdir(parents=True, exist_ok=True)
    path, checksum = settings["path"], settings["sha256"]
    record = raw_directory / RECORD
    if not is_archive(path):
        if not Path(path).is_dir():
            raise PipelineError(
                f"folder.path {path} is not a directory; expected the image folder "
                "(ROOT/CLASS_NAME/images) or a URL of a .zip or .tar.gz with that layout"
            )
        remove_other_entries(raw_directory, keep=set())
        write_json(record, {"directory": path})
        return f"download: nothing to fetch, preprocess reads the folder {path} in place"
    images = raw_directory / UNPACKED
    wanted = {"archive": path, "sha256": checksum}
    if images.is_dir() and record.is_file():
        if read_json_object(record, "download") == wanted:
            return f"download: the archive {path} is unpacked in {images}/ already"
    remove_other_entries(raw_directory, keep=set())
    archive = raw_directory / "archive.download"
    try:
        fetch_archive(path, checksum, archive, progress)
        count = unpack(archive, images)
    finally:
        archive.unlink(missing_ok=True)
    write_json(record, wanted)
    return f"download: {count} files of the verified archive {path} in {images}/"


def _member_path(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise PipelineError(
            f"{archive} holds {name!r}, a path outside the folder it unpacks into; expected "
            "relative paths without '..' (the archive is refused, nothing was unpacked)"
        )
    return path


def _check_totals(archive: Path, files: int, size: int) -> None:
    if files > MAX_FILES or size > MAX_UNPACKED_BYTES:
        raise PipelineError(
            f"{archive} unpacks to {files:,} files of {size:,} bytes; expected at most "
            f"{MAX_FILES:,} files and {MAX_UNPACKED_BYTES:,} bytes (an archive bomb?)"
        )


def unpack(archive: Path, target: Path) -> int:
    """Unpack ``archive`` (zip or tar.gz, read from its bytes) into ``target``; the file count."""
    with atomic_directory(target) as directory:
        if zipfile.is_zipfile(archive):
            return _unpack_zip(archive, directory)
        try:
            with tarfile.open(archive, "r:*") as tar:
                return _unpack_tar(archive, tar, directory)
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            raise PipelineError(
                f"{archive} is not a whole .zip or .tar.gz archive ({error}); expected one"
            ) from None


def _unpack_zip(archive: Path, directory: Path) -> int:
    try:
        with zipfile.ZipFile(archive) as zip_file:
            members = zip_file.infolist()
            files, size = 0, 0
            for member in members:
                _member_path(member.filename, archive)
                mode = member.external_attr >> 16
                # Unix permissions ride in the top bits: a link is S_IFLNK there.
                if mode and not (
                    (mode & 0o170000) in (0o100000, 0o040000) or (mode & 0o170000) == 0
                ):
                    raise PipelineError(
                        f"{archive} holds {member.filename!r}, a link or special file; "
                        "expected only files and folders (the archive is refused)"
                    )
                if not member.is_dir():
                    files += 1
                    size += member.file_size
            _check_totals(archive, files, size)
            for member in members:
                path = directory / _member_path(member.filename, archive)
                if member.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                with zip_file.open(member) as source, open(path, "wb") as output:
                    shutil.copyfileobj(source, output, _COPY_BYTES)
            return files
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as error:
        raise PipelineError(f"{archive} is not a whole .zip archive ({error})") from None
    except NotImplementedError as error:
        raise PipelineError(f"{archive} uses a zip feature Python cannot read ({error})") from None


def _unpack_tar(archive: Path, tar: tarfile.TarFile, directory: Path) -> int:
    members = tar.getmembers()
    files, size = 0, 0
    for member in members:
        _member_path(member.name, archive)
        if not (member.isfile() or member.isdir()):
            raise PipelineError(
                f"{archive} holds {member.name!r}, a link, device or other special file; "
                "expected only files and folders (the archive is refused)"
            )
        if member.isfile():
            files += 1
            size += member.size
    _check_totals(archive, files, size)
    for member in members:
        path = directory / _member_path(member.name, archive)
        if member.isdir():
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        with source, open(path, "wb") as output:
            shutil.copyfileobj(source, output, _COPY_BYTES)
    return files


def remove_other_entries(directory: Path, keep: set[str]) -> None:
    """Remove from ``directory`` every entry not named in ``keep``."""
    for leftover in directory.iterdir():
        if leftover.name in keep:
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover)
        else:
            os.unlink(leftover)
