"""The kind ``Cluster`` config for a cluster profile: nodes, CNI settings and add-on plumbing.

What goes in and why:

- one control-plane node and ``profile.workers`` workers, all on the pinned node image (by
  digest) and all labelled ``netlab.dev/managed=true``, the mark that says we made them;
- ``disableDefaultCNI`` for every CNI but kindnet (kind's own), since the engine installs it;
- ``podSubnet`` as the CNI expects it (:data:`POD_SUBNETS`: Flannel's net-conf and Cilium's
  kubernetes IPAM use 10.244.0.0/16, Calico's default pool is 192.168.0.0/16), so pod
  addresses match the course text and the local engine; the service range stays kind's
  default (10.96.0.0/16);
- ``kubeProxyMode: iptables`` for every CNI, Cilium included: the course explains Services
  through kube-proxy's iptables rules, and keeping kube-proxy makes Services behave the same
  whichever CNI a lab picks (Cilium is installed without kube-proxy replacement);
- for the ``ingress`` add-on, the control-plane node gets ``ingress-ready=true`` (where the
  controller runs, on host ports 80/443 of the node) and maps those ports to
  :data:`INGRESS_HOST_PORTS` on 127.0.0.1: ports above 1024 need no root on the host (and no
  privileged-port exception on macOS), and loopback keeps the lab off the network.
  ``load-balancer``, ``gateway`` and ``istio`` need nothing here (MetalLB answers ARP on the
  kind Docker network; Gateways and Istio run as pods).

The result is checked with :func:`clusters.kind.schema.validate_kind_config` before it is
returned, so kind never sees a config we would not accept.
"""

from __future__ import annotations

from typing import Any

import yaml

from clusters.addons import check_addons
from clusters.cnis import resolve
from clusters.engine import ClusterProfile
from clusters.kind.pins import pin
from clusters.kind.schema import API_VERSION, validate_kind_config

#: Pod network per CNI (see the module docstring).
POD_SUBNETS: dict[str, str] = {
    "kindnet": "10.244.0.0/16",
    "flannel": "10.244.0.0/16",
    "cilium": "10.244.0.0/16",
    "calico": "192.168.0.0/16",
}
#: Every node we create carries this label: the in-cluster mark of ownership.
MANAGED_LABEL = "netlab.dev/managed"
#: The node the ingress controller is pinned to (its nodeSelector).
INGRESS_NODE_LABEL = "ingress-ready"
#: Node port -> host port, for the ingress add-on (``curl http://127.0.0.1:8080/``).
INGRESS_HOST_PORTS: dict[int, int] = {80: 8080, 443: 8443}
INGRESS_LISTEN_ADDRESS = "127.0.0.1"
KUBE_PROXY_MODE = "iptables"


def kind_config(name: str, profile: ClusterProfile) -> dict[str, Any]:
    """The validated kind config for cluster ``name`` with ``profile``.

    ValueError (``CniChoiceError`` for the CNI) names the choices when the profile asks for
    a CNI, backend or add-on that does not exist; KindConfigError when the result would be
    refused (a bad cluster name, for one).
    """
    cni, _backend = resolve(profile.cni, profile.backend)
    check_addons(profile.addons)
    if profile.workers < 0:
        raise ValueError(f"a cluster cannot have {profile.workers} workers")
    image = pin("node-image").image
    control_plane: dict[str, Any] = {"role": "control-plane", "image": image,
                                     "labels": {MANAGED_LABEL: "true"}}
    if "ingress" in profile.addons:
        control_plane["labels"][INGRESS_NODE_LABEL] = "true"
        control_plane["extraPortMappings"] = [
            {"containerPort": node_port, "hostPort": host_port,
             "listenAddress": INGRESS_LISTEN_ADDRESS, "protocol": "TCP"}
            for node_port, host_port in INGRESS_HOST_PORTS.items()
        ]
    workers = [{"role": "worker", "image": image, "labels": {MANAGED_LABEL: "true"}}
               for _ in range(profile.workers)]
    doc: dict[str, Any] = {
        "kind": "Cluster",
        "apiVersion": API_VERSION,
        "name": name,
        "nodes": [control_plane, *workers],
        "networking": {
            "disableDefaultCNI": cni != "kindnet",
            "podSubnet": POD_SUBNETS[cni],
            "kubeProxyMode": KUBE_PROXY_MODE,
        },
    }
    validate_kind_config(doc)
    return doc


def render_config(name: str, profile: ClusterProfile) -> str:
    """:func:`kind_config` as the YAML file given to ``kind create cluster --config``."""
    doc = kind_config(name, profile)
    addons = ", ".join(profile.addons) or "none"
    header = (f"# kind cluster {name!r} made by kube-netlab: CNI {profile.cni_label}, "
              f"{profile.workers} worker(s), add-ons: {addons}.\n"
              "# Generated from the profile; edits are lost when the cluster is made again.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
