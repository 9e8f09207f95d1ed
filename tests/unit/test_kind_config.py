"""The kind config generated per profile: nodes, CNI settings, add-on plumbing."""

from __future__ import annotations

import pytest
import yaml

from clusters.addons import ADDONS
from clusters.cnis import CNIS, CniChoiceError
from clusters.engine import ClusterProfile
from clusters.kind.config import (
    INGRESS_HOST_PORTS,
    MANAGED_LABEL,
    POD_SUBNETS,
    kind_config,
    render_config,
)
from clusters.kind.pins import pin
from clusters.kind.schema import KindConfigError


def test_every_cni_has_a_pod_subnet() -> None:
    assert set(POD_SUBNETS) == set(CNIS)
    assert POD_SUBNETS["calico"] == "192.168.0.0/16"
    assert {POD_SUBNETS[c] for c in ("kindnet", "flannel", "cilium")} == {"10.244.0.0/16"}


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_one_control_plane_and_the_workers_all_on_the_pinned_image_and_marked(workers: int) -> None:
    doc = kind_config("knl", ClusterProfile(workers=workers))
    assert (doc["kind"], doc["apiVersion"], doc["name"]) == ("Cluster", "kind.x-k8s.io/v1alpha4", "knl")
    roles = [n["role"] for n in doc["nodes"]]
    assert roles == ["control-plane"] + ["worker"] * workers
    for node in doc["nodes"]:
        assert node["image"] == pin("node-image").image and "@sha256:" in node["image"]
        assert node["labels"][MANAGED_LABEL] == "true"


@pytest.mark.parametrize("cni", sorted(CNIS))
def test_networking_per_cni(cni: str) -> None:
    net = kind_config("knl", ClusterProfile(cni=cni))["networking"]
    assert net == {"disableDefaultCNI": cni != "kindnet", "podSubnet": POD_SUBNETS[cni],
                   "kubeProxyMode": "iptables"}
    assert "serviceSubnet" not in net  # kind's default 10.96.0.0/16


def test_ingress_maps_loopback_ports_to_the_labelled_control_plane() -> None:
    doc = kind_config("knl", ClusterProfile(workers=2, addons=("ingress",)))
    control, *workers = doc["nodes"]
    assert control["labels"]["ingress-ready"] == "true"
    assert control["extraPortMappings"] == [
        {"containerPort": 80, "hostPort": 8080, "listenAddress": "127.0.0.1", "protocol": "TCP"},
        {"containerPort": 443, "hostPort": 8443, "listenAddress": "127.0.0.1", "protocol": "TCP"},
    ]
    assert all(p > 1024 for p in INGRESS_HOST_PORTS.values())  # no root needed on the host
    for worker in workers:
        assert "extraPortMappings" not in worker and "ingress-ready" not in worker["labels"]


@pytest.mark.parametrize("addons", [(), ("load-balancer",), ("gateway",), ("istio",),
                                    ("gateway", "load-balancer", "istio")])
def test_other_addons_need_nothing_in_the_config(addons: tuple[str, ...]) -> None:
    assert kind_config("knl", ClusterProfile(addons=addons)) == kind_config("knl", ClusterProfile())


def test_render_is_the_same_config_as_yaml_with_a_header() -> None:
    profile = ClusterProfile(workers=1, cni="flannel", backend="host-gw", addons=("ingress",))
    text = render_config("knl", profile)
    assert text.startswith("# kind cluster 'knl' made by kube-netlab: CNI flannel (host-gw), 1 worker(s), "
                           "add-ons: ingress.\n")
    assert yaml.safe_load(text) == kind_config("knl", profile)
    assert "netlab.dev/managed: 'true'" in text  # a string label, not a YAML boolean


def test_unknown_addons_name_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown add-ons 'nginx', 'metallb'; choose from: "
                                         + ", ".join(ADDONS)):
        kind_config("knl", ClusterProfile(addons=("nginx", "metallb", "ingress")))


def test_unknown_cni_or_backend_name_the_choices() -> None:
    with pytest.raises(CniChoiceError, match="unknown CNI 'weave'; choose one of: kindnet"):
        kind_config("knl", ClusterProfile(cni="weave"))
    with pytest.raises(CniChoiceError, match="no backend 'ipip'"):
        kind_config("knl", ClusterProfile(cni="calico", backend="ipip"))


def test_negative_workers_and_bad_names_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot have -1 workers"):
        kind_config("knl", ClusterProfile(workers=-1))
    with pytest.raises(KindConfigError, match=r"kind config name: expected a cluster name .*got 'Lab_01'"):
        kind_config("Lab_01", ClusterProfile())
