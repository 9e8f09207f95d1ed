"""ClusterIP, nodePort and LoadBalancer address allocation, as the API server refuses them."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

import pytest

from clusters.errors import ManifestError
from clusters.local.services.allocator import ServiceAllocator
from clusters.local.topology import Topology, plan


@pytest.fixture
def topo() -> Topology:
    return plan("knltalloc", workers=2)


def svc(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("ports", [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}])
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def test_cluster_ip_comes_from_the_service_range_and_skips_reserved(topo: Topology) -> None:
    alloc = ServiceAllocator([], topo)
    seen = set()
    for i in range(50):
        out = alloc.allocate(svc(f"s{i}"))
        ip = IPv4Address(out["spec"]["clusterIP"])
        assert ip in topo.service_cidr
        assert str(ip) not in ("10.96.0.0", "10.96.0.1", "10.96.0.10", "10.96.255.255")
        assert out["spec"]["clusterIPs"] == [str(ip)]
        assert out["spec"]["ipFamilies"] == ["IPv4"]
        assert out["spec"]["ipFamilyPolicy"] == "SingleStack"
        seen.add(ip)
    assert len(seen) == 50


def test_allocation_is_stable_for_a_name_and_avoids_taken_ones(topo: Topology) -> None:
    first = ServiceAllocator([], topo).allocate(svc("web"))["spec"]["clusterIP"]
    again = ServiceAllocator([], topo).allocate(svc("web"))["spec"]["clusterIP"]
    assert first == again
    holder = svc("other", clusterIP=first)
    out = ServiceAllocator([holder], topo).allocate(svc("web"))
    assert out["spec"]["clusterIP"] != first


def test_input_is_not_modified(topo: Topology) -> None:
    original = svc("web", type="NodePort")
    ServiceAllocator([], topo).allocate(original)
    assert "clusterIP" not in original["spec"]
    assert "nodePort" not in original["spec"]["ports"][0]


def test_requested_cluster_ip_is_checked(topo: Topology) -> None:
    alloc = ServiceAllocator([svc("a", clusterIP="10.96.0.50")], topo)
    assert alloc.allocate(svc("b", clusterIP="10.96.0.51"))["spec"]["clusterIP"] == "10.96.0.51"
    with pytest.raises(ManifestError, match=r"already allocated.*default/a") as err:
        alloc.allocate(svc("c", clusterIP="10.96.0.50"))
    assert err.value.path == "spec.clusterIP"
    with pytest.raises(ManifestError, match=r"not in the valid range.*10\.96\.0\.0/16"):
        alloc.allocate(svc("d", clusterIP="10.97.0.5"))
    with pytest.raises(ManifestError, match="valid IPv4"):
        alloc.allocate(svc("e", clusterIP="fd00::1"))
    # b just took .51: it is now taken for everyone else
    with pytest.raises(ManifestError, match="default/b"):
        alloc.allocate(svc("f", clusterIP="10.96.0.51"))


def test_kube_dns_address_is_reserved_for_kube_dns(topo: Topology) -> None:
    alloc = ServiceAllocator([], topo)
    with pytest.raises(ManifestError, match="reserved for Service kube-system/kube-dns"):
        alloc.allocate(svc("mine", clusterIP="10.96.0.10"))
    dns = alloc.allocate(svc("kube-dns", namespace="kube-system", clusterIP="10.96.0.10"))
    assert dns["spec"]["clusterIP"] == "10.96.0.10"
    with pytest.raises(ManifestError, match="reserved for Service default/kubernetes"):
        alloc.allocate(svc("api", clusterIP="10.96.0.1"))


def test_cluster_ip_is_immutable_but_kept_on_reapply(topo: Topology) -> None:
    alloc = ServiceAllocator([], topo)
    stored = alloc.allocate(svc("web"))
    again = alloc.allocate(svc("web"), old=stored)
    assert again["spec"]["clusterIP"] == stored["spec"]["clusterIP"]
    same = alloc.allocate(svc("web", clusterIP=stored["spec"]["clusterIP"]), old=stored)
    assert same["spec"]["clusterIP"] == stored["spec"]["clusterIP"]
    with pytest.raises(ManifestError, match="field is immutable") as err:
        alloc.allocate(svc("web", clusterIP="10.96.0.77"), old=stored)
    assert err.value.path == "spec.clusterIP"
    with pytest.raises(ManifestError, match="field is immutable"):
        alloc.allocate(svc("web", clusterIP="None"), old=stored)


def test_headless_and_external_name(topo: Topology) -> None:
    alloc = ServiceAllocator([], topo)
    headless = alloc.allocate(svc("db", clusterIP="None"))
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["clusterIPs"] == ["None"]
    ext = alloc.allocate(svc("alias", type="ExternalName", externalName="example.com", ports=[]))
    assert "clusterIP" not in ext["spec"] and "clusterIPs" not in ext["spec"]
    with pytest.raises(ManifestError, match="ExternalName"):
        alloc.allocate(svc("bad", type="ExternalName", externalName="x.org", clusterIP="10.96.3.3"))
    # a ClusterIP Service may become an ExternalName one (its address is released)
    stored = alloc.allocate(svc("flip"))
    flipped = alloc.allocate(svc("flip", type="ExternalName", externalName="x.org"), old=stored)
    assert "clusterIP" not in flipped["spec"]


def test_single_stack_only(topo: Topology) -> None:
    alloc = ServiceAllocator([], topo)
    with pytest.raises(ManifestError, match="single-stack"):
        alloc.allocate(svc("a", ipFamilyPolicy="RequireDualStack"))
    with pytest.raises(ManifestError, match="single-stack"):
        alloc.allocate(svc("b", ipFamilies=["IPv6"]))


def test_node_ports_are_allocated_in_range_and_kept(topo: Topology) -> None:
    alloc = ServiceAllocator([], topo)
    two = [{"name": "http", "port": 80, "protocol": "TCP"},
           {"name": "https", "port": 443, "protocol": "TCP"}]
    out = alloc.allocate(svc("web", type="NodePort", ports=two))
    ports = [p["nodePort"] for p in out["spec"]["ports"]]
    assert all(30000 <= p <= 32767 for p in ports) and len(set(ports)) == 2
    again = alloc.allocate(svc("web", type="NodePort", ports=[dict(p) for p in two]), old=out)
    assert [p["nodePort"] for p in again["spec"]["ports"]] == ports
    clusterip = alloc.allocate(svc("plain"))
    assert "nodePort" not in clusterip["spec"]["ports"][0]


def test_same_port_number_on_tcp_and_udp_shares_a_node_port(topo: Topology) -> None:
    dns = [{"name": "dns", "port": 53, "protocol": "UDP"},
           {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    out = ServiceAllocator([], topo).allocate(svc("dns", type="NodePort", ports=dns))
    assert out["spec"]["ports"][0]["nodePort"] == out["spec"]["ports"][1]["nodePort"]


def test_requested_node_port_conflicts_name_the_other_service(topo: Topology) -> None:
    other = svc("other", type="NodePort",
                ports=[{"name": "web", "port": 8080, "protocol": "TCP", "nodePort": 30080}])
    alloc = ServiceAllocator([other], topo)
    ports = [{"name": "a", "port": 80, "protocol": "TCP", "nodePort": 31000},
             {"name": "b", "port": 81, "protocol": "TCP", "nodePort": 30080}]
    with pytest.raises(ManifestError, match=r"30080/TCP is already allocated.*default/other") as e:
        alloc.allocate(svc("mine", type="NodePort", ports=ports))
    assert e.value.path == "spec.ports[1].nodePort"
    # the same number with another protocol is free
    udp = alloc.allocate(svc("udp", type="NodePort",
                             ports=[{"name": "u", "port": 53, "protocol": "UDP", "nodePort": 30080}]))
    assert udp["spec"]["ports"][0]["nodePort"] == 30080
    with pytest.raises(ManifestError, match="not in the valid range"):
        alloc.allocate(svc("low", type="NodePort",
                           ports=[{"name": "x", "port": 1, "protocol": "TCP", "nodePort": 80}]))
    dup = [{"name": "a", "port": 80, "protocol": "TCP", "nodePort": 31001},
           {"name": "b", "port": 81, "protocol": "TCP", "nodePort": 31001}]
    with pytest.raises(ManifestError, match="duplicate nodePort"):
        alloc.allocate(svc("dup", type="NodePort", ports=dup))


def test_allocated_node_ports_never_collide(topo: Topology) -> None:
    alloc = ServiceAllocator([], topo)
    taken = set()
    for i in range(200):
        out = alloc.allocate(svc(f"s{i}", type="NodePort"))
        port = out["spec"]["ports"][0]["nodePort"]
        assert port not in taken
        taken.add(port)


def test_health_check_node_port_for_local_load_balancers(topo: Topology) -> None:
    alloc = ServiceAllocator([], topo)
    out = alloc.allocate(svc("lb", type="LoadBalancer", externalTrafficPolicy="Local"))
    hc = out["spec"]["healthCheckNodePort"]
    assert 30000 <= hc <= 32767 and hc != out["spec"]["ports"][0]["nodePort"]
    again = alloc.allocate(svc("lb", type="LoadBalancer", externalTrafficPolicy="Local"), old=out)
    assert again["spec"]["healthCheckNodePort"] == hc
    cluster = alloc.allocate(svc("lb2", type="LoadBalancer", externalTrafficPolicy="Cluster"))
    assert "healthCheckNodePort" not in cluster["spec"]
    with pytest.raises(ManifestError, match="may only be set") as err:
        alloc.allocate(svc("np", type="NodePort", healthCheckNodePort=31999))
    assert err.value.path == "spec.healthCheckNodePort"


def test_load_balancer_without_node_ports(topo: Topology) -> None:
    out = ServiceAllocator([], topo).allocate(
        svc("lb", type="LoadBalancer", allocateLoadBalancerNodePorts=False))
    assert "nodePort" not in out["spec"]["ports"][0]


def test_release_frees_addresses_and_ports(topo: Topology) -> None:
    held = svc("a", type="NodePort", clusterIP="10.96.0.60",
               ports=[{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30500}])
    alloc = ServiceAllocator([held], topo)
    alloc.release("default", "a")
    out = alloc.allocate(svc("b", type="NodePort", clusterIP="10.96.0.60",
                             ports=[{"name": "p", "port": 80, "protocol": "TCP",
                                     "nodePort": 30500}]))
    assert out["spec"]["clusterIP"] == "10.96.0.60"


def test_load_balancer_addresses(topo: Topology) -> None:
    base = topo.underlay.network_address
    alloc = ServiceAllocator([], topo)
    first = alloc.allocate_lb(svc("a", type="LoadBalancer"))
    assert first == str(base + 200)
    second = alloc.allocate_lb(svc("b", type="LoadBalancer"))
    assert second == str(base + 201)
    assert alloc.allocate_lb(svc("a", type="LoadBalancer")) == first  # kept
    asked = alloc.allocate_lb(svc("c", type="LoadBalancer", loadBalancerIP=str(base + 240)))
    assert asked == str(base + 240)
    assert alloc.allocate_lb(svc("d", type="LoadBalancer", loadBalancerIP=str(base + 240))) is None
    assert "already used by default/c" in alloc.pending["default/d"]
    assert alloc.allocate_lb(svc("e", type="LoadBalancer", loadBalancerIP="1.2.3.4")) is None
    assert "not in the pool" in alloc.pending["default/e"]
    assert alloc.allocate_lb(svc("f")) is None and "default/f" not in alloc.pending
    # becoming a ClusterIP Service gives the address back
    alloc.allocate_lb(svc("a"))
    assert alloc.allocate_lb(svc("g", type="LoadBalancer")) == first


def test_load_balancer_addresses_in_status_are_known(topo: Topology) -> None:
    base = topo.underlay.network_address
    holder = svc("a", type="LoadBalancer")
    holder["status"] = {"loadBalancer": {"ingress": [{"ip": str(base + 200)}]}}
    alloc = ServiceAllocator([holder], topo)
    assert alloc.allocate_lb(svc("b", type="LoadBalancer")) == str(base + 201)
    assert alloc.allocate_lb(holder) == str(base + 200)


def test_load_balancer_pool_exhaustion(topo: Topology) -> None:
    alloc = ServiceAllocator([], topo)
    got = [alloc.allocate_lb(svc(f"s{i}", type="LoadBalancer")) for i in range(51)]
    assert None not in got and len(set(got)) == 51
    assert alloc.allocate_lb(svc("late", type="LoadBalancer")) is None
    assert "no free address" in alloc.pending["default/late"]
