"""Connectivity matrices: every pod probes every other pod, shown as a truth table.

A matrix answers "who can reach whom" for a set of pods, per port, protocol and *via*: the
pod's own IP (``pod-ip``), the ClusterIP of a Service selecting the destination pod
(``service-ip``), or that Service's DNS name resolved from the source pod (``service-name``).
Cells run in parallel; each cell tries up to ``attempts`` times and stops at the first
CONNECTED, so one lost packet does not paint a cell blocked. A cell is *blocked* only when
every attempt ended REFUSED or TIMEOUT; UNREACHABLE, DNS_ERROR, ERROR and UNSUPPORTED are
kept as themselves and never counted as allowed or blocked, because they say something else
is wrong (no route, a wrong name, a missing pod, an engine limit).

A matrix can be *confirmed* (``probe_matrix(..., confirm=first)``): every probed cell is
probed again, an allowed one up to ``attempts`` times, a blocked one once (a single
connection is enough to disagree), and a cell whose second verdict (allowed, blocked, or
another outcome) differs from the first is *unstable*: it keeps every observation as
evidence, and a grader judges it neither allowed nor blocked.

:meth:`MatrixResult.render` prints one table per (port, protocol, via), rows = sources and
columns = destinations, in the style of cyclonus::

    TCP/80 via pod-ip
                 lab/a  lab/b  lab/c
    lab/a        -      .      X
    lab/b        .      -      X
    lab/c        .      .      -
    . connected 4   X blocked 2 (TIMEOUT 2)   - self 3

:meth:`MatrixResult.to_dict` is the same result for programs (documented in
``docs/reference/cli.md``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from clusters.engine import Cluster
from clusters.errors import ClusterError
from clusters.probing import Observation, Outcome, ProbeSpec, Source

Via = Literal["pod-ip", "service-ip", "service-name"]
VIAS: tuple[str, ...] = ("pod-ip", "service-ip", "service-name")
PROTOCOLS: tuple[str, ...] = ("TCP", "UDP")
#: The outcomes that make a cell blocked (when every attempt ended in one of them).
BLOCKING = frozenset({Outcome.REFUSED, Outcome.TIMEOUT})
#: Outcomes that end a cell's attempts early: trying again cannot change them.
FINAL = frozenset({Outcome.CONNECTED, Outcome.UNSUPPORTED})
CLUSTER_DOMAIN = "cluster.local"
#: Probes in flight at once by default: enough for every cell of a 9-pod x 2-port matrix
#: with two vias (2 x 144 probes besides self) to run together, so a matrix takes about as
#: long as its slowest cell (a blocked one: ``attempts`` x ``timeout``), not several rounds.
WORKERS = 256
#: The most threads a matrix ever uses, whatever is asked: each holds a socket, a thread
#: stack and a file descriptor (well under the usual 1024 limit).
MAX_WORKERS = 512

#: One character per cell state, in legend order.
SYMBOLS: dict[str, tuple[str, str]] = {
    "CONNECTED": (".", "connected"),
    "BLOCKED": ("X", "blocked"),
    "UNREACHABLE": ("U", "unreachable"),
    "DNS_ERROR": ("D", "name did not resolve"),
    "ERROR": ("E", "error"),
    "UNSUPPORTED": ("S", "unsupported by the engine"),
    "UNSTABLE": ("!", "unstable (probed twice, answered differently)"),
    "SELF": ("-", "self"),
    "NOT_PROBED": ("~", "not probed"),
}


@dataclass(frozen=True)
class MatrixPod:
    """A source/destination of a matrix: a running pod with an IP (and its labels, which the
    Service lookup matches against)."""

    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    #: Container ports as (name, protocol, number): a Service's named targetPort is
    #: looked up here ("" for an unnamed port).
    ports: tuple[tuple[str, str, int], ...] = field(default=(), hash=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}"

    def named_port(self, name: str, protocol: str) -> int | None:
        """The number of the container port called ``name`` with ``protocol``, if any."""
        return next((n for pname, proto, n in self.ports if pname == name and proto == protocol),
                    None)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> MatrixPod:
        meta = obj.get("metadata") or {}
        ports = tuple(
            (str(entry.get("name") or ""), str(entry.get("protocol") or "TCP").upper(),
             int(entry["containerPort"]))
            for container in (obj.get("spec") or {}).get("containers") or ()
            for entry in container.get("ports") or ()
            if isinstance(entry.get("containerPort"), int)
            and not isinstance(entry.get("containerPort"), bool))
        return cls(str(meta.get("namespace") or "default"), str(meta["name"]),
                   str((obj.get("status") or {}).get("podIP") or ""),
                   dict(meta.get("labels") or {}), ports)


@dataclass(frozen=True)
class MatrixCell:
    """One (source, destination, port, protocol, via) probe and what it observed."""

    source: str
    dest: str
    port: int
    protocol: str
    via: str
    target: str
    outcome: Outcome | None  # None: not probed (self, or no Service: see note)
    attempts: int
    note: str = ""
    detail: str = ""  # the last attempt's detail, when not connected
    #: The Service dialled (service vias; "" for pod-ip or a Service address given by the
    #: caller) and the port the packets reach on the destination pod: the Service port's
    #: targetPort (a name resolved in the pod's container ports). None when unknown.
    service: str = ""
    pod_port: int | None = None
    #: Confirmed and answered differently (see the module docstring); ``outcome`` is then the
    #: first verdict and ``observations`` tell the whole story.
    unstable: bool = False
    #: Every attempt of this cell, in order (confirmations included).
    observations: tuple[Observation, ...] = field(default=(), compare=False, repr=False)

    @property
    def dest_port(self) -> int | None:
        """The port on the destination pod that NetworkPolicy judges (after Service DNAT):
        ``pod_port``, else ``port`` for a cell dialled by pod IP; None when unknown."""
        if self.pod_port is not None:
            return self.pod_port
        return self.port if self.via == "pod-ip" else None

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.CONNECTED

    @property
    def blocked(self) -> bool:
        return self.outcome in BLOCKING

    @property
    def state(self) -> str:
        """The key of :data:`SYMBOLS` for this cell."""
        if self.outcome is None:
            return "SELF" if self.note == "self" else "NOT_PROBED"
        if self.unstable:
            return "UNSTABLE"
        return "BLOCKED" if self.blocked else self.outcome.value

    @property
    def verdict_state(self) -> str:
        """allowed, blocked or the outcome's name: what a confirmation must agree with."""
        if self.outcome is None:
            return "not probed"
        return "allowed" if self.allowed else "blocked" if self.blocked else self.outcome.value

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.state][0]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "dest": self.dest, "port": self.port,
                "protocol": self.protocol, "via": self.via, "target": self.target,
                "outcome": self.outcome.value if self.outcome else None,
                "attempts": self.attempts, "note": self.note, "detail": self.detail,
                **({"unstable": True, "observations": [o.to_dict() for o in self.observations]}
                   if self.unstable else {})}


