"""Grading NetworkPolicy: the ``netpol`` fixture, a whole matrix judged requirement by requirement.

A policy lab's checks read like its tasks::

    def test_frontend_reaches_api(netpol):
        m = netpol.matrix(["lab04", "monitoring"], ports=[8080, 5432, 9090])
        m.expect("frontend -> api on 8080",
                 allowed=cells("lab04/app=frontend", "lab04/app=api", 8080))

    def test_nothing_else(netpol):
        m = netpol.matrix(["lab04", "monitoring"], ports=[8080, 5432, 9090])
        m.only("nothing else", allowed=[...], within=cells("*", "lab04/*"))

The first matrix of a session proves, with a canary (:mod:`clusters.canary`), that the cluster
enforces NetworkPolicy at all: if it does not, the check is skipped saying so, instead of
failing a learner whose policies may be right. The matrix is probed once per argument set
and session, and re-probed while the cluster does not yet show what the policies say (a
deny still letting traffic through, an allow still dropping it) until the settle time
passes, so freshly applied rules are judged. Then the matrix is probed once more to
confirm it: a cell that answers differently the second time is *unstable*, and a
requirement whose only wrong cells are unstable fails with an unstable finding (the check is
reported ``unstable``, never passed or failed). A wrong cell is explained by the policy
engine (:mod:`clusters.netpol`): the rule that allows it (file, policy, rule index) or the
policies that isolate the pod and why none of their rules matches.

This module is the public face: it re-exports the canary, the expected-vs-observed matrix
and :func:`cells`.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from clusters.canary import Enforcement, prove_enforcement
from clusters.engine import Cluster
from clusters.netpol.engine import PolicySet, Verdict
from clusters.netpol.model import HostEndpoint, PodInfo
from clusters.probing import Observation, Outcome
from grader.cellspec import CellSpec, CellSpecError, PodPattern, as_specs, cells
from grader.expectations import CheckFailed, Finding
from grader.fixtures import Workspace
from grader.matrix import (
    WORKERS,
    MatrixCell,
    MatrixResult,
    matrix_pods,
    normalise_protocols,
    probe_matrix,
    seen_text,
)
from grader.policy_matrix import (
    ExpectedCell,
    ExpectedMatrix,
    capped,
    cell_line,
    cell_name,
    expect_vs_observe,
)

__all__ = [
    "CellSpec",
    "CellSpecError",
    "Enforcement",
    "ExpectedCell",
    "ExpectedMatrix",
    "NetpolGrader",
    "PodPattern",
    "PolicyMatrix",
    "cells",
    "expect_vs_observe",
    "policy_set",
    "prove_enforcement",
    "workspace_sources",
]

#: Most wrong cells a finding lists before "and N more".
MAX_WRONG = 10
OVER_PERMISSIVE = "OVER_PERMISSIVE"
OVER_RESTRICTIVE = "OVER_RESTRICTIVE"
PORT_CLOSED = "PORT_CLOSED"
UNSTABLE = "UNSTABLE"
POLICY_HINTS = {
    OVER_PERMISSIVE: "Traffic the task forbids got through. The rule named after 'allowed by' "
                     "lets it pass: narrow its from/to selectors or its ports. A pod no policy "
                     "selects is open: a default deny selects every pod with podSelector: {}.",
    OVER_RESTRICTIVE: "Traffic the task needs was blocked. The policies named isolate the pod "
                      "and none of their rules matches this peer and port: check the labels "
                      "and namespaces the selectors name, whether namespaceSelector and "
                      "podSelector sit in one peer (AND) or two (OR), the port, and that the "
                      "other side allows it too (egress at the source, ingress at the "
                      "destination).",
    PORT_CLOSED: "The policies let this traffic through, but nothing answered on the pod's "
                 "port (REFUSED): the connection reached the pod and found no server. Is the "
                 "application running and listening on that port? (Through a Service, the "
                 "port is the Service's targetPort on the pod.)",
    UNSTABLE: "These cells answered differently when probed again: sometimes through, "
              "sometimes not. That is no verdict on the policies: rules were still being "
              "programmed, or a node drops packets now and then. Run the check again; if a "
              "cell keeps flapping, look at the nodes and the CNI, not at the policies.",
    "default": "Some cells are wrong in both directions: read each line: 'allowed by' names "
               "a rule that lets too much through; 'isolated ... none allows' names the "
               "policies that block what the task needs.",
}


def policy_set(cluster: Cluster, sources: Mapping[str, str] | None = None) -> PolicySet:
    """Every NetworkPolicy, Pod (not being deleted) and Namespace of the cluster, as the
    policy engine's input. ``sources`` maps ``"ns/name"`` of a policy to the file it came
    from, so explanations can name it."""
    pods = [p for p in cluster.get("Pod", None)
            if not (p.get("metadata") or {}).get("deletionTimestamp")]
    return PolicySet.from_objects(cluster.get("NetworkPolicy", None), pods,
                                  cluster.get("Namespace", None), sources=sources or {})


def workspace_sources(workspace: Workspace) -> dict[str, str]:
    """``"ns/name"`` -> the workspace file of each NetworkPolicy document (namespace
    ``default`` when the document names none, as the API server would put it)."""
    found: dict[str, str] = {}
    for doc, source in zip(workspace.documents, workspace.sources, strict=False):
        if doc.get("kind") != "NetworkPolicy":
            continue
        meta = doc.get("metadata") or {}
        if meta.get("name"):
            found[f"{meta.get('namespace') or 'default'}/{meta['name']}"] = source
    return found


def _endpoint(policies: PolicySet, text: str) -> PodInfo | HostEndpoint:
    """``"ns/pod"`` as the pod the policy engine knows; an IP address as the pod that has
    it, else as a host endpoint (a node, the host, anything outside the pod network)."""
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        pod = policies.pod(text)
        if pod is None:
            known = ", ".join(p.label for p in policies.pods[:12]) or "none"
            raise ValueError(f"no pod {text!r} in the cluster (pods: {known}); give "
                             "NS/POD or an IPv4 address") from None
        return pod
    owner = next((p for p in policies.pods if p.ip == text and not p.host_network), None)
    return owner or HostEndpoint(text)


def explain(policies: PolicySet, src: str, dst: str, port: int, protocol: str = "TCP") -> str:
    """Why the policies allow or block ``src`` -> ``dst`` on ``protocol``/``port``."""
    verdict = policies.verdict(_endpoint(policies, src), _endpoint(policies, dst), port,
                               protocol.upper())
    return verdict.explain()


@dataclass
class PolicyMatrix:
    """A probed matrix and what the policies say of it; checks state requirements on it."""

    observed: MatrixResult
    policies: PolicySet
    expected: ExpectedMatrix
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def matching(self, spec: CellSpec) -> list[MatrixCell]:
        """The matrix's cells (not a pod to itself) that ``spec`` names."""
        self._check(spec)
        found = [c for c in self.observed.cells
                 if c.source != c.dest and spec.matches(c, self.labels)]
        return sorted(found, key=lambda c: (c.source, c.dest, c.protocol, c.port, c.via))

    def verdict(self, cell: MatrixCell) -> Verdict | None:
        return self.expected.cell(cell.source, cell.dest, cell.port, cell.protocol,
                                  cell.via).verdict

    def explain(self, src: str, dst: str, port: int, protocol: str = "TCP") -> str:
        """Why the policies of this matrix allow or block one cell (``"ns/pod"`` or an IP)."""
        return explain(self.policies, src, dst, port, protocol)

    def render(self, *, details: bool = False) -> str:
        """Expected, observed and the cells that differ (see :class:`ExpectedMatrix`)."""
        return self.expected.render(details=details)

    def expect(self, requirement: str, *, allowed: CellSpec | Iterable[CellSpec] = (),
               blocked: CellSpec | Iterable[CellSpec] = (), hint: str = "") -> None:
        """Every probed cell named by ``allowed`` connected and every probed cell named by
        ``blocked`` was blocked (REFUSED or TIMEOUT, but not REFUSED by a pod the policies
        let the traffic reach); else CheckFailed listing each wrong cell, explained.

        Cells that could not be probed (self, no Service for a service via) are never
        judged. A spec that names no probed cell at all is the check's mistake, not the
        learner's: CellSpecError (a ValueError) naming it, as for a spec naming a port,
        protocol or via the matrix was not probed on.
        """
        want_allowed = as_specs(allowed, "allowed")
        want_blocked = as_specs(blocked, "blocked")
        if not want_allowed and not want_blocked:
            raise ValueError(f"{requirement}: give allowed= and/or blocked= cells")
        wrong: list[tuple[str, str]] = []  # (kind, text)
        flapped: list[MatrixCell] = []
        seen: dict[tuple[str, str, int, str, str], str] = {}
        total = 0
        for want, specs in ((True, want_allowed), (False, want_blocked)):
            what = "allowed" if want else "blocked"
            for spec in specs:
                found = self.matching(spec)
                probed = [c for c in found if c.outcome is not None]
                if not probed:
                    raise self._unmatched(requirement, what, spec, found)
                for cell in found:
                    key = (cell.source, cell.dest, cell.port, cell.protocol, cell.via)
                    if seen.setdefault(key, what) != what:
                        raise CellSpecError(f"{requirement}: {key[0]} -> {key[1]} "
                                            f"{key[3]}/{key[2]} is asked to be both allowed "
                                            "and blocked")
                for cell in probed:
                    total += 1
                    problem = self._judge(cell, want)
                    if problem:
                        wrong.append(problem)
                        if cell.unstable:
                            flapped.append(cell)
        if wrong:
            parts = [f"allowed: {'; '.join(map(str, want_allowed))}" if want_allowed else "",
                     f"blocked: {'; '.join(map(str, want_blocked))}" if want_blocked else ""]
            self._fail(requirement, ", ".join(p for p in parts if p), wrong, total, hint,
                       flapped)

    def only(self, requirement: str, *, allowed: CellSpec | Iterable[CellSpec],
             within: CellSpec, hint: str = "") -> None:
        """Nothing else: every probed cell ``within`` names that no ``allowed`` spec names
        was blocked. (The allowed cells themselves are not judged here: their own
        requirements do that.) Cells that could not be probed are never judged; a
        ``within`` naming no probed cell is the check's mistake (CellSpecError)."""
        specs = as_specs(allowed, "allowed")
        for spec in specs:
            self._check(spec)
        scope = self.matching(within)
        probed = [c for c in scope if c.outcome is not None]
        if not probed:
            raise self._unmatched(requirement, "within", within, scope)
        rest = [c for c in probed if not any(s.matches(c, self.labels) for s in specs)]
        judged = [(c, self._judge(c, False)) for c in rest]
        wrong = [p for _, p in judged if p]
        if wrong:
            shown = "; ".join(map(str, specs)) or "none"
            self._fail(requirement, f"within {within}, only these allowed: {shown}; "
                                    "everything else blocked", wrong, len(rest), hint,
                       [c for c, p in judged if p and c.unstable])

    # ------------------------------------------------------------------ helpers

    def _check(self, spec: CellSpec) -> None:
        """A spec naming what the matrix never probed is the check's mistake."""
        m = self.observed
        if spec.port is not None and spec.port not in m.ports:
            raise CellSpecError(f"{spec}: port {spec.port} is not in this matrix (ports "
                                f"{', '.join(map(str, m.ports))}); add it to "
                                "netpol.matrix(ports=...)")
        if spec.protocol is not None and spec.protocol not in m.protocols:
            raise CellSpecError(f"{spec}: protocol {spec.protocol} is not in this matrix "
                                f"({', '.join(m.protocols)})")
        for via in spec.via:
            if via not in m.via:
                raise CellSpecError(f"{spec}: via {via} is not in this matrix "
                                    f"({', '.join(m.via)})")

    def _unmatched(self, requirement: str, what: str, spec: CellSpec,
                   found: Sequence[MatrixCell]) -> CellSpecError:
        """The error for a pattern that names no probed cell: a lab-authoring mistake."""
        head = (f"{requirement}: the {what} pattern {spec} names no probed cell of the matrix "
                "(a mistake in the lab's check, not in the learner's work): ")
        if found:
            notes = Counter(c.note or "not probed" for c in found)
            why = "; ".join(capped([f"{n} x {note}" for note, n in notes.most_common()], 4))
            names = ("the cell it names was" if len(found) == 1
                     else f"the {len(found)} cells it names were")
            return CellSpecError(head + f"{names} not probed ({why})")
        pods = [f"{p} ({','.join(f'{k}={v}' for k, v in sorted(self.labels.get(p, {}).items()))})"
                for p in self.observed.sources]
        return CellSpecError(head + "no pod pair of the matrix matches it; the matrix's pods: "
                             + ", ".join(capped(pods, 12)))

    def _judge(self, cell: MatrixCell, want_allowed: bool) -> tuple[str, str] | None:
        """None when the cell is as wanted; else (kind, one explained line).

        A cell wanted blocked that was REFUSED while the policies allow it is wrong too: the
        traffic got through the policies and only found no listener, so on a port the pod
        does serve it would connect. A cell wanted allowed that was REFUSED is wrong even
        when the policies allow it: the requirement is that the pod answers there."""
        judged = self.expected.cell(cell.source, cell.dest, cell.port, cell.protocol, cell.via)
        verdict = judged.verdict
        if cell.unstable:
            note = f"UNSTABLE: probed twice, answered {seen_text(cell)}"
            return UNSTABLE, cell_line(cell, "allowed" if want_allowed else "blocked", verdict,
                                       note, missing=judged.reason)
        refused_through = (not want_allowed and cell.outcome is Outcome.REFUSED
                           and verdict is not None and verdict.allowed)
        if cell.outcome is not None and not refused_through and \
                (cell.allowed if want_allowed else cell.blocked):
            return None
        expected = "allowed" if want_allowed else "blocked"
        note = ""
        kind = (OVER_PERMISSIVE if cell.allowed or refused_through
                else OVER_RESTRICTIVE if cell.blocked else "other")
        if verdict is not None and cell.outcome is not None and \
                verdict.allowed == want_allowed and (cell.allowed or cell.blocked):
            note = (f"the policies {'allow' if verdict.allowed else 'block'} it, but the cluster "
                    "did not enforce them as written")
        if want_allowed and cell.outcome is Outcome.REFUSED:
            where = f"{cell.protocol}/{cell.dest_port or cell.port} of {cell.dest}"
            if verdict is not None and verdict.allowed:
                note = (f"the policies allow it, but nothing listens on {where}: the "
                        "application must answer there")
                kind = PORT_CLOSED
            elif verdict is None:
                note = f"REFUSED: nothing listens on {where}, or a REJECT rule answered"
        if refused_through:
            note = "REFUSED only because nothing listens there: the policies let it through"
        return kind, cell_line(cell, expected, verdict, note, missing=judged.reason)

    def _fail(self, requirement: str, expected: str, wrong: Sequence[tuple[str, str]],
              total: int, hint: str, flapped: Sequence[MatrixCell] = ()) -> None:
        """Raise the finding for ``wrong`` cells. When every wrong cell is unstable the
        finding is unstable (no verdict: the check is reported unstable) and its hint says
        so, whatever the check's own hint; with one stable wrong cell it is a failure.
        Either way the unstable cells' observations are its evidence."""
        kinds = {k for k, _ in wrong}
        known = {OVER_PERMISSIVE, OVER_RESTRICTIVE, PORT_CLOSED}
        unstable = kinds == {UNSTABLE}
        stable_kinds = kinds - {UNSTABLE}
        key = (UNSTABLE if unstable
               else next(iter(stable_kinds)) if len(stable_kinds) == 1 and stable_kinds <= known
               else "default")
        lines = capped([text for _, text in wrong], MAX_WRONG)
        head = (f"{len(wrong)} of {total} cells unstable" if unstable
                else f"{len(wrong)} of {total} cells wrong")
        body = [head + ":"] + [line for entry in lines for line in entry.splitlines()]
        observed = ("\n" + " " * 12).join(body)
        own = hint and not unstable
        raise CheckFailed(Finding(expected=f"{requirement}: {expected}", observed=observed,
                                  hint=hint if own else POLICY_HINTS[key], probe="matrix",
                                  hint_key=key, hint_is_generic=not own, unstable=unstable,
                                  observations=evidence(flapped)))


