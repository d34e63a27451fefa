"""dvc.yaml declares what each stage really depends on, so DVC reruns exactly what changed."""

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPOSITORY

PACKAGE = REPOSITORY / "src" / "mnistpipe"
STAGES = ("download", "preprocess", "train", "evaluate", "export")


def module_path(name: str) -> Path:
    """The file of module ``name`` (``mnistpipe`` or ``mnistpipe.x``) in src/mnistpipe/."""
    if name == "mnistpipe":
        return PACKAGE / "__init__.py"
    return PACKAGE / (name.removeprefix("mnistpipe.").replace(".", "/") + ".py")


def imported_modules(path: Path) -> set[str]:
    """The mnistpipe modules ``path`` imports, directly or through other mnistpipe modules."""
    found: set[Path] = set()
    pending = [path]
    while pending:
        for node in ast.walk(ast.parse(pending.pop().read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mnistpipe"):
                # `from mnistpipe import paths` imports the package and its module paths.
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if not name.startswith("mnistpipe"):
                    continue
                # Importing a submodule runs the package's __init__ first.
                for module in (module_path("mnistpipe"), module_path(name)):
                    if module.is_file() and module not in found:
                        found.add(module)
                        pending.append(module)
    return {module.relative_to(REPOSITORY).as_posix() for module in found}


@pytest.fixture(scope="module")
def stages():
    return yaml.safe_load((REPOSITORY / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_lists_its_script_and_every_shared_module_it_imports(stages, stage):
    script = f"stages/{stage}.py"
    deps = set(stages[stage]["deps"])
    assert stages[stage]["cmd"] == f"python {script}"
    assert script in deps
    needed = imported_modules(REPOSITORY / script)
    assert needed - deps == set(), f"{stage} imports modules dvc.yaml does not list"
    listed_modules = {dep for dep in deps if dep.startswith("src/")}
    assert listed_modules - needed == set(), f"{stage} lists modules it does not import"


def test_metrics_are_kept_in_git_and_declared_at_the_top_level(stages):
    document = yaml.safe_load((REPOSITORY / "dvc.yaml").read_text())
    metrics = set(document["metrics"])
    assert metrics == {
        "metrics/data.json",
        "dvclive/metrics.json",
        "metrics/train.json",
        "metrics/evaluate.json",
        "metrics/export.json",
    }
    for stage in stages.values():
        for out in stage["outs"]:
            if isinstance(out, dict) and next(iter(out)) in metrics:
                assert out[next(iter(out))]["cache"] is False