def _unique(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


@dataclass
class MatrixResult:
    """The cells of a matrix, with the order of its rows, columns and tables."""

    cells: list[MatrixCell]
    sources: list[str] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sources = self.sources or _unique(c.source for c in self.cells)
        self.destinations = self.destinations or _unique(c.dest for c in self.cells)
        self.ports = self.ports or _unique(c.port for c in self.cells)
        self.protocols = self.protocols or _unique(c.protocol for c in self.cells)
        self.via = self.via or _unique(c.via for c in self.cells)
        self._index = {(c.source, c.dest, c.port, c.protocol, c.via): c for c in self.cells}

    def cell(self, source: str, dest: str, port: int, protocol: str = "TCP",
             via: str = "pod-ip") -> MatrixCell:
        """The cell for ``"ns/pod"`` → ``"ns/pod"``; KeyError when the matrix has none."""
        key = (source, dest, port, protocol.upper(), via)
        if key not in self._index:
            raise KeyError(f"no cell {source} -> {dest} {protocol.upper()}/{port} via {via}")
        return self._index[key]

    def find(self, source: str, dest: str, port: int, protocol: str = "TCP",
             via: str = "pod-ip") -> MatrixCell | None:
        """The cell, or None when the matrix has none."""
        return self._index.get((source, dest, port, protocol.upper(), via))

    @property
    def unstable(self) -> list[MatrixCell]:
        """The cells a confirmation contradicted."""
        return [c for c in self.cells if c.unstable]

    def tables(self) -> list[tuple[int, str, str]]:
        """The (port, protocol, via) of each table, in order."""
        return [(p, proto, v) for v in self.via for proto in self.protocols for p in self.ports]

    def summary(self, cells: Iterable[MatrixCell] | None = None) -> dict[str, int]:
        """Counts: probed, allowed, blocked, other (probed, neither), not_probed."""
        chosen = list(self.cells if cells is None else cells)
        probed = [c for c in chosen if c.outcome is not None]
        allowed = sum(c.allowed for c in probed)
        blocked = sum(c.blocked for c in probed)
        return {"probed": len(probed), "allowed": allowed, "blocked": blocked,
                "other": len(probed) - allowed - blocked,
                "not_probed": len(chosen) - len(probed)}

    def to_dict(self) -> dict[str, Any]:
        return {"ports": list(self.ports), "protocols": list(self.protocols),
                "via": list(self.via), "sources": list(self.sources),
                "destinations": list(self.destinations),
                "cells": [c.to_dict() for c in self.cells], "summary": self.summary()}

    def render(self, *, details: bool = False, short_after: int = 12) -> str:
        """Every table, then an overall summary line.

        Column headers are the destinations' ``ns/pod`` labels; when one is longer than
        ``short_after`` characters they become numbers and a key lists them. ``details``
        adds a line per cell that was not connected (blocked, errors, not probed but self).
        """
        parts = [self._render_table(t, details, short_after) for t in self.tables()]
        totals = self.summary()
        parts.append(f"{totals['probed']} probes: {totals['allowed']} allowed, "
                     f"{totals['blocked']} blocked, {totals['other']} other; "
                     f"{totals['not_probed']} cells not probed")
        return "\n\n".join(parts) + "\n"

    def _render_table(self, table: tuple[int, str, str], details: bool, short_after: int) -> str:
        port, protocol, via = table
        found = {(s, d): self._index.get((s, d, port, protocol, via))
                 for s in self.sources for d in self.destinations}
        cells = [c for c in found.values() if c is not None]

        def mark(source: str, dest: str) -> str:
            cell = found[(source, dest)]
            return cell.symbol if cell else " "

        text = grid(f"{protocol}/{port} via {via}", self.sources, self.destinations, mark,
                    _legend(cells), short_after)
        if details:
            text += "".join("\n" + _detail(c) for c in cells
                            if (not c.allowed or c.unstable) and c.note != "self")
        return text


def grid(title: str, sources: Sequence[str], dests: Sequence[str],
         mark: Callable[[str, str], str], legend: str, short_after: int = 12) -> str:
    """A truth table: rows are sources, columns destinations, one mark per cell, then the
    legend. Column headers become numbers (with a key) when a name is longer than
    ``short_after``. Shared by the observed matrix and the expected-vs-observed view."""
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


def _legend(cells: Sequence[MatrixCell]) -> str:
    """The symbols this table uses, with counts; blocked cells say which outcomes they were."""
    states = Counter(c.state for c in cells)
    parts = []
    for state, (symbol, meaning) in SYMBOLS.items():
        if not states[state]:
            continue
        text = f"{symbol} {meaning} {states[state]}"
        if state == "BLOCKED":
            kinds = Counter(c.outcome.value for c in cells if c.blocked and c.outcome)
            text += " (" + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")"
        parts.append(text)
    return "   ".join(parts) if parts else "(no cells)"


def seen_text(cell: MatrixCell) -> str:
    """``CONNECTED, TIMEOUT, ERROR (why), CONNECTED``: every attempt of a cell, in order.

    An ERROR says why the first time each reason appears: an error is the probe's own
    failure, not the network's answer, and its reason is what explains the instability."""
    parts: list[str] = []
    told: set[str] = set()
    for seen in cell.observations:
        text = seen.outcome.value
        if seen.outcome is Outcome.ERROR and seen.detail and seen.detail not in told:
            told.add(seen.detail)
            text += f" ({seen.detail})"
        parts.append(text)
    return ", ".join(parts)


def _detail(cell: MatrixCell) -> str:
    what = cell.outcome.value if cell.outcome else "not probed"
    if cell.unstable:
        what = f"UNSTABLE ({seen_text(cell)})"
    extra = "; ".join(x for x in (cell.note, cell.detail) if x)
    dialled = f" ({cell.target})" if cell.target else ""
    return f"  {cell.source} -> {cell.dest}{dialled}: {what}" + (f": {extra}" if extra else "")


# --------------------------------------------------------------------------- probing


def _one_of(values: Iterable[str], allowed: Sequence[str], what: str, upper: bool) -> list[str]:
    found = []
    for value in values:
        norm = value.strip().upper() if upper else value.strip()
        if norm not in allowed:
            shown = ", ".join(a.lower() if upper else a for a in allowed)
            raise ValueError(f"{what} {value!r}: use one of {shown}")
        found.append(norm)
    return _unique(found)


def normalise_protocols(protocols: Iterable[str]) -> list[str]:
    """``tcp``/``UDP`` → ``TCP``/``UDP``; ValueError for anything else."""
    return _one_of(protocols, PROTOCOLS, "protocol", upper=True)


def check_via(via: Iterable[str]) -> list[str]:
    return _one_of(via, VIAS, "via", upper=False)


def check_ports(ports: Iterable[int]) -> list[int]:
    ports = list(ports)
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"port {port!r}: a port is a number from 1 to 65535")
    return _unique(ports)


