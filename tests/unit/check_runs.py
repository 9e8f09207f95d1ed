"""Prepared ``lab check`` runs of the real lab 01, for the report tests (no cluster needed).

Records have the shape the grader's JSON report gives them (``id``, ``name``, ``function``,
``outcome``, ``message``, ``hint``, ``finding``, ``duration``), with the names learners see
read from the checks' docstrings, and the run is scored with :func:`labs.scoring.score` as
:func:`labs.checking.run_check` does, so the fixtures stay true to lab 01's lab.yaml.
"""

from __future__ import annotations

import ast
from functools import cache
from typing import Any

from labs.catalogue import Lab, default_catalogue
from labs.checking import CheckRun
from labs.scoring import score

CHECK_FILE = "test_pod_networking.py"
CLUSTER = "knltreports"


def lab01() -> Lab:
    return default_catalogue().get("01")


def lab01_with_hidden(function: str = "test_placement_is_declared") -> Lab:
    """Lab 01 with one of its checks made hidden (no shipped lab has one yet)."""
    lab = lab01()
    tasks = []
    for task in lab.tasks:
        refs = [r.model_copy(update={"hidden": True}) if r.name == function else r
                for r in task.checks]
        tasks.append(task.model_copy(update={"checks": refs}))
    return lab.model_copy(update={"tasks": tasks})


@cache
def names() -> dict[str, str]:
    """Test function → the first line of its docstring (the name learners see)."""
    lab = lab01()
    tree = ast.parse((lab.checks_dir / CHECK_FILE).read_text())
    return {node.name: (ast.get_docstring(node) or node.name).splitlines()[0].strip()
            for node in tree.body if isinstance(node, ast.FunctionDef)}


def finding(expected: str = "CONNECTED, HTTP 200, body contains 'server'",
            observed: str = "REFUSED", *, hint: str = "A containerPort does not open a port.",
            source: str = "lab01/client", destination: str = "lab01/server:8080",
            probe: str = "http /hostname") -> dict[str, Any]:
    return {"check": "", "source": source, "destination": destination, "expected": expected,
            "observed": observed, "hint": hint, "observations": [], "probe": probe,
            "hint_key": "UNSTABLE" if observed.startswith("UNSTABLE") else "REFUSED",
            "hint_is_generic": False, "unstable": observed.startswith("UNSTABLE")}


def record(function: str, outcome: str = "passed", *, case: str = "", message: str = "",
           hint: str = "", found: dict[str, Any] | None = None,
           duration: float = 0.1) -> dict[str, Any]:
    suffix = f"[{case}]" if case else ""
    name = names()[function] + (f" [{case}]" if case else "")
    data: dict[str, Any] = {"id": f"{CHECK_FILE}::{function}{suffix}", "name": name,
                            "function": function, "outcome": outcome, "message": message,
                            "hint": hint or (found or {}).get("hint", ""), "duration": duration}
    if found is not None:
        data["finding"] = found
    return data


def passing(lab: Lab, *, grading: bool = False, but: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """A passing record for every check the run grades, leaving out the functions in ``but``."""
    return [record(f) for f in lab.check_names(grading) if f not in but]


def make_run(records: list[dict[str, Any]], *, lab: Lab | None = None, grading: bool = False,
             apply_error: str | None = None) -> CheckRun:
    """A run as :func:`labs.checking.run_check` returns it for these records."""
    lab = lab or lab01()
    run = CheckRun(lab.id, lab.title, "local", CLUSTER, f"/ws/{lab.name}", grading=grading,
                   apply_error=apply_error)
    if apply_error is None:
        for r in records:
            task = lab.task_for_check(r.get("function") or r["id"])
            r["task"] = task.id if task else None
            ref = lab.check_ref(r.get("function") or "")
            r["hidden"] = bool(ref and ref.hidden)
        run.checks = records
    run.score = score(lab, run.checks, grading=grading)
    strays = [c for c in run.checks if c["task"] is None and c["outcome"] != "passed"]
    run.passed = apply_error is None and run.score.complete and not strays
    return run
