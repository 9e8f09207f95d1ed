"""Points: what a run of a lab's checks earns, check by check and task by task.

Each check in lab.yaml is worth its ``points`` (default 1). A check earns its points when it
passes; a parametrised check (several cases of one test function) earns an equal share per
passing case, so a check that holds for 3 of 4 pods earns 3/4 of its points. A task earns
what its checks earn, so a task half done gets partial credit.

Outcomes of a check, worst first (the worst case decides)::

    error     the check could not run to a verdict (a crash, a broken fixture)
    unstable  a probe flapped: the confirmations disagreed; earns nothing, and says so
    failed    the check ran and the expectation did not hold
    not run   no result came back for it (the workspace could not be applied)
    skipped   the cluster cannot run it (an unsupported probe): it does not count either way
    passed

A skipped check is left out of the possible points, so a learner is never marked down for
what the engine cannot do. Hidden checks count only when grading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labs.catalogue import Lab

#: Check outcomes from best to worst; a check with several cases takes its worst one.
OUTCOMES = ("passed", "skipped", "not run", "failed", "unstable", "error")
NOT_RUN = "not run"


def fmt(points: float) -> str:
    """``6``, ``6.5``, ``2.33``: points as people write them."""
    return f"{round(points, 2):g}"


def _function(record: Mapping[str, Any]) -> str:
    """The test function of a report record (``function``, else from its pytest node id)."""
    return str(record.get("function") or str(record.get("id", "")).rsplit("::", 1)[-1]
               ).split("[", 1)[0]


@dataclass(frozen=True)
class CheckScore:
    """One check of the lab as this run graded it."""

    function: str
    name: str  # as learners see it (the docstring's first line), else the function name
    task: str
    hidden: bool
    outcome: str
    earned: float
    possible: float  # 0 when skipped: it does not count
    points: int  # its worth in lab.yaml
    cases: int = 1  # results it had (parametrised checks have several)
    records: tuple[Mapping[str, Any], ...] = ()
    file: str = ""  # the check's source file (absolute), "" when unknown
    line: int = 0  # the line of its ``def``

    @property
    def counted(self) -> bool:
        return self.outcome != "skipped"

    def to_dict(self) -> dict[str, Any]:
        return {"function": self.function, "name": self.name, "task": self.task,
                "hidden": self.hidden, "outcome": self.outcome, "earned": round(self.earned, 4),
                "possible": self.possible, "points": self.points, "cases": self.cases}


@dataclass(frozen=True)
class TaskScore:
    id: str
    title: str
    checks: tuple[CheckScore, ...]

    @property
    def earned(self) -> float:
        return sum(c.earned for c in self.checks)

    @property
    def possible(self) -> float:
        return sum(c.possible for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "earned": round(self.earned, 4),
                "possible": self.possible, "checks": [c.to_dict() for c in self.checks]}


@dataclass(frozen=True)
class Score:
    """Everything a report needs about the points of one run."""

    lab: str
    grading: bool
    tasks: tuple[TaskScore, ...]

    @property
    def checks(self) -> list[CheckScore]:
        return [c for t in self.tasks for c in t.checks]

    @property
    def earned(self) -> float:
        return sum(t.earned for t in self.tasks)

    @property
    def possible(self) -> float:
        return sum(t.possible for t in self.tasks)

    @property
    def unstable(self) -> list[CheckScore]:
        """Checks whose probes flapped: a person should look before the points count."""
        return [c for c in self.checks if c.outcome == "unstable"]

    @property
    def complete(self) -> bool:
        """Every counted check passed (and at least one counted)."""
        counted = [c for c in self.checks if c.counted]
        return bool(counted) and all(c.outcome == "passed" for c in counted)

    def line(self) -> str:
        """``Points 6/9``: the form classroom autograders look for."""
        return f"Points {fmt(self.earned)}/{fmt(self.possible)}"

    def to_dict(self) -> dict[str, Any]:
        return {"lab": self.lab, "grading": self.grading, "earned": round(self.earned, 4),
                "possible": self.possible, "complete": self.complete,
                "unstable": [c.function for c in self.unstable],
                "tasks": [t.to_dict() for t in self.tasks]}


def worst(outcomes: Sequence[str]) -> str:
    """The worst of ``outcomes`` (unknown names count as errors)."""
    ranks = [OUTCOMES.index(o) if o in OUTCOMES else len(OUTCOMES) - 1 for o in outcomes]
    return OUTCOMES[max(ranks)] if ranks else NOT_RUN


def score(lab: Lab, records: Sequence[Mapping[str, Any]], *, grading: bool) -> Score:
    """The points of ``records`` (the checks of a run's JSON report) for ``lab``.

    Every check the run should have had is scored, also when it has no record (``not
    run``): a missing result never inflates the score. Records of other functions (hidden
    checks in a visible run, a collection error) earn nothing.
    """
    by_function: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_function.setdefault(_function(record), []).append(record)
    defs = lab.check_defs()
    tasks = []
    for task in lab.tasks:
        scored = []
        for ref in task.graded_checks(grading):
            found = by_function.get(ref.name, [])
            outcomes = [str(r.get("outcome", "error")) for r in found]
            outcome = worst(outcomes)
            counted = [o for o in outcomes if o != "skipped"]
            possible = 0.0 if outcome == "skipped" else float(ref.points)
            share = possible / len(counted) if counted else 0.0
            earned = share * sum(o == "passed" for o in counted)
            where = defs.get(ref.name)
            # The name a run reported, else the same one read from the source, so a check
            # that did not run keeps its name (CI test histories track tests by name).
            name = (str(found[0].get("name", ref.name)).split(" [", 1)[0] if found
                    else where.title if where else ref.name)
            scored.append(CheckScore(ref.name, name, task.id, ref.hidden, outcome, earned,
                                     possible, ref.points, max(len(found), 1), tuple(found),
                                     str(where.file) if where else "",
                                     where.line if where else 0))
        tasks.append(TaskScore(task.id, task.title, tuple(scored)))
    return Score(lab.id, grading, tuple(tasks))
