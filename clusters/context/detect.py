"""What a shared cluster can do, found out by trying it in the learner's own namespaces.

A context points at a cluster someone else runs: its CNI may not enforce NetworkPolicy, it
may have no Ingress controller, its DNS may be unusual. The engine does not assume; it asks:

* **services** and **dns**: a server pod behind a Service, and a client pod, in the
  learner's ``netlab-detect`` namespace. The client connects to the Service's ClusterIP
  (kube-proxy or its replacement works) and resolves the Service's name through the pod's
  own resolver (the cluster DNS works);
* **network_policy**: the NetworkPolicy canary (:mod:`clusters.canary`), which proves a deny
  takes effect, in a namespace of its own;
* **ingress**: the cluster's IngressClasses (a read of cluster-scoped objects, which the
  engine allows); present when there is one; the names are recorded;
* **gateway**: a GatewayClass its controller accepted; **istio**: Istio's APIs served (its
  control plane lives in namespaces the learner may not read, so that is all we know);
* **load_balancer**: not probed, since a LoadBalancer Service on a cloud cluster creates a
  paid load balancer; reported as not available, saying so.

Every namespace made here is deleted again, also when detection fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from clusters.canary import probe_until, prove_enforcement
from clusters.context.record import Detected
from clusters.engine import Cluster
from clusters.errors import ClusterError, ObjectNotFound, WaitTimeout
from clusters.kube.debugpod import default_image
from clusters.probing import Observation, ProbeSpec, Source

NAMESPACE = "netlab-detect"
PORT = 8080
SERVICE = "echo"
GATEWAY_CLASSES = "gatewayclasses.gateway.networking.k8s.io"
ISTIO_KIND = "virtualservices.networking.istio.io"
#: How long new pods may take to start on a cluster that pulls the image first.
READY_TIMEOUT = 180.0
#: How long a fresh Service may take to answer (its rules being programmed).
ANSWER_WITHIN = 30.0

Say = Callable[[str], None]


def detection_objects(image: str) -> list[dict[str, Any]]:
    """The namespace, a server, a client and a Service in front of the server."""
    def pod(name: str, args: list[str]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": name, "image": image, "args": args}]}}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        pod("server", ["netexec", f"--http-port={PORT}"]),
        pod("client", ["pause"]),
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": SERVICE, "namespace": NAMESPACE},
         "spec": {"selector": {"app": "server"},
                  "ports": [{"port": 80, "targetPort": PORT, "protocol": "TCP"}]}},
    ]


def detect_services_and_dns(cluster: Cluster, *, image: str | None = None,
                            ready_timeout: float | None = None,
                            answer_within: float | None = None) -> dict[str, Detected]:
    """``services`` and ``dns`` (see the module docstring); the namespace is deleted after.
    The waits default to READY_TIMEOUT and ANSWER_WITHIN."""
    ready_timeout = READY_TIMEOUT if ready_timeout is None else ready_timeout
    answer_within = ANSWER_WITHIN if answer_within is None else answer_within
    try:
        cluster.apply(detection_objects(default_image(image)), source="capability detection")
        cluster.wait_converged([NAMESPACE], timeout=ready_timeout)
        svc = cluster.get("Service", NAMESPACE, SERVICE)[0]
        ip = str((svc.get("spec") or {}).get("clusterIP") or "")
        client = Source(NAMESPACE, "client")
        tcp = ProbeSpec("tcp", client, ip, 80, timeout=2.0)
        seen, _ = probe_until(lambda: cluster.probe(tcp), lambda o: o.connected, answer_within,
                              interval=0.5)
        services = Detected(seen.connected, f"a pod reached a Service's ClusterIP {ip}:80"
                            if seen.connected else
                            f"a pod could not reach a Service's ClusterIP {ip}:80: {seen.summary()}")
        name = f"{SERVICE}.{NAMESPACE}.svc.cluster.local."
        dns = ProbeSpec("dns", client, name, qtype="A", timeout=2.0)

        def answered(o: Observation) -> bool:
            return o.connected and o.extra.get("rcode") == "NOERROR" and any(
                r.get("data") == ip for r in o.extra.get("records") or ())
        seen, _ = probe_until(lambda: cluster.probe(dns), answered, answer_within, interval=0.5)
        dns_found = Detected(answered(seen), f"a pod resolved {name} to the Service's ClusterIP"
                             if answered(seen) else
                             f"a pod could not resolve {name} through its resolver: "
                             f"{seen.summary()}")
        return {"services": services, "dns": dns_found}
    except WaitTimeout as err:
        why = f"the detection pods did not start: {err}"
    except ClusterError as err:
        why = f"the detection pods could not run: {err}"
    finally:
        with contextlib.suppress(ObjectNotFound):
            cluster.delete("Namespace", None, NAMESPACE)
    return {"services": Detected(False, why), "dns": Detected(False, why)}


def detect_ingress(cluster: Cluster) -> Detected:
    """An IngressClass, read from the cluster; the default one named first."""
    try:
        classes = cluster.get("IngressClass")
    except ClusterError as err:
        return Detected(False, f"the IngressClasses could not be read: {err}")
    if not classes:
        return Detected(False, "the cluster has no IngressClass (no Ingress controller)")
    default = "ingressclass.kubernetes.io/is-default-class"

    def is_default(c: dict[str, Any]) -> bool:
        return ((c.get("metadata") or {}).get("annotations") or {}).get(default) == "true"
    names = [f"{c['metadata']['name']}{' (default)' if is_default(c) else ''}"
             for c in sorted(classes, key=lambda c: (not is_default(c), c["metadata"]["name"]))]
    return Detected(True, f"IngressClass {', '.join(names)}")


def detect_gateway(cluster: Cluster) -> Detected:
    """A GatewayClass that its controller accepted (Gateway API CRDs and an implementation)."""
    try:
        classes = cluster.get(GATEWAY_CLASSES)
    except (ClusterError, ValueError) as err:
        if "no resource type" in str(err) or "unknown" in str(err).lower():
            return Detected(False, "the cluster serves no Gateway API (no GatewayClass CRD)")
        return Detected(False, f"the GatewayClasses could not be read: {err}")
    accepted = sorted(c["metadata"]["name"] for c in classes if any(
        cond.get("type") == "Accepted" and cond.get("status") == "True"
        for cond in (c.get("status") or {}).get("conditions") or ()))
    if accepted:
        return Detected(True, f"GatewayClass {', '.join(accepted)} (accepted by its controller)")
    if classes:
        return Detected(False, "no GatewayClass is accepted by a controller: "
                               + ", ".join(sorted(c["metadata"]["name"] for c in classes)))
    return Detected(False, "the Gateway API CRDs are installed but there is no GatewayClass")


def detect_istio(cluster: Cluster) -> Detected:
    """Istio's APIs served by the cluster (its control plane is not in the learner's reach)."""
    try:
        cluster.resolve_kind(ISTIO_KIND)
    except (ClusterError, ValueError):
        return Detected(False, "the cluster serves no Istio APIs (networking.istio.io)")
    return Detected(True, "the cluster serves Istio's APIs (networking.istio.io); that the "
                          "sidecar injector runs is not verified")


def detect(cluster: Cluster, say: Say = lambda s: None, *,
           image: str | None = None) -> dict[str, Detected]:
    """Every capability, in the learner's scope (``cluster`` is a ScopedCluster)."""
    say("Detecting what the cluster can do: Services and DNS")
    found = detect_services_and_dns(cluster, image=image)
    say("Detecting what the cluster can do: NetworkPolicy enforcement (canary)")
    canary = prove_enforcement(cluster, timeout=READY_TIMEOUT)
    found["network_policy"] = Detected(
        canary.enforced is True,
        canary.detail if canary.enforced is not None
        else f"not proven, so treated as not enforced: {canary.detail}")
    found["ingress"] = detect_ingress(cluster)
    found["gateway"] = detect_gateway(cluster)
    found["istio"] = detect_istio(cluster)
    found["load_balancer"] = Detected(
        False, "not probed: a LoadBalancer Service would create a load balancer on a cloud "
               "cluster, which costs money")
    return found
