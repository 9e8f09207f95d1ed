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
from clusters.probing import Outcome
from grader.matrix import MatrixCell, MatrixResult, grid

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


def service_text(cell: MatrixCell) -> str:
    """How a service via reached the pod: ``Service api -> pod port 8080``,
    ``Service api port 80 -> pod port 8080`` when the dialled port is not the cell's,
    ``Service api`` when nothing is translated; "" for pod-ip."""
    if cell.via == "pod-ip":
        return ""
    dialled = cell.target.rsplit(":", 1)[-1] if cell.target else ""
    name = f"Service {cell.service}" if cell.service else "the Service"
    if dialled and dialled != str(cell.port):
        name += f" port {dialled}"
    if cell.dest_port is None:
        return f"{name} -> pod port unknown" if cell.service else ""
    if cell.dest_port == cell.port and name == f"Service {cell.service}":
        return name
    return f"{name} -> pod port {cell.dest_port}"


def cell_name(cell: MatrixCell) -> str:
    """``lab04/web -> lab04/db TCP/5432``; through a Service also the via and the pod port
    the policies judge: ``TCP/80 via service-ip (Service api -> pod port 8080)``."""
    via = ""
    if cell.via != "pod-ip":
        through = service_text(cell)
        via = f" via {cell.via}" + (f" ({through})" if through else "")
    return f"{cell.source} -> {cell.dest} {cell.protocol}/{cell.port}{via}"


def explain_lines(verdict: Verdict | None, missing: str = "",
                  cap: int = MAX_EXPLAIN_LINES) -> list[str]:
    """The verdict's reasons as lines, at most ``cap`` (then "... N more lines").

    A blocked cell is explained by the side(s) that deny it (which policies isolate the
    pod, and why none of their rules matches). An allowed one by both sides, since both
    let it through: the rules that allow it, or that the pod is not isolated for that
    direction (or not judged at all), the side with rules first.
    """
    if verdict is None:
        return [missing or "no policy verdict: a pod of this cell is not in the policy view"]
    sides = [s for s in verdict.deciding() if verdict.allowed or not s.allowed]
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
    reason: str = ""       # why not judged, when expected is None and it is not self

    @property
    def compared(self) -> bool:
        """Both sides exist: a probed cell the policies have a verdict for."""
        return self.expected is not None and self.observed.outcome is not None

    @property
    def closed(self) -> bool:
        """Allowed by the policies and REFUSED: the packet reached the pod, where nothing
        listens on that port. Not a policy difference: the policies did what they say."""
        return self.compared and self.expected is True and \
            self.observed.outcome is Outcome.REFUSED

    @property
    def differs(self) -> bool:
        """Probed, judged, and the observation is not what the policies say (a port closed
        behind an allowing policy is not a difference: see :attr:`closed`)."""
        if not self.compared or self.closed:
            return False
        return not (self.observed.allowed if self.expected else self.observed.blocked)

    @property
    def expected_text(self) -> str:
        return {True: "allowed", False: "blocked", None: "not judged"}[self.expected]

    def line(self) -> str:
        return cell_line(self.observed, self.expected_text, self.verdict, missing=self.reason)

    def closed_line(self) -> str:
        port = self.observed.dest_port
        return (f"{cell_name(self.observed)}: allowed by policy, port closed (REFUSED: nothing "
                f"listens on {self.observed.protocol}/{port} of {self.observed.dest})")

    def to_dict(self) -> dict[str, Any]:
        cell = self.observed
        return {"source": cell.source, "dest": cell.dest, "port": cell.port,
                "protocol": cell.protocol, "via": cell.via, "pod_port": cell.dest_port,
                "expected": self.expected_text,
                "observed": cell.outcome.value if cell.outcome else None,
                "detail": cell.detail or cell.note,
                "explanation": self.verdict.explain() if self.verdict else
                explain_lines(None, self.reason)[0]}


TableKey = tuple[str, str, int, str, str]  # source, dest, port, protocol, via
MARKS = {".": "allowed", "o": "allowed by policy, port closed (REFUSED)", "X": "blocked",
         "?": "not judged", "~": "not probed", "-": "self"}


