"""The quality gate against a git revision, in a temporary repository with two commits."""

import io
import json
import subprocess
import sys

import pytest
import yaml

from mnistpipe.gate import main
from tests.conftest import REPOSITORY


def git(root, *arguments):
    subprocess.run(["git", *arguments], cwd=root, check=True, capture_output=True)


def write_metrics(root, accuracy, loss, disagreements=0):
    metrics = root / "metrics"
    metrics.mkdir(exist_ok=True)
    evaluate = {"accuracy": accuracy, "loss": loss, "macro_avg": {"f1": accuracy - 0.001}}
    (metrics / "evaluate.json").write_text(json.dumps(evaluate))
    (metrics / "export.json").write_text(json.dumps({"argmax_disagreements": disagreements}))


def commit_all(root):
    git(root, "-c", "user.name=test", "-c", "user.email=t@example.org", "commit", "-qam", "next")


@pytest.fixture
def repository(tmp_path, monkeypatch):
    """A git repository whose first commit holds a run with accuracy 0.92 and loss 0.22."""
    root = tmp_path / "repository"
    root.mkdir()
    (root / "params.yaml").write_text((REPOSITORY / "params.yaml").read_text())
    write_metrics(root, accuracy=0.92, loss=0.22)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-qm", "base")
    monkeypatch.chdir(root)
    return root


def test_a_small_drop_within_tolerance_passes_and_prints_the_table(repository, capsys):
    write_metrics(repository, accuracy=0.917, loss=0.23)
    assert main(["--against", "HEAD"]) == 0
    table = capsys.readouterr().out
    assert "| metric | base | now | change | verdict |" in table
    assert "| evaluate.accuracy | 0.92 | 0.917 | -0.003 | pass (tolerance 0.005" in table
    assert (
        "| evaluate.loss | 0.22 | 0.23 | +0.01 | pass (tolerance 0.02, lower is better) |" in table
    )


def test_a_drop_beyond_tolerance_fails_naming_the_metric(repository, capsys):
    write_metrics(repository, accuracy=0.91, loss=0.21)
    assert main(["--against", "HEAD"]) == 1
    captured = capsys.readouterr()
    assert "| evaluate.accuracy | 0.92 | 0.91 | -0.01 | **FAIL** (tolerance 0.005" in captured.out
    assert "| evaluate.loss | 0.22 | 0.21 | -0.01 | pass" in captured.out
    assert "gate failed: evaluate.accuracy, evaluate.macro_avg.f1" in captured.err


def test_a_flag_overrides_the_tolerance_from_params(repository):
    write_metrics(repository, accuracy=0.91, loss=0.21)
    arguments = [
        "--against",
        "HEAD",
        "--tolerance",
        "evaluate.accuracy=0.02",
        "--tolerance",
        "evaluate.macro_avg.f1=0.02",
    ]
    assert main(arguments) == 0


def test_a_rising_loss_or_new_disagreement_fails(repository):
    write_metrics(repository, accuracy=0.92, loss=0.25, disagreements=1)
    assert main(["--against", "HEAD"]) == 1


def test_the_base_is_read_from_git_not_from_a_file(repository):
    """A second commit moves the workspace's base; HEAD~1 still gives the first."""
    write_metrics(repository, accuracy=0.905, loss=0.5)
    git(
        repository,
        "-c",
        "user.name=test",
        "-c",
        "user.email=t@example.org",
        "commit",
        "-qam",
        "worse",
    )
    assert main(["--against", "HEAD"]) == 0
    assert main(["--against", "HEAD~1"]) == 1


def test_an_unknown_revision_is_a_clear_error(repository, capsys):
    assert main(["--against", "no-such-branch"]) == 2
    assert "revision 'no-such-branch' does not exist" in capsys.readouterr().err


def test_an_unknown_metric_is_a_clear_error(repository, capsys):
    assert main(["--against", "HEAD", "--tolerance", "evaluate.acuracy=0.1"]) == 2
    assert "metric evaluate.acuracy does not exist in metrics/evaluate.json at HEAD" in (
        capsys.readouterr().err
    )


def test_a_metrics_file_missing_at_the_revision_is_a_clear_error(repository, capsys):
    (repository / "metrics" / "train.json").write_text(json.dumps({"accuracy": 0.9}))
    assert main(["--against", "HEAD", "--tolerance", "train.accuracy=0.1"]) == 2
    assert "metrics/train.json does not exist at revision 'HEAD'" in capsys.readouterr().err


def test_a_malformed_tolerance_flag_is_refused(repository, capsys):
    with pytest.raises(SystemExit):
        main(["--against", "HEAD", "--tolerance", "evaluate.accuracy"])
    assert "expected METRIC=NUMBER" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("accuracy=0.1", "has metric 'accuracy'; expected FILE.KEY"),
        (
            "evaluate.accuracy=-0.1",
            "--tolerance.evaluate.accuracy is -0.1; expected a number in [0",
        ),
        ("evaluate.accuracy=a lot", "expected METRIC=NUMBER"),
    ],
)
def test_a_tolerance_flag_is_checked_like_the_params(repository, capsys, flag, message):
    with pytest.raises(SystemExit):
        main(["--against", "HEAD", "--tolerance", flag])
    assert message in capsys.readouterr().err


