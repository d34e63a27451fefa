"""The GitHub Actions workflow passes a schema check and does what docs/tutorials/team.md says."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPOSITORY

WORKFLOWS = REPOSITORY / ".github" / "workflows"
WORKFLOW = WORKFLOWS / "pipeline.yml"
COMMENT_WORKFLOW = WORKFLOWS / "report-comment.yml"
GITLAB_CI = REPOSITORY / ".gitlab-ci.yml"


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed (make setup installs it)"
    return found


def check_workflow(
    path: Path, schema: str = "vendor.github-workflows"
) -> subprocess.CompletedProcess:
    # actionlint only ships as a package that downloads its binary; this schema
    # check (GitHub's workflow schema, bundled with check-jsonschema) runs offline.
    return subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("path", [WORKFLOW, COMMENT_WORKFLOW], ids=lambda path: path.name)
def test_the_workflow_is_valid(path):
    result = check_workflow(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_gitlab_pipeline_is_valid_and_a_broken_one_is_not(tmp_path):
    result = check_workflow(GITLAB_CI, "vendor.gitlab-ci")
    assert result.returncode == 0, result.stdout + result.stderr
    pipeline = yaml.safe_load(GITLAB_CI.read_text())
    pipeline["pipeline"]["artifacts"]["when"] = "sometimes"
    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text(yaml.safe_dump(pipeline))
    assert check_workflow(broken, "vendor.gitlab-ci").returncode != 0


def test_the_gitlab_pipeline_tests_diffs_reports_notes_and_pushes_on_main_only():
    pipeline = yaml.safe_load(GITLAB_CI.read_text())
    script = "\n".join(pipeline["pipeline"]["script"])
    assert 'make ci BASE="origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"' in script
    assert {"ci-report.md", "ci-report/"} <= set(pipeline["pipeline"]["artifacts"]["paths"])
    note = "\n".join(pipeline["note"]["script"])
    assert "merge_requests/" in note and "REPORT_TOKEN" in note and "PUT" in note
    assert "make" not in note, "the note job must not run the merge request's code"
    assert pipeline["push"]["rules"] == [
        {"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $DVC_REMOTE_URL"}
    ]
    assert "mnistpipe.remote push" in "\n".join(pipeline["push"]["script"])


def zizmor(directory: Path) -> list[dict]:
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--min-severity", "medium", "--format", "json", directory],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


def test_zizmor_finds_nothing_at_medium_or_above():
    findings = zizmor(WORKFLOWS)
    assert findings == [], json.dumps(findings, indent=1)[:3000]


def test_zizmor_would_catch_an_injection_and_an_unpinned_action(tmp_path):
    # Edited as text: PyYAML would write the key `on` back as `true`.
    text = re.sub(r"actions/checkout@[0-9a-f]{40}", "actions/checkout@v4", WORKFLOW.read_text())
    text = text.replace('make ci BASE="origin/$BASE_REF"', "make ci BASE=${{ github.head_ref }}")
    (tmp_path / ".github/workflows").mkdir(parents=True)
    (tmp_path / ".github/workflows/pipeline.yml").write_text(text)
    audits = {finding["ident"] for finding in zizmor(tmp_path / ".github/workflows")}
    assert {"template-injection", "unpinned-uses"} <= audits


def all_steps():
    for path in (WORKFLOW, COMMENT_WORKFLOW):
        for job_name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for step in job["steps"]:
                yield f"{path.name}:{job_name}", step


def test_every_action_is_pinned_by_commit_with_its_version_in_a_comment():
    for path in (WORKFLOW, COMMENT_WORKFLOW):
        for line in path.read_text().splitlines():
            if "uses:" in line:
                assert re.search(r"uses: [\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", line), line


def test_no_event_value_is_expanded_inside_run():
    for where, step in all_steps():
        assert "${{" not in step.get("run", ""), f"{where}: {step['run']}"


def test_least_privilege_per_job_and_no_persisted_credentials():
    for path in (WORKFLOW, COMMENT_WORKFLOW):
        workflow = yaml.safe_load(path.read_text())
        assert workflow["permissions"] == {}, path.name
        for name, job in workflow["jobs"].items():
            assert "permissions" in job, f"{path.name}:{name}"
            assert "write" not in json.dumps(job["permissions"]) or path == COMMENT_WORKFLOW
    for where, step in all_steps():
        if step.get("uses", "").startswith("actions/checkout"):
            assert step["with"]["persist-credentials"] is False, where


def test_the_comment_job_never_checks_out_or_runs_pull_request_code():
    workflow = yaml.safe_load(COMMENT_WORKFLOW.read_text())
    assert set(workflow[True]) == {"workflow_run"}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    for step in job["steps"]:
        assert "run" not in step
        assert not step.get("uses", "").startswith("actions/checkout")
    script = job["steps"][-1]["with"]["script"]
    assert "updateComment" in script and "createComment" in script and "marker" in script
    assert "core.summary" in script


def test_the_remote_is_pulled_with_secrets_and_pushed_from_main_only():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["pipeline"]
    assert job["env"]["DVC_REMOTE_URL"] == "${{ secrets.DVC_REMOTE_URL }}"
    steps = {step.get("name", step.get("uses")): step for step in job["steps"]}
    pull = next(step for step in steps.values() if "mnistpipe.remote pull" in step.get("run", ""))
    assert pull["if"] == "env.DVC_REMOTE_URL != ''"
    assert "remote add --local" in pull["run"]
    cache = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/cache"))
    assert cache["if"] == "env.DVC_REMOTE_URL == ''"
    push = next(step for step in steps.values() if "remote push" in step.get("run", ""))
    assert "github.ref == 'refs/heads/main'" in push["if"]
    assert "github.event_name == 'push'" in push["if"]


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
    # The base branch's name comes through env (BASE_REF), never expanded inside run:.
    assert 'make ci BASE="origin/$BASE_REF"' in commands
    assert workflow["jobs"]["pipeline"]["env"]["BASE_REF"] == "${{ github.base_ref }}"
    cached = [
        step["with"]["path"] for step in steps if step.get("uses", "").startswith("actions/cache")
    ]
    assert cached == [".dvc/cache"]
    assert any(step.get("with", {}).get("cache") == "pip" for step in steps)


@pytest.mark.parametrize("target", ["test", "ci", "gate", "ci-report", "lint", "push", "pull"])
def test_the_makefile_has_the_targets_ci_uses(target):
    result = subprocess.run(
        ["make", "-n", "-C", str(REPOSITORY), target, "BASE=HEAD"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
