"""Grading a batch of learners: N clusters, N workers, one learner at a time per cluster.

Long work as named steps::

    1. every submission was validated already (no cluster needed to refuse a broken one)
    2. pick N free names grd<lab>-<tag>-<k> and create the clusters, one after the other
    3. N worker threads take learners from a queue; each grades its learner in its own
       cluster with labs.checking.run_check(grading=True), which resets the lab's
       namespaces first (or, with ``fresh``, the worker recreates its cluster first)
    4. the clusters are deleted, newest first: on success, on failure and on Ctrl-C

A crash while grading one learner is that learner's error; the batch goes on. Ctrl-C stops
handing out learners, waits a little for the running checks (whose results are then
dropped: they were interrupted too), removes the clusters and returns what was graded.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clusters import Cluster, ClusterError, ClusterProfile, Engine
from labs.catalogue import Lab
from labs.checking import CheckRun, run_check
from labs.grading.pool import ClusterPool, PoolError, pick_names
from labs.grading.submissions import Submission, relative
from labs.scoring import Score, score

STATUSES = ("graded", "invalid", "error", "unstable")
MAX_JOBS = 8
#: How long Ctrl-C waits for running checks before abandoning them.
GRACE_SECONDS = 30.0

Say = Callable[[str], None]


class BatchUnavailable(Exception):
    """The batch could not run at all (no grading cluster could be made)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class LearnerResult:
    """One learner's outcome. ``status``: graded | invalid | error | unstable."""

    learner: str
    status: str
    score: Score
    message: str = ""
    problems: list[str] = field(default_factory=list)
    run: CheckRun | None = None
    cluster: str = ""
    seconds: float = 0.0  # grading time (run_check), without cluster setup
    setup_seconds: float = 0.0  # recreating the cluster first (--fresh)
    started: str = ""
    files: list[str] = field(default_factory=list)

    @property
    def points(self) -> float:
        return self.score.earned

    @property
    def possible(self) -> float:
        return self.score.possible

    @property
    def percent(self) -> float:
        return round(100 * self.points / self.possible, 1) if self.possible else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"learner": self.learner, "status": self.status,
                "points": round(self.points, 4), "possible": self.possible,
                "percent": self.percent, "message": self.message, "problems": self.problems,
                "cluster": self.cluster, "seconds": round(self.seconds, 3),
                "setup_seconds": round(self.setup_seconds, 3), "started": self.started,
                "files": self.files, "score": self.score.to_dict(),
                "run": self.run.to_dict() if self.run is not None else None}


@dataclass
class Batch:
    """A whole grading run: what was asked, what happened, one result per learner."""

    lab: Lab
    engine: str
    profile: ClusterProfile
    jobs: int = 1
    fresh: bool = False
    started: str = field(default_factory=_now)
    ended: str = ""
    results: list[LearnerResult] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # top-level entries that are no learner
    not_graded: list[str] = field(default_factory=list)  # interrupted before their turn
    clusters: list[str] = field(default_factory=list)
    kept_clusters: bool = False
    setup_seconds: float = 0.0
    seconds: float = 0.0
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"lab": self.lab.id, "title": self.lab.title, "engine": self.engine,
                "cni": self.profile.cni, "backend": self.profile.backend, "jobs": self.jobs,
                "fresh": self.fresh, "start": self.started, "end": self.ended,
                "seconds": round(self.seconds, 3), "setup_seconds": round(self.setup_seconds, 3),
                "clusters": self.clusters, "kept_clusters": self.kept_clusters,
                "interrupted": self.interrupted, "not_graded": self.not_graded,
                "ignored": self.ignored, "warnings": self.warnings,
                "possible": self.lab.total_points(grading=True),
                "checks": [{"function": c, "hidden": c in self.lab.hidden_checks,
                            "points": ref.points if (ref := self.lab.check_ref(c)) else 0}
                           for c in self.lab.check_names(grading=True)],
                "learners": [r.to_dict() for r in self.results]}


def invalid_result(lab: Lab, sub: Submission) -> LearnerResult:
    """A submission refused before grading: 0 points, every check ``not run``."""
    base = sub.folder.parent
    return LearnerResult(sub.learner, "invalid", score(lab, [], grading=True), sub.reason,
                         list(sub.problems), files=[relative(str(f), base) for f in sub.files])


def error_result(lab: Lab, sub: Submission, message: str, cluster: str = "") -> LearnerResult:
    return LearnerResult(sub.learner, "error", score(lab, [], grading=True), message, [message],
                         cluster=cluster)


