"""Register the exported model as a version in DVC's model registry, if it may be published.

    mnistpipe release 1.2.0 [--stage prod]        (make release VERSION=1.2.0 [STAGE=prod])

The registry is GTO's git tags: ``gto register classifier --version v1.2.0`` tags the
current commit ``classifier@v1.2.0``, and ``dvc artifacts get REPO classifier --rev
v1.2.0`` (or ``--stage prod``) fetches ``models/export`` as that commit's dvc.lock
recorded it. So a version is refused unless that is the model a user would get and it
is one worth getting:

- the workspace is what dvc.lock says (``dvc status`` reports nothing) and dvc.yaml,
  dvc.lock, params.yaml and metrics/ are committed, so the tag names this very model;
- the model meets the bar: the test accuracy in metrics/evaluate.json is at least
  evaluate.min_accuracy. Below it, an experiment is saved, but never published.

Exits 0 once registered, 1 when refused (one ``error:`` line saying why), 2 on bad
arguments.
"""

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from mnistpipe import interrupts, paths
from mnistpipe.commands import run_command
from mnistpipe.errors import PipelineError, shown
from mnistpipe.export_check import load_export
from mnistpipe.inputs import mapping_under, read_json_object, read_yaml_mapping
from mnistpipe.params import load_params
from mnistpipe.quality import bar_verdict, meets_bar

DVC_YAML = Path("dvc.yaml")
# What must be committed for the tag to name the model in the workspace.
COMMITTED = ("dvc.yaml", "dvc.lock", str(paths.PARAMS), str(paths.METRICS))
SEMANTIC_VERSION = re.compile(r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")


def semantic_version(text: str) -> str:
    """``1.2.0`` or ``v1.2.0`` as GTO spells it, ``v1.2.0``."""
    if not SEMANTIC_VERSION.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"version {text!r}: expected MAJOR.MINOR.PATCH, e.g. 1.2.0"
        )
    return "v" + text.removeprefix("v")


def artifact_name() -> str:
    """The one model dvc.yaml's ``artifacts:`` declares."""
    expected = "DVC's pipeline file with the model under artifacts:"
    pipeline = read_yaml_mapping(DVC_YAML, expected)
    artifacts = mapping_under(
        pipeline, "artifacts", str(DVC_YAML), "artifact names, each with its type: and path:"
    )
    models = []
    for name, entry in artifacts.items():
        if not isinstance(entry, dict):
            raise PipelineError(
                f"artifacts.{name} in {DVC_YAML} is {shown(entry)}; expected a mapping with "
                "type: and path:"
            )
        if entry.get("type") == "model":
            models.append(name)
    if len(models) != 1:
        raise PipelineError(
            f"{DVC_YAML} declares {len(models)} artifacts of type model; expected exactly one"
        )
    return models[0]


def _tool(name: str) -> str:
    # The virtualenv's own dvc and gto, even when its bin/ is not on PATH.
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name) or name


def check_committed() -> None:
    status = run_command("git", "status", "--porcelain", "--", *COMMITTED)
    if status.returncode != 0:
        raise PipelineError(f"{Path.cwd()} is not a git repository; expected a clone of one")
    changed = [line[3:] for line in status.stdout.splitlines()]
    if changed:
        raise PipelineError(
            f"{', '.join(changed)} differ from the last commit; expected them committed, "
            "so that the version's tag names this model (git commit, then release)"
        )


def check_pipeline_up_to_date() -> None:
    status = run_command(_tool("dvc"), "status", "--json")
    if status.returncode != 0:
        raise PipelineError(f"dvc status failed: {status.stderr.strip().splitlines()[-1:]}")
    stale = sorted(json.loads(status.stdout or "{}"))
    if stale:
        raise PipelineError(
            f"dvc status reports {', '.join(stale)} changed; expected the workspace to be "
            "what dvc.lock says (dvc repro and commit, or dvc checkout)"
        )


def check_bar() -> str:
    evaluation = read_json_object(paths.EVALUATE_METRICS, "evaluate", numbers=("accuracy",))
    min_accuracy = load_params(paths.PARAMS)["evaluate"]["min_accuracy"]
    verdict = bar_verdict(evaluation["accuracy"], min_accuracy)
    if not meets_bar(evaluation["accuracy"], min_accuracy):
        raise PipelineError(f"{verdict} in {paths.EVALUATE_METRICS}; refusing to release it")
    return verdict


def register(name: str, version: str, stage: str | None) -> list[str]:
    """Tag the version (and its stage) with GTO; the lines GTO printed."""
    commands = [[_tool("gto"), "register", name, "--version", version]]
    if stage:
        commands.append([_tool("gto"), "assign", name, "--version", version, "--stage", stage])
    printed = []
    for command in commands:
        result = run_command(*command)
        if result.returncode != 0:
            last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]
            # GTO marks its errors with an emoji; the project's line says "error:" already.
            reason = " ".join(last).removeprefix("❌").strip()
            raise PipelineError(f"gto {' '.join(command[1:3])} failed: {reason}")
        printed += result.stdout.strip().splitlines()
    return printed


@interrupts.handled(
    "release", "; no version is registered unless `gto show` lists it; run it again"
)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mnistpipe release",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("version", type=semantic_version, help="MAJOR.MINOR.PATCH, e.g. 1.2.0")
    parser.add_argument(
        "--stage", help="also assign this stage to the version (e.g. prod), with gto assign"
    )
    arguments = parser.parse_args(argv)
    try:
        name = artifact_name()
        check_committed()
        check_pipeline_up_to_date()
        verdict = check_bar()
        # What `dvc artifacts get` will hand out, checked whole before it is named a version.
        load_export(paths.EXPORT)
        printed = register(name, arguments.version, arguments.stage)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for line in printed:
        print(line)
    stage = f", stage {arguments.stage}" if arguments.stage else ""
    print(
        f"release: {name}@{arguments.version}{stage} ({verdict}); "
        f"get it with: dvc artifacts get REPO {name} --rev {arguments.version}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
