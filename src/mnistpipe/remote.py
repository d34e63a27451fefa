"""``dvc push`` and ``dvc pull`` that hand a teammate the bytes that were pushed, or say why not.

``python -m mnistpipe.remote push [--remote NAME]`` (``make push``) and ``pull``
(``make pull``) run the real DVC with its output shown as it comes, and add the
checks DVC leaves out:

- DVC knows what a remote holds by name only. A push killed half way can leave an
  object cut short under its final name on a WebDAV or S3 server (the server keeps
  what arrived), and every later push skips it. So before sending, a push compares
  each object the remote already holds for this repository with the cache: its
  size always, its MD5 where the remote gives one without a download (S3's ETag, a
  directory remote's bytes), and every byte with ``--verify`` (a download). A copy
  that differs is deleted there and sent whole again. After the push the sizes are
  compared once more.
- ``dvc pull`` checks out what it fetched without hashing it: a remote's ``verify``
  setting is off by default, and on, it deletes a bad object and says nothing. A
  pull here is ``dvc fetch``, then each cache object an output needs is hashed
  against its name (DVC 3 names an object by the MD5 of its bytes); a bad one is
  deleted, and only the outputs whose objects are all whole are checked out.
- A push sends DVC's run-cache with the objects of every run it records, not only
  those of the outputs ``dvc.lock`` names; ``pull --run-cache`` fetches them (a
  teammate's ``dvc repro`` or ``dvc exp run`` of those params then trains nothing).
- A pull or push that cannot complete ends in one ``error:`` line naming the
  outputs concerned, the remote, and the cause as the remote answered it (not
  found, credentials refused, connection refused, timed out), never a guess.
"""

import argparse
import hashlib
import json
import logging
import re
import sys
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from mnistpipe.errors import PipelineError
from mnistpipe.integrity import whole
from mnistpipe.interrupts import standard_output_guarded

ACTIONS = {"push": "to", "pull": "from"}


def describe(name: str | None, action: str = "push") -> str:
    """``'NAME' (URL)`` for the remote ``name``, or for the default remote when None."""
    # DVC's own readers, in this process: `dvc root` and `dvc config --list` were a
    # second of DVC's start-up each, on every push and pull.
    from dvc.config import Config
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo

    # Outside a DVC repository the settings still read, with the system and global
    # levels only: a remote set globally would be pushed to from a folder that has
    # nothing to push, and no remote at all read as "no default remote is set".
    try:
        dvc_directory = Repo.find_dvc_dir()
    except NotDvcRepoError as error:
        raise PipelineError(
            f"{Path.cwd()}: {error}; expected a DVC repository: run it in the project's "
            "folder (or one under it), or make one with `dvc init`"
        ) from None
    # Every level merged (system, global, repo, local), DVC's own precedence.
    try:
        settings = Config(dvc_directory)
    except DvcException as error:
        # Not "has: none": the remotes are unknown, and DVC's reason says why.
        raise PipelineError(
            f"the DVC settings of {Path(dvc_directory).parent} do not read: {error}; "
            "expected the settings `dvc config` and `dvc remote` write"
        ) from None
    remotes = {remote: str(config.get("url", "")) for remote, config in settings["remote"].items()}
    known = ", ".join(sorted(remotes)) or "none"
    if name is None:
        name = settings["core"].get("remote", "")
        if not name:
            raise PipelineError(
                f"no default DVC remote is set (`dvc remote list` has: {known}); expected one "
                "added with `dvc remote add -d NAME URL` (docs/tutorials/team.md), or "
                "made the default with `dvc remote default NAME`, or named with --remote NAME "
                f"(make {action} REMOTE=NAME)"
            )
    if name not in remotes:
        raise PipelineError(f"no DVC remote named {name!r} (`dvc remote list` has: {known})")
    return f"{name!r} ({remotes[name]})"


def dvc_reason(output: str) -> str:
    """The gist of DVC's failure: its last ``ERROR:`` line, without the boilerplate."""
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    reason = errors[-1] if errors else (output.strip().splitlines() or ["no output"])[-1]
    reason = re.sub(r"^ERROR:\s*(unexpected error - )?", "", reason)
    return reason.split(" - ", 1)[-1].strip() if reason.startswith("failed to") else reason


