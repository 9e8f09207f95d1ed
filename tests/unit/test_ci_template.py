"""``lab ci-template``: the workflow a course repository drops in to grade a lab on push.

The YAML must parse and have the shape GitHub Actions and GitHub Classroom's reporter rely
on; every ``./lab`` command inside must be one our CLI accepts; the scripts must keep the
job going when checks fail (so the points are still published) and fail it at the end.
The scripts run here for real in bash, with stand-ins for ``sudo`` and ``./lab``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import clicheck
import pytest
import yaml
from click.testing import CliRunner

from labs import citemplate
from labs.catalogue import Lab, UnknownLab, default_catalogue
from labs.citemplate import RESULTS_ENV, STEP_ID, workflow, workflow_data
from labs.cli.ci_cmd import ci_template_cmd

LABS = default_catalogue().labs()
ROOT = Path(__file__).resolve().parents[2]
CASES = [(lab, engine) for lab in LABS for engine in citemplate.ENGINES]


def ids(case: tuple[Lab, str]) -> str:
    return f"{case[0].id}-{case[1]}"


def loaded(lab: Lab, engine: str) -> dict[str, Any]:
    data = yaml.safe_load(workflow(lab, engine))
    assert isinstance(data, dict)
    return data


def steps_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = data["jobs"]["autograding"]["steps"]
    return steps


def step(data: dict[str, Any], **match: str) -> dict[str, Any]:
    found = [s for s in steps_of(data) if all(s.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [s.get("name") for s in steps_of(data)])
    return found[0]


def lab_commands(data: dict[str, Any]) -> list[list[str]]:
    """Every ``./lab`` command in the workflow's ``run:`` scripts (continuations joined)."""
    found = []
    for s in steps_of(data):
        script = str(s.get("run", "")).replace("\\\n", " ")
        for line in script.splitlines():
            argv = clicheck.lab_argv(line)
            if argv is not None:
                assert "./lab " in line, f"run `./lab` from the checkout, not PATH: {line}"
                found.append(argv)
    return found


# ---- the YAML ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_the_workflow_parses_and_has_the_classroom_shape(case: tuple[Lab, str]) -> None:
    lab, engine = case
    text = workflow(lab, engine)
    data = loaded(lab, engine)
    assert data == workflow_data(lab, engine)
    assert data["name"] == "Autograding Tests"
    assert data["on"] == ["push", "workflow_dispatch", "repository_dispatch"]
    assert data["permissions"] == {"checks": "write", "actions": "read", "contents": "read"}
    (_job_id, job), = data["jobs"].items()
    # The reporter annotates the check run named "Autograding Tests": the job's name.
    assert job["name"] == "Autograding Tests"
    assert job["if"] == "github.actor != 'github-classroom[bot]'"
    assert job["runs-on"] == "ubuntu-latest"
    assert isinstance(job["timeout-minutes"], int) and 5 <= job["timeout-minutes"] <= 60
    steps = job["steps"]
    assert steps[0]["uses"] == "actions/checkout@v4"
    order = [s.get("uses") or s.get("id") or s["name"] for s in steps]
    assert order.index(STEP_ID) < order.index("actions/upload-artifact@v4") \
        < order.index(citemplate.REPORTER)
    assert steps[-1]["run"].rstrip().endswith("exit 1")
    # The header is only comments, and says where the file goes and what learners commit.
    head = text.split("\nname: ", 1)[0]
    assert all(line.startswith("#") or not line for line in head.splitlines())
    assert ".github/workflows/classroom.yml" in head
    assert f"workspace/{lab.name}/" in head


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_lab_commands_start_then_check_with_grading_and_reports(case: tuple[Lab, str]) -> None:
    lab, engine = case
    data = loaded(lab, engine)
    start = step(data, name=f"Start lab {lab.id} ({engine} engine)")
    assert start["run"].startswith("sudo --preserve-env=GITHUB_OUTPUT,GITHUB_STEP_SUMMARY "
                                   'LAB_WORKSPACE="$GITHUB_WORKSPACE/workspace" ./lab start')
    commands = lab_commands(data)
    assert commands == [
        ["start", lab.id, "--engine", engine, "--yes"],
        ["check", lab.id, "--grading", "--junit", "reports/junit.xml",
         "--classroom", "reports/classroom.json"],
    ]
    check = step(data, id=STEP_ID)
    assert 'LAB_WORKSPACE="$GITHUB_WORKSPACE/workspace" ./lab check' in check["run"]


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_every_lab_command_parses_with_our_cli(case: tuple[Lab, str]) -> None:
    for argv in lab_commands(loaded(*case)):
        ctx = clicheck.parse(argv)
        assert ctx.params.get("lab_id") == case[0].id


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_reporter_reads_the_check_step(case: tuple[Lab, str]) -> None:
    data = loaded(*case)
    reporter = step(data, uses=citemplate.REPORTER)
    check = step(data, id=STEP_ID)
    assert reporter["with"] == {"runners": check["id"]}
    # The reporter reads <runner id upper-cased>_RESULTS.
    (name, value), = reporter["env"].items()
    assert name == check["id"].upper() + "_RESULTS" == RESULTS_ENV == "KUBE-NETLAB_RESULTS"
    assert value == "${{ steps.kube-netlab.outputs.result }}"
    upload = step(data, uses="actions/upload-artifact@v4")
    assert upload["with"]["path"] == "reports/"
    for later in (upload, reporter, step(data, name="Write the points to the job summary")):
        assert "!cancelled()" in later["if"], later["name"]