def classify(lab: Lab, sub: Submission, run: CheckRun) -> LearnerResult:
    """A finished check run as a learner's result (status, message)."""
    scored = run.score or score(lab, run.checks, grading=True)
    base = sub.folder.parent
    result = LearnerResult(sub.learner, "graded", scored, run=run, cluster=run.cluster,
                           files=[relative(str(f), base) for f in sub.files])
    # A result of no listed check that did not pass: collection failed, pytest crashed.
    strays = [c for c in run.checks if c.get("outcome") != "passed" and lab.task_for_check(
        str(c.get("function") or c.get("id") or "")) is None]
    if run.apply_error:
        result.status, result.message = "invalid", relative(run.apply_error, base)
        result.problems = [result.message]
    elif strays:
        first = str(strays[0].get("message") or strays[0].get("name") or "").strip()
        result.status = "error"
        result.message = "the checks could not run: " + (first.splitlines() or ["?"])[-1][:300]
    elif scored.unstable:
        result.status = "unstable"
        result.message = ("unstable (a person should look): "
                          + ", ".join(c.function for c in scored.unstable))
    else:
        missed = [c.function for c in scored.checks if c.counted and c.outcome != "passed"]
        result.message = ("not passed: " + ", ".join(missed)) if missed else ""
    return result


def progress_line(done: int, total: int, result: LearnerResult) -> str:
    """``[3/20] alice: Points 7/9 (2.4 s)``."""
    head = f"[{done}/{total}] {result.learner}: "
    if result.status in ("invalid", "error"):
        return head + f"{result.status}: {result.message}"
    line = head + result.score.line()
    if result.status == "unstable":
        line += ", UNSTABLE " + ", ".join(c.function for c in result.score.unstable)
    fresh = f", new cluster {result.setup_seconds:.1f} s" if result.setup_seconds else ""
    return line + f" ({result.seconds:.1f} s{fresh})"