def matrix_pods(cluster: Cluster, namespaces: Sequence[str]) -> list[MatrixPod]:
    """The running pods with an IP in ``namespaces`` (not being deleted), by namespace and name."""
    found = []
    for ns in _unique(namespaces):
        for obj in cluster.get("Pod", ns):
            meta, status = obj.get("metadata") or {}, obj.get("status") or {}
            if meta.get("deletionTimestamp") or status.get("phase") != "Running" \
                    or not status.get("podIP"):
                continue
            found.append(MatrixPod.from_object(obj))
    return sorted(found, key=lambda p: (p.namespace, p.name))


@dataclass(frozen=True)
class _Job:
    source: MatrixPod
    dest: MatrixPod
    port: int
    protocol: str
    via: str
    target: str
    host: str | None  # what the probe dials; None: not probed
    note: str = ""
    service: str = ""
    pod_port: int | None = None


class ServiceIndex:
    """Finds the Service a destination is reached through: same namespace, a selector that
    matches the pod's labels, and the port (as a Service port, else as a targetPort, a name
    being resolved in the pod's container ports, dialling the Service port that forwards to
    it) with the protocol. The cell then records the pod port the Service sends to."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._by_ns: dict[str, list[dict[str, Any]]] = {}

    def services(self, namespace: str) -> list[dict[str, Any]]:
        if namespace not in self._by_ns:
            listed = self.cluster.get("Service", namespace)
            self._by_ns[namespace] = sorted(listed, key=lambda s: s["metadata"]["name"])
        return self._by_ns[namespace]

    def find(self, pod: MatrixPod, port: int, protocol: str,
             via: str) -> tuple[dict[str, Any], int] | str:
        """(Service, port to dial) or why there is none."""
        selecting = [s for s in self.services(pod.namespace) if _selects(s, pod)]
        if not selecting:
            return f"no Service in {pod.namespace} selects {pod.label}"
        for by_target in (False, True):
            for svc in selecting:
                spec = svc.get("spec") or {}
                if via == "service-ip" and spec.get("clusterIP") in (None, "", "None"):
                    continue
                for entry in spec.get("ports") or ():
                    if str(entry.get("protocol") or "TCP").upper() != protocol:
                        continue
                    if (target_port(entry, pod, protocol) if by_target
                            else entry.get("port")) == port:
                        return svc, int(entry["port"])
        names = ", ".join(s["metadata"]["name"] for s in selecting)
        extra = " with a ClusterIP" if via == "service-ip" else ""
        return f"no Service{extra} selecting {pod.label} has {protocol}/{port} ({names} do not)"


def service_entry(svc: Mapping[str, Any], port: int, protocol: str) -> Mapping[str, Any] | None:
    """The entry of ``svc``'s ports with that Service port and protocol."""
    for entry in (svc.get("spec") or {}).get("ports") or ():
        if entry.get("port") == port and str(entry.get("protocol") or "TCP").upper() == protocol:
            return dict(entry)
    return None


