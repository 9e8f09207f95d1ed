"""Lab 02, task 3: a headless Service ``db`` for the db StatefulSet. Its name answers with
every ready db pod's own IP, and each pod resolves as ``db-N.db.lab02.svc.cluster.local``.
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Any

from services_support import NS, ask_dns, fqdn, labels_text, selector_report, service

from grader.dns import dns_finding
from grader.expectations import CheckFailed, Finding, check

SERVICE_CIDR = ip_network("10.96.0.0/12")  # covers kind's and the local engine's ranges
NAMED_LIKE_SUBDOMAIN = (
    "The db pods' DNS names hang under the Service named like their subdomain: the "
    "StatefulSet says serviceName: db, so each pod has hostname db-N and subdomain db, and "
    "only a Service called db gives them db-N.db.lab02.svc.cluster.local. A Service with "
    "another name selects the same pods but names nothing."
)


def _db_pods(pods: Any) -> list[Any]:
    found = [p for p in pods.all(NS) if p.labels.get("app") == "db"]
    check(
        bool(found),
        expected="the db StatefulSet's pods (db-0, db-1, db-2) in lab02",
        observed="no pod labelled app=db",
        hint="The StatefulSet comes with the lab; `lab reset 02` puts it back.",
    )
    return found


def test_db_selects_db_pods(cluster: Any, pods: Any) -> None:
    """Service db selects the db pods, and no other pod"""
    spec = service(cluster, "db", NAMED_LIKE_SUBDOMAIN).get("spec") or {}
    selector = spec.get("selector") or {}
    db_pods = _db_pods(pods)
    missed, extra = selector_report(selector, db_pods, pods.all(NS))
    check(
        selector and not missed and not extra,
        expected="a selector that matches every db pod, and no other pod",
        observed=f"selector {labels_text(selector) if selector else 'none'}"
        + (f"; misses {', '.join(missed)}" if missed else "")
        + (f"; also selects {', '.join(extra)}" if extra else ""),
        hint="The db pods carry app=db (`lab get pods -n lab02 -l app=db` lists them). "
        "A headless Service needs a selector too: DNS answers with the endpoints it finds.",
    )


def test_db_is_headless(cluster: Any) -> None:
    """Service db is headless (clusterIP: None)"""
    spec = service(cluster, "db", NAMED_LIKE_SUBDOMAIN).get("spec") or {}
    check(
        spec.get("clusterIP") == "None",
        expected="clusterIP: None",
        observed=f"clusterIP {spec.get('clusterIP') or 'not set'} (type "
        f"{spec.get('type', 'ClusterIP')})",
        hint="A Service with a virtual IP hides its pods behind one address; clients of a "
        "database often need each replica by name. clusterIP: None makes the Service "
        "headless: no virtual IP, no load-balancing rules, and DNS answers with the pods "
        "themselves. A Service's clusterIP cannot change once it is set: delete the old one "
        "(`lab delete svc db -n lab02`) before you apply, or just run `lab check 02`, "
        "which starts from a clean namespace.",
    )


def test_db_name_lists_every_ready_pod(pods: Any, probe: Any) -> None:
    """db.lab02.svc.cluster.local answers with the IP of every ready db pod"""
    wanted = sorted(p.ip for p in _db_pods(pods) if p.ready and p.ip)
    settled = ask_dns(probe, fqdn("db"), "A", answers=wanted)
    if settled.matched:
        return
    virtual = [a for a in settled.answers if ip_address(a) in SERVICE_CIDR]
    if virtual:
        hint = (f"{virtual[0]} is a Service's virtual IP (a ClusterIP), not a pod: a Service "
                "with a ClusterIP gets exactly one A record. Make db headless "
                "(clusterIP: None) and its name answers with one record per ready pod.")
    elif settled.rcode == "NXDOMAIN":
        hint = ("The name does not exist: there is no Service db in lab02 (the StatefulSet's "
                "serviceName says db), or it has no ready endpoint (a headless Service "
                "without ready endpoints has no records). `lab get endpointslices -n lab02 "
                "-l kubernetes.io/service-name=db` shows its endpoints.")
    else:
        hint = ("The records do not match the ready db pods: does the selector pick all "
                "db pods and nothing else? Compare with `lab get pods -n lab02 -l app=db "
                "-o wide`.")
    raise CheckFailed(dns_finding(settled, hint))


def test_db_pods_resolve_by_name(pods: Any, probe: Any) -> None:
    """every db pod resolves by name: db-N.db.lab02.svc.cluster.local"""
    wrong = []
    for pod in sorted(_db_pods(pods), key=lambda p: p.name):
        if not (pod.ready and pod.ip):
            continue
        name = fqdn(f"{pod.name}.db")
        settled = ask_dns(probe, name, "A", answers=[pod.ip])
        if not settled.matched:
            wrong.append((name, pod.ip, settled))
    if not wrong:
        return
    nxdomain = any(s.rcode == "NXDOMAIN" for _, _, s in wrong)
    raise CheckFailed(Finding(
        source="client", destination=", ".join(n for n, _, _ in wrong), probe="dns A/udp",
        expected="; ".join(f"{n} → {ip}" for n, ip, _ in wrong),
        observed="; ".join(f"{n}: {s.summary()}" for n, _, s in wrong),
        hint=("The names do not exist. A pod gets the name <hostname>.<subdomain>.<namespace>"
              ".svc.cluster.local from a headless Service named like its subdomain that "
              "selects it; a StatefulSet sets each pod's hostname (db-0, db-1, ...) and "
              "its subdomain (serviceName: db). Is there a Service called db, and does it "
              "select the db pods?") if nxdomain else
        ("The names resolve to other addresses than the pods': DNS answers may lag "
         "right after the pods were re-created; run the check again."),
        observations=tuple(o for _, _, s in wrong for o in s.observations),
    ))
