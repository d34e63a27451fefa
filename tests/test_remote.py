"""A team's DVC remote: one clone pushes, a fresh clone pulls, against real servers on 127.0.0.1.

A directory, WebDAV (wsgidav with dvc-webdav), S3 (moto's standalone server with
dvc-s3) and SSH (Debian's OpenSSH server with dvc-ssh), each server started and
stopped by the test. The project is a temporary copy of the repository on 600
real Fashion-MNIST images, one epoch.
"""

import contextlib
import getpass
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from mnistpipe import remote as remote_module
from mnistpipe.idx import encode_idx, read_images
from tests.conftest import SYSTEM_FASHION_MNIST, copy_project
from tests.test_pipeline import command_environment, git_commit, run

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
# What a pull must bring back byte for byte (directories: every file in them).
OUTPUTS = ("data/raw", "data/prepared", "models", "plots/predictions.csv", "plots/images")


def make_project(root: Path, **train) -> Path:
    """A git and DVC repository holding the project, with params for a run of seconds."""
    if not SYSTEM_FASHION_MNIST.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (make setup installs it)")
    copy_project(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["preprocess"].update(limit=600, val_split=0.2)
    params["train"].update(model="quickstart_cnn", epochs=1, batch_size=32, learning_rate=0.003)
    params["train"].update(train)
    params["evaluate"]["min_accuracy"] = 0.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(root, "git", "init", "-q", "-b", "main")
    return root


def dvc(root: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(root, sys.executable, "-m", "dvc", *arguments, check=check)


def remote(root: Path, action: str, check: bool = True) -> subprocess.CompletedProcess:
    """``make push`` / ``make pull`` without make: the module those targets run."""
    return run(root, sys.executable, "-m", "mnistpipe.remote", action, check=check)


def output_bytes(root: Path) -> dict[str, bytes]:
    files = {}
    for name in OUTPUTS:
        path = root / name
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                files[file.relative_to(root).as_posix()] = file.read_bytes()
    return files


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A server process started by a test, ready once its port accepts connections."""

    def __init__(self, command: list[str], port: int, log: Path):
        self.command, self.port, self.log = command, port, log
        self.process = None

    def start(self) -> "Server":
        self.process = subprocess.Popen(
            self.command,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{self.command[0]} did not listen: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL the server, as a crash or a pulled plug would stop it."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class SSHServer(Server):
    """sshd and the process it forks for each connection, which has a session of its own.

    sshd's child calls setsid(), so the listener's process group does not hold it:
    killing the group leaves a running transfer going. Each is found under the
    listener (psutil, which DVC already installs) before the listener goes.
    """

    def _signal_all(self, signal_number: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        children = psutil.Process(self.process.pid).children(recursive=True)
        os.killpg(self.process.pid, signal_number)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(signal_number)
        self.process.wait(timeout=30)
        psutil.wait_procs(children, timeout=30)

    def stop(self) -> None:
        self._signal_all(signal.SIGTERM)

    def kill(self) -> None:
        self._signal_all(signal.SIGKILL)


SSHD = Path("/usr/sbin/sshd")  # By its absolute path: sshd re-executes itself for each connection.


def sshd_or_skip() -> Path:
    if not SSHD.is_file():
        reason = "Debian's openssh-server is not installed (make test-packages installs it)"
        if os.environ.get("MNISTPIPE_REQUIRE_SSHD"):
            pytest.fail(reason)
        pytest.skip(reason)
    return SSHD


def ssh_server(folder: Path) -> SSHServer:
    """An OpenSSH server on 127.0.0.1 that lets this user in with ``folder/client``'s key.

    Its own host key, config and PID file in ``folder``; SFTP (what dvc-ssh uses) served
    by sshd itself. The keys are made once, so that a server started again is the same.
    """
    sshd = sshd_or_skip()
    folder.mkdir(parents=True, exist_ok=True)
    for key in ("host", "client"):
        if not (folder / key).is_file():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)],
                check=True,
                capture_output=True,
            )
    if os.geteuid() == 0:
        # Run as root, sshd confines each connection's unprivileged part there
        # (made by the service's start-up, which a package installed in a
        # container does not run).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\n"
        f"Port {port}\n"
        f"HostKey {folder / 'host'}\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'client.pub'}\n"
        "StrictModes no\n"
        "UsePAM no\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "Subsystem sftp internal-sftp\n"
    )
    return SSHServer([str(sshd), "-D", "-e", "-f", str(config)], port, folder / "sshd.log")


def webdav_server(root: Path, log: Path, config: dict | None = None) -> Server:
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    command = [str(BIN / "wsgidav"), "--host", "127.0.0.1", "--port", str(port)]
    if config is None:
        command += ["--root", str(root), "--auth", "anonymous", "--no-config"]
    else:
        config = {
            "host": "127.0.0.1",
            "port": port,
            "provider_mapping": {"/": str(root)},
            **config,
        }
        config_path = log.with_suffix(".yaml")
        config_path.write_text(yaml.safe_dump(config))
        command += ["--config", str(config_path)]
    return Server(command, port, log)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """A project run once and pushed to an anonymous WebDAV server named ``team``."""
    base = tmp_path_factory.mktemp("remote")
    root = make_project(base / "origin")
    dvc(root, "repro")
    server = webdav_server(base / "webdav", base / "webdav.log").start()
    try:
        dvc(root, "remote", "add", "--default", "team", f"webdav://127.0.0.1:{server.port}/")
        git_commit(root, "the base run, with the team's remote")
        remote(root, "push")
        yield root, server
    finally:
        server.stop()


def fresh_clone(origin: Path, destination: Path) -> Path:
    run(origin.parent, "git", "clone", "-q", str(origin), str(destination))
    return destination


def test_no_default_remote_says_so_and_how_to_add_one(tmp_path, monkeypatch, capsys):
    # `dvc remote default` prints "No default remote set" on standard output (exit 1);
    # that was taken as a name: "no DVC remote named 'No default remote set'".
    # A DVC repository with one remote, none of them the default (as `dvc init --no-scm`
    # and `dvc remote add other ...` write it, without their seconds of start-up).
    # A URL longer than the 80 columns `dvc remote list` wraps its table at, off a terminal.
    url = f"{tmp_path}/{'a-long-folder-name/' * 5}other"
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text(
        f'[core]\n    no_scm = true\n[remote "other"]\n    url = {url}\n'
    )
    monkeypatch.chdir(tmp_path)
    for action in ("push", "pull"):
        assert remote_module.main([action]) == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1, error
        assert error.startswith(
            "error: no default DVC remote is set (`dvc remote list` has: other)"
        ), error
        assert "`dvc remote add -d NAME URL`" in error and f"make {action} REMOTE=NAME" in error
    assert remote_module.describe("other") == f"'other' ({url})"


def test_outside_a_dvc_repository_says_so_and_transfers_nothing(tmp_path, monkeypatch):
    # `dvc config --list` exits 0 outside a repository, with the global and system
    # levels only: a default remote set globally was pushed to ("dvc push to remote
    # 'team' ... failed: you are not inside of a DVC repository; expected the server
    # to be reachable"), and none read as "no default DVC remote is set".
    global_config, system_config = tmp_path / "global", tmp_path / "system"
    global_config.mkdir()
    system_config.mkdir()
    (global_config / "config").write_text(
        f'[core]\n    remote = team\n[remote "team"]\n    url = {tmp_path / "store"}\n'
    )
    folder = tmp_path / "not-a-repository"
    folder.mkdir()
    # The user's own DVC settings stay out of it: only the global level written above.
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(global_config))
    monkeypatch.setenv("DVC_SYSTEM_CONFIG_DIR", str(system_config))
    for action in ("push", "pull"):
        result = remote(folder, action, check=False)
        assert result.returncode == 1, result
        assert result.stdout == "", result.stdout
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(
            f"error: {folder}: you are not inside of a DVC repository"
        ), result.stderr
        assert "expected a DVC repository" in result.stderr and "`dvc init`" in result.stderr
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ('[core]\n    remote = team\n[remote "team"\n', "Invalid line"),
        ("[core]\n    remot = team\n", "extra keys not allowed"),
        # Read whole, but no git repository under it (and no `no_scm`): DVC's Repo
        # raised SCMError, a traceback.
        ('[core]\n    remote = team\n[remote "team"]\n    url = /srv/store\n', "not a git"),
    ],
)
def test_a_dvc_project_that_does_not_read_is_one_error_naming_it(
    tmp_path, monkeypatch, capsys, config, reason
):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text(config)
    # The user's own DVC settings stay out of it.
    for variable in ("DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR"):
        (tmp_path / variable).mkdir()
        monkeypatch.setenv(variable, str(tmp_path / variable))
    monkeypatch.chdir(tmp_path)
    for action in ("push", "pull"):
        assert remote_module.main([action]) == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and error.startswith("error: "), error
        assert str(tmp_path) in error and reason in error, error
    assert not Path("/srv/store").exists()


def test_dvc_run_in_this_process_logs_as_its_command_line_on_standard_output(capsys):
    # DVC sets up handlers when it loads that print a failed transfer's traceback on
    # standard error; `make pull` must show DVC's log as `dvc fetch` printed it.
    import logging

    import dvc.repo  # noqa: F401  (its handlers, as in make push and make pull)
    from dvc.exceptions import DvcException

    def failing_transfer():
        try:
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        except ConnectionRefusedError:
            logging.getLogger("dvc_data.hashfile.transfer").exception("failed to transfer 'ab'")
        raise DvcException("1 files failed to download")

    status, output = remote_module.run_dvc(failing_transfer, "failed to fetch data from the cloud")

    assert status == 1
    assert output.splitlines() == [
        "ERROR: failed to transfer 'ab' - [Errno 111] Connection refused",
        "ERROR: failed to fetch data from the cloud - 1 files failed to download",
    ]
    assert remote_module.dvc_reason(output) == "1 files failed to download"
    shown = capsys.readouterr()
    assert shown.out.splitlines() == output.splitlines() and shown.err == ""

    def another_library_fails():
        raise FileNotFoundError("The specified bucket does not exist")

    status, output = remote_module.run_dvc(another_library_fails, "failed to fetch")
    assert (status, output) == (1, "ERROR: unexpected error - The specified bucket does not exist")
    assert capsys.readouterr().err == ""
    assert remote_module.run_dvc(lambda: ["5 files pushed"], "failed") == (0, "5 files pushed")
    # DVC's own handlers are back for whatever runs next.
    assert len(logging.getLogger("dvc_data").handlers) > 1


def test_a_fresh_clone_pulls_everything_and_needs_no_stage_run(pushed, tmp_path):
    origin, _ = pushed
    clone = fresh_clone(origin, tmp_path / "clone")
    assert not (clone / "models").exists()

    remote(clone, "pull")

    assert "Data and pipelines are up to date." in dvc(clone, "status").stdout
    assert output_bytes(clone) == output_bytes(origin)
    repro = dvc(clone, "repro").stdout
    assert "Running stage" not in repro, repro
    # The pulled export answers as the evaluate stage did on the first test images.
    raw = read_images(clone / "data/raw/t10k-images-idx3-ubyte")[:12]
    (tmp_path / "first12").write_bytes(encode_idx(raw))
    predicted = run(clone, sys.executable, "-m", "mnistpipe.predict", str(tmp_path / "first12"))
    evaluated = (clone / "plots/predictions.csv").read_text().splitlines()[1:13]
    for line, row in zip(predicted.stdout.strip().splitlines()[-12:], evaluated, strict=True):
        assert row.split(",")[1] in line, (line, row)


def test_a_push_killed_half_way_completes_when_run_again(pushed, tmp_path):
    origin, _ = pushed
    server = webdav_server(tmp_path / "store", tmp_path / "webdav.log").start()
    try:
        url = f"webdav://127.0.0.1:{server.port}/"
        dvc(origin, "remote", "add", "--local", "half", url)
        push = subprocess.Popen(
            [sys.executable, "-m", "dvc", "push", "--remote", "half", "--jobs", "1"],
            cwd=origin,
            env=command_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # Killed as soon as the first files have reached the server.
        deadline = time.monotonic() + 120
        while sum(1 for f in (tmp_path / "store").rglob("*") if f.is_file()) < 2:
            assert push.poll() is None, "the push ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(push.pid, signal.SIGKILL)
        push.wait()
        status = dvc(origin, "status", "--cloud", "--remote", "half", check=False).stdout
        assert "new:" in status, status

        result = run(origin, sys.executable, "-m", "mnistpipe.remote", "push", "--remote", "half")

        assert "files pushed" in result.stdout
        status = dvc(origin, "status", "--cloud", "--remote", "half").stdout
        assert "Cache and remote 'half' are in sync." in status
    finally:
        server.stop()
        dvc(origin, "remote", "remove", "--local", "half", check=False)


def test_a_remote_that_is_down_is_one_error_naming_it(pushed, tmp_path):
    origin, _ = pushed
    port = free_port()
    dvc(origin, "remote", "add", "--local", "down", f"webdav://127.0.0.1:{port}/")
    try:
        result = run(
            origin,
            sys.executable,
            "-m",
            "mnistpipe.remote",
            "push",
            "--remote",
            "down",
            check=False,
        )
    finally:
        dvc(origin, "remote", "remove", "--local", "down")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert f"remote 'down' (webdav://127.0.0.1:{port}/) failed" in result.stderr
    assert "Connection refused" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_refused_credentials_are_one_error_and_the_right_ones_push(pushed, tmp_path):
    origin, _ = pushed
    authenticated = {
        "http_authenticator": {
            "domain_controller": None,
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
        },
        "simple_dc": {"user_mapping": {"*": {"team": {"password": "the-right-one"}}}},
    }
    server = webdav_server(tmp_path / "store", tmp_path / "webdav.log", authenticated).start()
    url = f"webdav://127.0.0.1:{server.port}/"
    try:
        dvc(origin, "remote", "add", "--local", "locked", url)
        dvc(origin, "remote", "modify", "--local", "locked", "user", "team")
        dvc(origin, "remote", "modify", "--local", "locked", "password", "a-wrong-one")
        refused = run(
            origin, sys.executable, "-m", "mnistpipe.remote", "push", "-r", "locked", check=False
        )
        dvc(origin, "remote", "modify", "--local", "locked", "password", "the-right-one")
        accepted = run(origin, sys.executable, "-m", "mnistpipe.remote", "push", "-r", "locked")
    finally:
        server.stop()
        dvc(origin, "remote", "remove", "--local", "locked", check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: dvc push to remote 'locked' ({url}) failed:")
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "files pushed" in accepted.stdout
    # The credentials went to .dvc/config.local, which DVC keeps out of git.
    assert "the-right-one" not in (origin / ".dvc/config").read_text()
    ignored = run(origin, "git", "check-ignore", ".dvc/config.local")
    assert ignored.stdout.strip() == ".dvc/config.local"


def test_an_s3_remote_pushes_and_a_fresh_clone_pulls(pushed, tmp_path):
    origin, _ = pushed
    port = free_port()
    server = Server(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        port,
        tmp_path / "moto.log",
    ).start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import boto3

        credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **credentials)
        s3.create_bucket(Bucket="mnistpipe")
        clone = fresh_clone(origin, tmp_path / "clone")
        for repository in (origin, clone):
            dvc(repository, "remote", "add", "--local", "s3", "s3://mnistpipe/dvc")
            dvc(repository, "remote", "modify", "--local", "s3", "endpointurl", endpoint)
            for key, value in credentials.items():
                dvc(repository, "remote", "modify", "--local", "s3", key[4:], value)

        pushed_output = run(origin, sys.executable, "-m", "mnistpipe.remote", "push", "-r", "s3")
        run(clone, sys.executable, "-m", "mnistpipe.remote", "pull", "-r", "s3")

        assert "files pushed" in pushed_output.stdout
        listed = s3.list_objects_v2(Bucket="mnistpipe", Prefix="dvc/")
        assert listed["KeyCount"] > 0
        assert "Data and pipelines are up to date." in dvc(clone, "status").stdout
        assert output_bytes(clone) == output_bytes(origin)
    finally:
        server.stop()
        dvc(origin, "remote", "remove", "--local", "s3", check=False)


# Every byte a teammate gets is the byte that was pushed: each kind of remote the
# tests can start, with objects cut short or changed there and transfers stopped.
KINDS = ("directory", "webdav", "s3", "ssh")
S3_CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}


class Store:
    """A remote of one kind, its objects read and written behind DVC's back."""

    def __init__(self, kind: str, folder: Path):
        self.kind, self.folder, self.server, self.settings = kind, folder, None, {}
        # An SSH remote's folder is made by DVC's first push, as a user's would be.
        if kind != "ssh":
            folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> "Store":
        if self.kind == "directory":
            self.url = str(self.folder)
        elif self.kind == "webdav":
            self.server = webdav_server(self.folder, self.folder.with_suffix(".log")).start()
            self.url = f"webdav://127.0.0.1:{self.server.port}/"
        elif self.kind == "ssh":
            sshd_folder = self.folder.with_name(f"{self.folder.name}-sshd")
            self.server = ssh_server(sshd_folder).start()
            self.url = f"ssh://{getpass.getuser()}@127.0.0.1:{self.server.port}{self.folder}"
            # dvc-ssh (sshfs) checks no host key, so nothing prompts for this one's.
            self.settings = {"keyfile": str(sshd_folder / "client")}
        else:
            port = free_port()
            self.server = Server(
                [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                port,
                self.folder.with_suffix(".log"),
            ).start()
            import boto3

            self.s3 = boto3.client(
                "s3",
                endpoint_url=f"http://127.0.0.1:{port}",
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            self.s3.create_bucket(Bucket="mnistpipe")
            self.url = "s3://mnistpipe/dvc"
            self.settings = {"endpointurl": f"http://127.0.0.1:{port}", **S3_CREDENTIALS}
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    def kill_server(self) -> None:
        """SIGKILL the server, as a crash or a pulled plug would stop it."""
        self.server.kill()

    def add_to(self, repository: Path, name: str = "shared") -> None:
        """What `dvc remote add --local --force` and `dvc remote modify --local` write.

        Through DVC's own Config in this process (it checks the settings as the
        commands do): each command was a second of DVC's start-up, dozens of times.
        """
        from dvc.config import Config

        with Config(repository / ".dvc").edit("local") as config:
            config["remote"][name] = {"url": self.url, **self.settings}

    def objects(self) -> dict[str, bytes]:
        """Every object on the remote by its name (``xx/yyyy[.dir]``), with its bytes."""
        if self.kind == "s3":
            listed = self.s3.list_objects_v2(Bucket="mnistpipe", Prefix="dvc/files/md5/")
            return {
                item["Key"].removeprefix("dvc/files/md5/"): self.s3.get_object(
                    Bucket="mnistpipe", Key=item["Key"]
                )["Body"].read()
                for item in listed.get("Contents", [])
            }
        base = self.folder / "files" / "md5"
        # Not DVC's temporary files (.NAME.tmp), which a directory or SSH remote's
        # copy writes and renames: a push killed half way leaves one, never an object.
        return {
            path.relative_to(base).as_posix(): path.read_bytes()
            for path in sorted(base.rglob("*"))
            if path.is_file() and not path.name.startswith(".")
        }

    def count(self) -> int:
        if self.kind == "s3":
            return self.s3.list_objects_v2(Bucket="mnistpipe").get("KeyCount", 0)
        return sum(1 for path in self.folder.rglob("*") if path.is_file())

    def put(self, name: str, content: bytes) -> None:
        if self.kind == "s3":
            self.s3.put_object(Bucket="mnistpipe", Key=f"dvc/files/md5/{name}", Body=content)
        else:
            path = self.folder / "files" / "md5" / name
            path.chmod(0o644)
            path.write_bytes(content)

    def assert_whole(self) -> None:
        """Each object's bytes are what its name says (DVC 3: their MD5)."""
        for name, content in self.objects().items():
            expected = name.replace("/", "").removesuffix(".dir")
            assert hashlib.md5(content).hexdigest() == expected, f"{name}: {len(content)} bytes"


@contextlib.contextmanager
def store_of(kind: str, folder: Path):
    store = Store(kind, folder).start()
    try:
        yield store
    finally:
        store.stop()


def locked_md5(root: Path, output: str) -> str:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == output:
                return out["md5"]
    raise AssertionError(f"{output} is not in dvc.lock")


def object_name(oid: str) -> str:
    return f"{oid[:2]}/{oid[2:]}"


def assert_checked_out_files_are_the_pushed_ones(clone: Path, origin: Path) -> None:
    pushed_bytes = output_bytes(origin)
    for name, content in output_bytes(clone).items():
        assert content == pushed_bytes[name], f"{name} differs from what was pushed"


@pytest.mark.parametrize("kind", KINDS)
def test_an_object_changed_or_cut_short_on_the_remote_is_never_checked_out(pushed, tmp_path, kind):
    # An object whose bytes changed on the remote (its size kept) was pulled and
    # checked out with exit 0: models/model.keras had another MD5 than dvc.lock, and
    # `dvc status` said nothing. One cut short by a push killed half way was skipped
    # by every later push.
    origin, _ = pushed
    with store_of(kind, tmp_path / "store") as store:
        store.add_to(origin)
        remote_push = (sys.executable, "-m", "mnistpipe.remote", "push", "-r", "shared")
        run(origin, *remote_push)
        objects = store.objects()
        model = object_name(locked_md5(origin, "models/model.keras"))
        changed = bytearray(objects[model])
        changed[len(changed) // 2] ^= 0xFF
        store.put(model, bytes(changed))
        largest = max((name for name in objects if name != model), key=lambda n: len(objects[n]))
        store.put(largest, objects[largest][: len(objects[largest]) // 3])
        clone = fresh_clone(origin, tmp_path / "clone")
        store.add_to(clone)
        pull = (sys.executable, "-m", "mnistpipe.remote", "pull", "-r", "shared")

        refused = run(clone, *pull, check=False)

        assert refused.returncode == 1, refused
        error = refused.stderr
        assert error.count("\n") == 1 and error.startswith("error: "), error
        assert f"remote 'shared' ({store.url})" in error, error
        assert "models/model.keras" in error and "data/raw" in error, error
        assert "MD5 differs" in error and "make push VERIFY=1" in error, error
        assert "Traceback" not in refused.stdout + error
        assert not (clone / "models/model.keras").exists()
        assert not (clone / "data/raw").exists()
        assert (clone / "plots/predictions.csv").is_file()
        assert_checked_out_files_are_the_pushed_ones(clone, origin)

        # The clone that has the right bytes mends the remote: by their size, their
        # S3 ETag or a directory's bytes, and on WebDAV (an ETag of the server's own)
        # and SSH (SFTP gives no hash) by downloading them (--verify).
        verify = ["--verify"] if kind in ("webdav", "ssh") else []
        mended = run(origin, *remote_push, *verify)
        assert "deleting it to send it whole" in mended.stderr, mended.stderr
        store.assert_whole()
        assert set(store.objects()) == set(objects)
        run(clone, *pull)
        assert output_bytes(clone) == output_bytes(origin)
        assert "Data and pipelines are up to date." in dvc(clone, "status").stdout


@pytest.mark.parametrize(
    ("kind", "stops"),
    [("webdav", (1, 3, 8)), ("s3", (2, 6)), ("directory", (2,)), ("ssh", (1, 6))],
)
def test_a_push_stopped_at_several_points_leaves_nothing_wrong_for_a_pull(
    pushed, tmp_path, kind, stops
):
    # A WebDAV server killed in the middle of `make push` left the interrupted upload
    # under its final name, cut short; the next push skipped it, and a fresh clone's
    # `make pull` exited 0 with truncated files. An SSH server is killed the same way
    # (its connection's process too). moto keeps its objects in memory (killing it
    # loses them all), so for S3 and a directory the push itself is killed.
    origin, _ = pushed
    with store_of(kind, tmp_path / "store") as store:
        store.add_to(origin)
        push = [sys.executable, "-m", "mnistpipe.remote", "push", "-r", "shared", "--jobs", "1"]
        for objects_before_the_stop in stops:
            started = store.count()
            process = subprocess.Popen(
                push,
                cwd=origin,
                env=command_environment(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            deadline = time.monotonic() + 120
            while store.count() < started + objects_before_the_stop and process.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            if kind in ("webdav", "ssh"):
                store.kill_server()
                files_at_the_stop = store.count()
                error = process.communicate(timeout=120)[1]
                # Nothing more reached the store: the transfer died with the server
                # (sshd's only once its connection's own process is killed too).
                assert store.count() == files_at_the_stop, error
                if process.returncode:
                    # What the push says is what the server's absence says (after a
                    # warning for each object the stop before had left cut short).
                    *warnings, last = error.splitlines()
                    assert all(line.startswith("warning: ") for line in warnings), error
                    assert last.startswith("error: ") and "refused the connection" in last, error
                store.start()
                store.add_to(origin)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

        run(origin, *push)

        store.assert_whole()
        clone = fresh_clone(origin, tmp_path / "clone")
        store.add_to(clone)
        run(clone, sys.executable, "-m", "mnistpipe.remote", "pull", "-r", "shared")
        assert output_bytes(clone) == output_bytes(origin)


def pushed_to_and_cloned(store, origin: Path, clone: Path) -> Path:
    """``origin`` pushed whole to ``store``, and a fresh ``clone`` with ``store`` as a remote."""
    store.add_to(origin)
    run(origin, sys.executable, "-m", "mnistpipe.remote", "push", "-r", "shared")
    fresh_clone(origin, clone)
    store.add_to(clone)
    return clone


def test_a_copy_damaged_in_this_clone_is_fetched_again_and_checked_out(pushed, tmp_path):
    # An object damaged in the clone's own cache (as a download cut short and kept
    # under its name would leave it) was blamed on the remote: "the remote's bytes are
    # not what dvc.lock names", with advice (`make push VERIFY=1`) that cannot help.
    origin, _ = pushed
    with store_of("directory", tmp_path / "store") as store:
        clone = pushed_to_and_cloned(store, origin, tmp_path / "clone")
        pull = (sys.executable, "-m", "mnistpipe.remote", "pull", "-r", "shared")
        run(clone, *pull)
        cached = (
            clone / ".dvc/cache/files/md5" / object_name(locked_md5(clone, "models/model.keras"))
        )
        content, times = bytearray(cached.read_bytes()), cached.stat()
        content[len(content) // 2] ^= 0xFF
        cached.chmod(0o644)
        cached.write_bytes(bytes(content))
        # The size and time DVC's state database recorded it with: DVC trusts it as
        # fetched (a changed time would make DVC hash it again and fetch it itself).
        os.utime(cached, ns=(times.st_atime_ns, times.st_mtime_ns))
        (clone / "models/model.keras").unlink()

        result = run(clone, *pull, check=False)

        assert result.returncode == 0, result.stderr
        assert "MD5 differs" not in result.stderr, result.stderr
        assert output_bytes(clone) == output_bytes(origin)
        assert "Data and pipelines are up to date." in dvc(clone, "status").stdout


def test_a_pull_whose_server_dies_checks_out_only_whole_outputs(pushed, tmp_path):
    origin, _ = pushed
    with store_of("webdav", tmp_path / "store") as store:
        clone = pushed_to_and_cloned(store, origin, tmp_path / "clone")
        pull = [sys.executable, "-m", "mnistpipe.remote", "pull", "-r", "shared", "--jobs", "1"]
        process = subprocess.Popen(
            pull,
            cwd=clone,
            env=command_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        cache = clone / ".dvc" / "cache"
        deadline = time.monotonic() + 120
        while sum(1 for path in cache.rglob("*") if path.is_file()) < 3:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        store.kill_server()
        error = process.communicate(timeout=120)[1]

        assert process.returncode == 1, error
        assert error.count("\n") == 1 and error.startswith("error: dvc pull from remote"), error
        assert "did not check out" in error and "refused the connection" in error, error
        assert_checked_out_files_are_the_pushed_ones(clone, origin)

        store.start()
        store.add_to(clone)
        run(clone, *pull)
        assert output_bytes(clone) == output_bytes(origin)


def test_a_pull_names_the_outputs_the_remote_does_not_have(pushed, tmp_path):
    # "2 files failed to download; expected the server to be reachable and to accept
    # the credentials": the wrong cause, and no word of which outputs.
    origin, _ = pushed
    with store_of("directory", tmp_path / "store") as store:
        store.add_to(origin)
        run(origin, sys.executable, "-m", "mnistpipe.remote", "push", "-r", "shared")
        model = (
            store.folder / "files" / "md5" / object_name(locked_md5(origin, "models/model.keras"))
        )
        model.chmod(0o644)
        model.unlink()
        clone = fresh_clone(origin, tmp_path / "clone")
        store.add_to(clone)

        result = run(
            clone, sys.executable, "-m", "mnistpipe.remote", "pull", "-r", "shared", check=False
        )

    assert result.returncode == 1
    error = result.stderr
    assert error.count("\n") == 1, error
    assert error.startswith(
        f"error: dvc pull from remote 'shared' ({store.url}) did not check out"
    )
    assert "models/model.keras" in error and "not found on the remote" in error, error
    assert "credentials" not in error and "reachable" not in error, error
    assert (clone / "plots/predictions.csv").is_file()


def test_a_missing_webdav_folder_or_s3_bucket_is_named_as_such(pushed, tmp_path):
    # The server answered 409 to the upload into a folder that does not exist, and
    # the error blamed the connection or the credentials.
    origin, _ = pushed
    clone = fresh_clone(origin, tmp_path / "clone")
    answers = {}
    with store_of("webdav", tmp_path / "webdav") as webdav, store_of("s3", tmp_path / "s3") as s3:
        webdav.url += "no/such/folder"
        s3.url = "s3://no-such-bucket/dvc"
        for store, name in ((webdav, "folderless"), (s3, "bucketless")):
            for repository, action in ((origin, "push"), (clone, "pull")):
                store.add_to(repository, name)
                answers[name, action] = run(
                    repository,
                    *(sys.executable, "-m", "mnistpipe.remote", action, "-r", name),
                    check=False,
                )
        assert not (tmp_path / "webdav" / "no").exists()
    for result in answers.values():
        assert result.returncode == 1, result
        assert result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stdout + result.stderr
    for action in ("push", "pull"):
        folderless = answers["folderless", action].stderr
        assert "the server answered not found (404 Not Found: the folder " in folderless
        assert "/no/such/folder/ does not exist" in folderless
        bucketless = answers["bucketless", action].stderr
        assert "no such bucket (NoSuchBucket: bucket 'no-such-bucket' does not exist)" in (
            bucketless
        )
