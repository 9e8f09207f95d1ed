"""The objects every local cluster starts with, as a kubeadm/kind cluster has them.

Cluster DNS is an add-on there too: a ``coredns`` Deployment in ``kube-system`` behind the
``kube-dns`` Service at a fixed ClusterIP that every pod's resolv.conf names. The local
engine creates the same objects, so ``lab get pods -n kube-system`` and ``lab get svc -A``
look like a real cluster's and the DNS server is a pod a learner can find, probe and
reason about (the server itself is the engine's: see :mod:`clusters.local.dns`).

The objects are created once, at the first boot, and are then the learner's like any
other: deleting the Deployment really breaks DNS, and ``lab stop``/``lab start`` brings
it back.
"""

from __future__ import annotations

from typing import Any

from clusters.local.podfiles import CLUSTER_DNS

COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.11.3"
DNS_LABELS = {"k8s-app": "kube-dns"}

# What kubeadm writes, minus the forwarder: there is no upstream DNS on this machine, and
# the engine answers names outside the cluster at once (see clusters.local.dns.zone).
COREFILE = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 5
    }
    prometheus :9153
    cache 30
    loop
    reload
    loadbalance
}
"""


def dns_objects() -> list[dict[str, Any]]:
    """The ConfigMap, Deployment and Service of the cluster DNS, in apply order."""
    configmap = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "coredns", "namespace": "kube-system"},
        "data": {"Corefile": COREFILE},
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": dict(DNS_LABELS)},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": dict(DNS_LABELS)},
            "template": {
                "metadata": {"labels": dict(DNS_LABELS)},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                    ],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": dict(DNS_LABELS)},
                    }],
                    "containers": [{
                        "name": "coredns",
                        "image": COREDNS_IMAGE,
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "ports": [
                            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
                        ],
                        "readinessProbe": {
                            "httpGet": {"path": "/ready", "port": 8181},
                            "periodSeconds": 1,
                        },
                        "livenessProbe": {
                            "httpGet": {"path": "/health", "port": 8080},
                            "initialDelaySeconds": 60,
                        },
                    }],
                    "dnsPolicy": "Default",
                },
            },
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {**DNS_LABELS, "kubernetes.io/name": "CoreDNS"}},
        "spec": {
            "selector": dict(DNS_LABELS),
            "clusterIP": CLUSTER_DNS,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
        },
    }
    return [configmap, deployment, service]