# What the remote answered, from the exception a request raised: the causes a user
# acts on differently, each with the words servers and libraries use for it. Read
# from the exception's text and its chain (webdav4, s3fs/botocore, asyncssh and
# aiohttp each have classes of their own; their messages carry the status).
_CAUSES = (
    (
        "timed out",
        r"timed? ?out|timeout",
        "the server did not answer in time; expected it to be up and the network to "
        "reach it: run it again once it answers",
    ),
    (
        "refused the credentials",
        r"\b401\b|\b403\b|unauthori[sz]ed|forbidden|access ?denied|invalidaccesskeyid|"
        r"signaturedoesnotmatch|permission denied|authenticat",
        "expected a user and password (or key) that the server accepts, set with "
        "`dvc remote modify --local NAME user ...` and `... password ...` (S3: "
        "access_key_id, secret_access_key; SSH: keyfile), kept in .dvc/config.local",
    ),
    (
        "refused the connection",
        r"connection refused|cannot connect|connect call failed|errno 111|"
        r"name or service not known|nodename nor servname|no route to host|"
        r"network is unreachable|connection reset|server disconnected|"
        # asyncssh (SSH) when the server goes while a transfer is under way.
        r"connection not open|connection lost",
        "expected a server listening at the URL: start it or correct the URL "
        "(`dvc remote modify NAME url ...`), then run it again",
    ),
    (
        "has no such bucket",
        r"nosuchbucket|bucket does not exist|specified bucket does not exist",
        "expected the bucket to exist: create it (`aws s3 mb s3://BUCKET`, or the "
        "provider's console) or correct the URL",
    ),
    (
        "has no parent folder for it (409 Conflict)",
        r"\b409\b|conflict",
        "expected the remote's folder to exist on the server: create it (for WebDAV, "
        "`curl -X MKCOL URL`, or the server's web page) or correct the URL",
    ),
    (
        "answered not found",
        r"\b404\b|not found|no such file|nosuchkey",
        "expected the remote's folder to exist: create it or correct the URL",
    ),
)


def remote_answer(error: BaseException) -> str:
    """``'the server CAUSE (its words); expected ...'`` for an exception a request raised."""
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    text = " | ".join(chain)
    words = re.sub(r"\s+", " ", str(chain[0].partition(": ")[2] or chain[0]))[:200]
    for cause, pattern, advice in _CAUSES:
        if re.search(pattern, text, re.IGNORECASE):
            return f"the server {cause} ({words}); {advice}"
    return f"the remote answered {words}; expected it to answer: run it again (`dvc doctor`)"


@dataclass(frozen=True)
class CacheObject:
    """One object an output needs: ``output`` (and ``file`` in it, for a directory's)."""

    output: str
    oid: str
    file: str = ""
    directory_oid: str = ""  # The ``.dir`` object that lists it, for a directory's file.

    @property
    def name(self) -> str:
        return f"{self.output}/{self.file}" if self.file else self.output


def needed_objects(repo) -> tuple[list[CacheObject], list[CacheObject]]:
    """(objects the cached outputs need, those of them missing from this cache).

    A directory's files are known from its ``.dir`` object; one missing or damaged
    (deleted here) makes the directory's files unknown, so it is listed alone.
    """
    needed, missing = [], []
    for out in repo.index.outs:
        if not out.use_cache or not out.hash_info or not out.hash_info.value:
            continue
        output, oid = out.def_path, out.hash_info.value
        needed.append(CacheObject(output, oid))
        if not out.hash_info.isdir:
            continue
        listing_path = Path(repo.cache.local.oid_to_path(oid))
        if not whole(listing_path, oid):
            continue
        for entry in json.loads(listing_path.read_text()):
            needed.append(CacheObject(output, entry["md5"], entry["relpath"], oid))
    for item in needed:
        if not Path(repo.cache.local.oid_to_path(item.oid)).is_file():
            missing.append(item)
    return needed, missing


