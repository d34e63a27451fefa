"""No credential in any file git tracks; DVC's own file for them stays out of git."""

import re
import subprocess
from pathlib import Path

from tests.conftest import REPOSITORY

# What a leaked credential looks like. Written with character classes so that this file,
# which git tracks too, does not match itself.
CREDENTIAL_PATTERNS = {
    "an AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a private key": re.compile(r"-----BEGIN ([A-Z]+ )?PRIVATE KE[Y]-----"),
    "a password setting": re.compile(r"(?im)^\s*pass[w]ord\s*=\s*\S+"),
    "an access key setting": re.compile(
        r"(?im)^\s*(access_key_i[d]|secret_access_ke[y]|session_toke[n])\s*=\s*\S+"
    ),
    "a GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
}


def leaks(repository: Path) -> list[str]:
    """``path: what`` for every tracked file holding something credential-like."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=repository, capture_output=True, check=True
    ).stdout.split(b"\0")
    found = []
    for name in filter(None, listed):
        path = repository / name.decode()
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        found += [
            f"{name.decode()}: {what}"
            for what, pattern in CREDENTIAL_PATTERNS.items()
            if pattern.search(text)
        ]
    return found


def test_no_tracked_file_holds_a_credential():
    assert leaks(REPOSITORY) == []


def test_a_committed_credential_is_caught(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    config = tmp_path / ".dvc" / "config"
    config.parent.mkdir()
    key = "AKIA" + "Q" * 16
    config.write_text(
        "['remote \"storage\"']\n    url = s3://bucket/dvc\n"
        f"    access_key_id = {key}\n    secret_access_key = abc/def\n    password = hunter2\n"
    )
    (tmp_path / "id_ed25519").write_text("-----BEGIN OPENSSH " + "PRIVATE KEY-----\nabc\n")
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    assert sorted(leaks(tmp_path)) == [
        ".dvc/config: a password setting",
        ".dvc/config: an AWS access key id",
        ".dvc/config: an access key setting",
        "id_ed25519: a private key",
    ]


def test_dvc_keeps_its_local_config_out_of_git():
    ignored = subprocess.run(
        ["git", "check-ignore", ".dvc/config.local"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
    )
    assert ignored.stdout.strip() == ".dvc/config.local"