@dataclass
class ExpectedMatrix:
    """Expected (from ``policies``) and observed (``observed``) for the same cells.

    The expected verdict of a cell dialled through a Service is the one for the pod port
    the Service sends to (policy judges the packet after DNAT), so it can differ between
    vias of the same port.
    """

    observed: MatrixResult
    policies: PolicySet
    cells: list[ExpectedCell] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._index: dict[TableKey, ExpectedCell] = {
            (c.observed.source, c.observed.dest, c.observed.port, c.observed.protocol,
             c.observed.via): c for c in self.cells}

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
    def closed(self) -> list[ExpectedCell]:
        """The cells the policies allow that found nothing listening (REFUSED): matches."""
        return [c for c in self.cells if c.closed]

    @property
    def matches(self) -> bool:
        return not self.differences

    def expected_allowed(self, source: str, dest: str, port: int, protocol: str = "TCP",
                         via: str | None = None) -> bool | None:
        """What the policies say of a cell: True, False, or None when not judged. ``via``
        None means the matrix's first via (through a Service the pod port may differ)."""
        chosen = via or (self.observed.via[0] if self.observed.via else "pod-ip")
        return self.cell(source, dest, port, protocol, chosen).expected

    # ------------------------------------------------------------------ output

    def policy_refs(self) -> list[str]:
        return [p.ref for p in self.policies.policies]

    def render(self, *, details: bool = False, limit: int = MAX_LISTED) -> str:
        """Expected tables, observed tables, then the differing cells explained (and, with
        ``details``, the cells allowed by policy whose port is closed)."""
        refs = self.policy_refs()
        shown = ", ".join(capped(refs, 8))
        head = (f"Expected (from {len(refs)} NetworkPolicies: {shown})" if refs
                else "Expected (no NetworkPolicy in the cluster: every pod is open)")
        tables = [table for protocol in self.observed.protocols
                  for port in self.observed.ports
                  for table in self._expected_tables(port, protocol)]
        parts = [head + "".join(f"\n{t}" for t in tables[:1]), *tables[1:],
                 "Observed\n" + self.observed.render(details=details).rstrip("\n"),
                 self._differences_text(limit, details)]
        return "\n\n".join(parts) + "\n"

    def _differences_text(self, limit: int, details: bool) -> str:
        compared = sum(c.compared for c in self.cells)
        wrong = self.differences
        closed = self.closed
        if not wrong:
            lines = [f"Observed matches expected in all {compared} probed cells."]
        else:
            verb = "differs" if len(wrong) == 1 else "differ"
            lines = [f"{len(wrong)} of {compared} probed cells {verb} from what the policies say:"]
            for entry in capped([c.line() for c in wrong], limit):
                lines.extend("  " + line for line in entry.splitlines())
        if closed:
            they = "cell is" if len(closed) == 1 else "cells are"
            lines.append(f"{len(closed)} {they} allowed by policy, port closed (o): the packets "
                         "reached the pod and nothing listens on that port (REFUSED); that is "
                         "not a policy difference." + ("" if details else " --details lists them."))
            if details:
                lines.extend("  " + c.closed_line() for c in closed[:limit])
                if len(closed) > limit:
                    lines.append(f"  and {len(closed) - limit} more")
        return "\n".join(lines)

    def _mark(self, source: str, dest: str, port: int, protocol: str, via: str) -> str:
        if source == dest:
            return "-"
        found = self._index.get((source, dest, port, protocol, via))
        if found is None:
            return " "
        if found.observed.outcome is None and found.expected is None:
            return "~"
        if found.closed:
            return "o"
        return {True: ".", False: "X", None: "?"}[found.expected]

    def _expected_tables(self, port: int, protocol: str) -> list[str]:
        """One table per group of vias whose marks are the same (usually one for all)."""
        sources, dests = self.observed.sources, self.observed.destinations
        groups: list[tuple[list[str], dict[tuple[str, str], str]]] = []
        for via in self.observed.via:
            marks = {(s, d): self._mark(s, d, port, protocol, via) for s in sources for d in dests}
            same = next((g for g in groups if g[1] == marks), None)
            if same is not None:
                same[0].append(via)
            else:
                groups.append(([via], marks))
        tables = []
        for vias, marks in groups:
            counts = {m: sum(1 for v in marks.values() if v == m) for m in MARKS}
            legend = "   ".join(f"{m} {MARKS[m]} {n}" for m, n in counts.items() if n)
            title = f"{protocol}/{port}" if len(groups) == 1 else \
                f"{protocol}/{port} via {', '.join(vias)}"
            table = grid(title, sources, dests, _lookup(marks), legend or "(no cells)")
            ports = self._pod_ports(port, protocol, vias)
            tables.append(table + (f"\npod ports (after the Service): {ports}" if ports else ""))
        return tables

    def _pod_ports(self, port: int, protocol: str, vias: Sequence[str]) -> str:
        """``lab04/api 8080 (Service api)`` for each destination whose pod port is not
        ``port`` through these vias."""
        found: dict[str, str] = {}
        for c in self.cells:
            cell = c.observed
            if cell.port != port or cell.protocol != protocol or cell.via not in vias \
                    or cell.source == cell.dest or cell.dest_port == port:
                continue
            if cell.dest_port is None and not cell.service:
                continue
            shown = "?" if cell.dest_port is None else str(cell.dest_port)
            found.setdefault(cell.dest, f"{cell.dest} {shown}"
                             + (f" (Service {cell.service})" if cell.service else ""))
        return ", ".join(found[d] for d in self.observed.destinations if d in found)

    def to_dict(self) -> dict[str, Any]:
        expected = [{"source": c.observed.source, "dest": c.observed.dest,
                     "port": c.observed.port, "protocol": c.observed.protocol,
                     "via": c.observed.via, "pod_port": c.observed.dest_port,
                     "allowed": c.expected}
                    for c in self.cells if c.observed.source != c.observed.dest]
        wrong = self.differences
        closed = self.closed
        return {
            "policies": self.policy_refs(),
            "expected": {"ports": list(self.observed.ports),
                         "protocols": list(self.observed.protocols),
                         "via": list(self.observed.via),
                         "sources": list(self.observed.sources),
                         "destinations": list(self.observed.destinations),
                         "cells": expected},
            "observed": self.observed.to_dict(),
            "differences": [c.to_dict() for c in wrong],
            "closed": [c.to_dict() for c in closed],
            "summary": {"compared": sum(c.compared for c in self.cells), "differ": len(wrong),
                        "closed": len(closed)},
        }