def run_cache_objects(repo, remote: str | None) -> set:
    """The objects (DVC ``HashInfo``) of every run that DVC's run-cache records.

    ``dvc push --run-cache`` (DVC 3.67) sends the run-cache's entries (``.dvc/cache/runs``)
    but only the objects of the outputs ``dvc.lock`` names, and ``dvc fetch --run-cache``
    fetches the same. DVC restores a run only when its cache holds every output the entry
    names (``StageCache.restore``), the ``cache: false`` metrics and plots too, so the runs
    of experiments not committed would retrain in a teammate's clone. DVC's own
    ``StageCache.get_used_objs`` (which push and pull used before DVC 3) reads each entry as
    a stage and lists the objects of all its outputs, a directory's files with its ``.dir``
    (fetched from ``remote`` when this cache lacks it).
    """
    runs = Path(repo.stage_cache.cache_dir)
    entries = [(path.parent.name, path.name) for path in sorted(runs.glob("*/*/*"))]
    with transfer_errors_unlogged():
        used = repo.stage_cache.get_used_objs(entries, remote=remote, force=True)
    return {hash_info for objects in used.values() for hash_info in objects}


@contextmanager
def transfer_errors_unlogged():
    """Keep DVC's log of each object a transfer failed, with its traceback, from the user.

    DVC logs such a failure with ``exc_info`` (dvc_data's transfer, dvc_objects' copy),
    which only DVC's command line turns into one line; here the caller counts the
    failures (``TransferResult.failed``) and says in one line what the remote answers.
    """
    loggers = [logging.getLogger(name) for name in ("dvc_data", "dvc_objects")]
    kept = [(logger, logger.propagate, logger.handlers[:]) for logger in loggers]
    for logger in loggers:
        logger.handlers, logger.propagate = [logging.NullHandler()], False
    try:
        yield
    finally:
        for logger, propagate, handlers in kept:
            logger.handlers, logger.propagate = handlers, propagate


def held(repo, objects: set) -> set:
    """Those of ``objects`` (DVC ``HashInfo``) that this cache holds."""
    return {item for item in objects if Path(repo.cache.local.oid_to_path(item.value)).is_file()}


def remove_damaged(repo, objects: list[CacheObject]) -> list[CacheObject]:
    """Delete from this cache every object whose bytes are not its name; return them.

    DVC's own ``odb.check`` cannot do this: after a transfer DVC records the object
    as having the hash of its name in its state database, and check trusts that.
    """
    damaged_oids = set()
    for oid in {item.oid for item in objects}:
        path = Path(repo.cache.local.oid_to_path(oid))
        if path.is_file() and not whole(path, oid):
            path.chmod(0o644)  # DVC makes cache files read-only.
            path.unlink()
            damaged_oids.add(oid)
    return [item for item in objects if item.oid in damaged_oids]


def remote_listing(odb) -> dict[str, dict]:
    """Every object the remote holds, by oid, with what its listing says (size, ETag)."""
    # One listing request where the protocol has one (S3, WebDAV: fsspec's find with
    # details); a directory remote answers os.stat for each.
    found = odb.fs.fs.find(odb.path, detail=True)
    if not isinstance(found, dict):
        found = {path: odb.fs.info(path) for path in found}
    return {odb.path_to_oid(path): info for path, info in found.items()}


def check_remote_exists(remote) -> None:
    """Raise what the server answers about the remote's bucket or folder, if it lacks it.

    Not for a directory or SSH remote: DVC makes their folder on the first push (an
    SSH server that is down or refuses the key says so at the listing). fsspec's
    ``exists`` says False for any error, a refused connection too; ``info`` raises.
    """
    fs, path = remote.fs, remote.path
    if fs.protocol in ("local", "ssh"):
        return
    where = path.split("/", 1)[0] if fs.protocol == "s3" else path
    try:
        fs.info(where)
    except FileNotFoundError:
        if fs.protocol == "s3":
            raise FileNotFoundError(f"NoSuchBucket: bucket {where!r} does not exist") from None
        raise FileNotFoundError(
            f"404 Not Found: the folder {fs.unstrip_protocol(path)} does not exist"
        ) from None


