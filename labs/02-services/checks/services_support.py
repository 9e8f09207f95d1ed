"""What lab 02's checks share: reading Services, matching selectors, sampling a Service's
backends, and asking the cluster DNS from the client pod.

Every helper that can fail a check raises :class:`~grader.expectations.CheckFailed` with a
finding that says what was expected, what was found and where to look, so the check
functions stay short and read like the task.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clusters.engine import find
from grader.dns import DnsSettled
from grader.expectations import CheckFailed, Finding
from grader.fixtures import PodRef, Prober
from grader.settle import Settled

NS = "lab02"
CLIENT = f"{NS}/client"
ZONE = "cluster.local"


def fqdn(name: str) -> str:
    """``db-0.db`` → ``db-0.db.lab02.svc.cluster.local.`` (absolute: no search list)."""
    return f"{name}.{NS}.svc.{ZONE}."


# --------------------------------------------------------------------------- objects


def service(cluster: Any, name: str, hint: str = "") -> dict[str, Any]:
    """The Service ``lab02/name`` as the cluster holds it; a missing one fails the check
    (with ``hint``, or a generic one)."""
    found = find(cluster, "Service", NS, name)
    if found:
        return dict(found[0])
    present = sorted(s["metadata"]["name"] for s in cluster.get("Service", NS))
    raise CheckFailed(Finding(
        expected=f"a Service named {name} in namespace {NS}",
        observed="Services in lab02: " + (", ".join(present) if present else "none"),
        hint=hint or f"Write the {name} Service in your workspace's services.yaml "
        f"(namespace {NS}); `lab check 02` applies every file of the workspace before it "
        "checks.",
    ))


def selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """Service selector semantics: every key=value must match; an empty one selects nothing
    (a Service without a selector gets no endpoints from the control plane)."""
    if not selector:
        return False
    return all(labels.get(key) == value for key, value in selector.items())


#: Labels the workload controllers add to every pod they make; nobody selects on them.
CONTROLLER_LABELS = frozenset({"pod-template-hash", "controller-revision-hash",
                               "statefulset.kubernetes.io/pod-name", "apps.kubernetes.io/pod-index"})


def labels_text(labels: Mapping[str, str]) -> str:
    """``app=api,version=v1``: the labels a person would select on, sorted."""
    shown = sorted((k, v) for k, v in labels.items() if k not in CONTROLLER_LABELS)
    return ",".join(f"{k}={v}" for k, v in shown) or "no labels"


def selector_report(selector: Mapping[str, str] | None, wanted: Sequence[PodRef],
                    everyone: Sequence[PodRef]) -> tuple[list[str], list[str]]:
    """(pods of ``wanted`` the selector misses, pods outside ``wanted`` it picks up)."""
    want_names = {p.name for p in wanted}
    missed = [f"{p.name} ({labels_text(p.labels)})" for p in wanted
              if not selects(selector, p.labels)]
    extra = [f"{p.name} ({labels_text(p.labels)})" for p in everyone
             if p.name not in want_names and selects(selector, p.labels)]
    return missed, extra


def describe_ports(ports: Iterable[Mapping[str, Any]]) -> str:
    """``http 80→http/TCP, 443→8443/TCP (nodePort 30443)``: a Service's ports in one line."""
    shown = []
    for port in ports:
        text = f"{port.get('port')}→{port.get('targetPort', port.get('port'))}"
        text += f"/{port.get('protocol', 'TCP')}"
        if port.get("name"):
            text = f"{port['name']} {text}"
        if port.get("nodePort"):
            text += f" (nodePort {port['nodePort']})"
        shown.append(text)
    return ", ".join(shown) or "no ports"


def node_addresses(cluster: Any) -> list[tuple[str, str]]:
    """(node name, InternalIP) of every node, by name: where a NodePort must answer."""
    found = []
    for node in cluster.get("Node"):
        addresses = (node.get("status") or {}).get("addresses") or []
        internal = [a.get("address") for a in addresses if a.get("type") == "InternalIP"]
        if internal and internal[0]:
            found.append((str(node["metadata"]["name"]), str(internal[0])))
    return sorted(found)


# --------------------------------------------------------------------------- sampling


@dataclass
class Tally:
    """Who answered a series of requests: pod names counted, failures by outcome."""

    answered: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    def add(self, settled: Settled) -> None:
        if settled.connected and settled.body:
            self.answered[settled.body.strip()] += 1
        else:
            self.failed[str(settled.outcome)] += 1

    @property
    def total(self) -> int:
        return sum(self.answered.values()) + sum(self.failed.values())

    def describe(self) -> str:
        parts = [f"{name}: {count}" for name, count in sorted(self.answered.items())]
        parts += [f"{outcome}: {count}" for outcome, count in sorted(self.failed.items())]
        return f"{self.total} requests: " + (", ".join(parts) or "none")


def single_shot(probe: Prober) -> Prober:
    """A prober that sends exactly one request per call: no settling, no confirmations.

    Settling hides what load balancing does; a series of single requests shows it.
    """
    return Prober(probe.cluster, probe.pods, settle_seconds=0.0,
                  namespaces=probe.namespaces, confirmations=0)


def sample(probe: Prober, url: str, *, wanted: Iterable[str] = (), at_least: int = 24,
           at_most: int = 45) -> Tally:
    """Request ``url`` from the client, one connection at a time, and count who answered.

    Stops after ``at_least`` requests once every name in ``wanted`` has answered, and
    after ``at_most`` requests in any case. With three equally likely backends, 45 requests
    miss one of them with a probability below 10⁻⁷; and ``at_least`` requests are enough
    for a fourth backend that should not be there (an unready pod published anyway) to
    show up, but for a chance of (3/4)²⁴ ≈ 0.1 %.
    """
    shots = single_shot(probe)
    tally = Tally()
    wanted_names = set(wanted)
    while tally.total < at_most:
        tally.add(shots.http(CLIENT, url))
        if tally.total >= at_least and wanted_names <= set(tally.answered):
            break
    return tally


# --------------------------------------------------------------------------- DNS


def ask_dns(probe: Prober, name: str, qtype: str = "A", *,
            answers: Sequence[str] | None = None) -> DnsSettled:
    """Query ``name`` from the client pod, through its resolv.conf's nameserver.

    ``answers`` makes the probe settle until the cluster DNS answers exactly that (records
    appear a moment after the objects); the result is returned either way, for the check
    to compare and explain.
    """
    return probe.dns(CLIENT, name, type=qtype, answers=answers)


def same_name(a: str, b: str) -> bool:
    """DNS names compare without case and without the final dot."""
    return a.rstrip(".").lower() == b.rstrip(".").lower()
