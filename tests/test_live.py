"""dvclive's log of training: what it writes, a resumed run's log, and reading it back."""

import json
import os
import subprocess
import sys

import pytest

from mnistpipe.errors import PipelineError
from mnistpipe.live import last_epoch_figures, open_live
from mnistpipe.seeding import seed_everything
from mnistpipe.training import train_from_params
from tests.conftest import settings_for, small_splits
from tests.test_checkpoint import Interrupted, _InterruptAtEpoch


def live_files(directory):
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def logged_run(directory, settings, checkpoint_path=None, callbacks=()):
    seed_everything(11, deterministic=True)
    with open_live(directory) as live:
        return train_from_params(
            settings,
            11,
            *small_splits(),
            callbacks=callbacks,
            checkpoint_path=checkpoint_path,
            live=live,
        )


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_each_epoch_is_one_step_with_the_same_files_from_either_loop(tmp_path, loop):
    _, history = logged_run(tmp_path / "dvclive", settings_for("mlp", loop, epochs=2))
    files = live_files(tmp_path / "dvclive")
    assert set(files) == {
        "metrics.json",
        *(
            f"plots/metrics/{split}/{figure}.tsv"
            for split in ("train", "eval")
            for figure in ("accuracy", "loss")
        ),
    }
    summary = json.loads(files["metrics.json"])
    assert summary["step"] == 1
    assert summary["eval"]["accuracy"] == pytest.approx(history["val_accuracy"][-1])
    rows = files["plots/metrics/train/loss.tsv"].decode().splitlines()
    assert rows[0] == "step\tloss"
    assert [float(row.split("\t")[1]) for row in rows[1:]] == pytest.approx(history["loss"])
    # No timestamps, no report, no dvc.yaml: a rerun writes the same bytes.
    assert "timestamp" not in "".join(rows)


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_a_resumed_run_logs_every_epoch_once_as_an_uninterrupted_run_does(tmp_path, loop):
    settings = settings_for("mlp", loop, epochs=3)
    logged_run(tmp_path / "whole", settings)
    checkpoint = tmp_path / "train.npz"
    with pytest.raises(Interrupted):
        logged_run(tmp_path / "resumed", settings, checkpoint, callbacks=[_InterruptAtEpoch(2)])
    logged_run(tmp_path / "resumed", settings, checkpoint)
    assert live_files(tmp_path / "resumed") == live_files(tmp_path / "whole")


def test_a_worker_other_than_the_chief_logs_into_scratch(tmp_path):
    with open_live(tmp_path / "dvclive", is_chief=False) as live:
        live.log_metric("train/loss", 1.0)
        live.next_step()
    assert not (tmp_path / "dvclive").exists()


def test_a_git_repository_without_a_commit_still_gets_the_log(tmp_path, monkeypatch):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "-q"],
        cwd=tmp_path,
        check=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    monkeypatch.chdir(tmp_path)
    with open_live(tmp_path / "dvclive") as live:
        live.log_metric("train/loss", 1.0)
        live.next_step()
    assert json.loads((tmp_path / "dvclive" / "metrics.json").read_text())["step"] == 0


def test_the_last_epoch_figures_are_read_back_by_their_pipeline_names(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(
        json.dumps(
            {
                "train": {"loss": 0.3, "accuracy": 0.9},
                "eval": {"loss": 0.4, "accuracy": 0.8},
                "step": 4,
            }
        )
    )
    assert last_epoch_figures(path) == {
        "loss": 0.3,
        "accuracy": 0.9,
        "val_loss": 0.4,
        "val_accuracy": 0.8,
    }


@pytest.mark.parametrize(
    "content",
    [
        "[]",
        '{"train": {}, "eval": {}}',
        '{"train": {"loss": "x", "accuracy": 1}, "eval": 3}',
        "not json",
    ],
)
def test_a_log_that_is_not_dvclive_s_is_one_error_naming_the_file(tmp_path, content):
    path = tmp_path / "metrics.json"
    path.write_text(content)
    with pytest.raises(PipelineError, match=str(path)):
        last_epoch_figures(path)


@pytest.mark.parametrize(
    ("written", "shown"),
    [("1" + "0" * 400, "an integer of about 401 digits"), ("1e999", "inf")],
    ids=["huge-integer", "infinity"],
)
def test_a_figure_beyond_floats_range_is_one_error_naming_file_and_figure(
    tmp_path, written, shown
):
    # float(10**400) raised OverflowError in the export's model card (a traceback),
    # and 1e999 went into the card as inf.
    path = tmp_path / "metrics.json"
    path.write_text(
        f'{{"train": {{"loss": {written}, "accuracy": 0.9}}, '
        '"eval": {"loss": 0.4, "accuracy": 0.8}}'
    )
    with pytest.raises(PipelineError) as raised:
        last_epoch_figures(path)
    assert str(raised.value) == (
        f"{path} has train.loss {shown}; expected a finite number, as dvclive writes it; "
        "run dvc repro --force train"
    )