def different_on_remote(odb, item: CacheObject, local: Path, info: dict, verify: bool) -> str:
    """Why the remote's copy of ``item`` is not the cache's bytes, or '' when it is."""
    size = info.get("size")
    if size is not None and size != local.stat().st_size:
        return f"{size} bytes instead of {local.stat().st_size}"
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    # S3 gives the MD5 of a single-part upload as its ETag (a multipart one has a
    # '-' in it); WebDAV's ETag is the server's own token, not the bytes' hash, and
    # SFTP (SSH) gives none. An SSH server could hash its own copy (`md5sum` over an
    # exec channel, as DVC 2's SSH remote did), but an SFTP-only account has no
    # shell: the project would need a check of its own there, so SSH, like WebDAV,
    # compares bytes only with --verify (a download).
    if odb.fs.protocol == "s3" and re.fullmatch(r"[0-9a-f]{32}", etag):
        if etag != item.oid.removesuffix(".dir"):
            return f"MD5 {etag} (S3's ETag) instead of {item.oid.removesuffix('.dir')}"
    if odb.fs.protocol == "local" or verify:
        digest = hashlib.md5()
        with odb.fs.open(odb.oid_to_path(item.oid), "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != item.oid.removesuffix(".dir"):
            return f"MD5 {digest.hexdigest()} instead of {item.oid.removesuffix('.dir')}"
    return ""


def expand_from_remote(odb, listing: dict, missing: list[CacheObject], repo) -> list[CacheObject]:
    """``missing``, with each directory's files this cache lacks read from the remote's listing.

    DVC saves a directory's ``.dir`` object only once all its files came, so after a
    fetch that lost one file the cache cannot say which: the remote's copy can.
    """
    expanded = []
    for item in missing:
        expanded.append(item)
        if not item.oid.endswith(".dir") or item.oid not in listing:
            continue
        with odb.fs.open(odb.oid_to_path(item.oid), "rb") as stream:
            content = stream.read()
        if hashlib.md5(content).hexdigest() != item.oid.removesuffix(".dir"):
            continue
        expanded.remove(item)
        for entry in json.loads(content):
            if not Path(repo.cache.local.oid_to_path(entry["md5"])).is_file():
                expanded.append(CacheObject(item.output, entry["md5"], entry["relpath"]))
    return expanded


def outputs_of(objects: list[CacheObject]) -> str:
    """The outputs ``objects`` belong to, and the first few files of directories among them."""
    shown = ", ".join(sorted({item.output for item in objects}))
    files = sorted(item.name for item in objects if item.file)
    if files:
        shown += f" (files {', '.join(files[:3])}{', ...' if len(files) > 3 else ''})"
    return shown


def run_dvc(call, failure: str) -> tuple[int, str]:
    """DVC's ``call`` (a ``Repo`` method) run as its command line runs it: (status, output).

    What it logs is shown on standard output as it comes, formatted by DVC's own
    command-line formatter (``ERROR: what - why``), and kept for ``dvc_reason``. A
    ``DvcException`` is logged as the command line logs it (``ERROR: failure - why``),
    any other as ``ERROR: unexpected error - why``; either gives status 1. ``call``
    returns the lines the command ends with (its summary). These calls ran as `dvc
    fetch`, `dvc push` and `dvc checkout` processes of their own: DVC's start-up and
    a second reading of the project each, a second or more on every push and pull.
    """
    from dvc.exceptions import DvcException
    from dvc.logger import ColorFormatter

    output = []

    class Shown(logging.Handler):
        def emit(self, record):
            line = self.format(record)
            output.append(line)
            print(line, flush=True)

    shown = Shown(logging.INFO)
    shown.setFormatter(ColorFormatter(log_colors=False))
    # In place of the handlers DVC sets up when it loads (errors on standard error).
    loggers = [logging.getLogger(name) for name in ("dvc", "dvc_objects", "dvc_data")]
    kept = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.handlers = [shown]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    status = 0
    try:
        summary = call()
    except DvcException:
        logging.getLogger("dvc").exception(failure)
        status, summary = 1, []
    except Exception:  # noqa: BLE001 (as DVC's command line ends any other: one logged line)
        logging.getLogger("dvc").exception("unexpected error")
        status, summary = 1, []
    finally:
        for logger, handlers, level, propagate in kept:
            logger.handlers = handlers
            logger.setLevel(level)
            logger.propagate = propagate
    for line in summary:
        output.append(line)
        print(line, flush=True)
    return status, "\n".join(output)


def transfer_summary(state: str, count: int) -> list[str]:
    """The line `dvc push` and `dvc fetch` end with: ``N files pushed``, or up to date."""
    from dvc.utils.humanize import get_summary

    return [get_summary([(state, count)]) or "Everything is up to date."]


def checked_out(result: dict) -> list[str]:
    """What `dvc checkout` prints of ``result``: ``A  data/raw/`` for each output it added...

    Written here: DVC's own (``dvc.commands.checkout.log_changes``) writes through its
    ``ui``, which only its command line turns on.
    """
    return [
        f"{state[0].upper()}\t{entry}"
        for state in ("modified", "added", "deleted")
        for entry in result.get(state) or []
    ]


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _open_remote(repo, remote: str | None, action: str, where: str):
    """The remote's object database and its listing, or one line saying what the server said."""
    cloud_remote = repo.cloud.get_remote(remote, action)
    odb = repo.cloud.get_remote_odb(remote, action)
    try:
        check_remote_exists(cloud_remote)
        try:
            return odb, remote_listing(odb)
        except FileNotFoundError:
            return odb, {}  # The folder exists but holds no object yet.
    except Exception as error:  # noqa: BLE001 (each library raises its own; named below)
        raise PipelineError(
            f"dvc {action} {ACTIONS[action]} remote {where} failed: {remote_answer(error)}"
        ) from None


def push(remote: str | None, jobs: int | None, verify: bool) -> None:
    """Replace what the remote holds cut short or changed, push, then check the sizes."""
    from dvc.repo import Repo
    from dvc_data.hashfile.db import get_index

    where = describe(remote, "push")
    with Repo() as repo:
        needed, _ = needed_objects(repo)
        run_cache = held(repo, run_cache_objects(repo, remote))
        # The runs' objects go through the same checks as the outputs' (named by the
        # output they are of: DVC sets a HashInfo's obj_name to it).
        needed += [CacheObject(item.obj_name or "", item.value) for item in run_cache]
        local = {
            item.oid: (item, Path(repo.cache.local.oid_to_path(item.oid)))
            for item in needed
            if Path(repo.cache.local.oid_to_path(item.oid)).is_file()
        }
        # Bytes that are not their name here must not reach the remote.
        damaged = remove_damaged(repo, [item for item, _ in local.values()])
        if damaged:
            raise PipelineError(
                f"{outputs_of(damaged)}: this cache's copy is damaged (its MD5 is not its "
                f"name; deleted), so nothing was pushed to remote {where}; expected whole "
                "files: run `dvc repro` (or `make pull` from a remote that has them), then "
                "`make push` again"
            )
        odb, listing = _open_remote(repo, remote, "push", where)
        wrong = set()  # Objects to delete on the remote, so that DVC sends them again.
        for oid, (item, path) in sorted(local.items()):
            if oid not in listing:
                continue
            try:
                why = different_on_remote(odb, item, path, listing[oid], verify)
            except Exception as error:  # noqa: BLE001 (each library raises its own)
                raise PipelineError(
                    f"dvc push to remote {where} failed: {remote_answer(error)}"
                ) from None
            if why:
                _warn(
                    f"{item.name}: the copy on remote {where} has {why} (a push that "
                    "stopped half way, or changed there); deleting it to send it whole"
                )
                wrong.add(oid)
        # DVC takes a directory's .dir object on the remote to mean that all its files
        # are there (it sends them first, the .dir last): the .dir of a directory with a
        # file wrong or absent there goes too, and is sent again after its files.
        wrong |= {
            item.directory_oid
            for item in needed
            if item.directory_oid in listing and (item.oid in wrong or item.oid not in listing)
        }
        for oid in sorted(wrong):
            odb.fs.rm(odb.oid_to_path(oid))
        if wrong:
            # DVC also remembers what a remote holds (an index in its site cache).
            with closing(get_index(odb)) as remote_index:
                remote_index.clear()
        # The runs' objects before `dvc push --run-cache` sends the entries naming them,
        # through DVC's own transfer (as `dvc push` makes it: a directory's .dir goes
        # once its files are there, and DVC's index of what the remote holds follows).
        try:
            with transfer_errors_unlogged():
                result = repo.cloud.push(run_cache, jobs=jobs, remote=remote)
        except Exception as error:  # noqa: BLE001 (each library raises its own; named below)
            raise PipelineError(
                f"dvc push to remote {where} failed: {remote_answer(error)}"
            ) from None
        if result.failed:
            output = f"ERROR: {len(result.failed)} objects of the run-cache's runs were not sent"
            raise PipelineError(
                f"dvc push to remote {where} failed: "
                f"{remote_failure(remote, 'push', where, output)}"
            )
        status, output = run_dvc(
            lambda: transfer_summary(
                "pushed", repo.push(remote=remote, jobs=jobs, run_cache=True)
            ),
            "failed to push data to the cloud",
        )
        if status != 0:
            raise PipelineError(
                f"dvc push to remote {where} failed: "
                f"{remote_failure(remote, 'push', where, output)}"
            )
        odb, listing = _open_remote(repo, remote, "push", where)
        short = [
            item
            for oid, (item, path) in local.items()
            if listing.get(oid, {}).get("size", path.stat().st_size) != path.stat().st_size
            or oid not in listing
        ]
    if short:
        raise PipelineError(
            f"{outputs_of(short)}: after the push, remote {where} holds them with another "
            "size or not at all; expected the server to keep what it accepted: run "
            "`make push` again, and check the server's disk"
        )


def remote_failure(remote: str | None, action: str, where: str, output: str) -> str:
    """Why DVC's transfer failed, from the remote's own answer to a listing made now."""
    from dvc.repo import Repo

    try:
        with Repo() as repo:
            _open_remote(repo, remote, action, where)
    except PipelineError as error:
        return str(error).split(" failed: ", 1)[1]
    return (
        f"{dvc_reason(output)}; the remote answers a listing now: run `make {action}` "
        "again (what was already sent is not sent twice)"
    )


def fetch_run_cache_objects(repo, remote: str | None, jobs: int | None, where: str) -> None:
    """Fetch the objects of the runs ``dvc fetch --run-cache`` brought that the remote holds.

    A run whose objects the remote lacks (pushed by a bare ``dvc push --run-cache``), or
    cannot send now, or sends damaged (deleted, with a warning) only trains again here:
    the outputs ``dvc.lock`` names are checked out all the same.
    """
    objects = run_cache_objects(repo, remote)  # A directory's .dir comes from the remote.
    try:
        _, listing = _open_remote(repo, remote, "pull", where)
    except PipelineError as error:
        _warn(f"the run-cache's outputs were not fetched: {error}")
        return
    wanted = {item for item in objects - held(repo, objects) if item.value in listing}
    # DVC's own transfer, as `dvc fetch` makes it (see push).
    try:
        with transfer_errors_unlogged():
            failed = len(repo.cloud.pull(wanted, jobs=jobs, remote=remote).failed)
        why = f"{failed} of their objects did not come" if failed else ""
    except Exception as error:  # noqa: BLE001 (each library raises its own; named below)
        why = remote_answer(error)
    if why:
        _warn(
            f"the run-cache's runs were not all fetched from remote {where}: {why}; those "
            "runs train again here (`make pull RUN_CACHE=1` again fetches what is missing)"
        )
    fetched = wanted | {item for item in objects if item.isdir}
    damaged = remove_damaged(
        repo, [CacheObject(item.obj_name or "", item.value) for item in fetched]
    )
    if damaged:
        _warn(
            f"{outputs_of(damaged)}: the run-cache's copy on remote {where} is not what its "
            "name says (its MD5 differs; deleted here): the runs of those outputs train again"
        )


def pull(remote: str | None, jobs: int | None, run_cache: bool = False) -> None:
    """Fetch, delete what is not its name, check out the whole outputs, name the rest."""
    from dvc.repo import Repo

    where = describe(remote, "pull")
    with Repo() as repo:

        def fetch() -> tuple[int, str]:
            return run_dvc(
                lambda: transfer_summary(
                    "fetched", repo.fetch(remote=remote, jobs=jobs, run_cache=run_cache)
                ),
                "failed to fetch data from the cloud",
            )

        status, output = fetch()
        if run_cache:
            fetch_run_cache_objects(repo, remote, jobs, where)
        needed, _ = needed_objects(repo)
        damaged = remove_damaged(repo, needed)
        if damaged:
            # A copy damaged here may be this clone's own (a download cut short and
            # kept under its name): fetched once more, only what comes back damaged
            # again is the remote's.
            status, output = fetch()
            needed, _ = needed_objects(repo)
            damaged = remove_damaged(repo, needed)
        # Re-read: a damaged .dir object hid its directory's files.
        needed, missing = needed_objects(repo)
        incomplete = {item.output for item in missing}
        complete = sorted({item.output for item in needed} - incomplete)
        reason, absent, not_on_remote = "", [], False
        if missing:
            try:
                odb, listing = _open_remote(repo, remote, "pull", where)
            except PipelineError as error:
                reason = str(error).split(" failed: ", 1)[1]
            else:
                absent = [
                    item
                    for item in expand_from_remote(odb, listing, missing, repo)
                    if item.oid not in listing
                ]
                reason = (
                    "not found on the remote"
                    if absent
                    else f"the transfer failed: {dvc_reason(output)}"
                )
                not_on_remote = bool(absent)
        if complete:
            checkout_status, checkout_output = run_dvc(
                lambda: checked_out(repo.checkout(targets=complete)), ""
            )
            if checkout_status != 0:
                raise PipelineError(
                    f"dvc checkout after the pull from remote {where} failed: "
                    f"{dvc_reason(checkout_output)}; expected the cache to hold every output"
                )
    damaged_oids = {item.oid for item in damaged}
    absent = absent or [item for item in missing if item.oid not in damaged_oids]
    absent = [item for item in absent if item.oid not in damaged_oids]
    problems = []
    if damaged:
        problems.append(
            f"{outputs_of(damaged)}: the remote's bytes are not what dvc.lock names (their "
            "MD5 differs; deleted here, not checked out)"
        )
    if absent:
        problems.append(f"{outputs_of(absent)}: {reason}")
    if problems:
        advice = (
            "expected whole copies there: in a clone that has them, run `make push "
            "VERIFY=1` (it sends what is missing and replaces what is damaged), then "
            "`make pull` again"
            if damaged or not_on_remote
            else ""
        )
        raise PipelineError(
            f"dvc pull from remote {where} did not check out "
            f"{', '.join(sorted(incomplete))}: {'; '.join(problems)}"
            + (f"; {advice}" if advice else "")
        )
    if status != 0:
        raise PipelineError(
            f"dvc fetch from remote {where} failed: {dvc_reason(output)}; every output "
            "was checked out whole"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnistpipe.remote", description=__doc__)
    parser.add_argument("action", choices=sorted(ACTIONS))
    parser.add_argument(
        "-r", "--remote", metavar="NAME", help="the DVC remote (default: the default)"
    )
    parser.add_argument("--jobs", type=int, metavar="N", help="parallel transfers (DVC's -j)")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="push: download and hash every object the remote already holds (make push VERIFY=1)",
    )
    parser.add_argument(
        "--run-cache",
        action="store_true",
        help="pull: also fetch DVC's run-cache and its runs' objects (make pull RUN_CACHE=1), "
        "so that dvc repro and dvc exp run skip the runs it holds",
    )
    arguments = parser.parse_args(argv)
    from dvc.exceptions import DvcException

    try:
        with standard_output_guarded():
            if arguments.action == "push":
                push(arguments.remote, arguments.jobs, arguments.verify)
            else:
                pull(arguments.remote, arguments.jobs, arguments.run_cache)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except DvcException as error:
        # DVC's reading of the project failed (not a git repository, a broken dvc.yaml...).
        print(
            f"error: dvc {arguments.action} in {Path.cwd()} failed: {error}; expected a DVC "
            "project that `dvc status` reads",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(
            f"error: dvc {arguments.action} interrupted; run it again: what was sent whole "
            "stays, and what was cut short is found and sent again",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
