"""The pictures of a CI report: curves and confusion matrices of branch and base, and the flips.

``python -m mnistpipe.report --base REV`` renders, into a folder (``ci-report/``),
the Vega-Lite specs of ``dvc plots diff REV`` as PNG (offline, with
vl-convert) and copies the evaluate stage's pictures of both revisions; then it
compares the per-image test predictions (``plots/predictions.csv``) of the
workspace with those of REV, read through ``dvc.api`` from DVC's cache or the
remote (never by retraining REV), and draws the test images that flipped. It
prints the Markdown section that embeds all of it; ``make ci-report`` appends
that to ``ci-report.md``.
"""

import argparse
import csv
import io
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from mnistpipe import commands, interrupts
from mnistpipe.errors import PipelineError, shown
from mnistpipe.figures import save_png
from mnistpipe.files import atomic_path
from mnistpipe.inputs import mapping_under, parse_yaml_mapping, read_text
from mnistpipe.integrity import check_locked

matplotlib.use("Agg")

PREDICTIONS = "plots/predictions.csv"
PREPARED = "data/prepared"
# The stages whose params decide which test images there are, in this order.
DATA_STAGES = ("download", "preprocess")
SHEET_LIMIT = 48
SHEET_COLUMNS = 8


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def run_dvc(*arguments: str) -> str:
    result = commands.run_dvc(*arguments)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise PipelineError(f"dvc {' '.join(arguments)} failed: {last}")
    return result.stdout


def render_plots(base: str, folder: Path) -> list[tuple[str, str]]:
    """PNG files of every plot ``dvc plots diff`` shows, as (title, path) pairs."""
    # DVC writes the image plots of both revisions here; the report keeps copies by name.
    with tempfile.TemporaryDirectory(dir=folder) as images_folder:
        shown = json.loads(run_dvc("plots", "diff", base, "--json", "-o", images_folder))
        return [
            picture
            for name, entries in shown.get("data", {}).items()
            for entry in entries
            for picture in _render(name, entry, folder)
        ]


def _render(name: str, entry: dict, folder: Path) -> list[tuple[str, Path]]:
    # Imported here: only the rendering needs it, and it is a dev dependency.
    import vl_convert

    pictures = []
    if entry.get("type") == "vega":
        target = folder / f"{slug(name)}.png"
        png = vl_convert.vegalite_to_png(entry["content"], scale=1.5)
        with atomic_path(target, suffix=".png") as temporary:
            temporary.write_bytes(png)
        pictures.append((name, target))
    elif entry.get("type") == "image":
        revision = entry["revisions"][0]
        label = "branch" if revision == "workspace" else f"base ({revision})"
        target = folder / f"{slug(revision)}_{slug(Path(name).stem)}.png"
        with atomic_path(target, suffix=".png") as temporary:
            shutil.copyfile(entry["url"], temporary)
        pictures.append((f"{Path(name).stem.replace('_', ' ')}, {label}", target))
    return pictures