def target_port(entry: Mapping[str, Any], pod: MatrixPod, protocol: str) -> int | None:
    """Where a Service port sends packets on ``pod``: its targetPort (the Service port when
    left out), a name being looked up in the pod's container ports with the Service port's
    protocol; None when the pod declares no such name (it is then no endpoint for it)."""
    target = entry.get("targetPort", entry.get("port"))
    if isinstance(target, bool):
        return None
    if isinstance(target, int):
        return target
    text = str(target).strip()
    if text.isdigit():
        return int(text)
    return pod.named_port(text, protocol)


def _selects(svc: Mapping[str, Any], pod: MatrixPod) -> bool:
    spec = svc.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector or spec.get("type") == "ExternalName":
        return False
    return all(pod.labels.get(k) == v for k, v in selector.items())


def _jobs(pods: Sequence[MatrixPod], ports: Sequence[int], protocols: Sequence[str],
          via: Sequence[str], services: Mapping[str, str] | None,
          index: ServiceIndex) -> list[_Job]:
    jobs = []
    for v in via:
        for protocol in protocols:
            for port in ports:
                for dest in pods:
                    found = _destination(dest, port, protocol, v, services, index)
                    target = f"{_bracket(found.host)}:{found.port}" if found.host else ""
                    for source in pods:
                        if source == dest:
                            jobs.append(_Job(source, dest, port, protocol, v, target, None, "self",
                                             found.service, found.pod_port))
                        else:
                            jobs.append(_Job(source, dest, port, protocol, v, target, found.host,
                                             found.note, found.service, found.pod_port))
    return jobs


