"""The GitHub Actions workflow passes a schema check and does what the README says CI does."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPOSITORY

WORKFLOW = REPOSITORY / ".github" / "workflows" / "pipeline.yml"


def check_workflow(path: Path) -> subprocess.CompletedProcess:
    # actionlint only ships as a package that downloads its binary; this schema
    # check (GitHub's workflow schema, bundled with check-jsonschema) runs offline.
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker, "check-jsonschema is not installed (make setup installs it)"
    return subprocess.run(
        [checker, "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_workflow_is_valid():
    result = check_workflow(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path):
    workflow = yaml.safe_load(WORKFLOW.read_text())
    del workflow["jobs"]["pipeline"]["runs-on"]
    workflow["jobs"]["pipeline"]["timeout-minutes"] = "an hour"
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(workflow))
    assert check_workflow(broken).returncode != 0


def test_the_workflow_runs_the_readme_steps_on_pull_requests():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # PyYAML reads the bare key `on` as True.
    assert "pull_request" in workflow[True]
    steps = workflow["jobs"]["pipeline"]["steps"]
    checkout = next(step for step in steps if step.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    commands = [step.get("run", "") for step in steps]
    assert "make setup" in commands
    assert "make ci BASE=origin/${{ github.base_ref }}" in commands
    cached = [
        step["with"]["path"] for step in steps if step.get("uses", "").startswith("actions/cache")
    ]
    assert cached == [".dvc/cache"]
    assert any(step.get("with", {}).get("cache") == "pip" for step in steps)


@pytest.mark.parametrize("target", ["test", "ci", "gate", "ci-report"])
def test_the_makefile_has_the_targets_ci_uses(target):
    result = subprocess.run(
        ["make", "-n", "-C", str(REPOSITORY), target, "BASE=HEAD"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
