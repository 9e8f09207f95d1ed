"""Running acceptance files against a cluster: fixture, cases, steps, restore.

The order is the README's: build the fixture (apply ``objects``, converge); run each case
on its own; per step apply/delete/label, converge, ``wait_seconds``, resolve placeholders,
probe, judge; stop a case at its first failing step; after every case, passed or failed
or interrupted, put the fixture back (delete what the case created, re-apply fixture
objects it changed or deleted, undo label changes, wait until deleted objects are gone).
At the end the fixture's namespaces are removed unless asked to keep them.

Namespaces the runner makes carry the annotation ``kube-netlab/conformance``; a fixture
namespace that exists without it belongs to someone else, and the run refuses to start
rather than overwrite it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import yaml

from clusters.engine import Cluster, find
from clusters.errors import ClusterError, WaitTimeout
from grader.conformance import placeholders, probes
from grader.conformance.converge import DEADLINE, converge
from grader.conformance.model import Case, ObjectRef, Step, Suite
from grader.conformance.preconditions import file_reason, unmet
from grader.conformance.readers import meta
from grader.conformance.report import CaseResult, FileResult, RunReport, Status, StepResult, Verdict

MARK = "kube-netlab/conformance"
CLUSTER_SCOPED = frozenset({"Namespace", "IngressClass", "ClusterRole", "ClusterRoleBinding",
                            "StorageClass", "PriorityClass", "PersistentVolume", "Node",
                            "CustomResourceDefinition"})


class FixtureConflict(Exception):
    """A fixture namespace exists and was not made by ``lab conformance``."""


@dataclass
class Options:
    cases: frozenset[str] | None = None  # case ids to run (None: all)
    keep_fixture: bool = False
    converge_timeout: float = DEADLINE
    retry_seconds: float | None = None  # None: the cluster's propagation_seconds
    say: Callable[[str], None] = lambda _text: None
    matrix: Callable[..., Any] | None = None  # probe_matrix override (tests)
    tls: placeholders.TlsPairs | None = None


def ref_of(doc: Mapping[str, Any]) -> ObjectRef:
    ns = meta(doc).get("namespace")
    kind = str(doc["kind"])
    return ObjectRef(kind, None if kind in CLUSTER_SCOPED else (ns or "default"),
                     str(meta(doc)["name"]))


def _clean(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object read from the API, made fit to apply again (no status, no server fields)."""
    doc = {k: copy.deepcopy(v) for k, v in obj.items() if k != "status"}
    m = {k: v for k, v in (doc.get("metadata") or {}).items()
         if k in ("name", "namespace", "labels", "annotations")}
    doc["metadata"] = m
    return doc


@dataclass
class CaseState:
    """What a case changed, so that it can be undone."""

    created: list[ObjectRef] = field(default_factory=list)
    fixture: list[ObjectRef] = field(default_factory=list)  # fixture objects changed/deleted
    snapshots: dict[ObjectRef, dict[str, Any]] = field(default_factory=dict)  # other objects
    labels: dict[ObjectRef, dict[str, str]] = field(default_factory=dict)  # original labels

    def seen(self, ref: ObjectRef) -> bool:
        return ref in self.created or ref in self.fixture or ref in self.snapshots


