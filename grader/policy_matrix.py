"""Expected vs observed: what the NetworkPolicies say a matrix should show, and where it does not.

The expected side comes from the pure policy engine (:class:`clusters.netpol.engine.PolicySet`)
over the cluster's policies, pods and namespaces; the observed side is a probed
:class:`~grader.matrix.MatrixResult`. Like cyclonus, :meth:`ExpectedMatrix.render` prints
the expected truth table, the observed one, and then every cell that differs with the
verdict that explains it (which rule allows it, or which policies isolate the pod and why
none of their rules matches)::

    Expected (from 2 NetworkPolicies: lab04/default-deny, lab04/api-ingress)
    TCP/8080
                   lab04/api  lab04/db  lab04/web
    lab04/api      -          X         X
    ...
    1 of 6 probed cells differs from what the policies say:
      lab04/web -> lab04/db TCP/8080 via pod-ip: expected blocked, observed CONNECTED
          lab04/db is isolated for ingress by lab04/default-deny; none allows ...

The helpers that write one wrong cell per line (:func:`cell_line`) are shared with the
``netpol`` fixture's expectations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clusters.netpol.engine import PolicySet, Verdict
from grader.matrix import MatrixCell, MatrixResult

#: Most differing cells listed by :meth:`ExpectedMatrix.render` before "and N more".
MAX_LISTED = 20
#: Most lines of one verdict's explanation shown under a cell.
MAX_EXPLAIN_LINES = 6
INDENT = "      "


def observed_text(cell: MatrixCell) -> str:
    """``CONNECTED``, ``TIMEOUT``, ``ERROR: why``, ``not probed: why``."""
    if cell.outcome is None:
        return f"not probed ({cell.note})" if cell.note else "not probed"
    if cell.allowed or cell.blocked or not cell.detail:
        return cell.outcome.value
    return f"{cell.outcome.value}: {cell.detail}"


def cell_name(cell: MatrixCell) -> str:
    """``lab04/web -> lab04/db TCP/5432`` (plus ``via ...`` when not the pod IP)."""
    via = "" if cell.via == "pod-ip" else f" via {cell.via}"
    return f"{cell.source} -> {cell.dest} {cell.protocol}/{cell.port}{via}"


def explain_lines(verdict: Verdict | None, missing: str = "",
                  cap: int = MAX_EXPLAIN_LINES) -> list[str]:
    """The verdict's reasons as lines, at most ``cap`` (then "... N more lines").

    A blocked cell is explained by the side(s) that deny it (which policies isolate the
    pod, and why none of their rules matches); an allowed one by the rules that allow it
    (egress and/or ingress), else by the destination not being isolated for ingress.
    """
    if verdict is None:
        return [missing or "no policy verdict: a pod of this cell is not in the policy view"]
    if verdict.allowed:
        sides = [s for s in (verdict.egress, verdict.ingress) if s.allowed_by] or \
            [verdict.ingress if not verdict.ingress.exempt else verdict.deciding()[0]]
    else:
        sides = [s for s in verdict.deciding() if not s.allowed]
    lines = [line.strip() for side in sides for line in side.explain().splitlines()
             if line.strip()]
    if len(lines) > cap:
        lines = [*lines[:cap - 1], f"... ({len(lines) - cap + 1} more lines)"]
    return lines


def cell_line(cell: MatrixCell, expected: str, verdict: Verdict | None,
              note: str = "", missing: str = "") -> str:
    """One wrong cell: what was expected, what was observed, and the policies' verdict.

    The first explanation line follows ``; `` on the same line; further lines are indented
    under it, so each wrong cell reads as one entry.
    """
    lines = explain_lines(verdict, missing)
    head = f"{cell_name(cell)}: expected {expected}, observed {observed_text(cell)}"
    if note:
        head += f" ({note})"
    head += f"; {lines[0]}"
    return "\n".join([head, *(INDENT + line for line in lines[1:])])


def capped(entries: Sequence[str], limit: int) -> list[str]:
    """At most ``limit`` entries, then ``and N more``."""
    if len(entries) <= limit:
        return list(entries)
    return [*entries[:limit], f"and {len(entries) - limit} more"]


@dataclass(frozen=True)
class ExpectedCell:
    """One observed cell with what the policies expect of it."""

    observed: MatrixCell
    expected: bool | None  # True allowed, False blocked, None not judged (self, unknown pod)
    verdict: Verdict | None = None

    @property
    def compared(self) -> bool:
        """Both sides exist: a probed cell the policies have a verdict for."""
        return self.expected is not None and self.observed.outcome is not None

    @property
    def differs(self) -> bool:
        """Probed, judged, and the observation is not what the policies say."""
        if not self.compared:
            return False
        return not (self.observed.allowed if self.expected else self.observed.blocked)

    @property
    def expected_text(self) -> str:
        return {True: "allowed", False: "blocked", None: "not judged"}[self.expected]

    def line(self) -> str:
        return cell_line(self.observed, self.expected_text, self.verdict)

    def to_dict(self) -> dict[str, Any]:
        cell = self.observed
        return {"source": cell.source, "dest": cell.dest, "port": cell.port,
                "protocol": cell.protocol, "via": cell.via,
                "expected": self.expected_text,
                "observed": cell.outcome.value if cell.outcome else None,
                "detail": cell.detail or cell.note,
                "explanation": self.verdict.explain() if self.verdict else
                explain_lines(None)[0]}


@dataclass
class ExpectedMatrix:
    """Expected (from ``policies``) and observed (``observed``) for the same cells."""

    observed: MatrixResult
    policies: PolicySet
    cells: list[ExpectedCell] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._index = {(c.observed.source, c.observed.dest, c.observed.port,
                        c.observed.protocol, c.observed.via): c for c in self.cells}
        self._expected: dict[tuple[str, str, int, str], bool | None] = {}
        for c in self.cells:  # the same for every via: policy judges the pod after DNAT
            self._expected.setdefault((c.observed.source, c.observed.dest, c.observed.port,
                                       c.observed.protocol), c.expected)

    def cell(self, source: str, dest: str, port: int, protocol: str = "TCP",
             via: str = "pod-ip") -> ExpectedCell:
        key = (source, dest, port, protocol.upper(), via)
        if key not in self._index:
            raise KeyError(f"no cell {source} -> {dest} {protocol.upper()}/{port} via {via}")
        return self._index[key]

    @property
    def differences(self) -> list[ExpectedCell]:
        """The probed cells whose observation is not what the policies say."""
        return [c for c in self.cells if c.differs]

    @property
    def matches(self) -> bool:
        return not self.differences

    def expected_allowed(self, source: str, dest: str, port: int,
                         protocol: str = "TCP") -> bool | None:
        """What the policies say of a cell (any via): True, False, or None when not judged."""
        key = (source, dest, port, protocol.upper())
        if key in self._expected:
            return self._expected[key]
        raise KeyError(f"no cell {source} -> {dest} {protocol.upper()}/{port}")

    # ------------------------------------------------------------------ output

    def policy_refs(self) -> list[str]:
        return [p.ref for p in self.policies.policies]

    def render(self, *, details: bool = False, limit: int = MAX_LISTED) -> str:
        """Expected tables, observed tables, then the differing cells explained."""
        refs = self.policy_refs()
        shown = ", ".join(capped(refs, 8))
        head = (f"Expected (from {len(refs)} NetworkPolicies: {shown})" if refs
                else "Expected (no NetworkPolicy in the cluster: every pod is open)")
        tables = [self._expected_table(port, protocol) for protocol in self.observed.protocols
                  for port in self.observed.ports]
        parts = [head + "".join(f"\n{t}" for t in tables[:1]), *tables[1:],
                 "Observed\n" + self.observed.render(details=details).rstrip("\n"),
                 self._differences_text(limit)]
        return "\n\n".join(parts) + "\n"

    def _differences_text(self, limit: int) -> str:
        compared = sum(c.compared for c in self.cells)
        wrong = self.differences
        if not wrong:
            return f"Observed matches expected in all {compared} probed cells."
        verb = "differs" if len(wrong) == 1 else "differ"
        lines = [f"{len(wrong)} of {compared} probed cells {verb} from what the policies say:"]
        for entry in capped([c.line() for c in wrong], limit):
            lines.extend("  " + line for line in entry.splitlines())
        return "\n".join(lines)

    def _expected_table(self, port: int, protocol: str) -> str:
        def mark(source: str, dest: str) -> str:
            if source == dest:
                return "-"
            key = (source, dest, port, protocol)
            if key not in self._expected:
                return " "
            return {True: ".", False: "X", None: "?"}[self._expected[key]]

        marks = {(s, d): mark(s, d) for s in self.observed.sources
                 for d in self.observed.destinations}
        counts = {m: sum(1 for v in marks.values() if v == m) for m in (".", "X", "?", "-")}
        names = {".": "allowed", "X": "blocked", "?": "not judged", "-": "self"}
        legend = "   ".join(f"{m} {names[m]} {n}" for m, n in counts.items() if n)
        return grid(f"{protocol}/{port}", self.observed.sources, self.observed.destinations,
                    lambda s, d: marks[(s, d)], legend or "(no cells)")

    def to_dict(self) -> dict[str, Any]:
        expected = []
        for protocol in self.observed.protocols:
            for port in self.observed.ports:
                for source in self.observed.sources:
                    for dest in self.observed.destinations:
                        key = (source, dest, port, protocol)
                        if source != dest and key in self._expected:
                            expected.append({"source": source, "dest": dest, "port": port,
                                             "protocol": protocol,
                                             "allowed": self._expected[key]})
        wrong = self.differences
        return {
            "policies": self.policy_refs(),
            "expected": {"ports": list(self.observed.ports),
                         "protocols": list(self.observed.protocols),
                         "sources": list(self.observed.sources),
                         "destinations": list(self.observed.destinations),
                         "cells": expected},
            "observed": self.observed.to_dict(),
            "differences": [c.to_dict() for c in wrong],
            "summary": {"compared": sum(c.compared for c in self.cells), "differ": len(wrong)},
        }


def grid(title: str, sources: Sequence[str], dests: Sequence[str],
         mark: Callable[[str, str], str], legend: str, short_after: int = 12) -> str:
    """A truth table laid out like :meth:`MatrixResult.render`'s (numbered columns when a
    name is longer than ``short_after``)."""
    short = any(len(d) > short_after for d in dests)
    heads = [str(i) for i in range(1, len(dests) + 1)] if short else list(dests)
    number = {d: str(i) for i, d in enumerate(dests, 1)}
    rows = [f"{number[s]} {s}" if short and s in number else s for s in sources]
    first = max([len(r) for r in rows] + [1])
    widths = [max(len(h), 1) for h in heads]
    lines = [title, (" " * first + "  " + "  ".join(
        h.ljust(w) for h, w in zip(heads, widths, strict=True))).rstrip()]
    for source, row in zip(sources, rows, strict=True):
        marks = [mark(source, d).ljust(w) for d, w in zip(dests, widths, strict=True)]
        lines.append((row.ljust(first) + "  " + "  ".join(marks)).rstrip())
    if short:
        lines.append("columns: " + ", ".join(f"{number[d]} {d}" for d in dests))
    lines.append(legend)
    return "\n".join(lines)


def expect_vs_observe(policyset: PolicySet, observed: MatrixResult) -> ExpectedMatrix:
    """Judge every cell of ``observed`` with ``policyset``: what it should have shown."""
    verdicts: dict[tuple[str, str, int, str], Verdict | None] = {}
    judged: list[ExpectedCell] = []
    for cell in observed.cells:
        if cell.source == cell.dest:
            judged.append(ExpectedCell(cell, None))
            continue
        key = (cell.source, cell.dest, cell.port, cell.protocol)
        if key not in verdicts:
            src, dst = policyset.pod(cell.source), policyset.pod(cell.dest)
            verdicts[key] = (policyset.verdict(src, dst, cell.port, cell.protocol)
                             if src is not None and dst is not None else None)
        verdict = verdicts[key]
        judged.append(ExpectedCell(cell, None if verdict is None else verdict.allowed, verdict))
    return ExpectedMatrix(observed, policyset, judged)
