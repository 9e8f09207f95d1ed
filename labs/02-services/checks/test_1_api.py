"""Lab 02, task 1: a ClusterIP Service ``api`` with a named port, in front of every ready
api pod (two versions that listen on different ports) and of no other pod.

Each test is one check; the first line of its docstring is the name learners see.
"""

from __future__ import annotations

from typing import Any

from services_support import (
    NS,
    describe_ports,
    labels_text,
    sample,
    selector_report,
    service,
)

from grader.expectations import CheckFailed, Finding, check, finding_for

URL = "http://api/hostname"


def test_api_selects_api_pods(cluster: Any, pods: Any) -> None:
    """Service api selects every api pod, and no other pod"""
    spec = service(cluster, "api").get("spec") or {}
    selector = spec.get("selector") or {}
    everyone = pods.all(NS)
    api_pods = [p for p in everyone if p.labels.get("app") == "api" and p.ready]
    others = [p for p in everyone if p.labels.get("app") != "api"]
    # Unready api pods (the canary) may match: readiness keeps them out of the endpoints.
    missed, extra = selector_report(selector, api_pods, others)
    check(
        selector and not missed and not extra,
        expected="a selector that matches the labels of every api pod "
        f"({', '.join(p.name for p in api_pods)}), and of no other pod",
        observed=f"selector {labels_text(selector) if selector else 'none'}"
        + (f"; misses {', '.join(missed)}" if missed else "")
        + (f"; also selects {', '.join(extra)}" if extra else ""),
        hint="A Service finds its pods by their labels, never by name, and a selector picks "
        "a pod only when every key=value in it matches. Try a selector before "
        "you write it: `lab get pods -n lab02 -l app=api-server` lists the pods it picks. "
        "Which label do all api pods share, and only they? A selector that names a "
        "version leaves the other version out.",
    )


def test_api_uses_named_target_port(cluster: Any) -> None:
    """Service api's port 80 is named http and targets the container port by name"""
    ports = (service(cluster, "api").get("spec") or {}).get("ports") or []
    port80 = [p for p in ports if p.get("port") == 80]
    good = [p for p in port80 if p.get("name") == "http" and p.get("targetPort") == "http"
            and p.get("protocol", "TCP") == "TCP"]
    check(
        bool(good),
        expected="port 80/TCP with name: http and targetPort: http (the container port's name)",
        observed=f"ports: {describe_ports(ports)}",
        hint="The api v1 pods listen on 8080 and the v2 pod on 9090: no single number fits "
        "both. Both declare their container port under the name http, and a targetPort "
        "that is a name is looked up in each pod, so every endpoint gets its own number. "
        "Naming the Service port (name: http) also gives it an SRV record, "
        "_http._tcp.api.lab02.svc.cluster.local.",
    )


def test_api_answers_from_every_ready_replica(probe: Any, pods: Any) -> None:
    """http://api/hostname reaches every ready api pod, and only ready ones"""
    api_pods = pods.by_label(NS, "app=api")
    ready = sorted(p.name for p in api_pods if p.ready)
    unready = sorted(p.name for p in api_pods if not p.ready)
    # First let the rules settle: some request must get through before counting. An
    # unstable result (some answered, some not) is left to the count to explain.
    settled = probe.http("client", URL)
    if not any(o.connected for o in settled.observations):
        raise CheckFailed(finding_for(settled, hints={
            # kube-proxy installs a REJECT rule for a Service without ready endpoints,
            # so the client gets an immediate refusal rather than a silent drop.
            "REFUSED": "The connection was refused. A Service with no ready endpoints "
            "answers every connection with a reject: `lab get endpointslices -n lab02 "
            "-l kubernetes.io/service-name=api -o yaml` shows which pods the Service found "
            "(none when its selector matches no pod's labels). If endpoints are listed, the "
            "packets go to their targetPort: is anything listening there?",
            "DNS_ERROR": "The name api did not resolve from the client: the Service must be "
            "called api and live in namespace lab02 (the client's search list tries "
            "api.lab02.svc.cluster.local first). Try `lab probe dns --from lab02/client api --search`.",
            "TIMEOUT": "No answer at all: the Service address is not translated to a pod "
            "(no rules for it on the client's node yet?), so the packet goes nowhere.",
            "default": "The client must get an answer from http://api/hostname. Try it: "
            "`lab exec -n lab02 client -- curl -s http://api/hostname`.",
        }))
    tally = sample(probe, URL, wanted=ready)
    stray = sorted(set(tally.answered) - set(ready))
    silent = sorted(set(ready) - set(tally.answered))
    if tally.failed:
        hint = ("Some requests failed while others were answered: the Service sends each "
                "connection to a random endpoint, and some endpoints do not listen on the "
                "port the packets are sent to. A numeric targetPort is the same number for "
                "every pod; here the versions listen on different ports. Use the name of "
                "the container port instead.")
    elif any(name in unready for name in stray):
        hint = ("A pod that is not Ready answered. Only ready pods should be endpoints: "
                "remove publishNotReadyAddresses from the Service, unless you want "
                "traffic to reach pods that say they cannot serve it.")
    elif stray:
        hint = ("Something other than an api pod answered: the Service's selector picks "
                "up pods it should not.")
    else:
        hint = ("Some ready api pods never answered: the selector leaves them out. "
                "`lab get endpointslices -n lab02 -l kubernetes.io/service-name=api -o "
                "yaml` lists the endpoints the Service has; compare with "
                "`lab get pods -n lab02 -l app=api -o wide`.")
    if tally.failed or stray or silent:
        raise CheckFailed(Finding(
            source="client", destination=URL, probe="http /hostname",
            expected="answers from every ready api pod (" + ", ".join(ready) + ")"
            + (f", never from {', '.join(unready)} (not Ready)" if unready else "")
            + ", and no failed request",
            observed=tally.describe()
            + (f"; never answered: {', '.join(silent)}" if silent else ""),
            hint=hint,
        ))
