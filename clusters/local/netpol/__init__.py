"""NetworkPolicy on the local engine: the nftables rules a policy-enforcing CNI agent writes.

::

    nftables   one node's table as ``nft -f`` input, from a clusters.netpol.PolicySet (pure)
    enforcer   writes every node's table through ``nsenter --net`` + ``nft -f -``, in parallel

The policy semantics (selection, peers, ports) live in :mod:`clusters.netpol`, shared with
the grader's expected matrices; this package only turns them into netfilter rules.
"""

from __future__ import annotations

from clusters.local.netpol.enforcer import (
    PolicyEnforcer,
    PolicySyncStats,
    considered_pod,
    sctp_warnings,
)
from clusters.local.netpol.nftables import TABLE, NodeScript, render_node, render_nodes

__all__ = [
    "TABLE",
    "NodeScript",
    "PolicyEnforcer",
    "PolicySyncStats",
    "considered_pod",
    "render_node",
    "render_nodes",
    "sctp_warnings",
]
