"""``lab ci-template``: the GitHub Actions workflow that grades a lab on every push.

A course repository is a copy of kube-netlab in which each learner commits their manifests
under ``workspace/<NN-slug>/``. Dropped in at ``.github/workflows/classroom.yml``, the
workflow starts the lab on a fresh runner with ``LAB_WORKSPACE`` pointing at that folder,
runs ``lab check NN --grading`` (hidden checks included) and publishes what it found three
ways: the points and a per-check table in the job summary, the JUnit XML and the classroom
JSON as an artifact, and the points to GitHub Classroom through its reporter action.

Names GitHub Classroom depends on are constants here, so the tests can hold them fixed:

- the workflow and its job are both called ``Autograding Tests``: the reporter finds the
  check run it annotates with ``Points X/Y`` by that name (a check run is named after
  its job);
- the reporter reads each runner's results from the environment variable
  ``<STEP ID upper-cased>_RESULTS``, base64 JSON that ``lab check --classroom`` writes to
  the step's ``result`` output.

The YAML is built as data and dumped with PyYAML, so quoting is never done by hand; the
shell scripts inside are short and use only bash, grep and jq (all on GitHub's runners).
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from clusters.kind.pins import VERSIONS
from labs.catalogue import Lab

#: Engines a workflow can be made for.
ENGINES = ("local", "kind")
#: Where a course repository keeps the workflow.
WORKFLOW_PATH = ".github/workflows/classroom.yml"
#: The workflow's and the job's name: the classroom reporter looks for a check run so named.
CHECK_NAME = "Autograding Tests"
#: The id of the step that runs ``lab check``; the reporter's ``runners`` input names it.
STEP_ID = "kube-netlab"
#: The environment variable the reporter reads the step's results from.
RESULTS_ENV = f"{STEP_ID.upper()}_RESULTS"
#: Learners' manifests, relative to the repository root: ``workspace/<NN-slug>/``.
WORKSPACE_DIR = "workspace"
#: Where the check's reports go on the runner (uploaded as an artifact).
REPORTS_DIR = "reports"
RUNS_ON = "ubuntu-latest"
TIMEOUT_MINUTES = 20
#: The kind engine's tools come at the versions pinned in clusters/kind/pins.py.
KIND_VERSION = VERSIONS["kind"]
KUBECTL_VERSION = VERSIONS["kubernetes"]
#: ``sudo`` keeps these for ``lab`` (``lab check --classroom`` appends to $GITHUB_OUTPUT).
PRESERVED_ENV = ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")

CHECKOUT = "actions/checkout@v4"
UPLOAD = "actions/upload-artifact@v4"
REPORTER = "classroom-resources/autograding-grading-reporter@v1"


def lab_prefix() -> str:
    """How every ``lab`` command of the workflow starts: as root, the workspace in the repo."""
    keep = ",".join(PRESERVED_ENV)
    return (f'sudo --preserve-env={keep} LAB_WORKSPACE="$GITHUB_WORKSPACE/{WORKSPACE_DIR}" '
            "./lab")


def start_command(lab: Lab, engine: str) -> str:
    return f"{lab_prefix()} start {lab.id} --engine {engine} --yes"


def check_command(lab: Lab) -> str:
    return (f"{lab_prefix()} check {lab.id} --grading --junit {REPORTS_DIR}/junit.xml "
            f"--classroom {REPORTS_DIR}/classroom.json")


def workflow(lab: Lab, engine: str = "local") -> str:
    """The workflow file for ``lab`` on ``engine``: a header comment, then the YAML."""
    return header(lab, engine) + yaml.dump(
        workflow_data(lab, engine), Dumper=_Dumper, sort_keys=False, width=10_000,
        allow_unicode=True)


def workflow_data(lab: Lab, engine: str = "local") -> dict[str, Any]:
    """The workflow as data (what :func:`workflow` dumps)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    steps: list[dict[str, Any]] = [{"name": "Check out the repository", "uses": CHECKOUT}]
    if engine == "kind":
        steps.append(_install_kind())
    steps += [
        {"name": f"Start lab {lab.id} ({engine} engine)", "run": start_command(lab, engine)},
        _check_step(lab),
        _summary_step(lab),
        {"name": "Keep the reports (JUnit XML, classroom JSON, the full output)",
         "if": "${{ !cancelled() }}", "uses": UPLOAD,
         "with": {"name": f"kube-netlab-lab-{lab.id}", "path": f"{REPORTS_DIR}/",
                  "if-no-files-found": "warn"}},
        {"name": "Report the points to GitHub Classroom",
         "if": f"${{{{ !cancelled() && steps.{STEP_ID}.outputs.result != '' }}}}",
         "uses": REPORTER,
         "env": {RESULTS_ENV: f"${{{{ steps.{STEP_ID}.outputs.result }}}}"},
         "with": {"runners": STEP_ID}},
        {"name": "Fail the job unless every check passed",
         "if": f"${{{{ !cancelled() && steps.{STEP_ID}.outputs.exit_code != '0' }}}}",
         "shell": "bash",
         "env": {"CODE": f"${{{{ steps.{STEP_ID}.outputs.exit_code }}}}"},
         "run": _script(
             f'echo "lab check {lab.id} exited with ${{CODE:-no code (it did not run)}}: '
             'not every check passed; the job summary lists them"',
             "exit 1")},
    ]
    return {
        "name": CHECK_NAME,
        "on": ["push", "workflow_dispatch", "repository_dispatch"],
        "permissions": {"checks": "write", "actions": "read", "contents": "read"},
        "jobs": {"autograding": {
            "name": CHECK_NAME,
            "if": "github.actor != 'github-classroom[bot]'",
            "runs-on": RUNS_ON,
            "timeout-minutes": TIMEOUT_MINUTES,
            "steps": steps,
        }},
    }


