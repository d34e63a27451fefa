"""dvclive's log of a training run: writing it without touching tracked files, reading it back."""

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dvclive import Live
from scmrepo.exceptions import SCMError

from mnistpipe.errors import PipelineError, shown
from mnistpipe.inputs import finite_number, read_json_object


@contextlib.contextmanager
def open_live(directory: Path, is_chief: bool = True) -> Iterator[Live]:
    """A dvclive Live writing into ``directory``, emptied first, for the run's epochs.

    The stage owns dvc.yaml and the experiment: dvclive writes no dvc.yaml entries
    (``dvcyaml=False``), saves no experiment of its own (``dvc exp run`` does),
    writes no report and no timestamps, so that a rerun writes the same bytes.
    A worker other than the chief logs into a scratch directory, thrown away,
    as it does with its model.
    """
    # dvclive says at INFO level which experiment it logs to; a stage's output is
    # its own one-line summary, and dvclive's warnings still show.
    logging.getLogger("dvclive").setLevel(logging.WARNING)
    with contextlib.ExitStack() as stack:
        if not is_chief:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        live = _Live(dir=str(directory), save_dvc_exp=False, dvcyaml=False, report=None)
        yield live


class _Live(Live):
    """dvclive's Live, also in a git repository that has no commit yet.

    dvclive 3.49 asks git for the current commit to name its experiment and
    fails with a traceback where there is none (a fresh `git init` and a first
    `dvc repro`); such a run has no experiment to name, and the log is written
    as anywhere else (tests/test_live.py runs one).
    """

    def _init_dvc(self):
        try:
            super()._init_dvc()
        except SCMError:
            self._dvc_file = "dvc.yaml"


def last_epoch_figures(path: Path) -> dict[str, float]:
    """The last epoch's loss, accuracy, val_loss and val_accuracy from dvclive's metrics.json.

    Raises ``PipelineError`` naming the file unless it holds them as numbers.
    """
    summary = read_json_object(path, "train", required=("train", "eval"))
    figures = {}
    for split, prefix in (("train", ""), ("eval", "val_")):
        for figure in ("loss", "accuracy"):
            value = summary[split].get(figure) if isinstance(summary[split], dict) else None
            # finite_number: an infinity (1e999) or an integer past float's range
            # (10**400 written out) is no figure for the model card either.
            number = finite_number(value)
            if number is None:
                raise PipelineError(
                    f"{path} has {split}.{figure} {shown(value)}; expected a finite number, "
                    "as dvclive writes it; run dvc repro --force train"
                )
            figures[prefix + figure] = number
    return figures
