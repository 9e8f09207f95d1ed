"""kube-proxy's iptables layout, rendered without root: names, structure and semantics."""

from __future__ import annotations

import re
from typing import Any

import pytest

from clusters.local.services.iptables import (
    RuleSet,
    chain_name,
    endpoint_chain_name,
    probability,
    render,
    restore_input,
)

CIDR = "10.244.0.0/16"


def service(name: str = "web", namespace: str = "default", *, ip: str = "10.96.5.5",
            ports: list[dict[str, Any]] | None = None, status: Any = None,
            **spec: Any) -> dict[str, Any]:
    spec.setdefault("type", "ClusterIP")
    spec["clusterIP"] = ip
    spec["ports"] = ports if ports is not None else [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
    out: dict[str, Any] = {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
    if status:
        out["status"] = status
    return out


def slice_(service_name: str, eps: list[tuple[str, str, bool]], *, namespace: str = "default",
           port: int = 8080, port_name: str = "http", protocol: str = "TCP",
           **cond: Any) -> dict[str, Any]:
    return {"metadata": {"name": f"{service_name}-abcde", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4",
            "ports": [{"name": port_name, "port": port, "protocol": protocol}],
            "endpoints": [{"addresses": [ip], "nodeName": node,
                           "conditions": {"ready": ready, **cond}} for ip, node, ready in eps]}


THREE = [("10.244.0.5", "n0", True), ("10.244.1.5", "n1", True), ("10.244.2.5", "n2", True)]


def rules(rs: RuleSet, table: str = "nat") -> list[str]:
    return rs.rules(table)


def chain(rs: RuleSet, name: str, table: str = "nat") -> list[str]:
    return rs.tables[table].get(name, [])


def do(services: list[dict[str, Any]], slices: list[dict[str, Any]],
       node: str = "n1") -> RuleSet:
    return render(services, slices, node_name=node, node_ip="172.30.0.3", cluster_cidr=CIDR)


def test_chain_names_match_a_real_cluster() -> None:
    # as seen on every kubeadm/kind node
    assert chain_name("KUBE-SVC-", "default/kubernetes:https", "TCP") == "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert chain_name("KUBE-SVC-", "kube-system/kube-dns:dns", "UDP") == "KUBE-SVC-TCOU7JCQXEZGVUNU"
    assert chain_name("KUBE-SVC-", "kube-system/kube-dns:dns-tcp", "TCP") == (
        "KUBE-SVC-ERIFXISQEP7F7OF4")
    sep = endpoint_chain_name("default/web:http", "TCP", "10.244.1.5:8080")
    assert re.fullmatch(r"KUBE-SEP-[A-Z2-7]{16}", sep)
    assert sep != endpoint_chain_name("default/web:http", "TCP", "10.244.1.6:8080")


def test_probabilities_use_kube_proxy_format() -> None:
    assert probability(3) == "0.3333333333"
    assert probability(2) == "0.5000000000"
    assert probability(1) == "1.0000000000"


def test_cluster_ip_structure() -> None:
    rs = do([service()], [slice_("web", THREE)])
    svc = chain_name("KUBE-SVC-", "default/web:http", "tcp")
    assert ('-A KUBE-SERVICES -d 10.96.5.5/32 -p tcp -m comment --comment '
            f'"default/web:http cluster IP" -m tcp --dport 80 -j {svc}') in rules(rs)
    body = chain(rs, svc)
    assert body[0] == (f'-A {svc} ! -s {CIDR} -d 10.96.5.5/32 -p tcp -m comment --comment '
                       '"default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ')
    picks = body[1:]
    assert len(picks) == 3
    assert "--probability 0.3333333333" in picks[0]
    assert "--probability 0.5000000000" in picks[1]
    assert "statistic" not in picks[2]
    assert '"default/web:http -> 10.244.0.5:8080"' in picks[0]
    for ip in ("10.244.0.5", "10.244.1.5", "10.244.2.5"):
        sep = endpoint_chain_name("default/web:http", "tcp", f"{ip}:8080")
        assert chain(rs, sep) == [
            f'-A {sep} -s {ip}/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ',
            f'-A {sep} -p tcp -m comment --comment "default/web:http" -m tcp '
            f"-j DNAT --to-destination {ip}:8080"]
    assert chain(rs, "KUBE-SERVICES")[-1].endswith("--dst-type LOCAL -j KUBE-NODEPORTS")
    assert chain(rs, "KUBE-SERVICES", "filter") == []  # nothing rejected


def test_single_endpoint_has_no_statistic_and_unnamed_port_comment() -> None:
    ports = [{"port": 80, "protocol": "TCP", "targetPort": 8080}]
    rs = do([service(ports=ports)], [slice_("web", THREE[:1], port_name="")])
    svc = chain_name("KUBE-SVC-", "default/web", "tcp")
    assert any('"default/web cluster IP"' in r for r in chain(rs, "KUBE-SERVICES"))
    assert chain(rs, svc)[1].endswith(
        f'"default/web -> 10.244.0.5:8080" -j '
        f'{endpoint_chain_name("default/web", "tcp", "10.244.0.5:8080")}')


def test_masquerade_and_postrouting_chains() -> None:
    rs = do([], [])
    assert chain(rs, "KUBE-MARK-MASQ") == ["-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"]
    post = chain(rs, "KUBE-POSTROUTING")
    assert post[0] == "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"
    assert post[-1].endswith("-j MASQUERADE --random-fully")
    forward = chain(rs, "KUBE-FORWARD", "filter")
    assert any("--mark 0x4000/0x4000 -j ACCEPT" in r for r in forward)


def test_session_affinity_uses_recent() -> None:
    svc = service(sessionAffinity="ClientIP",
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    rs = do([svc], [slice_("web", THREE)])
    body = chain(rs, chain_name("KUBE-SVC-", "default/web:http", "tcp"))
    checks = [r for r in body if "--rcheck" in r]
    assert len(checks) == 3
    sep = endpoint_chain_name("default/web:http", "tcp", "10.244.0.5:8080")
    assert (f"-m recent --rcheck --seconds 60 --reap --name {sep} --mask 255.255.255.255 "
            f"--rsource -j {sep}") in checks[0]
    # affinity checks come before the random picks
    assert body.index(checks[-1]) < next(i for i, r in enumerate(body) if "statistic" in r)
    assert f"-m recent --set --name {sep} --mask 255.255.255.255 --rsource" in chain(rs, sep)[1]


def test_no_ready_endpoints_rejects_cluster_ip_node_port_and_lb() -> None:
    svc = service(type="LoadBalancer",
                  ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}],
                  status={"loadBalancer": {"ingress": [{"ip": "172.30.0.200"}]}})
    rs = do([svc], [slice_("web", [("10.244.0.5", "n0", False)])])
    flt = rules(rs, "filter")
    why = '"default/web:http has no endpoints"'
    assert (f"-A KUBE-SERVICES -d 10.96.5.5/32 -p tcp -m comment --comment {why} -m tcp "
            "--dport 80 -j REJECT --reject-with icmp-port-unreachable") in flt
    assert (f"-A KUBE-EXTERNAL-SERVICES -d 172.30.0.200/32 -p tcp -m comment --comment {why} "
            "-m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable") in flt
    assert (f"-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment {why} -m addrtype "
            "--dst-type LOCAL -m tcp --dport 30080 -j REJECT --reject-with "
            "icmp-port-unreachable") in flt
    assert not any(c.startswith(("KUBE-SVC-", "KUBE-SEP-", "KUBE-EXT-")) for c in rs.chains("nat"))


def test_terminating_but_serving_endpoints_are_a_fallback() -> None:
    eps = slice_("web", [("10.244.0.5", "n0", False)], serving=True, terminating=True)
    rs = do([service()], [eps])
    assert any(c.startswith("KUBE-SEP-") for c in rs.chains("nat"))
    both = slice_("web", [("10.244.0.5", "n0", False)], serving=True, terminating=True)
    both["endpoints"].append({"addresses": ["10.244.1.9"], "conditions": {"ready": True}})
    rs = do([service()], [both])
    assert [c for c in rs.chains("nat") if c.startswith("KUBE-SEP-")] == [
        endpoint_chain_name("default/web:http", "tcp", "10.244.1.9:8080")]


def test_node_port_goes_through_the_ext_chain_with_masquerade() -> None:
    svc = service(type="NodePort", externalTrafficPolicy="Cluster",
                  ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}])
    rs = do([svc], [slice_("web", THREE)])
    ext = chain_name("KUBE-EXT-", "default/web:http", "tcp")
    svc_chain = chain_name("KUBE-SVC-", "default/web:http", "tcp")
    assert chain(rs, "KUBE-NODEPORTS") == [
        f'-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web:http" -m tcp '
        f"--dport 30080 -j {ext}"]
    assert chain(rs, ext) == [
        f'-A {ext} -m comment --comment "masquerade traffic for default/web:http external '
        'destinations" -j KUBE-MARK-MASQ', f"-A {ext} -j {svc_chain}"]


