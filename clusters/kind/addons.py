"""Add-ons a lab can ask for, each an install step and a ready step with a deadline.

* ``ingress``: the F5 NGINX Ingress Controller Helm chart (ingress-nginx is retired), with
  the IngressClass ``nginx`` labs use. It runs on the node the kind config labels
  ``ingress-ready=true`` and binds the node ports that config maps to the host, so
  ``http://localhost`` reaches it as on a real edge node.
* ``gateway``: the Gateway API standard-channel CRDs (applied server-side: they are big),
  then Envoy Gateway's Helm chart (Helm leaves CRDs that already exist alone), then the
  GatewayClass ``netlab``; ready when the class is Accepted by Envoy Gateway.
* ``load-balancer``: MetalLB in L2 mode from its native manifest. Its address pool is the
  top /27 of the ``kind`` Docker network's IPv4 subnet, where Docker (which hands out node
  addresses from the bottom) never puts a node. The pool is created once MetalLB's webhook
  answers: until then the API server refuses it with "failed calling webhook".
* ``istio``: ``istioctl install`` of the pinned release (the istioctl on PATH must be it:
  istioctl installs its own version), sidecar mode; ready when istiod rolled out.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from clusters.addons import check_addons
from clusters.errors import ClusterError, CommandError
from clusters.kind.fetch import fetch
from clusters.kind.pins import pin
from clusters.kind.preflight import version_tuple
from clusters.kind.steps import Step, Timeouts, chart_args, load_docs, workloads
from clusters.kind.tools import Tools

#: How the kind engine provides each add-on of :data:`clusters.addons.ADDONS`.
IMPLEMENTATIONS: dict[str, str] = {
    "ingress": "F5 NGINX Ingress Controller, IngressClass nginx",
    "gateway": "Gateway API CRDs + Envoy Gateway, GatewayClass netlab",
    "load-balancer": "MetalLB (L2) with a pool from the kind Docker network",
    "istio": "Istio (istioctl, sidecar mode)",
}
INGRESS_CLASS = "nginx"
INGRESS_RELEASE = INGRESS_NAMESPACE = "nginx-ingress"
INGRESS_NODE_LABEL = "ingress-ready"
GATEWAY_CLASS = "netlab"
ENVOY_GATEWAY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
ENVOY_GATEWAY_NAMESPACE = "envoy-gateway-system"
GATEWAY_CRDS = ("gatewayclasses", "gateways", "httproutes")
METALLB_NAMESPACE = "metallb-system"
LB_POOL = "netlab"
#: Size of the LoadBalancer pool carved from the top of the kind network.
LB_PREFIX = 27
ISTIO_PROFILE = "minimal"


# ---- ingress ----------------------------------------------------------------------------

def ingress_values(kind_config: Mapping[str, Any]) -> dict[str, Any]:
    """Helm values: class ``nginx``, on the ``ingress-ready`` node, binding its mapped ports."""
    controller: dict[str, Any] = {
        "ingressClass": {"name": INGRESS_CLASS, "create": True, "setAsDefaultIngress": False},
        "service": {"type": "NodePort"},
        "telemetryReporting": {"enable": False},
        # kind puts the ingress-ready label on the control plane, which is tainted.
        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                         "effect": "NoSchedule"}],
    }
    for node in kind_config.get("nodes", []):
        if str((node.get("labels") or {}).get(INGRESS_NODE_LABEL)) == "true":
            ports = sorted(int(m["containerPort"]) for m in node.get("extraPortMappings") or [])
            controller["nodeSelector"] = {INGRESS_NODE_LABEL: "true"}
            if ports:
                http = 80 if 80 in ports else ports[0]
                https = 443 if 443 in ports else next((p for p in ports if p != http), 443)
                controller["hostPort"] = {"enable": True, "http": http, "https": https}
            break
    return {"controller": controller}


def _ingress(tools: Tools, kind_config: Mapping[str, Any], work_dir: Path,
             t: Timeouts) -> list[Step]:
    p = pin("nginx-ingress")

    def install() -> None:
        values = work_dir / "ingress-values.yaml"
        values.parent.mkdir(parents=True, exist_ok=True)
        values.write_text(yaml.safe_dump(ingress_values(kind_config), sort_keys=False))
        tools.retrying("the ingress controller to install", lambda left: tools.helm(
            "upgrade", "--install", INGRESS_RELEASE, *chart_args(p), "--namespace",
            INGRESS_NAMESPACE, "--create-namespace", "--values", str(values),
            timeout=left + 60), t.apply)

    def ready() -> None:
        tools.rollout("Deployment", f"{INGRESS_RELEASE}-controller", INGRESS_NAMESPACE,
                      timeout=t.ready)
        tools.kubectl("get", "ingressclass", INGRESS_CLASS, "-o", "name")

    return [Step(f"Installing ingress: F5 NGINX Ingress Controller (chart {p.version}, "
                 f"IngressClass {INGRESS_CLASS})", install),
            Step("Waiting for the ingress controller", ready)]


# ---- gateway ----------------------------------------------------------------------------

def gateway_class() -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": ENVOY_GATEWAY_CONTROLLER}}


def _gateway(tools: Tools, t: Timeouts) -> list[Step]:
    api, eg = pin("gateway-api"), pin("envoy-gateway")

    def install() -> None:
        tools.apply(f"the Gateway API {api.version} CRDs", fetch(api), timeout=t.apply,
                    server_side=True)
        tools.wait("the Gateway API CRDs to be established",
                   [f"crd/{c}.gateway.networking.k8s.io" for c in GATEWAY_CRDS], "Established",
                   timeout=t.apply)
        tools.retrying("Envoy Gateway to install", lambda left: tools.helm(
            "upgrade", "--install", "eg", *chart_args(eg), "--namespace",
            ENVOY_GATEWAY_NAMESPACE, "--create-namespace", timeout=left + 60), t.apply)

    def ready() -> None:
        tools.wait("Envoy Gateway to be Available", ["deployment/envoy-gateway"], "Available",
                   timeout=t.ready, namespace=ENVOY_GATEWAY_NAMESPACE)
        tools.apply(f"the GatewayClass {GATEWAY_CLASS}", json.dumps(gateway_class()),
                    timeout=t.apply)
        tools.wait(f"the GatewayClass {GATEWAY_CLASS} to be Accepted",
                   [f"gatewayclass/{GATEWAY_CLASS}"], "Accepted", timeout=t.ready,
                   diagnose=[ENVOY_GATEWAY_NAMESPACE])

    return [Step(f"Installing gateway: Gateway API {api.version} (standard) and Envoy Gateway "
                 f"{eg.version}", install),
            Step(f"Waiting for Envoy Gateway and the GatewayClass {GATEWAY_CLASS}", ready)]


# ---- load-balancer -----------------------------------------------------------------------

def lb_pool_range(network_inspect: str) -> str:
    """``first-last`` addresses of the top /27 of the kind network's IPv4 subnet.

    ``network_inspect`` is ``docker network inspect kind`` output; IPv6 subnets (kind's
    network is dual-stack) are skipped."""
    try:
        nets = json.loads(network_inspect)
        configs = (nets[0].get("IPAM") or {}).get("Config") or []
    except (ValueError, IndexError, AttributeError, TypeError) as err:
        raise ClusterError(f"cannot read `docker network inspect kind`: {err}") from err
    for cfg in configs:
        try:
            net = ipaddress.ip_network(str(cfg.get("Subnet", "")), strict=False)
        except ValueError:
            continue
        if isinstance(net, ipaddress.IPv4Network):
            if net.prefixlen > LB_PREFIX:
                raise ClusterError(f"the kind network {net} is smaller than a /{LB_PREFIX}: "
                                   "no room for a LoadBalancer pool")
            top = ipaddress.IPv4Network((int(net.broadcast_address) + 1 - 2 ** (32 - LB_PREFIX),
                                         LB_PREFIX))
            return f"{top.network_address + 1}-{top.broadcast_address - 1}"
    raise ClusterError("the kind Docker network has no IPv4 subnet for a LoadBalancer pool")


def lb_pool_docs(addresses: str) -> list[dict[str, Any]]:
    meta = {"name": LB_POOL, "namespace": METALLB_NAMESPACE}
    return [
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": meta,
         "spec": {"addresses": [addresses]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": meta,
         "spec": {"ipAddressPools": [LB_POOL]}},
    ]


def _load_balancer(tools: Tools, t: Timeouts) -> list[Step]:
    p = pin("metallb")
    found: dict[str, Any] = {}

    def install() -> None:
        found["pool"] = lb_pool_range(tools.docker("network", "inspect", "kind").stdout)
        manifest = fetch(p)
        found["docs"] = load_docs(manifest)
        tools.apply(f"MetalLB {p.version}", manifest, timeout=t.apply, server_side=True)

    def ready() -> None:
        for kind, namespace, name in workloads(found["docs"]):
            tools.rollout(kind, name, namespace, timeout=t.ready)
        # Applying the pool is the webhook's readiness test: it retries "failed calling webhook".
        tools.apply(f"the LoadBalancer pool {found['pool']} (MetalLB webhook)",
                    yaml.safe_dump_all(lb_pool_docs(found["pool"]), sort_keys=False),
                    timeout=t.ready)

    return [Step(f"Installing load-balancer: MetalLB {p.version} (L2)", install),
            Step("Waiting for MetalLB and its webhook, then adding the address pool", ready)]


# ---- istio -------------------------------------------------------------------------------

def _istio(tools: Tools, t: Timeouts, profile: str) -> list[Step]:
    p = pin("istioctl")

    def install() -> None:
        try:
            out = tools.run(["istioctl", "version", "--remote=false"], timeout=30).stdout
        except CommandError as err:
            if err.returncode is None:
                raise ClusterError(f"istioctl is not installed (the istio add-on needs "
                                   f"istioctl {p.version}): https://istio.io/latest/docs/setup/"
                                   f"getting-started/#download") from err
            raise
        have, want = version_tuple(out), version_tuple(p.version)
        if have is None or want is None or have[:2] != want[:2]:
            raise ClusterError(
                f"istioctl {out.strip() or '?'} is installed; the course pins Istio {p.version} "
                f"(istioctl installs its own version). Install it: curl -L https://istio.io/"
                f"downloadIstio | ISTIO_VERSION={p.version.lstrip('v')} sh -")
        tools.retrying("istioctl install", lambda left: tools.istioctl(
            "install", "--set", f"profile={profile}", "-y", timeout=left + 60), t.ready)

    return [Step(f"Installing istio: Istio {p.version} (profile {profile}, sidecar mode)", install),
            Step("Waiting for istiod", lambda: tools.rollout(
                "Deployment", "istiod", "istio-system", timeout=t.ready))]


def addon_steps(addons: Sequence[str], tools: Tools, *, kind_config: Mapping[str, Any],
                work_dir: Path, timeouts: Timeouts, istio_profile: str = ISTIO_PROFILE,
                ) -> list[Step]:
    """Install + ready steps of each add-on, in the order given."""
    check_addons(addons)
    steps: list[Step] = []
    for addon in addons:
        if addon == "ingress":
            steps += _ingress(tools, kind_config, work_dir, timeouts)
        elif addon == "gateway":
            steps += _gateway(tools, timeouts)
        elif addon == "load-balancer":
            steps += _load_balancer(tools, timeouts)
        else:
            steps += _istio(tools, timeouts, istio_profile)
    return steps
