"""``lab check``: put the lab back to its start, apply the learner's workspace, run the lab's
checks (pytest with the grader plugin) and collect one report.

The lab's namespaces are reset first, so the result depends on the workspace files alone,
not on whatever was applied by hand before: the same workspace always grades the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusters import Cluster, ManifestError, WaitTimeout, manifests
from labs.catalogue import Lab
from labs.scoring import Score, score
from labs.workspace import Workspace, WorkspaceError

CONVERGE_TIMEOUT = 20.0


@dataclass
class CheckRun:
    lab: str
    title: str
    engine: str
    cluster: str
    workspace: str
    applied: list[str] = field(default_factory=list)
    apply_error: str | None = None
    not_ready: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    pytest_output: str = ""
    passed: bool = False
    grading: bool = False  # hidden checks ran too
    score: Score | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["score"] = self.score.to_dict() if self.score is not None else None
        return data


def apply_paths(cluster: Cluster, paths: list[Path]) -> list[str]:
    """Read every file first (a bad one stops everything before anything is applied)."""
    loaded = [m for p in paths for m in manifests.read(str(p))]
    return [str(r) for m in loaded for r in cluster.apply(m.docs, source=m.source)]


def prepare(cluster: Cluster, lab: Lab) -> None:
    """Put the lab's namespaces back to the state `lab start` makes."""
    cluster.reset_namespaces(lab.namespaces)
    apply_paths(cluster, lab.setup_paths())


def run_check(
    lab: Lab, cluster: Cluster, workspace: Workspace,
    say: Callable[[str], None] = lambda s: None, *, grading: bool = False,
) -> CheckRun:
    """Reset the lab, apply ``workspace`` and run the checks (hidden ones too when ``grading``).

    The workspace is read and parsed before the cluster is touched, so bad YAML or an unsafe
    file changes nothing; ``apply_error`` then says why and every check scores ``not run``.
    """
    result = CheckRun(lab.id, lab.title, cluster.engine, cluster.name,
                      str(workspace.lab_dir(lab)), grading=grading)
    try:
        files = workspace.manifests(lab)
        # Parse the workspace before touching the cluster: bad YAML changes nothing.
        for f in files:
            manifests.read(str(f))
        say(f"Resetting lab {lab.id}'s namespaces ({', '.join(lab.namespaces)})")
        prepare(cluster, lab)
        say(f"Applying your workspace ({len(files)} file(s))")
        result.applied = apply_paths(cluster, files)
    except (ManifestError, WorkspaceError) as err:
        result.apply_error = str(err)
        result.score = score(lab, [], grading=grading)
        return result
    try:
        cluster.wait_converged(lab.namespaces, timeout=CONVERGE_TIMEOUT)
    except WaitTimeout as err:
        result.not_ready = str(err.last)
    say("Running the checks" + (" (grading: hidden checks too)" if grading else ""))
    deselect = [] if grading else lab.hidden_checks
    result.checks, result.pytest_output = run_pytest(lab, cluster, workspace.lab_dir(lab),
                                                     deselect=deselect)
    for c in result.checks:
        task = lab.task_for_check(c.get("function") or c["id"].rsplit("::", 1)[-1])
        c["task"] = task.id if task else None
        ref = lab.check_ref(c.get("function") or "")
        c["hidden"] = bool(ref and ref.hidden)
    result.score = score(lab, result.checks, grading=grading)
    # An error outside any listed check (collection, a crashed run) fails the run too.
    strays = [c for c in result.checks if c["task"] is None and c["outcome"] != "passed"]
    result.passed = result.score.complete and not strays
    return result


def run_pytest(lab: Lab, cluster: Cluster, workspace_dir: Path,
               deselect: list[str] | None = None) -> tuple[list[dict[str, Any]], str]:
    with tempfile.TemporaryDirectory(prefix="lab-check-") as tmp:
        report = Path(tmp) / "report.json"
        argv = [
            sys.executable, "-m", "pytest", str(lab.checks_dir),
            "--lab-cluster", cluster.name, "--lab-engine", cluster.engine,
            "--lab-id", lab.id, "--lab-namespaces", ",".join(lab.namespaces),
            "--lab-workspace", str(workspace_dir), "--lab-report", str(report),
            "-q", "-p", "no:cacheprovider",
            "--rootdir", str(lab.checks_dir), "-o", "addopts=", "-o", "testpaths=",
        ]
        if deselect:
            argv += ["--lab-deselect", ",".join(deselect)]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False,
                              cwd=tmp)
        output = proc.stdout + proc.stderr
        if not report.exists():
            return [{"id": "pytest", "name": "the checks could not run", "outcome": "error",
                     "message": output[-4000:]}], output
        data = json.loads(report.read_text())
        checks: list[dict[str, Any]] = data.get("checks", [])
        return checks, output
