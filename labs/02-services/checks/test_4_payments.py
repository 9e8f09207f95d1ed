"""Lab 02, task 4: ``payments`` is an ExternalName alias of the api's DNS name: a CNAME
record, which the client's resolver follows to the api's ClusterIP.
"""

from __future__ import annotations

from typing import Any

from services_support import CLIENT, NS, ZONE, ask_dns, fqdn, same_name, service

from grader.dns import dns_finding
from grader.expectations import CheckFailed, check, expect_reach

TARGET = f"api.{NS}.svc.{ZONE}"


def test_payments_is_an_alias_of_api(cluster: Any, probe: Any) -> None:
    """payments.lab02.svc.cluster.local is a CNAME for api.lab02.svc.cluster.local"""
    spec = service(cluster, "payments").get("spec") or {}
    kind, alias = spec.get("type", "ClusterIP"), str(spec.get("externalName") or "")
    check(
        kind == "ExternalName" and same_name(alias, TARGET),
        expected=f"type ExternalName, externalName {TARGET}",
        observed=f"type {kind}" + (f", externalName {alias}" if alias else ""),
        hint="An ExternalName Service has no selector, no ports to balance and no "
        "ClusterIP: it is only a DNS alias. Its externalName is the name the alias points "
        "to; use the api's full name so that it works from every namespace.",
    )
    settled = ask_dns(probe, fqdn("payments"), "CNAME", answers=[TARGET + "."])
    if not settled.matched:
        raise CheckFailed(dns_finding(
            settled,
            "The cluster DNS serves an ExternalName Service as a CNAME record. No CNAME "
            "means the Service is not an ExternalName yet, or the DNS server has not seen "
            "it: `lab probe dns --from lab02/client payments.lab02.svc.cluster.local "
            "--type CNAME` asks the same question.",
        ))


def test_payments_reaches_api(probe: Any, pods: Any) -> None:
    """http://payments/hostname is answered by an api pod"""
    ready = sorted(p.name for p in pods.by_label(NS, "app=api") if p.ready)
    settled = expect_reach(
        probe, src=CLIENT, dst="http://payments/hostname", protocol="http",
        hints={
            "DNS_ERROR": "payments did not resolve to an address. The resolver gets the "
            "CNAME and then needs an address for its target: the alias must point at a "
            "name that exists (api.lab02.svc.cluster.local).",
            "REFUSED": "The alias resolved, to the api Service's ClusterIP, and the "
            "connection was refused there: the api has no ready endpoints. Finish task 1.",
            "default": "The alias must lead to the api: try "
            "`lab exec -n lab02 client -- curl -s http://payments/hostname`.",
        },
    )
    body = (settled.body or "").strip()
    check(
        body in ready,
        expected="the name of a ready api pod (" + ", ".join(ready) + ")",
        observed=f'the answer "{body[:60]}"',
        hint="Another server answered: the alias points at something else than the api.",
    )