@dataclass(frozen=True)
class _Dial:
    """Where one destination is dialled: host (None: not probed), port, a note, and the
    Service and destination pod port behind it."""

    host: str | None
    port: int
    note: str = ""
    service: str = ""
    pod_port: int | None = None


def _destination(dest: MatrixPod, port: int, protocol: str, via: str,
                 services: Mapping[str, str] | None, index: ServiceIndex) -> _Dial:
    if via == "pod-ip":
        return _Dial(dest.ip, port, pod_port=port)
    if services is not None:
        given = services.get(dest.label)
        return _Dial(given, port) if given else _Dial(None, port,
                                                      f"no Service given for {dest.label}")
    found = index.find(dest, port, protocol, via)
    if isinstance(found, str):
        return _Dial(None, port, found)
    svc, svc_port = found
    name = svc["metadata"]["name"]
    entry = service_entry(svc, svc_port, protocol)
    pod_port = target_port(entry, dest, protocol) if entry is not None else None
    note = f"Service {name}" + (f" port {svc_port} -> {port}" if svc_port != port else "")
    if via == "service-ip":
        return _Dial(str(svc["spec"]["clusterIP"]), svc_port, note, name, pod_port)
    return _Dial(f"{name}.{dest.namespace}.svc.{CLUSTER_DOMAIN}", svc_port, note, name, pod_port)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _port_of(target: str) -> int:
    return int(target.rsplit(":", 1)[1])


def _skipped(job: _Job) -> MatrixCell:
    return MatrixCell(job.source.label, job.dest.label, job.port, job.protocol, job.via,
                      job.target, None, 0, job.note, service=job.service, pod_port=job.pod_port)


def _run_cell(probe: Callable[[ProbeSpec], Observation], job: _Job, timeout: float,
              attempts: int) -> MatrixCell:
    if job.host is None:
        return _skipped(job)
    spec = ProbeSpec(kind="tcp" if job.protocol == "TCP" else "udp",
                     source=Source(job.source.namespace, job.source.name), target=job.host,
                     port=_port_of(job.target), timeout=timeout)
    seen: list[Observation] = []
    for _ in range(max(1, attempts)):
        try:
            seen.append(probe(spec))
        except ClusterError as err:
            seen.append(Observation(Outcome.ERROR, str(err)))
        if seen[-1].outcome in FINAL:
            break
    outcome = _verdict(seen)
    detail = "" if outcome is Outcome.CONNECTED else seen[-1].detail
    return MatrixCell(job.source.label, job.dest.label, job.port, job.protocol, job.via,
                      job.target, outcome, len(seen), job.note, detail, job.service, job.pod_port,
                      observations=tuple(seen))