def test_kind_installs_the_pinned_tools_with_the_projects_verified_installer() -> None:
    from clusters.kind.pins import VERSIONS

    lab = LABS[0]
    data = loaded(lab, "kind")
    install = steps_of(data)[1]
    assert citemplate.KIND_VERSION == VERSIONS["kind"] in install["name"]
    assert citemplate.KUBECTL_VERSION == VERSIONS["kubernetes"] in install["name"]
    lines = install["run"].splitlines()
    assert lines[:2] == ["sudo ./scripts/setup",
                         "sudo .venv/bin/python scripts/install_kind_tools.py kind kubectl"]
    assert (ROOT / "scripts" / "install_kind_tools.py").is_file()
    header = workflow(lab, "kind").split("\nname: ", 1)[0]
    assert f"kind {VERSIONS['kind']}" in header and "checked against its checksum" in header
    assert not any("kind" in s["name"].lower() for s in steps_of(loaded(lab, "local")))


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown engine 'docker'"):
        workflow_data(LABS[0], "docker")


# ---- the scripts, run in bash ------------------------------------------------------------

FAKE_SUDO = """#!/usr/bin/env bash
# sudo as the runner uses it: options, then VAR=value assignments, then the command.
while [ $# -gt 0 ]; do
  case "$1" in --*) shift ;; *=*) export "$1"; shift ;; *) break ;; esac
done
exec "$@"
"""

#: ``./lab check`` as the other helpers document it: writes the reports, the classroom
#: result to $GITHUB_OUTPUT, prints the report ending in the points line, exits non-zero
#: when a check failed.
FAKE_LAB = """#!/usr/bin/env bash
printf '%s\\n' "$*" > "$PWD/lab-argv.txt"
printf '%s\\n' "$LAB_WORKSPACE" > "$PWD/lab-workspace.txt"
classroom=""; junit=""
while [ $# -gt 0 ]; do
  case "$1" in --classroom) classroom="$2"; shift ;; --junit) junit="$2"; shift ;; esac
  shift
done
echo '<testsuites/>' > "$junit"
cp "$PWD/classroom-fixture.json" "$classroom"
echo "result=$(base64 -w0 < "$classroom")" >> "$GITHUB_OUTPUT"
echo "  PASS  server pod runs"
echo "  FAIL  client reaches the server"
echo "Points 2.5/4"
exit "$FAKE_EXIT"
"""

CLASSROOM = {"version": 1, "status": "fail", "max_score": 4, "tests": [
    {"name": "server pod runs", "status": "pass", "score": 1, "max_score": 1},
    {"name": "client reaches a|b", "status": "fail", "score": 0, "max_score": 2,
     "message": "expected CONNECTED"},
    {"name": "half of it", "status": "fail", "score": 1.5},
]}


