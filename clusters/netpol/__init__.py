"""NetworkPolicy (networking.k8s.io/v1) as a pure-Python engine: no root, no cluster.

Give it the policies, pods and namespaces of a cluster and it says, for any connection,
whether upstream Kubernetes allows it and which rule decides. The grader uses it for
expected-vs-observed matrices and their explanations; the local engine's enforcer uses
:meth:`PolicySet.peer_networks` and :meth:`PolicySet.port_ranges` to program nftables.
It imports nothing engine-specific (only :mod:`clusters.labels`).

``model``     the policy values (Policy, Rule, Peer, PortRule, IPBlock), read from manifests
``endpoints`` PodInfo, NamespaceInfo, HostEndpoint (re-exported by ``model``)
``engine``  PolicySet and its verdicts
``explain`` the wording of verdicts
"""

from __future__ import annotations

from clusters.netpol.engine import DirectionVerdict, PolicySet, PortRange, RuleRef, Verdict
from clusters.netpol.model import (
    PROTOCOLS,
    Endpoint,
    HostEndpoint,
    IPBlock,
    NamedPort,
    NamespaceInfo,
    Peer,
    PodInfo,
    Policy,
    PortRule,
    Rule,
)

__all__ = [
    "PROTOCOLS",
    "DirectionVerdict",
    "Endpoint",
    "HostEndpoint",
    "IPBlock",
    "NamedPort",
    "NamespaceInfo",
    "Peer",
    "PodInfo",
    "Policy",
    "PolicySet",
    "PortRange",
    "PortRule",
    "Rule",
    "RuleRef",
    "Verdict",
]
