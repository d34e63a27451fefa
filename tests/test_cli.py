"""The `mnistpipe` console command: its subcommands, their help, and one-line argument errors."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mnistpipe import cli, release
from tests.conftest import REPOSITORY

SCRIPT = Path(sys.executable).parent / "mnistpipe"


def mnistpipe(*arguments: str, cwd: Path = REPOSITORY) -> subprocess.CompletedProcess:
    assert SCRIPT.is_file(), "the console script is missing: pip install --no-deps -e ."
    return subprocess.run(
        [str(SCRIPT), *arguments], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", ["predict", "gate", "release", "experiments"])
def test_each_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage:" in capsys.readouterr().out


# Each in a fresh interpreter: whatever this process imported before does not count.
HELP_LOADS_NO_TENSORFLOW = """
import contextlib, io, sys
from mnistpipe import cli
with contextlib.redirect_stdout(io.StringIO()) as shown, contextlib.suppress(SystemExit):
    cli.main([sys.argv[1], "--help"])
print(shown.getvalue().splitlines()[0])
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_help_loads_no_tensorflow_and_names_the_command_as_typed(command):
    result = subprocess.run(
        [sys.executable, "-c", HELP_LOADS_NO_TENSORFLOW, command],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    usage, loaded = result.stdout.splitlines()
    assert usage.startswith(f"usage: mnistpipe {command} ")
    assert loaded == "False False", f"mnistpipe {command} --help imported TensorFlow or Keras"


def test_version():
    result = mnistpipe("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"mnistpipe \d+\.\d+\.\d+\n", result.stdout), result.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "error: mnistpipe: expected a command: predict, gate, release, experiments"),
        (["frob"], "error: mnistpipe: argument COMMAND: invalid choice: 'frob'"),
        (["predict"], "error: mnistpipe predict: the following arguments are required: files"),
        (["predict", "x.png", "--colour"], "error: mnistpipe predict: unrecognized arguments"),
        (["gate"], "error: mnistpipe gate: the following arguments are required: --against"),
        (
            ["gate", "--against", "HEAD", "--tolerance", "accuracy"],
            "error: mnistpipe gate: argument --tolerance: --tolerance 'accuracy': expected",
        ),
        (["release"], "error: mnistpipe release: the following arguments are required: version"),
        (["release", "1.2"], "expected MAJOR.MINOR.PATCH, e.g. 1.2.0"),
        # The benchmark is `python -m bench` from the repository, not a command of the package.
        (["bench"], "error: mnistpipe: argument COMMAND: invalid choice: 'bench'"),
    ],
)
def test_bad_arguments_give_one_error_line_and_status_2(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(arguments)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured.err
    assert message in captured.err
    assert captured.out == ""


def test_the_console_script_gives_the_one_line_error_without_a_traceback():
    result = mnistpipe("gate", "--against")
    assert result.returncode == 2
    assert result.stderr == (
        "error: mnistpipe gate: argument --against: expected one argument; "
        "see mnistpipe gate --help\n"
    )
    assert result.stdout == ""


def test_python_dash_m_still_works():
    result = subprocess.run(
        [sys.executable, "-m", "mnistpipe.gate", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "usage: python -m mnistpipe.gate" in result.stdout


@pytest.mark.parametrize(("text", "expected"), [("1.2.0", "v1.2.0"), ("v0.10.3", "v0.10.3")])
def test_a_release_version_is_spelled_as_gto_wants(text, expected):
    assert release.semantic_version(text) == expected


def test_release_refuses_a_model_below_the_bar_naming_figure_and_bar(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text((REPOSITORY / "params.yaml").read_text())
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "evaluate.json").write_text('{"accuracy": 0.8774}')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(release.PipelineError) as error:
        release.check_bar()
    assert str(error.value) == (
        "test accuracy 0.8774 is below evaluate.min_accuracy 0.9000 in metrics/evaluate.json; "
        "refusing to release it"
    )
    (tmp_path / "metrics" / "evaluate.json").write_text('{"accuracy": 0.9}')
    assert release.check_bar() == "test accuracy 0.9000 meets evaluate.min_accuracy 0.9000"


def test_the_makefile_releases_with_the_console_command():
    result = subprocess.run(
        ["make", "-n", "-C", str(REPOSITORY), "release", "VERSION=1.2.0", "STAGE=prod"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "mnistpipe release 1.2.0 --stage prod" in result.stdout
