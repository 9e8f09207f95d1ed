"""Our v1alpha4 schema check: every config we generate passes; each bad one names its field."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from clusters.addons import ADDONS
from clusters.cnis import CNIS
from clusters.engine import ClusterProfile
from clusters.errors import ClusterError
from clusters.kind.config import kind_config
from clusters.kind.schema import KindConfigError, validate_kind_config

ADDON_SETS = [combo for n in range(len(ADDONS) + 1) for combo in itertools.combinations(ADDONS, n)]
PROFILES = [(cni, backend, addons)
            for cni, info in sorted(CNIS.items())
            for backend in (info.backends or ("",))
            for addons in ADDON_SETS]


@pytest.mark.parametrize(("cni", "backend", "addons"), PROFILES)
def test_every_generated_config_validates(cni: str, backend: str, addons: tuple[str, ...]) -> None:
    doc = kind_config("knl-test", ClusterProfile(workers=2, cni=cni, backend=backend, addons=addons))
    validate_kind_config(doc)  # kind_config validates too; this states it for every combination


def test_a_config_using_every_field_validates() -> None:
    validate_kind_config({
        "kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": "full",
        "featureGates": {"InPlacePodVerticalScaling": True},
        "runtimeConfig": {"api/alpha": "false"},
        "kubeadmConfigPatches": ["kind: ClusterConfiguration\n"],
        "kubeadmConfigPatchesJSON6902": [{"group": "kubeadm.k8s.io", "version": "v1beta4",
                                          "kind": "ClusterConfiguration", "patch": "[]"}],
        "containerdConfigPatches": ["[plugins]\n"],
        "containerdConfigPatchesJSON6902": ["[]"],
        "networking": {"ipFamily": "dual", "apiServerAddress": "127.0.0.1", "apiServerPort": 6443,
                       "podSubnet": "10.244.0.0/16,fd00:10:244::/56",
                       "serviceSubnet": "10.96.0.0/16,fd00:10:96::/112",
                       "disableDefaultCNI": True, "kubeProxyMode": "nftables", "dnsSearch": []},
        "nodes": [
            {"role": "control-plane", "image": "kindest/node:v1.35.8",
             "labels": {"example.com/tier": "front", "plain": ""},
             "extraMounts": [{"hostPath": "/tmp/x", "containerPath": "/x", "readOnly": True,
                              "selinuxRelabel": False, "propagation": "HostToContainer"}],
             "extraPortMappings": [{"containerPort": 80, "hostPort": 0},
                                   {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
                                   {"containerPort": 54, "hostPort": 5353, "protocol": "TCP"}],
             "kubeadmConfigPatches": [], "kubeadmConfigPatchesJSON6902": []},
            {"role": "worker", "gpus": "all"},
        ],
    })


def test_kinds_defaults_are_accepted() -> None:
    # No nodes: kind makes one control-plane. A node without a role is a control-plane.
    validate_kind_config({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4"})
    validate_kind_config({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "nodes": [{}]})


BASE: dict[str, Any] = {
    "kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": "knl",
    "nodes": [
        {"role": "control-plane", "image": "kindest/node:v1.35.8",
         "extraPortMappings": [{"containerPort": 80, "hostPort": 8080, "listenAddress": "127.0.0.1"}]},
        {"role": "worker", "extraMounts": [{"hostPath": "/opt/cni", "containerPath": "/opt/cni"}]},
    ],
    "networking": {"podSubnet": "10.244.0.0/16"},
}


def changed(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """BASE with the field at ``path`` set to ``value`` (or removed, for ``...``)."""
    doc = copy.deepcopy(BASE)
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


PM = ("nodes", 0, "extraPortMappings", 0)
BAD: list[tuple[tuple[Any, ...], Any, str]] = [
    (("kind",), "Config", "kind: expected one of Cluster, got 'Config'"),
    (("kind",), ..., "kind: expected this field in a kind Cluster config, got nothing"),
    (("apiVersion",), "kind.x-k8s.io/v1alpha3",
     "apiVersion: expected one of kind.x-k8s.io/v1alpha4, got 'kind.x-k8s.io/v1alpha3'"),
    (("name",), "-lab", "name: expected a cluster name of 1-49 [a-z0-9.-], alphanumeric at both ends, "
                        "got '-lab'"),
    (("node",), [], "node: expected a field of a kind Cluster config (kind, apiVersion, name, nodes, "
                    "networking, featureGates, runtimeConfig, kubeadmConfigPatches, "
                    "kubeadmConfigPatchesJSON6902, containerdConfigPatches, "
                    "containerdConfigPatchesJSON6902), got an unknown field"),
    (("nodes",), {"role": "worker"}, "nodes: expected a list of nodes, got a mapping"),
    (("nodes",), [], "nodes: expected at least one node, got an empty list"),
    (("nodes", 0, "role"), "worker", "nodes: expected at least one node with role control-plane, "
                                     "got roles worker, worker"),
    (("nodes", 1, "role"), "master", "nodes[1].role: expected one of control-plane, worker, got 'master'"),
    (("nodes", 1, "image"), "kindest/node: v1", "nodes[1].image: expected an image reference, "
                                                "got 'kindest/node: v1'"),
    (("nodes", 1, "extraPortMapping"), [], "nodes[1].extraPortMapping: expected a field of a node "
     "(role, image, labels, extraMounts, extraPortMappings, gpus, kubeadmConfigPatches, "
     "kubeadmConfigPatchesJSON6902), got an unknown field"),
    (("nodes", 1, "labels"), {"netlab.dev/managed": True},
     "nodes[1].labels['netlab.dev/managed']: expected a label value (0-63 of [A-Za-z0-9-_.]), "
     "got boolean True"),
    (("nodes", 1, "labels"), {"bad key!": "x"},
     "nodes[1].labels['bad key!']: expected a label key like 'example.com/name' (name: 1-63 of "
     "[A-Za-z0-9-_.], alphanumeric at both ends), got key 'bad key!'"),
    ((*PM, "hostPort"), 70000, "nodes[0].extraPortMappings[0].hostPort: expected a port 1-65535 "
                               "(or 0/-1 for any free port), got 70000"),
    ((*PM, "hostPort"), "8080", "nodes[0].extraPortMappings[0].hostPort: expected a port 1-65535 "
                                "(or 0/-1 for any free port), got string '8080'"),
    ((*PM, "containerPort"), 0, "nodes[0].extraPortMappings[0].containerPort: expected a port 1-65535, "
                                "got 0"),
    ((*PM, "containerPort"), True, "nodes[0].extraPortMappings[0].containerPort: expected a port "
                                   "1-65535, got boolean True"),
    ((*PM, "containerPort"), ..., "nodes[0].extraPortMappings[0].containerPort: expected this field "
                                  "in a port mapping, got nothing"),
    ((*PM, "protocol"), "tcp", "nodes[0].extraPortMappings[0].protocol: expected one of TCP, UDP, SCTP, "
                               "got 'tcp'"),
    ((*PM, "listenAddress"), "localhost", "nodes[0].extraPortMappings[0].listenAddress: expected an "
                                          "IP address, got 'localhost'"),
    (("nodes", 1, "extraPortMappings"), [{"containerPort": 81, "hostPort": 8080}],
     "nodes[1].extraPortMappings[0].hostPort: expected a host port not already mapped by "
     "nodes[0].extraPortMappings[0].hostPort, got 8080"),
    (("nodes", 1, "extraMounts", 0, "containerPath"), "opt/cni",
     "nodes[1].extraMounts[0].containerPath: expected an absolute path, got 'opt/cni'"),
    (("nodes", 1, "extraMounts", 0, "propagation"), "rshared",
     "nodes[1].extraMounts[0].propagation: expected one of None, HostToContainer, Bidirectional, "
     "got 'rshared'"),
    (("nodes", 1, "extraMounts", 0, "readOnly"), "yes",
     "nodes[1].extraMounts[0].readOnly: expected true or false, got string 'yes'"),
    (("networking", "podSubnet"), "10.244.0.1/16",
     "networking.podSubnet: expected a CIDR such as 10.244.0.0/16 (two, comma-separated, for dual "
     "stack); 10.244.0.1/16 has host bits set, got '10.244.0.1/16'"),
    (("networking", "podSubnet"), "10.244.0.0/33",
     "networking.podSubnet: expected a CIDR such as 10.244.0.0/16 (two, comma-separated, for dual "
     "stack); '10.244.0.0/33' does not appear to be an IPv4 or IPv6 network, got '10.244.0.0/33'"),
    (("networking", "serviceSubnet"), "10.244.128.0/20",
     "networking.serviceSubnet: expected a range apart from podSubnet 10.244.0.0/16, got '10.244.128.0/20'"),
    (("networking", "kubeProxyMode"), "userspace",
     "networking.kubeProxyMode: expected one of iptables, ipvs, nftables, none, got 'userspace'"),
    (("networking", "disableDefaultCNI"), "true",
     "networking.disableDefaultCNI: expected true or false, got string 'true'"),
    (("networking", "ipFamily"), "IPv4", "networking.ipFamily: expected one of ipv4, ipv6, dual, got 'IPv4'"),
    (("networking", "apiServerPort"), 65536, "networking.apiServerPort: expected a port 1-65535 "
                                             "(or 0/-1 for any free port), got 65536"),
    (("featureGates",), {"Foo": "true"}, "featureGates['Foo']: expected true or false, got string 'true'"),
    (("kubeadmConfigPatches",), "kind: InitConfiguration",
     "kubeadmConfigPatches: expected a list of strings, got string 'kind: InitConfiguration'"),
    (("kubeadmConfigPatchesJSON6902",), [{"kind": "ClusterConfiguration"}],
     "kubeadmConfigPatchesJSON6902[0].patch: expected this field in a JSON 6902 patch, got nothing"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[m.split(":")[0] for _, _, m in BAD])
def test_a_bad_config_names_the_field_what_was_expected_and_what_was_found(
        path: tuple[Any, ...], value: Any, message: str) -> None:
    validate_kind_config(BASE)
    with pytest.raises(KindConfigError) as err:
        validate_kind_config(changed(path, value))
    assert str(err.value) == f"kind config {message}"
    assert err.value.path == message.split(": expected")[0]
    assert isinstance(err.value, ClusterError)


def test_a_document_that_is_not_a_mapping() -> None:
    with pytest.raises(KindConfigError, match=r"kind config \(document\): expected a kind Cluster config, "
                                              r"got a list"):
        validate_kind_config([])  # type: ignore[arg-type]


def test_a_wildcard_listen_address_collides_with_a_specific_one() -> None:
    doc = changed(("nodes", 1, "extraPortMappings"), [{"containerPort": 80, "hostPort": 8080}])
    doc["nodes"][0]["extraPortMappings"][0]["listenAddress"] = "0.0.0.0"
    with pytest.raises(KindConfigError, match="not already mapped"):
        validate_kind_config(doc)
    doc["nodes"][1]["extraPortMappings"][0]["hostPort"] = 8081
    validate_kind_config(doc)
