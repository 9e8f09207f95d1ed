"""Add-ons on kind (ingress, gateway, load-balancer, istio) against fake tools."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from fakebin import FakeBin, fake_fetch, wait_timed_out, webhook_not_ready

from clusters.addons import ADDONS as ADDON_NAMES
from clusters.addons import check_addons
from clusters.engine import ClusterProfile
from clusters.errors import ClusterError, WaitTimeout
from clusters.kind import addons
from clusters.kind.config import kind_config
from clusters.kind.steps import Timeouts, run_steps
from clusters.kind.tools import Tools

T = Timeouts(create=5, apply=2, ready=2)
KC = ["--kubeconfig", "/kc", "--context", "kind-c"]
HELM_KC = ["--kubeconfig", "/kc", "--kube-context", "kind-c"]
METALLB_WEBHOOK = webhook_not_ready(
    "ipaddresspoolvalidationwebhook.metallb.io", "metallb-webhook-service.metallb-system.svc",
    "validate-metallb-io-v1beta1-ipaddresspool")


@pytest.fixture
def fb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBin:
    fake = FakeBin(tmp_path / "fb").install(monkeypatch)
    fake.add_cluster("c", workers=1)
    monkeypatch.setattr(addons, "fetch", fake_fetch(tmp_path / "files"))
    return fake


def run(names: tuple[str, ...], tmp_path: Path, interval: float = 0.01) -> list[str]:
    said: list[str] = []
    profile = ClusterProfile(addons=names)
    steps = addons.addon_steps(names, Tools(kubeconfig=Path("/kc"), context="kind-c",
                                            interval=interval),
                               kind_config=kind_config("c", profile), work_dir=tmp_path / "work",
                               timeouts=T)
    run_steps(steps, said.append)
    return said


def kubectl(*words: str) -> str:
    return shlex.join(["kubectl", *KC, *words])


def test_kind_implements_every_addon() -> None:
    assert tuple(addons.IMPLEMENTATIONS) == tuple(ADDON_NAMES)
    with pytest.raises(ValueError, match=r"unknown add-on 'mesh'; choose from: ingress, gateway, "
                                         r"load-balancer, istio"):
        check_addons(["ingress", "mesh"])


# ---- load-balancer -------------------------------------------------------------------------

def inspect(*subnets: str) -> str:
    return json.dumps([{"Name": "kind", "IPAM": {"Config": [{"Subnet": s} for s in subnets]}}])


def test_pool_is_the_top_slash27_of_the_ipv4_subnet() -> None:
    assert addons.lb_pool_range(inspect("fc00:f853:ccd:e793::/64", "172.18.0.0/16")) == \
        "172.18.255.225-172.18.255.254"
    assert addons.lb_pool_range(inspect("192.168.97.0/24")) == "192.168.97.225-192.168.97.254"
    assert addons.lb_pool_range(inspect("10.89.0.0/27")) == "10.89.0.1-10.89.0.30"


@pytest.mark.parametrize(("text", "message"), [
    (inspect("fc00:f853:ccd:e793::/64"), "no IPv4 subnet"),
    (inspect("172.18.0.0/28"), "smaller than a /27"),
    ("[]", "cannot read `docker network inspect kind`"),
    ("Error: No such network: kind", "cannot read"),
])
def test_pool_refused_without_a_usable_ipv4_subnet(text: str, message: str) -> None:
    with pytest.raises(ClusterError, match=message):
        addons.lb_pool_range(text)


def test_metallb_waits_for_its_webhook_before_the_pool(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("kubectl", "apply", "-f", "-", code=1, stderr=METALLB_WEBHOOK,
          then=[{"code": 1, "stderr": METALLB_WEBHOOK},
                {"stdout": "ipaddresspool.metallb.io/netlab created\n"
                           "l2advertisement.metallb.io/netlab created\n"}])
    said = run(("load-balancer",), tmp_path)
    pool_apply = kubectl("apply", "-f", "-")
    assert fb.commands() == [
        "docker network inspect kind",
        kubectl("apply", "--server-side", "--force-conflicts", "-f",
                str(tmp_path / "files" / "metallb-metallb-native.yaml")),
        kubectl("rollout", "status", "deployment/controller", "-n", "metallb-system", "--timeout=1s"),
        kubectl("rollout", "status", "daemonset/speaker", "-n", "metallb-system", "--timeout=1s"),
        pool_apply, pool_apply, pool_apply,
    ]
    pool, l2 = yaml.safe_load_all(fb.stdin("kubectl", "apply", "-")[-1])
    assert pool == {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                    "metadata": {"name": "netlab", "namespace": "metallb-system"},
                    "spec": {"addresses": ["172.18.255.225-172.18.255.254"]}}
    assert l2["kind"] == "L2Advertisement" and l2["spec"] == {"ipAddressPools": ["netlab"]}
    assert said == ["Installing load-balancer: MetalLB v0.16.1 (L2)",
                    "Waiting for MetalLB and its webhook, then adding the address pool"]


def test_metallb_webhook_never_ready(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("kubectl", "apply", "-f", "-", code=1, stderr=METALLB_WEBHOOK)
    with pytest.raises(WaitTimeout) as info:
        run(("load-balancer",), tmp_path, interval=0.2)
    assert info.value.what == ("the LoadBalancer pool 172.18.255.225-172.18.255.254 (MetalLB "
                               "webhook)")
    assert 'failed calling webhook "ipaddresspoolvalidationwebhook.metallb.io"' in str(info.value.last)


def test_metallb_controller_not_rolled_out(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("kubectl", "rollout", "deployment/controller", code=1,
          stderr="error: timed out waiting for the condition")
    fb.on("kubectl", "get", "pods", "-n", "metallb-system", stdout=json.dumps({"items": [
        {"metadata": {"namespace": "metallb-system", "name": "controller-5f9b"},
         "status": {"phase": "Pending", "containerStatuses": [{"name": "controller", "state": {
             "waiting": {"reason": "ErrImagePull", "message": 'failed to pull and unpack image '
                         '"quay.io/metallb/controller:v0.16.1": 429 Too Many Requests'}}}]}}]}))
    with pytest.raises(WaitTimeout) as info:
        run(("load-balancer",), tmp_path)
    assert str(info.value) == (
        "timed out after 2s waiting for deployment/controller in metallb-system to roll out; last "
        "seen: error: timed out waiting for the condition; metallb-system/controller-5f9b: "
        'controller: ErrImagePull (failed to pull and unpack image "quay.io/metallb/controller:'
        'v0.16.1": 429 Too Many Requests)')


# ---- ingress -------------------------------------------------------------------------------

def test_ingress_values_follow_the_kind_config() -> None:
    values = addons.ingress_values(kind_config("c", ClusterProfile(addons=("ingress",))))
    controller = values["controller"]
    assert controller["ingressClass"] == {"name": "nginx", "create": True,
                                          "setAsDefaultIngress": False}
    assert controller["nodeSelector"] == {"ingress-ready": "true"}
    assert controller["hostPort"] == {"enable": True, "http": 80, "https": 443}
    assert controller["telemetryReporting"] == {"enable": False}
    plain = addons.ingress_values(kind_config("c", ClusterProfile()))["controller"]
    assert "nodeSelector" not in plain and "hostPort" not in plain


def test_ingress_chart_and_readiness(fb: FakeBin, tmp_path: Path) -> None:
    said = run(("ingress",), tmp_path)
    values = tmp_path / "work" / "ingress-values.yaml"
    assert fb.commands() == [
        shlex.join(["helm", "upgrade", "--install", "nginx-ingress",
                    "oci://ghcr.io/nginx/charts/nginx-ingress", "--version", "2.6.4", "--namespace",
                    "nginx-ingress", "--create-namespace", "--values", str(values), *HELM_KC]),
        kubectl("rollout", "status", "deployment/nginx-ingress-controller", "-n", "nginx-ingress",
                "--timeout=1s"),
        kubectl("get", "ingressclass", "nginx", "-o", "name"),
    ]
    assert yaml.safe_load(values.read_text())["controller"]["ingressClass"]["name"] == "nginx"
    assert said[0] == ("Installing ingress: F5 NGINX Ingress Controller (chart 2.6.4, "
                       "IngressClass nginx)")


def test_helm_retries_an_unreachable_cluster(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("helm", "upgrade", code=1, stderr="Error: Kubernetes cluster unreachable: Get "
          '"https://127.0.0.1:40123/version": dial tcp 127.0.0.1:40123: connect: connection refused',
          then=[{"stdout": 'Release "nginx-ingress" has been upgraded.'}])
    run(("ingress",), tmp_path)
    assert len(fb.calls("helm")) == 2


# ---- gateway -------------------------------------------------------------------------------

def test_gateway_crds_then_envoy_gateway_then_class(fb: FakeBin, tmp_path: Path) -> None:
    said = run(("gateway",), tmp_path)
    assert fb.commands() == [
        kubectl("apply", "--server-side", "--force-conflicts", "-f",
                str(tmp_path / "files" / "gateway-api-standard-install.yaml")),
        kubectl("wait", "--for=condition=Established",
                "crd/gatewayclasses.gateway.networking.k8s.io",
                "crd/gateways.gateway.networking.k8s.io", "crd/httproutes.gateway.networking.k8s.io",
                "--timeout=1s"),
        shlex.join(["helm", "upgrade", "--install", "eg", "oci://docker.io/envoyproxy/gateway-helm",
                    "--version", "v1.9.2", "--namespace", "envoy-gateway-system",
                    "--create-namespace", *HELM_KC]),
        kubectl("wait", "-n", "envoy-gateway-system", "--for=condition=Available",
                "deployment/envoy-gateway", "--timeout=1s"),
        kubectl("apply", "-f", "-"),
        kubectl("wait", "--for=condition=Accepted", "gatewayclass/netlab", "--timeout=1s"),
    ]
    assert json.loads(fb.stdin("kubectl", "apply", "-")[0]) == {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "netlab"},
        "spec": {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"}}
    assert said == ["Installing gateway: Gateway API v1.6.1 (standard) and Envoy Gateway v1.9.2",
                    "Waiting for Envoy Gateway and the GatewayClass netlab"]


def test_gateway_class_never_accepted(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("kubectl", "wait", "gatewayclass/netlab", code=1,
          stderr=wait_timed_out("gatewayclasses/netlab"))
    with pytest.raises(WaitTimeout, match="the GatewayClass netlab to be Accepted; last seen: "
                                          "error: timed out waiting for the condition on "
                                          "gatewayclasses/netlab"):
        run(("gateway",), tmp_path)


# ---- istio ---------------------------------------------------------------------------------

def test_istio_install_with_the_pinned_istioctl(fb: FakeBin, tmp_path: Path) -> None:
    said = run(("istio",), tmp_path)
    assert fb.commands() == [
        "istioctl version --remote=false",
        shlex.join(["istioctl", "install", "--set", "profile=minimal", "-y", *KC]),
        kubectl("rollout", "status", "deployment/istiod", "-n", "istio-system", "--timeout=1s"),
    ]
    assert said == ["Installing istio: Istio 1.30.4 (profile minimal, sidecar mode)",
                    "Waiting for istiod"]


def test_istio_refuses_another_istioctl(fb: FakeBin, tmp_path: Path) -> None:
    fb.on("istioctl", "version", stdout="client version: 1.24.2\n")
    with pytest.raises(ClusterError, match=r"istioctl client version: 1.24.2 is installed; the "
                                           r"course pins Istio 1.30.4.*ISTIO_VERSION=1.30.4 sh -"):
        run(("istio",), tmp_path)
    assert fb.calls("istioctl") == [["version", "--remote=false"]]


def test_istio_without_istioctl(fb: FakeBin, tmp_path: Path) -> None:
    fb.remove("istioctl")
    with pytest.raises(ClusterError, match=r"istioctl is not installed .*istioctl 1\.30\.4"):
        run(("istio",), tmp_path)
