"""Bytes another machine or run wrote, checked against the hash that names them.

DVC 3 names each cache and remote object by the MD5 of its bytes (a directory's
listing too, with ``.dir`` after it), and ``dvc.lock`` records that MD5 for every
output. Whatever reads such bytes from elsewhere (``make pull``, the CI report's
base predictions through ``dvc.api``) checks them here, since DVC itself does not
hash what it fetches.
"""

import hashlib
from pathlib import Path

from mnistpipe.errors import PipelineError
from mnistpipe.inputs import mapping_under, parse_yaml_mapping


def md5_of(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "md5").hexdigest()


def whole(path: Path, oid: str) -> bool:
    """Whether the file at ``path`` holds the bytes DVC 3 names ``oid`` (with ``.dir`` or not)."""
    try:
        return md5_of(path) == oid.removesuffix(".dir")
    except OSError:
        return False


def locked_md5(lock_text: str, output: str, source: str) -> str:
    """The MD5 that a ``dvc.lock``'s text records for the output ``output``."""
    expected = "the dvc.lock that dvc repro writes"
    lock = parse_yaml_mapping(lock_text, source, expected)
    stages = mapping_under(lock, "stages", source, "stage names")
    for stage in stages.values():
        outs = stage.get("outs") if isinstance(stage, dict) else None
        for out in outs if isinstance(outs, list) else []:
            if isinstance(out, dict) and out.get("path") == output and "md5" in out:
                return str(out["md5"])
    raise PipelineError(f"{source} records no output {output}; expected {expected}")


def check_locked(content: bytes, lock_text: str, output: str, source: str) -> None:
    """Raise unless ``content`` is the bytes of ``output`` that ``lock_text`` records."""
    expected = locked_md5(lock_text, output, source)
    actual = hashlib.md5(content).hexdigest()
    if actual != expected:
        raise PipelineError(
            f"{output} as read ({len(content)} bytes, MD5 {actual}) is not the one {source} "
            f"records (MD5 {expected}); expected the pushed bytes: the cache or remote holds a "
            "damaged copy (`make pull` names and deletes it; `make push VERIFY=1` from a "
            "clone that has it mends the remote)"
        )