def test_external_traffic_policy_local() -> None:
    svc = service(type="NodePort", externalTrafficPolicy="Local",
                  ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}])
    ext = chain_name("KUBE-EXT-", "default/web:http", "tcp")
    svl = chain_name("KUBE-SVL-", "default/web:http", "tcp")
    svc_chain = chain_name("KUBE-SVC-", "default/web:http", "tcp")
    local = do([svc], [slice_("web", THREE)], node="n1")
    body = chain(local, ext)
    assert body[0] == (f'-A {ext} -s {CIDR} -m comment --comment "pod traffic for '
                       f'default/web:http external destinations" -j {svc_chain}')
    assert "--src-type LOCAL -j KUBE-MARK-MASQ" in body[1]
    assert f"--src-type LOCAL -j {svc_chain}" in body[2]
    assert body[3] == f"-A {ext} -j {svl}"
    assert not any("masquerade traffic for" in r for r in body)  # source preserved
    assert len(chain(local, svl)) == 1 and "10.244.1.5:8080" in chain(local, svl)[0]
    # a node without a local endpoint drops external traffic but still serves pods
    remote = do([svc], [slice_("web", THREE[:1])], node="n1")
    assert f"-A {ext} -j {svl}" not in chain(remote, ext)
    assert svl not in remote.chains("nat")
    assert ('-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "default/web:http has no '
            'local endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 30080 -j DROP'
            ) in rules(remote, "filter")
    assert any(r.endswith(f"-j {svc_chain}") for r in chain(remote, "KUBE-SERVICES"))