def _confirm_cell(probe: Callable[[ProbeSpec], Observation], job: _Job, prior: MatrixCell,
                  timeout: float, attempts: int) -> MatrixCell:
    """Probe a cell again and mark it unstable when the new verdict is not the first one.

    A blocked cell is tried once: one connection is enough to contradict it. The first
    verdict stays the cell's outcome; the observations of both rounds are kept."""
    again = _run_cell(probe, job, timeout, 1 if prior.blocked else attempts)
    return replace(prior, attempts=prior.attempts + again.attempts,
                   observations=prior.observations + again.observations,
                   unstable=prior.unstable or again.verdict_state != prior.verdict_state)


def _verdict(seen: Sequence[Observation]) -> Outcome:
    """CONNECTED if any attempt connected; blocked (the last outcome) only when every attempt
    was REFUSED or TIMEOUT; else the last outcome that was neither."""
    if any(o.outcome is Outcome.CONNECTED for o in seen):
        return Outcome.CONNECTED
    other = [o.outcome for o in seen if o.outcome not in BLOCKING]
    return other[-1] if other else seen[-1].outcome


def probe_matrix(cluster: Cluster, pods: Sequence[MatrixPod], *, ports: Sequence[int],
                 protocols: Sequence[str] = ("TCP",), via: Sequence[str] = ("pod-ip",),
                 timeout: float = 1.0, attempts: int = 3, workers: int = WORKERS,
                 services: Mapping[str, str] | None = None,
                 confirm: MatrixResult | None = None) -> MatrixResult:
    """Probe every pod from every other pod, in parallel; see the module docstring.

    Up to ``workers`` cells (at most :data:`MAX_WORKERS`) are probed at once, each cell's
    attempts one after the other.

    ``services`` maps ``"ns/pod"`` to the ClusterIP or DNS name to dial for that destination
    (for the service vias); without it, the Service is looked up in the cluster.
    ``confirm`` is an earlier result of the same matrix: its probed cells are probed again
    and come back with the first verdict, both rounds' observations, and ``unstable`` set
    where the second verdict differs (cells it lacks are probed as new ones).
    Raises ValueError for a bad port, protocol or via.
    """
    port_list = check_ports(ports)
    proto_list = normalise_protocols(protocols)
    via_list = check_via(via)
    if not port_list or not proto_list or not via_list:
        raise ValueError("a matrix needs at least one port, one protocol and one via")
    if attempts < 1 or timeout <= 0:
        raise ValueError("attempts must be at least 1 and timeout positive")
    jobs = _jobs(list(pods), port_list, proto_list, via_list, services, ServiceIndex(cluster))
    live = [i for i, j in enumerate(jobs) if j.host is not None]
    done: dict[int, MatrixCell] = {}
    if live:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, MAX_WORKERS, len(live))),
                                thread_name_prefix="matrix") as pool:
            futures = {i: _submit(pool, cluster.probe, jobs[i], timeout, attempts, confirm)
                       for i in live}
            done = {i: fut.result() for i, fut in futures.items()}
    cells = [done[i] if i in done else _skipped(job) for i, job in enumerate(jobs)]
    labels = [p.label for p in pods]
    return MatrixResult(cells, sources=labels, destinations=labels, ports=port_list,
                        protocols=proto_list, via=via_list)


def _submit(pool: ThreadPoolExecutor, probe: Callable[[ProbeSpec], Observation], job: _Job,
            timeout: float, attempts: int, confirm: MatrixResult | None) -> Future[MatrixCell]:
    """Probe a cell, or confirm it when ``confirm`` has a probed verdict for it."""
    prior = confirm.find(job.source.label, job.dest.label, job.port, job.protocol,
                         job.via) if confirm is not None else None
    if prior is not None and prior.outcome is not None:
        return pool.submit(_confirm_cell, probe, job, prior, timeout, attempts)
    return pool.submit(_run_cell, probe, job, timeout, attempts)