class _Scheduler:
    """The worker threads and what they share; the main thread only waits and cleans up."""

    def __init__(self, batch: Batch, pool: ClusterPool, subs: Sequence[Submission],
                 total: int, done: int, progress: Say, fresh: bool) -> None:
        self.batch, self.pool, self.progress, self.fresh = batch, pool, progress, fresh
        self.total, self.done = total, done
        self.todo: queue.SimpleQueue[Submission] = queue.SimpleQueue()
        for sub in subs:
            self.todo.put(sub)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results: dict[str, LearnerResult] = {}
        # Workers still running. The main thread waits on this count, never on
        # Thread.join: a Ctrl-C inside join() can leave CPython 3.11 believing a running
        # thread has ended (its tstate lock released under it).
        self.running = 0
        self.changed = threading.Condition(self.lock)

    def record(self, result: LearnerResult) -> None:
        with self.lock:
            if self.stop.is_set():  # finished during Ctrl-C: it was interrupted too
                return
            self.results[result.learner] = result
            self.done += 1
            self.progress(progress_line(self.done, self.total, result))

    def start(self, clusters: Sequence[Cluster]) -> None:
        with self.lock:
            self.running += len(clusters)
        for k, cluster in enumerate(clusters, 1):
            threading.Thread(target=self.work, args=(cluster,), name=f"grade-{k}",
                             daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait (in short slices, so Ctrl-C gets through) until no worker runs, or
        ``timeout`` s pass; whether they all finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            while self.running:
                left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True

    def work(self, cluster: Cluster) -> None:
        try:
            self._work(cluster)
        finally:
            with self.lock:
                self.running -= 1
                self.changed.notify_all()

    def _work(self, cluster: Cluster) -> None:
        used = False
        while not self.stop.is_set():
            try:
                sub = self.todo.get_nowait()
            except queue.Empty:
                return
            started, setup = _now(), 0.0
            if self.fresh and used:
                t0 = time.monotonic()
                try:
                    cluster = self.pool.recreate(cluster.name)
                except Exception as err:  # this worker has no cluster any more
                    self.record(error_result(self.batch.lab, sub, f"could not recreate cluster "
                                             f"{cluster.name}: {err}", cluster.name))
                    return
                setup = time.monotonic() - t0
            used = True
            t0 = time.monotonic()
            try:
                run = run_check(self.batch.lab, cluster, sub.workspace, grading=True)
                result = classify(self.batch.lab, sub, run)
            except Exception as err:  # one learner's crash never stops the batch
                result = error_result(self.batch.lab, sub,
                                      f"grading crashed: {type(err).__name__}: {err}", cluster.name)
            result.seconds, result.setup_seconds = time.monotonic() - t0, setup
            result.started, result.cluster = started, cluster.name
            self.record(result)


def grade(lab: Lab, engine: Engine, profile: ClusterProfile, subs: Sequence[Submission], *,
          jobs: int = 1, fresh: bool = False, keep_clusters: bool = False,
          ignored: Sequence[str] = (), progress: Say = lambda s: None,
          say: Say = lambda s: None, grace: float = GRACE_SECONDS) -> Batch:
    """Grade validated submissions (see :func:`labs.grading.submissions.validate`).

    Raises :class:`BatchUnavailable` when there are learners to grade and no cluster could
    be made (every cluster made so far is deleted first). Ctrl-C does not raise: the batch
    comes back with ``interrupted`` set and the learners not graded listed.
    """
    if not 1 <= jobs <= MAX_JOBS:
        raise ValueError(f"jobs must be between 1 and {MAX_JOBS}, not {jobs}")
    batch = Batch(lab, engine.name, profile, jobs=jobs, fresh=fresh, ignored=list(ignored),
                  kept_clusters=keep_clusters)
    began = time.monotonic()
    total, done = len(subs), 0
    results: dict[str, LearnerResult] = {}
    for sub in subs:
        if not sub.valid:
            results[sub.learner] = invalid_result(lab, sub)
            done += 1
            progress(progress_line(done, total, results[sub.learner]))
    valid = [s for s in subs if s.valid]
    pool = ClusterPool(engine, profile, say)
    scheduler = _Scheduler(batch, pool, valid, total, done, progress, fresh)
    try:
        if valid:
            clusters = _make_clusters(batch, pool, lab, engine, min(jobs, len(valid)), say)
            scheduler.start(clusters)
            scheduler.wait()
    except KeyboardInterrupt:
        batch.interrupted = True
        scheduler.stop.set()
        say("Interrupted: no more learners are handed out; waiting for the running checks "
            f"(up to {grace:g} s), then removing the grading clusters")
        _wait(scheduler, grace)
    finally:
        scheduler.stop.set()  # a worker still running (abandoned) records nothing from now
        batch.clusters = list(pool.created)
        _close(pool, batch, keep_clusters, say)
        batch.seconds = time.monotonic() - began
        batch.ended = _now()
    with scheduler.lock:
        results.update(scheduler.results)
    for sub in valid:
        if sub.learner in results:
            continue
        if batch.interrupted:  # not started, or interrupted while being graded
            batch.not_graded.append(sub.learner)
        else:  # every worker lost its cluster
            results[sub.learner] = error_result(lab, sub, "no grading cluster was left for it")
    batch.results = [results[s.learner] for s in subs if s.learner in results]
    return batch


def _make_clusters(batch: Batch, pool: ClusterPool, lab: Lab, engine: Engine, count: int,
                   say: Say) -> list[Cluster]:
    """Create ``count`` clusters one after the other; fewer (with a warning) when one fails."""
    t0 = time.monotonic()
    try:
        names = pick_names(engine, lab.id, count)
    except PoolError as err:
        raise BatchUnavailable(str(err)) from err
    clusters: list[Cluster] = []
    for name in names:
        say(f"Creating grading cluster {name} ({batch.profile.cni_label}, "
            f"{batch.profile.workers} workers)")
        try:
            clusters.append(pool.create(name))
        except ClusterError as err:
            batch.warnings.append(f"cluster {name} could not be created: {err}")
            break
    batch.setup_seconds = time.monotonic() - t0
    if not clusters:
        raise BatchUnavailable("no grading cluster could be created: "
                               + "; ".join(batch.warnings))
    if len(clusters) < count:
        say(f"warning: grading with {len(clusters)} cluster(s) instead of {count}")
    return clusters


def _wait(scheduler: _Scheduler, grace: float) -> None:
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: clean up now
        scheduler.wait(grace)


def _close(pool: ClusterPool, batch: Batch, keep: bool, say: Say) -> None:
    """Delete the batch's clusters; a Ctrl-C meanwhile does not stop the cleanup."""
    while True:
        try:
            pool.close(keep)
            return
        except KeyboardInterrupt:
            batch.interrupted = True
            say("still removing the grading clusters (they would be left behind otherwise)")
        except PoolError as err:
            batch.warnings.append(str(err))
            say(f"warning: {err}")
            return