def read_predictions(text: str, source: str) -> list[tuple[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"actual", "predicted"} <= set(rows[0]):
        raise PipelineError(f"{source} has no rows with columns actual,predicted")
    return [(row["actual"], row["predicted"]) for row in rows]


def base_predictions(base: str) -> list[tuple[str, str]]:
    import dvc.api

    try:
        content = dvc.api.read(PREDICTIONS, rev=base, repo=".", mode="rb")
    # DVC raises many kinds of error here (missing from cache and remote, bad revision).
    except Exception as error:
        raise PipelineError(
            f"{PREDICTIONS} at {base} could not be read from DVC's cache or remote "
            f"({type(error).__name__}: {error}); expected `dvc push` to have stored it"
        ) from None
    # dvc.api does not hash what it reads from the cache or the remote.
    lock = commands.run_command("git", "show", f"{base}:dvc.lock")
    check_locked(content, lock.stdout, PREDICTIONS, f"dvc.lock at {base}")
    return read_predictions(content.decode("utf-8", "replace"), f"{PREDICTIONS} at {base}")


def data_params(lock_text: str, source: str) -> dict:
    expected = "the dvc.lock that dvc repro writes"
    stages = mapping_under(
        parse_yaml_mapping(lock_text, source, expected), "stages", source, "stage names"
    )
    params = {}
    for name in DATA_STAGES:
        stage = stages.get(name) or {}
        if not isinstance(stage, dict):
            raise PipelineError(
                f"stages.{name} in {source} is {shown(stage)}; expected {expected}: a mapping "
                "with the stage's cmd, deps, params and outs"
            )
        params[name] = stage.get("params")
    return params


def data_changed(base: str) -> bool:
    """Whether the params that choose the test images differ between ``base`` and now."""
    committed = commands.run_command("git", "show", f"{base}:dvc.lock")
    if committed.returncode != 0 or not Path("dvc.lock").exists():
        return True
    text = read_text("dvc.lock", "the dvc.lock that dvc repro writes")
    return data_params(committed.stdout, f"dvc.lock at {base}") != data_params(text, "dvc.lock")


def flips(base: list[tuple[str, str]], branch: list[tuple[str, str]]) -> dict[str, list[int]]:
    """Indices of test images by what happened to them between base and branch."""
    changes = {"right to wrong": [], "wrong to right": [], "wrong to another wrong": []}
    for index, ((actual, before), (_, after)) in enumerate(zip(base, branch, strict=True)):
        if before == after:
            continue
        if before == actual:
            changes["right to wrong"].append(index)
        elif after == actual:
            changes["wrong to right"].append(index)
        else:
            changes["wrong to another wrong"].append(index)
    return changes


def contact_sheet(images, indices, base, branch) -> Figure:
    """The flipped images, each titled with its true class and both predictions."""
    shown = indices[:SHEET_LIMIT]
    rows = max(1, -(-len(shown) // SHEET_COLUMNS))
    figure = Figure(figsize=(1.9 * SHEET_COLUMNS, 2.2 * rows), layout="constrained")
    title = f"Test images whose prediction changed ({len(shown)} of {len(indices)} shown)"
    figure.suptitle(title)
    for position in range(rows * SHEET_COLUMNS):
        axes = figure.add_subplot(rows, SHEET_COLUMNS, position + 1)
        axes.set_axis_off()
        if position >= len(shown):
            continue
        index = shown[position]
        actual, before = base[index]
        after = branch[index][1]
        axes.imshow(np.squeeze(images[index]), cmap="gray", vmin=0.0, vmax=1.0)
        # Red: the branch got it wrong; green: the branch fixed it.
        colour = "tab:green" if after == actual else "tab:red"
        axes.set_title(
            f"#{index} true: {actual}\nbase: {before}\nbranch: {after}", size=7, color=colour
        )
    return figure


def flips_section(base: str, folder: Path) -> list[str]:
    lines = [f"## Test images that flipped against `{base}`", ""]
    text = read_text(PREDICTIONS, "the evaluate stage's predictions: run dvc repro")
    branch = read_predictions(text, PREDICTIONS)
    before = base_predictions(base)
    if data_changed(base) or [row[0] for row in before] != [row[0] for row in branch]:
        return [
            *lines,
            "The data params (download, preprocess) changed against the base, so the test "
            "images differ: no per-image comparison and no contact sheet.",
        ]
    changes = flips(before, branch)
    lines += ["| change | images |", "|---|---|"]
    lines += [f"| {change} | {len(indices)} |" for change, indices in changes.items()]
    lines += [f"| unchanged | {len(branch) - sum(map(len, changes.values()))} |", ""]
    flipped = changes["right to wrong"] + changes["wrong to right"]
    if not flipped:
        return [*lines, "No test image flipped between right and wrong."]
    # Imported here: TensorFlow (which data imports) is slow to load; only the sheet needs it.
    from mnistpipe.prepared import load_split

    images, _ = load_split(PREPARED, "test")
    sheet = folder / "flipped.png"
    save_png(contact_sheet(images, flipped, before, branch), sheet)
    return [*lines, f"![test images that flipped]({sheet.as_posix()})"]


def build(base: str, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"## Pictures against `{base}`", ""]
    for title, path in render_plots(base, folder):
        lines += [f"### {title}", "", f"![{title}]({path.as_posix()})", ""]
    try:
        lines += flips_section(base, folder)
    except PipelineError as error:
        # The pictures stand without the flips: say why they are missing, fail nothing.
        lines += [f"## Test images that flipped against `{base}`", "", f"Not shown: {error}"]
    return "\n".join(lines) + "\n"


@interrupts.handled("report", "; each picture is whole or absent; run it again")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnistpipe.report", description=__doc__)
    parser.add_argument("--base", required=True, metavar="REV", help="the git revision to compare")
    parser.add_argument(
        "--folder", default="ci-report", help="where the PNG files go (relative to the report)"
    )
    arguments = parser.parse_args(argv)
    try:
        print(build(arguments.base, Path(arguments.folder)), end="")
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
