"""The batch scheduler with a fake engine and a fake ``run_check``: N clusters, N workers,
one learner's crash isolated, clusters removed newest first on success, failure and Ctrl-C,
and never a cluster the batch did not create."""

from __future__ import annotations

import _thread
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from demolab import make_demo_lab

from clusters import ClusterError, ClusterExists, ClusterInfo, ClusterProfile
from labs.catalogue import Lab
from labs.checking import CheckRun
from labs.grading import batch as batches
from labs.grading import pool as pools
from labs.grading.submissions import Submission
from labs.scoring import score


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return make_demo_lab(tmp_path)


class FakeCluster:
    engine = "fake"

    def __init__(self, name: str) -> None:
        self.name = name


class FakeEngine:
    """Records every create and delete; refuses to delete what it was given at the start."""

    name = "fake"

    def __init__(self, existing: tuple[str, ...] = (),
                 fail_create: Callable[[str], BaseException | None] = lambda n: None) -> None:
        self.clusters = set(existing)
        self.foreign = set(existing)
        self.log: list[tuple[str, str]] = []
        self.fail_create = fail_create
        self.lock = threading.Lock()

    def available(self) -> tuple[bool, str]:
        return True, "fake"

    def create(self, name: str, profile: ClusterProfile, report: Any = None) -> Any:
        with self.lock:
            self.log.append(("create", name))
            failure = self.fail_create(name)
            if failure is not None:
                raise failure
            self.clusters.add(name)
        return FakeCluster(name)

    def delete(self, name: str) -> bool:
        assert name not in self.foreign, f"deleted {name}, which the batch did not create"
        with self.lock:
            self.log.append(("delete", name))
            existed = name in self.clusters
            self.clusters.discard(name)
        return existed

    def connect(self, name: str) -> Any:
        return FakeCluster(name)

    def list(self) -> list[ClusterInfo]:
        return [ClusterInfo(n, "fake", ClusterProfile(), True) for n in sorted(self.clusters)]

    def info(self, name: str) -> ClusterInfo | None:
        return ClusterInfo(name, "fake", ClusterProfile(), True) if name in self.clusters else None


def subs(tmp_path: Path, *names: str) -> list[Submission]:
    out = []
    for name in names:
        (tmp_path / "subs" / name).mkdir(parents=True, exist_ok=True)
        out.append(Submission(name, tmp_path / "subs" / name))
    return out


def records(lab: Lab, passed: set[str], **outcomes: str) -> list[dict[str, Any]]:
    made = []
    for function in lab.check_names(grading=True):
        outcome = outcomes.get(function, "passed" if function in passed else "failed")
        task = lab.task_for_check(function)
        made.append({"id": f"test_demo.py::{function}", "name": function, "function": function,
                     "outcome": outcome, "message": "", "hint": "",
                     "task": task.id if task else None})
    return made


RunCheck = Callable[..., CheckRun]


def fake_check(lab: Lab, by_learner: dict[str, Callable[[], list[dict[str, Any]]]] | None = None,
               seen: list[tuple[str, str]] | None = None,
               passing: tuple[str, ...] = ("test_a", "test_c")) -> RunCheck:
    """A run_check that passes ``passing`` (test_a and test_c: 3 of 7 points) unless
    ``by_learner`` says otherwise for a learner."""
    by_learner = by_learner or {}

    def run(lab_: Lab, cluster: FakeCluster, workspace: Any, say: Any = None, *,
            grading: bool = False) -> CheckRun:
        assert grading, "batch grading runs the hidden checks too"
        learner = Path(workspace.root).name
        if seen is not None:
            seen.append((learner, cluster.name))
        checks = by_learner.get(learner, lambda: records(lab, set(passing)))()
        run_ = CheckRun(lab.id, lab.title, "fake", cluster.name, str(workspace.root),
                        checks=checks, grading=True)
        run_.score = score(lab, checks, grading=True)
        return run_

    return run


def deletes(engine: FakeEngine) -> list[str]:
    return [name for op, name in engine.log if op == "delete"]


def creates(engine: FakeEngine) -> list[str]:
    return [name for op, name in engine.log if op == "create"]


