"""Bytes read from another run's cache or remote are checked against the MD5 dvc.lock records."""

import subprocess
import sys

import asyncssh
import pytest

from mnistpipe.errors import PipelineError
from mnistpipe.integrity import check_locked, locked_md5
from mnistpipe.report import base_predictions

LOCK = """schema: '2.0'
stages:
  evaluate:
    cmd: python stages/evaluate.py
    outs:
    - path: plots/predictions.csv
      hash: md5
      md5: 6d0bb00954ceb7fbee436bb55a8397a9
      size: 24
"""


def test_the_md5_dvc_lock_records_for_an_output_is_found_or_its_absence_named():
    assert locked_md5(LOCK, "plots/predictions.csv", "dvc.lock") == (
        "6d0bb00954ceb7fbee436bb55a8397a9"
    )
    with pytest.raises(PipelineError, match="dvc.lock at main records no output models/x"):
        locked_md5(LOCK, "models/x", "dvc.lock at main")
    with pytest.raises(PipelineError, match="stages in dvc.lock is 3"):
        locked_md5("stages: 3\n", "plots/predictions.csv", "dvc.lock")


def test_bytes_that_are_not_the_locked_ones_are_refused_naming_both_md5s():
    with pytest.raises(PipelineError) as raised:
        check_locked(b"index,actual,predicted\n", LOCK, "plots/predictions.csv", "dvc.lock")
    message = str(raised.value)
    assert message.startswith("plots/predictions.csv as read (23 bytes, MD5 ")
    assert "not the one dvc.lock records (MD5 6d0bb00954ceb7fbee436bb55a8397a9)" in message
    assert "\n" not in message


def run(root, *command):
    subprocess.run(command, cwd=root, check=True, capture_output=True)


def test_the_reports_base_predictions_damaged_in_the_cache_are_refused(tmp_path, monkeypatch):
    # dvc.api.read hands over whatever the cache or the remote holds: the report
    # compared the branch with a base whose predictions had been changed there.
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    run(tmp_path, "git", "init", "-q")
    run(tmp_path, sys.executable, "-m", "dvc", "init", "-q")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  evaluate:\n    cmd: 'true'\n    outs:\n    - plots/predictions.csv\n"
    )
    (tmp_path / "plots").mkdir()
    rows = "index,actual,predicted\n0,Bag,Bag\n1,Coat,Bag\n"
    (tmp_path / "plots/predictions.csv").write_text(rows)
    run(tmp_path, sys.executable, "-m", "dvc", "commit", "-f", "-q")
    run(tmp_path, "git", "add", "-A")
    run(tmp_path, "git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "base")
    monkeypatch.chdir(tmp_path)
    assert base_predictions("HEAD") == [("Bag", "Bag"), ("Coat", "Bag")]
    (cached,) = [p for p in (tmp_path / ".dvc/cache/files/md5").rglob("*") if p.is_file()]
    cached.chmod(0o644)
    cached.write_text(rows.replace("1,Coat,Bag", "1,Coat,Cat"))  # Same size, one flip.

    with pytest.raises(PipelineError) as raised:
        base_predictions("HEAD")

    assert str(raised.value).startswith("plots/predictions.csv as read (44 bytes, MD5 ")
    assert "is not the one dvc.lock at HEAD records" in str(raised.value)


@pytest.mark.parametrize(
    "error",
    [
        # What asyncssh raises when sshd goes during an SFTP transfer: seen as the whole
        # answer of a push whose SSH server was killed half way.
        asyncssh.sftp.SFTPNoConnection("Connection not open"),
        asyncssh.ConnectionLost("Connection lost"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_a_server_gone_or_down_is_named_as_such_not_as_an_unknown_answer(error):
    from mnistpipe.remote import remote_answer

    answer = remote_answer(OSError(f"failed to transfer: {error}").with_traceback(None))
    chained = OSError("failed to transfer")
    chained.__cause__ = error
    for text in (answer, remote_answer(chained)):
        assert text.startswith("the server refused the connection (")
        assert "expected a server listening at the URL" in text