def test_tolerances_in_params_are_validated(repository):
    params = yaml.safe_load((repository / "params.yaml").read_text())
    params["gate"]["tolerances"]["evaluate.accuracy"] = -0.1
    (repository / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["--against", "HEAD"]) == 2


def test_a_model_below_the_bar_fails_naming_the_figure_and_the_bar(repository, capsys):
    """No metric got worse than at HEAD, but the model is below evaluate.min_accuracy (0.9)."""
    write_metrics(repository, accuracy=0.85, loss=0.4)
    commit_all(repository)
    assert main(["--against", "HEAD"]) == 1
    captured = capsys.readouterr()
    assert "| evaluate.accuracy | 0.85 | 0.85 | +0 | pass" in captured.out
    assert "Quality bar: **FAIL**, test accuracy 0.8500 is below evaluate.min_accuracy 0.9000" in (
        captured.out
    )
    assert "gate failed: test accuracy 0.8500 is below evaluate.min_accuracy 0.9000" in (
        captured.err
    )


def test_a_model_at_the_bar_passes_it(repository, capsys):
    write_metrics(repository, accuracy=0.9, loss=0.22)
    assert main(["--against", "HEAD", "--tolerance", "evaluate.accuracy=0.1"]) == 1
    assert "Quality bar: pass, test accuracy 0.9000 meets evaluate.min_accuracy 0.9000" in (
        capsys.readouterr().out
    )


def test_per_class_figures_are_gated_against_a_revision_that_kept_them_in_evaluate_json(
    repository, capsys
):
    """Older revisions hold per_class inside metrics/evaluate.json; now it is classes.json."""
    committed = json.loads((repository / "metrics" / "evaluate.json").read_text())
    committed["per_class"] = {"Shirt": {"f1": 0.70}}
    (repository / "metrics" / "evaluate.json").write_text(json.dumps(committed))
    commit_all(repository)
    write_metrics(repository, accuracy=0.92, loss=0.22)
    classes = repository / "metrics" / "classes.json"
    classes.write_text(json.dumps({"per_class": {"Shirt": {"f1": 0.65}}}))
    assert main(["--against", "HEAD", "--tolerance", "classes.per_class.Shirt.f1=0.01"]) == 1
    assert "| classes.per_class.Shirt.f1 | 0.7 | 0.65 | -0.05 | **FAIL**" in (
        capsys.readouterr().out
    )
    classes.write_text(json.dumps({"per_class": {"Shirt": {"f1": 0.71}}}))
    assert main(["--against", "HEAD", "--tolerance", "classes.per_class.Shirt.f1=0.01"]) == 0


def test_a_name_the_output_cannot_spell_is_escaped_not_a_traceback(repository, monkeypatch):
    # PYTHONIOENCODING=ascii (or a non-UTF-8 name under a strict UTF-8 output): the table's
    # revision raised UnicodeEncodeError after the gate had done its work.
    git(repository, "tag", "vé")
    output = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(output, encoding="ascii"))
    assert main(["--against", "vé"]) == 0
    sys.stdout.flush()
    assert b"Quality gate against `v\\xe9`" in output.getvalue()


def test_a_committed_metrics_file_that_is_not_utf_8_is_a_clear_error(repository, capsys):
    # `git show` output was decoded strictly inside subprocess.run: a UnicodeDecodeError.
    (repository / "metrics" / "evaluate.json").write_bytes(b'{"accuracy": \xff}')
    commit_all(repository)
    write_metrics(repository, accuracy=0.92, loss=0.22)
    assert main(["--against", "HEAD"]) == 2
    assert "error: metrics/evaluate.json at HEAD is not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("1" + "0" * 400, "an integer of about 401 digits"),
        ("-1" + "0" * 400, "a negative integer of about 401 digits"),
        ("1e999", "inf"),
    ],
    ids=["huge-integer", "huge-negative-integer", "infinity"],
)
def test_a_metric_beyond_floats_range_is_one_error_naming_file_and_metric(
    repository, capsys, written, shown
):
    # math.isfinite(10**400) raised OverflowError: a traceback instead of this line.
    (repository / "metrics" / "evaluate.json").write_text(f'{{"accuracy": {written}}}')

    assert main(["--against", "HEAD", "--tolerance", "evaluate.accuracy=0.01"]) == 2

    error = capsys.readouterr().err
    assert error == (
        f"error: metric evaluate.accuracy in metrics/evaluate.json in the workspace is {shown}; "
        "expected a finite number\n"
    ), error
