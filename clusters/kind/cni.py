"""Installing the profile's CNI on a fresh kind cluster: one install step, one ready step.

The known pitfalls, handled here rather than discovered by learners:

* **Calico** goes in through the Tigera operator. Its CRDs are too big for a plain
  ``kubectl apply`` (the ``last-applied-configuration`` annotation exceeds 256 KiB), so the
  operator manifest is applied server-side. The ``Installation`` sets one IP pool equal to
  the kind config's ``podSubnet``; the backend picks routing: ``bgp`` = no encapsulation with
  BGP enabled (kind's nodes share one L2 network), ``vxlan`` = VXLAN with BGP off. Ready
  means the operator reports ``TigeraStatus`` Available.
* **Cilium** goes in through its Helm chart at the pinned version, with Kubernetes IPAM (the
  pod CIDRs kind's controller-manager hands out), one operator replica (not two on a laptop)
  and ``IfNotPresent`` pulls. Ready means its DaemonSet and operator rolled out and, when
  the ``cilium`` CLI is installed, ``cilium status --wait`` agrees.
* **Flannel** delegates pod interfaces to the ``bridge`` CNI plugin, which kind's node image
  does not ship (kind installs only what kindnet needs). We copy ``bridge`` from the pinned
  containernetworking plugins release into ``/opt/cni/bin`` of every node, then apply the
  manifest with ``net-conf.json`` set to the pod subnet and the profile's backend.
* **kindnet** is kind's default: nothing to install.

After any CNI, every node must be Ready and CoreDNS rolled out: ``kind create --wait``
cannot be trusted when the default CNI is disabled (the nodes only become Ready once a
CNI is running).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from clusters.cnis import CNIS
from clusters.engine import ClusterProfile
from clusters.errors import ClusterError, CommandError, WaitTimeout
from clusters.kind.fetch import fetch
from clusters.kind.pins import PINS, pin
from clusters.kind.steps import Step, Timeouts, chart_args, extract_member, load_docs, workloads
from clusters.kind.tools import Tools, first_line, output_of

FLANNEL_CONFIGMAP = "kube-flannel-cfg"
CALICO_INSTALLATION_CRD = "crd/installations.operator.tigera.io"


def calico_installation(pod_subnet: str, backend: str) -> dict[str, Any]:
    """The operator's ``Installation``: one pool over the pod subnet, routed per backend."""
    bgp = backend != "vxlan"
    return {
        "apiVersion": "operator.tigera.io/v1",
        "kind": "Installation",
        "metadata": {"name": "default"},
        "spec": {"calicoNetwork": {
            "bgp": "Enabled" if bgp else "Disabled",
            "ipPools": [{"cidr": pod_subnet, "blockSize": 26,
                         "encapsulation": "None" if bgp else "VXLAN",
                         "natOutgoing": "Enabled", "nodeSelector": "all()"}],
        }},
    }


def flannel_manifest(docs: Sequence[dict[str, Any]], pod_subnet: str,
                     backend: str) -> list[dict[str, Any]]:
    """The Flannel manifest with ``net-conf.json`` set to our pod subnet and backend."""
    out = [json.loads(json.dumps(d)) for d in docs]  # deep copy, plain types only
    for doc in out:
        if doc.get("kind") == "ConfigMap" and doc.get("metadata", {}).get("name") == FLANNEL_CONFIGMAP:
            data = doc.setdefault("data", {})
            conf = json.loads(data.get("net-conf.json") or "{}")
            conf["Network"] = pod_subnet
            conf["Backend"] = {**conf.get("Backend", {}), "Type": backend}
            data["net-conf.json"] = json.dumps(conf, indent=2) + "\n"
            return out
    raise ClusterError(f"the Flannel manifest has no ConfigMap {FLANNEL_CONFIGMAP!r} to set "
                       "the pod network in (was the pin pointed at another file?)")


def _roll_out(tools: Tools, docs: Sequence[dict[str, Any]], t: Timeouts) -> None:
    for kind, namespace, name in workloads(docs):
        tools.rollout(kind, name, namespace, timeout=t.ready)


def _calico(tools: Tools, profile: ClusterProfile, pod_subnet: str, t: Timeouts) -> list[Step]:
    p = pin("calico")

    def install() -> None:
        crds = PINS.get("calico-crds")
        if crds is not None:  # newer releases publish the CRDs as their own manifest
            tools.apply("the Calico CRDs", fetch(crds), timeout=t.apply, server_side=True)
        tools.apply("the Tigera operator", fetch(p), timeout=t.apply, server_side=True)
        tools.wait("the Installation CRD to be established", [CALICO_INSTALLATION_CRD],
                   "Established", timeout=t.apply)
        tools.apply("the Calico Installation",
                    json.dumps(calico_installation(pod_subnet, profile.backend)), timeout=t.apply)

    def ready() -> None:
        diagnose = ("tigera-operator", "calico-system")
        tools.wait("Calico (TigeraStatus calico) to be Available", ["tigerastatus/calico"],
                   "Available", timeout=t.ready, diagnose=diagnose)
        tools.wait("every TigeraStatus to be Available", ["tigerastatus", "--all"], "Available",
                   timeout=t.ready, diagnose=diagnose)

    return [Step(f"Installing Calico {p.version} through the Tigera operator (pool {pod_subnet}, "
                 f"{profile.backend})", install),
            Step("Waiting for Calico (TigeraStatus Available)", ready)]