def test_internal_traffic_policy_local() -> None:
    svc = service(internalTrafficPolicy="Local")
    svl = chain_name("KUBE-SVL-", "default/web:http", "tcp")
    here = do([svc], [slice_("web", THREE)], node="n2")
    assert any(r.endswith(f"-j {svl}") for r in chain(here, "KUBE-SERVICES"))
    assert "! -s" in chain(here, svl)[0]
    assert [r for r in chain(here, svl) if "-> " in r] == [
        f'-A {svl} -m comment --comment "default/web:http -> 10.244.2.5:8080" -j '
        f'{endpoint_chain_name("default/web:http", "tcp", "10.244.2.5:8080")}']
    assert not any(c.startswith("KUBE-SVC-") for c in here.chains("nat"))
    elsewhere = do([svc], [slice_("web", THREE[:2])], node="n2")
    assert ('-A KUBE-SERVICES -d 10.96.5.5/32 -p tcp -m comment --comment "default/web:http '
            'has no local endpoints" -m tcp --dport 80 -j DROP') in rules(elsewhere, "filter")
    assert not any(c.startswith("KUBE-S") and c != "KUBE-SERVICES"
                   for c in elsewhere.chains("nat"))


def test_load_balancer_ingress_and_source_ranges() -> None:
    status = {"loadBalancer": {"ingress": [{"ip": "172.30.0.200"}]}}
    ports = [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]
    rs = do([service(type="LoadBalancer", ports=ports, status=status)], [slice_("web", THREE)])
    ext = chain_name("KUBE-EXT-", "default/web:http", "tcp")
    assert ('-A KUBE-SERVICES -d 172.30.0.200/32 -p tcp -m comment --comment '
            f'"default/web:http loadbalancer IP" -m tcp --dport 80 -j {ext}') in rules(rs)
    fenced = do([service(type="LoadBalancer", ports=ports, status=status,
                         loadBalancerSourceRanges=["172.30.0.0/24"])], [slice_("web", THREE)])
    fw = chain_name("KUBE-FW-", "default/web:http", "tcp")
    assert any(r.endswith(f"-j {fw}") and "172.30.0.200" in r for r in rules(fenced))
    assert chain(fenced, fw)[0] == (f'-A {fw} -s 172.30.0.0/24 -m comment --comment '
                                    f'"default/web:http loadbalancer IP" -j {ext}')
    assert any("-s 172.30.0.200/32" in r for r in chain(fenced, fw))  # the node is in range
    assert any(r.endswith("-j DROP") for r in chain(fenced, "KUBE-PROXY-FIREWALL", "filter"))