@pytest.fixture
def tags(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The random tags the pool will draw, in order."""
    queue = ["beef", "cafe", "d00d", "f00d"]
    monkeypatch.setattr(pools.secrets, "token_hex", lambda n: queue.pop(0))
    yield queue


def test_two_workers_grade_everyone_and_clusters_go_newest_first(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tags: list[str]) -> None:
    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(batches, "run_check", fake_check(lab, seen=seen))
    engine = FakeEngine()
    lines: list[str] = []
    result = batches.grade(lab, engine, lab.profile(), subs(tmp_path, "a", "b", "c", "d", "e"),
                           jobs=2, progress=lines.append)
    assert creates(engine) == ["grd01-beef-1", "grd01-beef-2"]
    assert deletes(engine) == ["grd01-beef-2", "grd01-beef-1"]
    assert engine.clusters == set()
    assert [r.learner for r in result.results] == ["a", "b", "c", "d", "e"]
    assert {r.status for r in result.results} == {"graded"}
    assert {r.cluster for r in result.results} <= {"grd01-beef-1", "grd01-beef-2"}
    assert sorted(learner for learner, _ in seen) == ["a", "b", "c", "d", "e"]
    assert [r.score.line() for r in result.results] == ["Points 3/7"] * 5
    assert sorted(int(line.split("/")[0][1:]) for line in lines) == [1, 2, 3, 4, 5]
    assert all(line.endswith(" s)") and ": Points 3/7 (" in line for line in lines)
    assert result.clusters == ["grd01-beef-1", "grd01-beef-2"] and not result.interrupted


def test_no_more_clusters_than_learners_and_none_for_invalid_ones(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tags: list[str]) -> None:
    monkeypatch.setattr(batches, "run_check", fake_check(lab))
    engine = FakeEngine()
    bad = subs(tmp_path, "x", "y")
    for sub in bad:
        sub.problems = [f"{sub.learner}/p.yaml: broken"]
    only_invalid = batches.grade(lab, engine, lab.profile(), bad, jobs=4)
    assert engine.log == []
    assert [(r.learner, r.status, r.points, r.possible) for r in only_invalid.results] == [
        ("x", "invalid", 0, 7), ("y", "invalid", 0, 7)]
    assert only_invalid.results[0].message == "x/p.yaml: broken"
    one = batches.grade(lab, engine, lab.profile(), [*bad, *subs(tmp_path, "z")], jobs=4)
    assert creates(engine) == ["grd01-beef-1"]
    assert [r.status for r in one.results] == ["invalid", "invalid", "graded"]


def test_a_crash_is_that_learners_error_and_the_batch_goes_on(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tags: list[str]) -> None:
    def crash() -> list[dict[str, Any]]:
        raise RuntimeError("daemon went away")

    stray = [{"id": "pytest", "name": "the checks could not run", "outcome": "error",
              "message": "ImportError: boom", "task": None}]
    flappy = lambda: records(lab, {"test_a", "test_b"}, test_c="unstable")  # noqa: E731
    monkeypatch.setattr(batches, "run_check", fake_check(
        lab, {"b": crash, "c": lambda: stray, "d": flappy}))
    engine = FakeEngine()
    result = batches.grade(lab, engine, lab.profile(), subs(tmp_path, "a", "b", "c", "d", "e"))
    got = {r.learner: r for r in result.results}
    assert [r.status for r in result.results] == ["graded", "error", "error", "unstable", "graded"]
    assert got["b"].message == "grading crashed: RuntimeError: daemon went away"
    assert got["b"].points == 0 and got["b"].possible == 7
    assert got["c"].message == "the checks could not run: ImportError: boom"
    assert got["d"].message == "unstable (a person should look): test_c"
    assert got["d"].score.line() == "Points 3/7"  # scored as it is, flagged for a person
    assert got["a"].message == "not passed: test_b, test_secret"
    assert deletes(engine) == ["grd01-beef-1"]


def test_fresh_recreates_the_cluster_before_every_learner_but_the_first(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tags: list[str]) -> None:
    monkeypatch.setattr(batches, "run_check", fake_check(lab))
    engine = FakeEngine()
    result = batches.grade(lab, engine, lab.profile(), subs(tmp_path, "a", "b", "c"), fresh=True)
    name = "grd01-beef-1"
    assert engine.log == [("create", name), ("delete", name), ("create", name),
                          ("delete", name), ("create", name), ("delete", name)]
    assert [r.status for r in result.results] == ["graded"] * 3


def test_an_existing_cluster_name_makes_the_batch_pick_another_tag(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tags: list[str]) -> None:
    monkeypatch.setattr(batches, "run_check", fake_check(lab))
    engine = FakeEngine(existing=("grd01-beef-2", "grd01-cafe-9"))
    batches.grade(lab, engine, lab.profile(), subs(tmp_path, "a", "b"), jobs=2)
    assert creates(engine) == ["grd01-d00d-1", "grd01-d00d-2"]
    assert engine.clusters == {"grd01-beef-2", "grd01-cafe-9"}  # FakeEngine asserts on delete


def test_the_pool_never_deletes_what_it_did_not_create(lab: Lab) -> None:
    engine = FakeEngine(existing=("grd01-aaaa-1",))
    pool = pools.ClusterPool(engine, lab.profile())
    with pytest.raises(ClusterExists):
        pool.create("grd01-aaaa-1")
    with pytest.raises(pools.PoolError):
        pool.recreate("grd01-aaaa-1")
    racing = FakeEngine(fail_create=lambda n: ClusterExists(f"{n} made by someone else"))
    raced = pools.ClusterPool(racing, lab.profile())
    with pytest.raises(ClusterExists):
        raced.create("grd01-bbbb-1")
    assert pool.close() == [] and raced.close() == []
    assert deletes(engine) == [] and deletes(racing) == []


def test_names_fit_the_engine_limit(lab: Lab) -> None:
    assert pools.cluster_names("01b", "abcd", 8)[-1] == "grd01b-abcd-8"
    assert all(len(n) <= 20 for n in pools.cluster_names("01b", "abcd", 8))


def test_a_failure_while_creating_removes_the_clusters_made_so_far(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tags: list[str]) -> None:
    monkeypatch.setattr(batches, "run_check", fake_check(lab))
    engine = FakeEngine(fail_create=lambda n: RuntimeError("out of memory")
                        if n.endswith("-3") else None)
    with pytest.raises(RuntimeError, match="out of memory"):
        batches.grade(lab, engine, lab.profile(), subs(tmp_path, "a", "b", "c"), jobs=3)
    assert deletes(engine) == ["grd01-beef-3", "grd01-beef-2", "grd01-beef-1"]
    assert engine.clusters == set()


def test_fewer_clusters_when_one_cannot_be_made_and_none_is_unavailable(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tags: list[str]) -> None:
    monkeypatch.setattr(batches, "run_check", fake_check(lab))
    second = FakeEngine(fail_create=lambda n: ClusterError("no free /24") if n.endswith("-2")
                        else None)
    result = batches.grade(lab, second, lab.profile(), subs(tmp_path, "a", "b", "c"), jobs=2)
    assert [r.status for r in result.results] == ["graded"] * 3
    assert {r.cluster for r in result.results} == {"grd01-beef-1"}
    assert "no free /24" in result.warnings[0]
    assert deletes(second) == ["grd01-beef-2", "grd01-beef-1"]
    none = FakeEngine(fail_create=lambda n: ClusterError("engine broken"))
    with pytest.raises(batches.BatchUnavailable, match="engine broken"):
        batches.grade(lab, none, lab.profile(), subs(tmp_path, "a"))
    assert none.clusters == set()


def test_ctrl_c_stops_handing_out_work_cleans_up_and_reports_what_was_graded(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tags: list[str]) -> None:
    stopping = threading.Event()

    def interrupted() -> list[dict[str, Any]]:
        _thread.interrupt_main()  # as if Ctrl-C was pressed while b is being graded
        assert stopping.wait(10), "the batch never said it stopped"
        return records(lab, {"test_a"})

    monkeypatch.setattr(batches, "run_check", fake_check(lab, {"b": interrupted}))
    engine = FakeEngine()
    said: list[str] = []

    def say(text: str) -> None:
        said.append(text)
        if text.startswith("Interrupted"):
            stopping.set()

    result = batches.grade(lab, engine, lab.profile(), subs(tmp_path, "a", "b", "c", "d"),
                           say=say)
    assert result.interrupted
    assert [r.learner for r in result.results] == ["a"]
    assert result.not_graded == ["b", "c", "d"]  # b finished after Ctrl-C: dropped as well
    assert deletes(engine) == ["grd01-beef-1"] and engine.clusters == set()


def test_keep_clusters_leaves_them(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   tags: list[str]) -> None:
    monkeypatch.setattr(batches, "run_check", fake_check(lab))
    engine = FakeEngine()
    result = batches.grade(lab, engine, lab.profile(), subs(tmp_path, "a"), keep_clusters=True)
    assert deletes(engine) == [] and result.clusters == ["grd01-beef-1"] and result.kept_clusters


def test_jobs_out_of_range_is_refused(lab: Lab, tmp_path: Path) -> None:
    for jobs in (0, 9):
        with pytest.raises(ValueError, match="between 1 and 8"):
            batches.grade(lab, FakeEngine(), lab.profile(), subs(tmp_path, "a"), jobs=jobs)


def test_an_apply_error_is_invalid_with_the_reason(lab: Lab, tmp_path: Path) -> None:
    (sub,) = subs(tmp_path, "a")
    run = CheckRun(lab.id, lab.title, "fake", "c", str(sub.folder),
                   apply_error=f"{sub.folder}/p.yaml (document 1): field spec.x: unknown field")
    run.score = score(lab, [], grading=True)
    result = batches.classify(lab, sub, run)
    assert (result.status, result.points, result.possible) == ("invalid", 0, 7)
    assert result.message == "a/p.yaml (document 1): field spec.x: unknown field"
