"""Lab 04, task 4: every lab04 pod resolves names through the cluster DNS, over UDP and TCP.

Each pod asks for ``api.lab04.svc.cluster.local`` through its own resolver configuration
(the kube-dns ClusterIP). A failure says, per pod, what came back, and what the policies
say about the path that matters: from the pod to a coredns pod on port 53, which is where
the query goes once the Service address is translated.
"""

from __future__ import annotations

from typing import Any

from policy_support import NS

from clusters.engine import find
from clusters.errors import ClusterError
from grader.dns import DnsSettled
from grader.expectations import CheckFailed, Finding, check

NAME = f"api.{NS}.svc.cluster.local."
DNS_NAMESPACE = "kube-system"
DNS_PODS = "k8s-app=kube-dns"
INDENT = "    "


def test_dns_over_udp_from_every_pod(cluster: Any, pods: Any, probe: Any, netpol: Any) -> None:
    """every lab04 pod resolves api.lab04.svc.cluster.local over UDP"""
    _resolves_everywhere(cluster, pods, probe, netpol, "udp")


def test_dns_over_tcp_from_every_pod(cluster: Any, pods: Any, probe: Any, netpol: Any) -> None:
    """every lab04 pod resolves api.lab04.svc.cluster.local over TCP"""
    _resolves_everywhere(cluster, pods, probe, netpol, "tcp")


def _resolves_everywhere(cluster: Any, pods: Any, probe: Any, netpol: Any,
                         transport: str) -> None:
    api = find(cluster, "Service", NS, "api")
    check(bool(api), expected=f"the api Service in {NS}", observed="no such Service",
          hint="The Services come with the lab; `lab reset 04` puts them back.")
    address = str(api[0]["spec"]["clusterIP"])
    lab_pods = [p for p in pods.all(NS) if p.ip]
    check(bool(lab_pods), expected=f"running pods in {NS}", observed="none with an IP",
          hint="The application comes with the lab; `lab get pods -n lab04` shows why "
               "its pods are not running.")
    failed: list[tuple[Any, DnsSettled]] = []
    for pod in lab_pods:
        settled = probe.dns(pod, NAME, "A", transport=transport, answers=[address])
        if not settled.matched:
            failed.append((pod, settled))
    if not failed:
        return
    try:
        coredns = [p for p in pods.by_label(DNS_NAMESPACE, DNS_PODS) if p.ip]
    except ClusterError:  # kube-system is outside a learner's namespaces on a shared cluster
        coredns = []
    protocol = transport.upper()
    observed = []
    for pod, settled in failed:
        lines = [f"{pod}: {settled.summary()}"]
        if coredns:
            why = netpol.explain(str(pod), str(coredns[0]), 53, protocol)
            lines += [INDENT + line.strip() for line in why.splitlines() if line.strip()]
        observed.append("\n".join(lines))
    raise CheckFailed(Finding(
        source=", ".join(p.name for p, _ in failed),
        destination=f"cluster DNS ({NAME})",
        probe=f"dns A/{transport}",
        expected=f"NOERROR: A {address} from every {NS} pod, over {protocol}",
        observed="\n".join(observed).replace("\n", "\n" + " " * 12),
        hint=_hint(protocol, failed),
        observations=tuple(o for _, s in failed for o in s.observations),
        unstable=all(not s.stable for _, s in failed),  # flapped everywhere: no verdict
    ))


def _hint(protocol: str, failed: list[tuple[Any, DnsSettled]]) -> str:
    if any(s.final.connected for _, s in failed):
        return ("The DNS server answered, but not with the api Service's address: the "
                "query got through, so the policies are not the problem here. Is the api "
                "Service there (`lab get svc -n lab04`)?")
    return (f"No answer over {protocol}. A pod isolated for egress needs a rule to reach "
            "the DNS server like any other destination, and the policy sees the coredns "
            "pod (the kube-dns ClusterIP is translated before): allow egress to pods "
            "labelled k8s-app=kube-dns in namespace kube-system (one peer, both "
            "selectors) on port 53, with protocol UDP and, in a second port entry, TCP.")
