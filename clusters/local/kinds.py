"""The API kinds the local engine knows, and how the CLI names them.

One table (:data:`KINDS`) says, per kind, its apiVersion, whether it is namespaced, its
plural and short names (as kubectl spells them), which client model describes its schema,
which naming rule its ``metadata.name`` follows, and which spec fields the engine itself
allocates (a Service's ClusterIP), so that a re-apply that omits them keeps them.
Everything else (validation, the store, the CLI) reads this table instead of hard-coding
kinds, so adding a kind is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NameRule = Literal["subdomain", "label", "dns1035"]


@dataclass(frozen=True)
class KindInfo:
    """What the local engine knows about one kind.

    ``appliable``: users may create it with ``apply`` (Nodes are
    made by the engine). ``model``: the ``kubernetes.client.models`` class of its schema.
    ``allocated``: spec fields the engine fills in and a re-apply without them keeps.
    """

    kind: str
    api_version: str
    namespaced: bool
    plural: str
    short_names: tuple[str, ...] = ()
    appliable: bool = True
    model: str = ""
    name_rule: NameRule = "subdomain"
    allocated: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        """The API group ('' for the core group)."""
        return self.api_version.rpartition("/")[0]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def names(self) -> tuple[str, ...]:
        """Every name the CLI accepts for this kind (without the ``.group`` forms)."""
        return (self.kind, self.singular, self.plural, *self.short_names)


KINDS: tuple[KindInfo, ...] = (
    KindInfo("Namespace", "v1", False, "namespaces", ("ns",), model="V1Namespace",
             name_rule="label"),
    KindInfo("Node", "v1", False, "nodes", ("no",), appliable=False, model="V1Node"),
    KindInfo("Pod", "v1", True, "pods", ("po",), model="V1Pod",
             allocated=("nodeName",)),
    KindInfo("ConfigMap", "v1", True, "configmaps", ("cm",), model="V1ConfigMap"),
    KindInfo("Secret", "v1", True, "secrets", (), model="V1Secret"),
    KindInfo("Deployment", "apps/v1", True, "deployments", ("deploy",), model="V1Deployment"),
    KindInfo("ReplicaSet", "apps/v1", True, "replicasets", ("rs",), model="V1ReplicaSet"),
    KindInfo("DaemonSet", "apps/v1", True, "daemonsets", ("ds",), model="V1DaemonSet"),
    KindInfo("StatefulSet", "apps/v1", True, "statefulsets", ("sts",), model="V1StatefulSet"),
    KindInfo("Service", "v1", True, "services", ("svc",),
             model="V1Service", name_rule="dns1035",
             allocated=("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy",
                        "healthCheckNodePort")),
    KindInfo("EndpointSlice", "discovery.k8s.io/v1", True, "endpointslices", (),
             model="V1EndpointSlice"),
    KindInfo("NetworkPolicy", "networking.k8s.io/v1", True, "networkpolicies", ("netpol",),
             model="V1NetworkPolicy"),
)

_BY_KIND: dict[str, KindInfo] = {k.kind: k for k in KINDS}


def _build_aliases() -> dict[str, KindInfo]:
    aliases: dict[str, KindInfo] = {}
    for info in KINDS:
        for name in info.names():
            aliases[name.lower()] = info
            if info.group:
                version = info.api_version.rpartition("/")[2]
                aliases[f"{name.lower()}.{info.group}"] = info
                aliases[f"{name.lower()}.{version}.{info.group}"] = info
    return aliases


_ALIASES = _build_aliases()


def kind_info(kind: str) -> KindInfo:
    """The entry for an exact kind name (``Pod``); ``KeyError`` when it is not known."""
    return _BY_KIND[kind]


def find_kind(kind: str) -> KindInfo | None:
    """The entry for an exact kind name, or None."""
    return _BY_KIND.get(kind)


def accepted_names() -> list[str]:
    """Every name :func:`resolve_kind` accepts (without ``.group`` forms), for messages."""
    return sorted({name for info in KINDS for name in info.names()[1:]})


def resolve_kind(text: str) -> KindInfo:
    """The kind a CLI user means by ``text``, accepting the names kubectl accepts.

    ``Pod``, ``pod``, ``pods``, ``po``, and group-qualified forms such as
    ``deployments.apps`` or ``networkpolicies.networking.k8s.io``. Raises ``ValueError``
    listing the accepted names when nothing matches.
    """
    key = text.strip().lower()
    info = _ALIASES.get(key)
    if info is not None:
        return info
    raise ValueError(
        f"the local engine does not know the resource type {text!r}; "
        f"accepted names: {', '.join(accepted_names())}"
    )