def test_headless_external_name_and_sctp_get_nothing() -> None:
    rs = do([service(ip="None"), service("alias", type="ExternalName", ip=""),
             service("s", ports=[{"name": "x", "port": 9, "protocol": "SCTP"}])],
            [slice_("web", THREE)])
    assert not any(c.startswith("KUBE-S") and c != "KUBE-SERVICES" for c in rs.chains("nat"))
    assert len(chain(rs, "KUBE-SERVICES")) == 1  # only the nodeports jump


def test_udp_and_user_slices_with_matching_port_names() -> None:
    ports = [{"name": "dns", "port": 53, "protocol": "UDP"},
             {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    slices = [slice_("dns", [("10.244.1.3", "n1", True)], port=53, port_name="dns",
                     protocol="UDP")]
    rs = do([service("dns", ports=ports)], slices)
    assert any("-p udp" in r and "-m udp --dport 53" in r for r in chain(rs, "KUBE-SERVICES"))
    # the TCP port has no endpoint in any slice: rejected
    assert any('"default/dns:dns-tcp has no endpoints"' in r for r in rules(rs, "filter"))


@pytest.mark.parametrize("n", [1, 2, 5])
def test_probabilities_cascade(n: int) -> None:
    eps = [(f"10.244.1.{i + 2}", "n1", True) for i in range(n)]
    rs = do([service()], [slice_("web", eps)])
    body = chain(rs, chain_name("KUBE-SVC-", "default/web:http", "tcp"))[1:]
    got = [re.search(r"--probability (\S+)", r) for r in body]
    assert [m.group(1) if m else None for m in got] == [
        f"{1 / (n - i):0.10f}" for i in range(n - 1)] + [None]


def test_restore_input_full_and_partial() -> None:
    a = do([service(), service("api", ip="10.96.7.7")],
           [slice_("web", THREE), slice_("api", THREE[:1])])
    full = a.text()
    assert full.startswith("*filter\n") and full.count("COMMIT") == 2
    declared = [line[1:].split()[0] for line in full.splitlines() if line.startswith(":")]
    assert set(declared) == set(a.chains("filter")) | set(a.chains("nat"))
    # api loses its endpoint, web is unchanged
    b = do([service(), service("api", ip="10.96.7.7")], [slice_("web", THREE)])
    partial = restore_input(b, a)
    nat = partial.split("*nat\n", 1)[1]
    web_svc = chain_name("KUBE-SVC-", "default/web:http", "tcp")
    api_svc = chain_name("KUBE-SVC-", "default/api:http", "tcp")
    api_sep = endpoint_chain_name("default/api:http", "tcp", "10.244.0.5:8080")
    assert f":{web_svc} " not in nat and f"-A {web_svc}" not in nat
    assert ":KUBE-SERVICES - [0:0]" in nat
    assert f"-X {api_svc}" in nat and f"-X {api_sep}" in nat
    assert nat.index(f"-X {api_svc}") > nat.index("-A KUBE-SERVICES")
    # stale chains found on a node are removed; others' chains are never touched
    cleanup = restore_input(b, None, stale=["KUBE-SEP-OLDOLDOLDOLDOLDO", "MY-CHAIN", web_svc])
    assert "-X KUBE-SEP-OLDOLDOLDOLDOLDO" in cleanup
    assert "MY-CHAIN" not in cleanup and f"-X {web_svc}" not in cleanup


def test_restore_input_inserts_missing_base_jumps_in_order() -> None:
    jumps = [("nat", '-A PREROUTING -m comment --comment "kubernetes service portals" '
                     "-j KUBE-SERVICES"),
             ("filter", "-A INPUT -j KUBE-FIREWALL"),
             ("filter", '-A INPUT -m comment --comment "x" -j KUBE-NODEPORTS')]
    text = restore_input(do([], []), None, jumps=jumps)
    assert '-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' \
        in text
    assert "-I INPUT 1 -j KUBE-FIREWALL" in text
    assert '-I INPUT 2 -m comment --comment "x" -j KUBE-NODEPORTS' in text