class Runner:
    def __init__(self, cluster: Cluster, options: Options | None = None) -> None:
        self.cluster = cluster
        self.options = options or Options()
        self.caps = cluster.capabilities()
        self.resolver = placeholders.Resolver(cluster, self.options.tls, self.caps.host_ip)
        retry = self.options.retry_seconds
        self.retry = self.caps.propagation_seconds if retry is None else retry

    # ---- the run ------------------------------------------------------------------------

    def conflicts(self, suites: Sequence[Suite]) -> list[str]:
        """Fixture namespaces that exist and are not ours."""
        found = []
        for ns in dict.fromkeys(n for s in suites for n in s.namespaces):
            for obj in find(self.cluster, "Namespace", None, ns):
                if MARK not in (meta(obj).get("annotations") or {}):
                    found.append(ns)
        return found

    def run(self, suites: Sequence[Suite]) -> RunReport:
        """Run every selected case of every file; Ctrl-C restores, cleans up and stops."""
        taken = self.conflicts(suites)
        if taken:
            names = ", ".join(taken)
            raise FixtureConflict(
                f"namespace(s) {names} already exist on cluster {self.cluster.name} and were not "
                f"made by lab conformance; the fixtures need them. Delete them (and what is in "
                f"them) first, or run on another cluster with --cluster")
        report = RunReport(self.cluster.name, self.cluster.engine)
        try:
            for suite in suites:
                result = FileResult(str(suite.path), suite.suite, suite.fixture)
                report.files.append(result)
                self.run_suite(suite, result)
        except KeyboardInterrupt:
            report.interrupted = True
        return report

    def selected(self, suite: Suite) -> list[Case]:
        wanted = self.options.cases
        return [c for c in suite.cases if wanted is None or c.id in wanted]

    def run_suite(self, suite: Suite, result: FileResult) -> None:
        cases = self.selected(suite)
        if not cases:
            return
        why_not = file_reason(self.cluster)
        runnable = []
        for case in cases:
            reason = why_not or unmet(case, self.caps)
            if reason:
                result.cases.append(CaseResult(case.id, case.title, Status.NA, reason=reason))
            else:
                runnable.append(case)
        if not runnable:
            return
        made: list[ObjectRef] = []
        try:
            self.options.say(f"{suite.name}: building fixture {suite.fixture} "
                             f"(namespaces {', '.join(suite.namespaces)})")
            try:
                made = self.build_fixture(suite)
            except (ClusterError, WaitTimeout) as err:
                result.error = f"the fixture {suite.fixture} could not be built: {err}"
                for case in runnable:
                    result.cases.append(CaseResult(case.id, case.title, Status.FAIL,
                                                   reason="the fixture could not be built"))
                return
            for case in runnable:
                self.options.say(f"{suite.name}: {case.id} {case.title}")
                result.cases.append(self.run_case(suite, case, result))
        finally:
            if not self.options.keep_fixture:
                self.options.say(f"{suite.name}: removing fixture {suite.fixture}")
                self.remove_fixture(suite, made)

    # ---- fixture --------------------------------------------------------------------------

    def fixture_docs(self, suite: Suite) -> list[dict[str, Any]]:
        docs = [copy.deepcopy(dict(d)) for d in suite.objects]
        for doc in docs:
            if doc.get("kind") == "Namespace":
                doc["metadata"].setdefault("annotations", {})[MARK] = suite.suite
        return docs

    def build_fixture(self, suite: Suite) -> list[ObjectRef]:
        """Apply ``objects`` and converge; returns the cluster-scoped objects it created."""
        ours = [ns for ns in suite.namespaces if find(self.cluster, "Namespace", None, ns)]
        if ours:  # left by an earlier run with --keep-fixture (checked to be ours): start clean
            self.cluster.reset_namespaces(ours)
        docs = self.fixture_docs(suite)
        made = [r for r in map(ref_of, docs) if r.namespace is None and r.kind != "Namespace"
                and not find(self.cluster, r.kind, None, r.name)]
        self.cluster.apply(docs, source=f"{suite.name} (fixture {suite.fixture})")
        converge(self.cluster, suite.namespaces, timeout=self.options.converge_timeout)
        return made

    def remove_fixture(self, suite: Suite, made: Sequence[ObjectRef]) -> None:
        try:
            self.cluster.reset_namespaces(list(suite.namespaces))
            for ref in made:
                self.cluster.delete(ref.kind, None, ref.name)
        except ClusterError as err:
            self.options.say(f"could not remove fixture {suite.fixture}: {err}")

    # ---- cases ----------------------------------------------------------------------------

    def run_case(self, suite: Suite, case: Case, result: FileResult) -> CaseResult:
        started = time.monotonic()
        state = CaseState()
        out = CaseResult(case.id, case.title, Status.PASS)
        try:
            for step in case.steps:
                step_result = self.run_step(suite, case, step, state)
                out.steps.append(step_result)
                if step_result.status is not Status.PASS:
                    out.status = step_result.status
                    left = len(case.steps) - step.index - 1
                    if left:
                        out.reason = f"{left} later step(s) skipped"
                    break
        finally:
            try:
                self.restore(suite, state)
            except (ClusterError, WaitTimeout) as err:
                result.error = f"after {case.id}: the fixture could not be restored: {err}"
            out.seconds = time.monotonic() - started
        return out

    def run_step(self, suite: Suite, case: Case, step: Step, state: CaseState) -> StepResult:
        started = time.monotonic()
        body = yaml.safe_dump(dict(step.probe), default_flow_style=True, width=10_000,
                              sort_keys=False).strip()
        res = StepResult(step.index, step.line, f"{step.probe_kind} {body}", Status.PASS)
        try:
            gone = self.change(suite, case, step, state)
            converge(self.cluster, suite.namespaces, gone=gone,
                     timeout=self.options.converge_timeout)
        except WaitTimeout as err:
            res.status, res.reason = Status.FAIL, f"did not converge: {err}"
            return res
        except (ClusterError, placeholders.PlaceholderError) as err:
            res.status, res.reason = Status.FAIL, f"the step's change failed: {err}"
            return res
        except placeholders.NoHostSource as err:
            res.status, res.reason = Status.NA, str(err)
            return res
        if step.wait_seconds:
            time.sleep(step.wait_seconds)
        ctx = probes.Context(self.cluster, self.caps, suite.namespaces, self.options.matrix)
        fanout = placeholders.uses_fanout([step.probe, step.expect])
        stars: list[str | None] = list(self.resolver.fanout()) if fanout else [None]
        if not stars:
            res.status, res.reason = Status.FAIL, "{{nodeIP *}}: the cluster has no Ready node"
            return res
        if len(stars) == 1:
            res.runs = [self.judged(ctx, step, stars[0])]
        else:
            with ThreadPoolExecutor(max_workers=len(stars)) as pool:
                res.runs = list(pool.map(lambda s: self.judged(ctx, step, s), stars))
        statuses = {r.status for r in res.runs}
        res.status = Status.FAIL if Status.FAIL in statuses else (
            Status.NA if Status.NA in statuses else Status.PASS)
        if res.status is Status.NA:
            res.reason = next(r.reason for r in res.runs if r.status is Status.NA)
        res.seconds = time.monotonic() - started
        return res

    def judged(self, ctx: probes.Context, step: Step, star: str | None) -> Verdict:
        """One (fan-out) run of the probe, retried within the runner's allowance when it fails."""
        deadline = time.monotonic() + self.retry
        while True:
            try:
                body = self.resolver.resolve(dict(step.probe), star)
                expect = self.resolver.resolve(dict(step.expect), star)
                verdict = probes.run(ctx, step.probe_kind, body, expect)
            except placeholders.PlaceholderError as err:
                verdict = Verdict.failed(str(err))
            except placeholders.NoHostSource as err:
                verdict = Verdict.na(str(err))
            if verdict.status is not Status.FAIL or time.monotonic() >= deadline:
                break
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        verdict.label = f"nodeIP {star}" if star else ""
        return verdict

    def change(self, suite: Suite, case: Case, step: Step, state: CaseState) -> list[ObjectRef]:
        """The step's apply, delete and label, recorded for undoing; returns deleted refs."""
        fixture = {ref_of(d) for d in suite.objects}
        if step.apply:
            docs = [d for d in yaml.safe_load_all(step.apply) if d]
            docs = self.resolver.resolve(docs)
            for ref in map(ref_of, docs):
                self._track(ref, fixture, state)
            self.cluster.apply(docs, source=f"{suite.name} {case.id} step {step.index + 1}")
        gone = []
        for ref in step.delete:
            self._track(ref, fixture, state)
            if ref in state.created:
                state.created.remove(ref)
            self.cluster.delete(ref.kind, ref.namespace, ref.name)
            gone.append(ref)
        for change in step.label:
            if change.ref not in state.labels:
                current = find(self.cluster, change.ref.kind, change.ref.namespace,
                               change.ref.name)
                if not current:
                    raise ClusterError(f"cannot label {change.ref}: it does not exist")
                state.labels[change.ref] = dict(meta(current[0]).get("labels") or {})
            self.cluster.label(change.ref.kind, change.ref.namespace, change.ref.name,
                               change.set, change.remove)
        return gone

    def _track(self, ref: ObjectRef, fixture: set[ObjectRef], state: CaseState) -> None:
        if state.seen(ref):
            return
        if ref in fixture:
            state.fixture.append(ref)
            return
        existing = find(self.cluster, ref.kind, ref.namespace, ref.name)
        if existing:
            state.snapshots[ref] = _clean(existing[0])
        else:
            state.created.append(ref)

    def restore(self, suite: Suite, state: CaseState) -> None:
        """Undo the case: created objects deleted, changed ones re-applied, labels put back."""
        gone = []
        for ref in reversed(state.created):
            self.cluster.delete(ref.kind, ref.namespace, ref.name)
            gone.append(ref)
        docs = {ref_of(d): d for d in self.fixture_docs(suite)}
        again = [docs[r] for r in state.fixture] + list(state.snapshots.values())
        if again:
            self.cluster.apply(again, source=f"{suite.name} (restoring fixture {suite.fixture})")
        for ref, original in state.labels.items():
            current = find(self.cluster, ref.kind, ref.namespace, ref.name)
            if not current:
                continue
            labels = meta(current[0]).get("labels") or {}
            put = {k: v for k, v in original.items() if labels.get(k) != v}
            drop = [k for k in labels if k not in original]
            if put or drop:
                self.cluster.label(ref.kind, ref.namespace, ref.name, put, drop)
        converge(self.cluster, suite.namespaces, gone=gone, timeout=self.options.converge_timeout)