def run_step(script: str, where: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``script`` the way Actions runs a ``shell: bash`` step."""
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=where, env=env, capture_output=True, text=True, check=False,
                          timeout=60)


@pytest.fixture
def runner_dir(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if shutil.which("bash") is None or shutil.which("jq") is None:
        pytest.skip("needs bash and jq (both on GitHub's runners)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text(FAKE_SUDO)
    (tmp_path / "lab").write_text(FAKE_LAB)
    for exe in (bin_dir / "sudo", tmp_path / "lab"):
        exe.chmod(0o755)
    (tmp_path / "classroom-fixture.json").write_text(json.dumps(CLASSROOM))
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GITHUB_WORKSPACE": str(tmp_path),
           "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "HOME": str(tmp_path)}
    return tmp_path, env


def outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


@pytest.mark.parametrize("code", [0, 1])
def test_check_step_keeps_going_and_records_the_exit_code(
        runner_dir: tuple[Path, dict[str, str]], code: int) -> None:
    where, env = runner_dir
    lab = LABS[0]
    data = loaded(lab, "local")
    ran = run_step(step(data, id=STEP_ID)["run"], where, {**env, "FAKE_EXIT": str(code)})
    assert ran.returncode == 0, ran.stderr  # a failed check must not stop the job here
    assert "Points 2.5/4" in ran.stdout  # the log shows the report
    got = outputs(where / "output.txt")
    assert got["exit_code"] == str(code)
    assert json.loads(base64.b64decode(got["result"])) == CLASSROOM
    assert (where / "lab-argv.txt").read_text().split() == lab_commands(data)[1]
    assert (where / "lab-workspace.txt").read_text().strip() == f"{where}/workspace"
    assert (where / "reports" / "junit.xml").is_file()
    assert "Points 2.5/4" in (where / "reports" / "check.txt").read_text()

    summary = run_step(step(data, name="Write the points to the job summary")["run"], where, env)
    assert summary.returncode == 0, summary.stderr
    text = (where / "summary.md").read_text()
    assert f"## kube-netlab lab {lab.id}: {lab.title}" in text
    assert "**Points 2.5/4**" in text
    assert "| server pod runs | pass | 1/1 |" in text
    assert "| client reaches a\\|b | fail | 0/2 |" in text
    assert "| half of it | fail | 1.5 |" in text
    assert "FAIL  client reaches the server" in text  # the whole report, folded

    last = steps_of(data)[-1]
    final = run_step(last["run"], where, {**env, "CODE": str(code)})
    assert final.returncode == 1 and f"exited with {code}" in final.stdout
    assert last["if"] == "${{ !cancelled() && steps.kube-netlab.outputs.exit_code != '0' }}"


def test_summary_says_so_when_the_check_never_ran(runner_dir: tuple[Path, dict[str, str]]) -> None:
    where, env = runner_dir
    data = loaded(LABS[0], "local")
    ran = run_step(step(data, name="Write the points to the job summary")["run"], where, env)
    assert ran.returncode == 0, ran.stderr
    text = (where / "summary.md").read_text()
    assert "No points: lab check did not finish" in text and "| Check |" not in text


# ---- the command ---------------------------------------------------------------------------


def invoke(*args: str) -> Any:
    return CliRunner().invoke(ci_template_cmd, list(args))


def test_prints_the_workflow_for_a_lab_given_as_1() -> None:
    got = invoke("--lab", "1")
    assert got.exit_code == 0, got.output
    assert got.stdout == workflow(default_catalogue().get("01"), "local")
    assert "warning" not in got.stderr


def test_unknown_lab_lists_the_labs() -> None:
    got = invoke("--lab", "99")
    assert isinstance(got.exception, UnknownLab)
    assert "no lab '99'" in str(got.exception) and "01" in str(got.exception)
    assert got.stdout == ""


def test_unknown_engine_is_a_usage_error() -> None:
    got = invoke("--lab", "01", "--engine", "docker")
    assert got.exit_code == 2 and "docker" in got.output


def test_kind_makes_a_workflow_without_warnings() -> None:
    got = invoke("--lab", "01", "--engine", "kind")
    assert got.exit_code == 0
    assert "start 01 --engine kind" in got.stdout
    assert got.stderr == ""


def test_writes_a_file_and_refuses_to_overwrite_it(tmp_path: Path) -> None:
    target = tmp_path / ".github" / "workflows" / "classroom.yml"
    first = invoke("--lab", "04", "-o", str(target))
    assert first.exit_code == 0, first.output
    assert first.stdout == ""
    expected = workflow(default_catalogue().get("04"), "local")
    assert target.read_text(encoding="utf-8") == expected

    target.write_text("# the instructor's own edits\n", encoding="utf-8")
    again = invoke("--lab", "01", "-o", str(target))
    assert again.exit_code == 1
    assert "exists; pass --force" in again.stderr
    assert target.read_text(encoding="utf-8") == "# the instructor's own edits\n"

    forced = invoke("--lab", "01", "-o", str(target), "--force")
    assert forced.exit_code == 0, forced.output
    assert target.read_text(encoding="utf-8") == workflow(default_catalogue().get("01"), "local")
