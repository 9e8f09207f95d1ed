"""Hidden checks on the local engine: lab 04 graded like an instructor grades it.

One cluster, three runs of ``labs.checking.run_check`` (each resets the lab, applies a
workspace and runs the checks in a pytest subprocess):

- the reference solution, grading: every check passes, the hidden ones included;
- a submission fitted to the visible checks (tests/root/data/lab04-fitted: its policies
  select only the pods a Deployment made), visible mode: every visible check passes and no
  hidden check runs at all;
- the same submission, grading: the visible checks still pass, and the hidden checks that
  add pods with the task's labels fail, each finding naming a new pod, the policy that
  isolates it, and a hint about selecting by role label.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from clusters.local.engine import LocalCluster
from labs.catalogue import Lab, default_catalogue
from labs.checking import CheckRun, run_check
from labs.workspace import Workspace

DATA = Path(__file__).parent / "data"
#: The fitted submission's new pods get none of their task's paths; the default deny still
#: isolates them, so the "nothing more than the tasks" hidden check passes.
FITTED_FAILS = {"test_new_frontend_and_api_pods_get_their_path",
                "test_new_api_and_db_pods_get_their_path",
                "test_the_scraper_reads_new_pods_metrics"}
#: A piece of each failing hidden check's finding: a new pod, and what stops it.
FITTED_EXPLAINS = {
    "test_new_frontend_and_api_pods_get_their_path": "lab04/frontend-new -> lab04/api-",
    "test_new_api_and_db_pods_get_their_path": "lab04/api-new -> lab04/db-",
    "test_the_scraper_reads_new_pods_metrics": "monitoring/scraper -> lab04/cache-new TCP/9090",
}


def workspace_with(root: Path, lab: Lab, source: Path) -> Workspace:
    """A workspace under ``root`` whose lab folder holds the files of ``source``."""
    folder = root / lab.name
    folder.mkdir(parents=True)
    for file in source.glob("*.yaml"):
        shutil.copy(file, folder / file.name)
    return Workspace(root)


def outcomes(run: CheckRun) -> dict[str, str]:
    return {c["function"]: c["outcome"] for c in run.checks}


def problems(run: CheckRun) -> dict[str, Any] | str:
    """What did not pass, shortened, for assertion messages."""
    return {c["function"]: (c["outcome"], str(c.get("message", ""))[:600])
            for c in run.checks if c["outcome"] != "passed"} or run.pytest_output[-2000:]


def flat(text: str) -> str:
    return " ".join(text.split())


def test_hidden_checks_catch_a_submission_fitted_to_the_visible_ones(
        local_cluster: LocalCluster, tmp_path: Path) -> None:
    lab = default_catalogue().get("04")
    visible, hidden = set(lab.check_names()), set(lab.hidden_checks)
    assert hidden and not visible & hidden
    assert hidden > FITTED_FAILS

    # ---- the solution passes everything, hidden checks included
    solved = run_check(lab, local_cluster, workspace_with(tmp_path / "solution", lab,
                                                          lab.solution_dir), grading=True)
    assert solved.apply_error is None and solved.grading
    assert set(outcomes(solved)) == visible | hidden, problems(solved)
    assert set(outcomes(solved).values()) == {"passed"}, problems(solved)
    assert solved.passed and solved.score is not None
    assert solved.score.earned == solved.score.possible == lab.total_points(grading=True)
    assert {c["function"] for c in solved.checks if c["hidden"]} == hidden

    fitted_ws = workspace_with(tmp_path / "fitted", lab, DATA / "lab04-fitted")

    # ---- visible mode: the fitted submission passes, and no hidden check ran
    shown = run_check(lab, local_cluster, fitted_ws)
    assert shown.apply_error is None and not shown.grading
    assert set(outcomes(shown)) == visible, problems(shown)
    assert set(outcomes(shown).values()) == {"passed"}, problems(shown)
    assert shown.passed and shown.score is not None
    assert shown.score.possible == lab.total_points()
    assert "new-pod" not in shown.pytest_output

    # ---- grading: the hidden checks catch it, each with a clear finding
    graded = run_check(lab, local_cluster, fitted_ws, grading=True)
    found = outcomes(graded)
    assert set(found) == visible | hidden, problems(graded)
    assert {n for n, o in found.items() if o != "passed"} == FITTED_FAILS, problems(graded)
    assert all(found[n] == "failed" for n in FITTED_FAILS), problems(graded)
    assert not graded.passed and graded.score is not None
    assert graded.score.earned == lab.total_points(grading=True) - len(FITTED_FAILS)
    by_name = {c["function"]: c for c in graded.checks}
    for name, piece in FITTED_EXPLAINS.items():
        check = by_name[name]
        assert check["hidden"] is True
        finding = check["finding"]
        observed = flat(finding["observed"])
        assert piece in observed, (name, observed[:800])
        assert "expected allowed, observed TIMEOUT" in observed
        assert "is isolated for" in observed and "lab04/default-deny (policies.yaml)" in observed
        assert "by their role label" in check["hint"] and "pod-template-hash" in check["hint"]

    # ---- the hidden checks took their pods away again
    left = [p["metadata"]["name"] for ns in lab.namespaces for p in local_cluster.get("Pod", ns)
            if p["metadata"]["name"].endswith("-new")]
    assert not left