def header(lab: Lab, engine: str) -> str:
    lines = [
        f"GitHub Classroom autograding for kube-netlab lab {lab.id} ({lab.title}).",
        f"Made by `lab ci-template --lab {lab.id} --engine {engine}`. Put it at",
        f"{WORKFLOW_PATH} in the course repository: a copy of kube-netlab where each",
        f"learner commits their manifests under {WORKSPACE_DIR}/{lab.name}/.",
        "",
        f"On every push: start lab {lab.id} on a fresh runner, run `lab check {lab.id} --grading`",
        "(hidden checks included), write the points and a table of the checks to the job",
        "summary, keep the JUnit XML and the classroom JSON as an artifact, and hand the",
        "points to GitHub Classroom. The job fails unless every check passed.",
        "",
        "Keep the names: GitHub Classroom's reporter looks for a check run named",
        f"'{CHECK_NAME}' and reads the results of step '{STEP_ID}' from {RESULTS_ENV}.",
    ]
    if engine == "kind":
        lines += [
            "",
            "Engine kind: real Kubernetes in Docker on the runner. kind and kubectl are",
            f"installed at the versions the project pins (kind {KIND_VERSION}, kubectl",
            f"{KUBECTL_VERSION}), each checked against its checksum before it is used.",
        ]
    return "".join(f"# {line}".rstrip() + "\n" for line in lines) + "\n"


# ---- steps ---------------------------------------------------------------------------------


def _script(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _install_kind() -> dict[str, Any]:
    """kind and kubectl at their pinned versions, each verified against its checksum by the
    project's own installer (the same pins the kind engine uses); ``./scripts/setup`` makes
    the virtualenv it runs in, as ``./lab`` would on its first run."""
    return {
        "name": f"Install kind {KIND_VERSION} and kubectl {KUBECTL_VERSION} (pinned, checksums verified)",
        "shell": "bash",
        "run": _script(
            "sudo ./scripts/setup",
            "sudo .venv/bin/python scripts/install_kind_tools.py kind kubectl",
            "kind version",
            "kubectl version --client",
        ),
    }


def _check_step(lab: Lab) -> dict[str, Any]:
    """``lab check``: its exit code becomes the output ``exit_code`` instead of failing the
    step, so the summary, the artifact and the reporter still run; the last step fails
    the job from that code."""
    return {
        "name": f"Check lab {lab.id} (hidden checks included)",
        "id": STEP_ID,
        "shell": "bash",
        "run": _script(
            f"mkdir -p {REPORTS_DIR}",
            "set +e",
            f"{check_command(lab)} 2>&1 | tee {REPORTS_DIR}/check.txt",
            "code=${PIPESTATUS[0]}",
            "set -e",
            'echo "exit_code=$code" >> "$GITHUB_OUTPUT"',
        ),
    }


#: One table row per check of the classroom JSON (skipped checks are not in it); a ``|`` in
#: a name is escaped so it cannot split the row.
_TABLE_ROWS = ('.tests[] | "| \\(.name | gsub("\\\\|"; "\\\\|")) | \\(.status) | '
               '\\(.score // 0)\\(if .max_score == null then "" else "/\\(.max_score)" end) |"')


def _summary_step(lab: Lab) -> dict[str, Any]:
    """The job summary: the ``Points X/Y`` line ``lab check`` printed, a table of the checks
    from the classroom JSON, and the whole report folded away."""
    heading = shlex.quote(f"## kube-netlab lab {lab.id}: {lab.title}")
    report, classroom = f"{REPORTS_DIR}/check.txt", f"{REPORTS_DIR}/classroom.json"
    return {
        "name": "Write the points to the job summary",
        "if": "${{ !cancelled() }}",
        "shell": "bash",
        "run": _script(
            f"points=$(grep -oE -m1 'Points [0-9.]+/[0-9.]+' {report} 2>/dev/null || true)",
            "{",
            f"  printf '%s\\n\\n' {heading}",
            '  echo "**${points:-No points: lab check did not finish, see its step}**"',
            "  echo",
            f"  if [ -s {classroom} ]; then",
            '    echo "| Check | Result | Points |"',
            '    echo "|---|---|---|"',
            f"    jq -r {shlex.quote(_TABLE_ROWS)} {classroom}",
            "    echo",
            "  fi",
            f"  if [ -s {report} ]; then",
            '    echo "<details><summary>The whole report</summary>"',
            "    echo",
            "    echo '```text'",
            f"    cat {report}",
            "    echo '```'",
            '    echo "</details>"',
            "  fi",
            '} >> "$GITHUB_STEP_SUMMARY"',
        ),
    }


# ---- YAML ----------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block scripts as literal blocks (``run: |``), lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