def expect_vs_observe(policyset: PolicySet, observed: MatrixResult) -> ExpectedMatrix:
    """Judge every cell of ``observed`` with ``policyset``: what it should have shown.

    A cell is judged on the port the packets reach on the destination pod: its own port by
    pod IP, the Service's targetPort through a Service (policy sees the packet after DNAT).
    """
    verdicts: dict[tuple[str, str, int, str], Verdict | None] = {}
    judged: list[ExpectedCell] = []
    for cell in observed.cells:
        if cell.source == cell.dest:
            judged.append(ExpectedCell(cell, None))
            continue
        port = cell.dest_port
        if port is None:
            judged.append(ExpectedCell(cell, None, None, _unknown_port(cell)))
            continue
        key = (cell.source, cell.dest, port, cell.protocol)
        if key not in verdicts:
            src, dst = policyset.pod(cell.source), policyset.pod(cell.dest)
            verdicts[key] = (policyset.verdict(src, dst, port, cell.protocol)
                             if src is not None and dst is not None else None)
        verdict = verdicts[key]
        judged.append(ExpectedCell(cell, None if verdict is None else verdict.allowed, verdict))
    return ExpectedMatrix(observed, policyset, judged)


def _lookup(marks: dict[tuple[str, str], str]) -> Callable[[str, str], str]:
    return lambda source, dest: marks[(source, dest)]


def _unknown_port(cell: MatrixCell) -> str:
    """Why a cell dialled through a Service cannot be judged: no pod port behind it."""
    if cell.service:
        return (f"not judged: the targetPort of Service {cell.service} for "
                f"{cell.protocol}/{cell.target.rsplit(':', 1)[-1]} names no container port of "
                f"{cell.dest}, so the pod port the policies would judge is unknown")
    if cell.note:
        return f"not judged: {cell.note}"
    return ("not judged: the Service address was given, not looked up, so the pod port "
            "behind it is unknown")