def _cilium(tools: Tools, t: Timeouts) -> list[Step]:
    p = pin("cilium")

    def install() -> None:
        tools.retrying(f"Cilium {p.version} to install", lambda left: tools.helm(
            "upgrade", "--install", "cilium", *chart_args(p), "--namespace", "kube-system",
            "--set", "ipam.mode=kubernetes", "--set", "image.pullPolicy=IfNotPresent",
            "--set", "operator.replicas=1", timeout=left + 60), t.apply)

    def ready() -> None:
        tools.rollout("DaemonSet", "cilium", "kube-system", timeout=t.ready)
        tools.rollout("Deployment", "cilium-operator", "kube-system", timeout=t.ready)
        if tools.have("cilium"):
            try:
                tools.cilium("status", "--wait", "--wait-duration", f"{int(t.ready)}s",
                             "--interactive=false", timeout=t.ready + 60)
            except CommandError as err:
                if err.returncode is None:
                    raise
                raise WaitTimeout("cilium status to report success", t.ready,
                                  first_line(output_of(err))) from err

    return [Step(f"Installing Cilium {p.version} (Helm chart, Kubernetes IPAM)", install),
            Step("Waiting for Cilium (agents and operator)", ready)]


def _flannel(tools: Tools, profile: ClusterProfile, pod_subnet: str, nodes: Sequence[str],
             work_dir: Path, t: Timeouts) -> list[Step]:
    p, plugins = pin("flannel"), pin("cni-plugins")
    docs: list[dict[str, Any]] = []

    def install() -> None:
        bridge = extract_member(fetch(plugins), "bridge", work_dir / "cni-bin" / "bridge")
        for node in nodes:
            tools.docker("cp", str(bridge), f"{node}:/opt/cni/bin/bridge")
        docs[:] = flannel_manifest(load_docs(fetch(p)), pod_subnet, profile.backend)
        tools.apply(f"Flannel {p.version}", yaml.safe_dump_all(docs, sort_keys=False),
                    timeout=t.apply)

    return [Step(f"Installing Flannel {p.version} ({profile.backend}) and the bridge plugin "
                 f"{plugins.version} on {len(nodes)} nodes", install),
            Step("Waiting for Flannel (DaemonSet rolled out)", lambda: _roll_out(tools, docs, t))]


def cni_steps(tools: Tools, profile: ClusterProfile, *, pod_subnet: str, nodes: Sequence[str],
              work_dir: Path, timeouts: Timeouts) -> list[Step]:
    """Install + ready steps of the profile's CNI (none for kindnet)."""
    if profile.cni == "kindnet":
        return []
    if profile.cni == "calico":
        return _calico(tools, profile, pod_subnet, timeouts)
    if profile.cni == "cilium":
        return _cilium(tools, timeouts)
    if profile.cni == "flannel":
        return _flannel(tools, profile, pod_subnet, nodes, work_dir, timeouts)
    raise ValueError(f"unknown CNI {profile.cni!r}; choose one of: {', '.join(CNIS)}")


def settle_steps(tools: Tools, profile: ClusterProfile, timeouts: Timeouts) -> list[Step]:
    """Every node Ready, then CoreDNS rolled out (it needs the CNI to start)."""
    diagnose = ["kube-system", *CNI_NAMESPACES.get(profile.cni, ())]

    def nodes_ready() -> None:
        tools.wait(f"{profile.nodes} nodes to be Ready", ["nodes", "--all"], "Ready",
                   timeout=timeouts.ready, diagnose=diagnose)
        names = tools.kubectl("get", "nodes", "-o", "name").stdout.split()
        if len(names) != profile.nodes:
            raise ClusterError(f"the cluster has {len(names)} nodes ({', '.join(names)}); "
                               f"the profile asks for {profile.nodes}")

    return [Step(f"Waiting for {profile.nodes} nodes to be Ready", nodes_ready),
            Step("Waiting for CoreDNS", lambda: tools.rollout(
                "Deployment", "coredns", "kube-system", timeout=timeouts.ready))]


#: Where each CNI's pods run, to explain a node that stays NotReady.
CNI_NAMESPACES: dict[str, tuple[str, ...]] = {
    "calico": ("tigera-operator", "calico-system"),
    "flannel": ("kube-flannel",),
}