def evidence(flapped: Sequence[MatrixCell]) -> tuple[Observation, ...]:
    """Every observation of the unstable cells, each naming its cell in ``extra["cell"]``."""
    return tuple(replace(o, extra={**o.extra, "cell": cell_name(c)})
                 for c in flapped for o in c.observations)


def _lagging(cell: ExpectedCell) -> bool:
    """A difference that rules still being programmed would make (a deny not yet in place
    lets traffic through; an allow not yet in place drops it): worth probing again. Others
    (REFUSED from a port nothing listens on, errors) do not go away by waiting."""
    outcome = cell.observed.outcome
    return (cell.expected is False and outcome is Outcome.CONNECTED) or \
        (cell.expected is True and outcome is Outcome.TIMEOUT)


MatrixKey = tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...], tuple[str, ...], float]


class NetpolGrader:
    """The ``netpol`` fixture: proves enforcement once, then probes and judges matrices.

    ``settle_seconds`` is how long a matrix is re-probed while the cluster does not yet show
    what the policies say, or while a confirmation finds unstable cells (default: the
    cluster's ``propagation_seconds``). ``confirmations`` (0 or 1) says whether a settled
    matrix is probed once more to find cells that flap.
    """

    def __init__(self, cluster: Cluster, *, sources: Mapping[str, str] | None = None,
                 settle_seconds: float | None = None, canary_timeout: float = 30.0,
                 attempts: int = 3, confirmations: int = 1) -> None:
        self.cluster = cluster
        self.sources = dict(sources or {})
        self.settle_seconds = settle_seconds
        self.canary_timeout = canary_timeout
        self.attempts = attempts
        self.confirmations = confirmations
        self._enforcement: Enforcement | None = None
        self._matrices: dict[MatrixKey, PolicyMatrix] = {}

    @property
    def enforcement(self) -> Enforcement:
        """The canary's finding (run on first use, then remembered)."""
        if self._enforcement is None:
            self._enforcement = prove_enforcement(self.cluster, timeout=self.canary_timeout)
        return self._enforcement

    def require_enforcement(self) -> None:
        """Skip when the cluster does not enforce NetworkPolicy; fail when the canary could
        not tell."""
        found = self.enforcement
        if found.enforced:
            return
        if found.enforced is False:
            pytest.skip(f"this cluster does not enforce NetworkPolicy (CNI {found.cni or '?'}): "
                        f"the check cannot judge policies ({found.detail})")
        raise CheckFailed(Finding(
            expected="the canary proves whether this cluster enforces NetworkPolicy",
            observed=found.detail,
            hint="The grader's canary (two pods and a deny policy in their own namespace) "
                 "gave no clear answer, so the policy checks cannot be judged. Look at the "
                 "cluster: are pods starting and reaching each other at all?",
            probe="canary"))

    def matrix(self, namespaces: Sequence[str], ports: Sequence[int],
               protocols: Sequence[str] = ("TCP",), via: Sequence[str] = ("pod-ip",),
               timeout: float = 1.0, *, fresh: bool = False,
               workers: int = WORKERS) -> PolicyMatrix:
        """Probe every pod of ``namespaces`` from every other one and judge it with the
        cluster's policies (cached per argument set for the session).

        ``fresh`` probes again whatever was cached, and caches nothing: for a check that
        changed the cluster (added pods) and must not see, nor leave behind, another
        check's matrix. ``workers``: cells probed at once (see :func:`probe_matrix`)."""
        if isinstance(namespaces, str):
            namespaces = [namespaces]
        key: MatrixKey = (tuple(namespaces), tuple(ports),
                          tuple(normalise_protocols(protocols)), tuple(via), float(timeout))
        if key in self._matrices and not fresh:
            return self._matrices[key]
        self.require_enforcement()
        pods = matrix_pods(self.cluster, list(namespaces))
        if not pods:
            raise CheckFailed(Finding(
                expected=f"running pods with IPs in {', '.join(namespaces)}", observed="none",
                hint="Look at the pods and their events: are they scheduled and running?"))
        settle = self.settle_seconds
        if settle is None:
            settle = self.cluster.capabilities().propagation_seconds
        deadline = time.monotonic() + settle

        def probe(confirm: MatrixResult | None = None) -> MatrixResult:
            return probe_matrix(self.cluster, pods, ports=ports, protocols=protocols, via=via,
                                timeout=timeout, attempts=self.attempts, workers=workers,
                                confirm=confirm)

        while True:
            policies = policy_set(self.cluster, self.sources)
            observed = probe()
            expected = expect_vs_observe(policies, observed)
            if any(map(_lagging, expected.differences)) and time.monotonic() < deadline:
                continue  # rules still being programmed: probe again
            if self.confirmations > 0:
                observed = probe(confirm=observed)
                expected = expect_vs_observe(policies, observed)
                if observed.unstable and time.monotonic() < deadline:
                    continue  # flapping: maybe rules still being written; start over
            break
        result = PolicyMatrix(observed, policies, expected,
                              {p.label: dict(p.labels) for p in pods})
        if not fresh:
            self._matrices[key] = result
        return result

    def explain(self, src: str, dst: str, port: int, protocol: str = "TCP") -> str:
        """Why the cluster's current policies allow or block one cell."""
        return explain(policy_set(self.cluster, self.sources), src, dst, port, protocol)

    def to_dict(self) -> dict[str, Any]:
        return {"enforcement": None if self._enforcement is None else self._enforcement.to_dict(),
                "matrices": len(self._matrices)}
