"""The one seam between the course and a cluster: :class:`Engine` and :class:`Cluster`.

An *engine* makes and removes clusters (``local``, ``kind``, ``context``). A *cluster* is a
running one: apply/get/delete objects, exec in pods and nodes, probe. Labs never know which
engine they run on; they ask for :class:`Capabilities`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from clusters.cnis import CNIS, describe
from clusters.errors import ObjectNotFound
from clusters.probing import Observation, ProbeSpec

#: Called with the name of each step of a long operation as it starts (``"Creating nodes"``).
StepReporter = Callable[[str], None]


@dataclass(frozen=True)
class Capabilities:
    """What a running cluster can do; labs ask for these, never for an engine by name."""

    network_policy: bool = False
    services: bool = False
    dns: bool = False
    ingress: bool = False
    load_balancer: bool = False
    #: Gateway API with an implementation (a GatewayClass that accepts Gateways).
    gateway: bool = False
    #: The Istio service mesh (sidecar mode).
    istio: bool = False
    sctp: bool = False
    cni: str = "kindnet"
    #: The CNI's backend where it has a choice (flannel: vxlan|host-gw, calico: bgp|vxlan).
    cni_backend: str = ""
    #: How long after the API objects converge the data plane may still lag (rules being
    #: programmed by agents). Probes settle for this long before a result is final.
    propagation_seconds: float = 10.0
    #: The address of the ``host`` probe source as the nodes see it (the host side of the
    #: nodes' network); empty when the engine has no such source.
    host_ip: str = ""


@dataclass(frozen=True)
class ClusterProfile:
    """The shape of a cluster: equal profiles mean a cluster can be reused."""

    workers: int = 2
    cni: str = "kindnet"
    addons: tuple[str, ...] = ()
    #: How pod traffic crosses nodes (flannel: vxlan|host-gw, calico: bgp|vxlan); empty means
    #: the CNI's default and is resolved on creation, so equal clusters compare equal.
    backend: str = ""

    def __post_init__(self) -> None:
        if self.cni in CNIS and not self.backend:
            object.__setattr__(self, "backend", CNIS[self.cni].default_backend)

    @property
    def nodes(self) -> int:
        return 1 + self.workers

    @property
    def cni_label(self) -> str:
        """``flannel (vxlan)`` or ``kindnet``, for people."""
        return describe(self.cni, self.backend)

    def to_dict(self) -> dict[str, Any]:
        return {"workers": self.workers, "cni": self.cni, "backend": self.backend,
                "addons": list(self.addons)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterProfile:
        return cls(
            workers=int(data.get("workers", 2)),
            cni=str(data.get("cni", "kindnet")),
            addons=tuple(data.get("addons", ())),
            backend=str(data.get("backend", "")),
        )


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    engine: str
    profile: ClusterProfile
    running: bool
    detail: str = ""
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApplyResult:
    kind: str
    namespace: str | None
    name: str
    action: str  # created | configured | unchanged
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        ref = f"{self.kind.lower()}/{self.name}"
        return f"{ref} {self.action}" + (f" (namespace {self.namespace})" if self.namespace else "")


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""
    argv: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class KindRef:
    """A kind as a cluster serves it: its name (``Pod``, ``HTTPRoute``) and whether its
    objects live in namespaces (what ``-n`` means for it)."""

    kind: str
    namespaced: bool


@runtime_checkable
class Cluster(Protocol):
    """A running cluster. Every method blocks until done and raises ``ClusterError`` subclasses."""

    name: str
    engine: str

    def capabilities(self) -> Capabilities:
        """What this cluster enforces and provides."""
        ...

    def resolve_kind(self, kind: str) -> KindRef:
        """The kind a CLI user means by ``kind`` (any name kubectl accepts: Pod, pods, po,
        deployments.apps); ValueError listing choices when the cluster has no such kind."""
        ...

    def apply(self, docs: Sequence[Mapping[str, Any]], source: str = "") -> list[ApplyResult]:
        """Validate all documents first (nothing applied if one is bad), then create/update."""
        ...

    def get(
        self, kind: str, namespace: str | None = None, name: str | None = None,
        selector: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Objects of ``kind``; ``namespace=None`` means all namespaces (for namespaced kinds).

        With ``name``, the one object in a list, or ObjectNotFound when it does not exist
        (as ``kubectl get KIND NAME`` fails with NotFound)."""
        ...

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        """Delete one object (and what it owns); False when it did not exist."""
        ...

    def label(
        self, kind: str, namespace: str | None, name: str,
        set_labels: Mapping[str, str], remove: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Change labels in place; returns the updated object."""
        ...

    def exec(
        self, namespace: str, pod: str, argv: Sequence[str], *, capture: bool = False,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run a host tool inside the pod's network (and UTS) namespace; exit code passed."""
        ...

    def node_exec(
        self, node: str, argv: Sequence[str], *, capture: bool = False,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run a host tool inside a node."""
        ...

    def wait_converged(self, namespaces: Sequence[str] | None = None, timeout: float = 60) -> None:
        """Wait until every pod is scheduled, running and (unless never-ready) Ready."""
        ...

    def probe(self, spec: ProbeSpec) -> Observation:
        """One probe attempt; never raises for network outcomes, only for bad specs."""
        ...

    def reset_namespaces(self, namespaces: Sequence[str]) -> None:
        """Delete these namespaces and everything in them, and wait until they are gone."""
        ...


@runtime_checkable
class Engine(Protocol):
    """Makes and removes clusters. One-line contract per method."""

    name: str

    def available(self) -> tuple[bool, str]:
        """Whether this engine can run on this machine, and why (or why not)."""
        ...

    def create(
        self, name: str, profile: ClusterProfile, report: StepReporter | None = None
    ) -> Cluster:
        """Create the cluster, or reuse it when it runs with the same profile."""
        ...

    def connect(self, name: str) -> Cluster:
        """A handle on a running cluster; ClusterNotFound when it is not running."""
        ...

    def delete(self, name: str) -> bool:
        """Remove everything the engine made for this cluster; False when nothing was there."""
        ...

    def list(self) -> list[ClusterInfo]:
        """Clusters this engine knows, running or with leftovers."""
        ...

    def info(self, name: str) -> ClusterInfo | None:
        """One cluster's info, or None."""
        ...


def find(cluster: Cluster, kind: str, namespace: str | None, name: str) -> list[dict[str, Any]]:
    """The named object as a list of zero or one. A named ``get`` of a missing object raises
    ObjectNotFound (as ``kubectl get`` fails with NotFound); callers that only ask "is it
    there?" use this instead of catching it themselves (test fakes may also return [])."""
    try:
        return cluster.get(kind, namespace, name)
    except ObjectNotFound:
        return []
