"""Cluster DNS for the local engine: what CoreDNS does in a kind cluster, in Python.

- :mod:`~clusters.local.dns.zone`: Kubernetes objects in, DNS answers out (pure).
- :mod:`~clusters.local.dns.server`: UDP and TCP serving on sockets made in a pod's netns.
- :mod:`~clusters.local.dns.client`: queries from a netns; the engine's ``dns`` probe.
"""

from __future__ import annotations

from clusters.local.dns.client import DnsQueryError, Reply, dns_probe, query
from clusters.local.dns.server import DnsServers, DnsStats, Responder, start_dns_servers
from clusters.local.dns.zone import Answer, Zone

__all__ = ["Answer", "DnsQueryError", "DnsServers", "DnsStats", "Reply", "Responder", "Zone",
           "dns_probe", "query", "start_dns_servers"]
