"""The nftables rendering of NetworkPolicy (pure): layout, comments, ports, peers, determinism.

The scripts are also handed to the real ``nft -c`` (check only) inside a private user and
network namespace when the machine allows it, so a syntax nft refuses fails here, not in a
cluster.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from ipaddress import IPv4Address, IPv4Network, collapse_addresses
from typing import Any

import pytest

from clusters.local.netpol import TABLE, render_node, render_nodes, sctp_warnings
from clusters.local.netpol.enforcer import considered_pod
from clusters.local.netpol.nftables import MAX_COMMENT, MAX_NAME, nft_comment, nft_name
from clusters.netpol.engine import PolicySet

W1, W2 = "c-worker", "c-worker2"


def ns(name: str, **labels: str) -> dict[str, Any]:
    return {"kind": "Namespace", "metadata": {"name": name, "labels": dict(labels)}}


def pod(namespace: str, name: str, ip: str, node: str, labels: dict[str, str] | None = None,
        ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"kind": "Pod",
            "metadata": {"namespace": namespace, "name": name, "labels": labels or {}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}]},
            "status": {"podIP": ip}}


def policy(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "NetworkPolicy", "metadata": {"namespace": namespace, "name": name},
            "spec": spec}


NAMESPACES = [ns("lab04"), ns("mon", team="monitoring")]
PODS = [
    pod("lab04", "frontend", "10.244.1.2", W1, {"app": "frontend"}),
    pod("lab04", "api", "10.244.1.3", W1, {"app": "api"},
        [{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53,
                                                   "protocol": "UDP"}]),
    pod("lab04", "api-2", "10.244.2.3", W2, {"app": "api"},
        [{"name": "http", "containerPort": 8081}]),
    pod("lab04", "db", "10.244.2.4", W2, {"app": "db"}),
    pod("mon", "prom", "10.244.2.9", W2, {"app": "prom"}),
]


def script(policies: list[dict[str, Any]], node: str = W1, pods: list[dict[str, Any]] = PODS,
           namespaces: list[dict[str, Any]] = NAMESPACES) -> str:
    return render_node(PolicySet.from_objects(policies, pods, namespaces), node, "c")


def chain(text: str, name: str) -> list[str]:
    """The rule lines of chain ``name`` (KeyError-like failure when it is missing)."""
    m = re.search(rf"^\tchain {re.escape(name)} {{\n(.*?)^\t}}", text, re.M | re.S)
    assert m, f"no chain {name} in:\n{text}"
    return [line.strip() for line in m.group(1).splitlines()]


def set_elements(text: str, name: str) -> list[str]:
    m = re.search(rf"^\tset {re.escape(name)} {{\n(.*?)^\t}}", text, re.M | re.S)
    assert m, f"no set {name} in:\n{text}"
    el = re.search(r"elements = \{ (.*) \}", m.group(1))
    return el.group(1).split(", ") if el else []


def _nft_check_available() -> bool:
    if shutil.which("nft") is None or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rn", "nft", "-c", "-f", "-"], input="table inet t {}\n",
                           capture_output=True, text=True, check=False)
    return probe.returncode == 0


NFT = _nft_check_available()


def nft_check(text: str) -> None:
    """Have the real nft parse and check ``text`` in a throw-away namespace."""
    if not NFT:
        pytest.skip("nft -c needs nft and unprivileged user namespaces (unshare -rn)")
    res = subprocess.run(["unshare", "-rn", "nft", "-c", "-f", "-"], input=text,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, f"{res.stderr}\n{text}"


DENY_ALL = policy("lab04", "default-deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
ALLOW_API = policy("lab04", "allow-api", {
    "podSelector": {"matchLabels": {"app": "api"}},
    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                 "ports": [{"port": 8080}]}]})


def test_isolated_pods_get_a_chain_with_comments_and_a_final_counted_drop() -> None:
    text = script([DENY_ALL, ALLOW_API])
    assert text.startswith(f"table inet {TABLE} {{}}\ndelete table inet {TABLE}\n"
                           f"table inet {TABLE} {{\n")
    forward = chain(text, "forward")
    assert forward[0] == "type filter hook forward priority -10; policy accept;"
    assert forward[1].startswith("ct state established,related accept")
    # Only pods of THIS node are jumped to; no egress isolation at all.
    assert any(line.startswith("ip daddr vmap { 10.244.1.2 : jump ingress-lab04/frontend, "
                               "10.244.1.3 : jump ingress-lab04/api }") for line in forward)
    assert not any("saddr vmap" in line for line in forward)
    assert "ingress-lab04/db" not in text and "egress-" not in text

    assert chain(text, "ingress-lab04/api") == [
        "ip saddr @peers-lab04/allow-api-ingress0 tcp dport 8080 counter accept "
        'comment "lab04/allow-api ingress[0]"',
        'counter drop comment "lab04/api isolated for ingress by lab04/allow-api, '
        'lab04/default-deny"']
    assert chain(text, "ingress-lab04/frontend") == [
        'counter drop comment "lab04/frontend isolated for ingress by lab04/default-deny"']
    assert set_elements(text, "peers-lab04/allow-api-ingress0") == ["10.244.1.2"]
    nft_check(text)


def test_a_node_without_isolated_pods_has_only_the_established_rule() -> None:
    text = script([ALLOW_API], node="c-control-plane")
    assert chain(text, "forward")[1:] == [
        'ct state established,related accept comment "replies to allowed connections"']
    assert "set " not in text
    nft_check(text)


def test_egress_is_rendered_only_at_the_source_node_and_ingress_at_the_destination() -> None:
    egress = policy("lab04", "db-out", {
        "podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Egress", "Ingress"],
        "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}]}]})
    w1, w2 = script([egress], W1), script([egress], W2)
    assert "lab04/db" not in w1
    assert chain(w2, "egress-lab04/db")[0] == (
        'ip daddr @peers-lab04/db-out-egress0 counter return comment "lab04/db-out egress[0]"')
    assert chain(w2, "egress-lab04/db")[-1].startswith("counter drop ")
    assert chain(w2, "ingress-lab04/db") == [
        'counter drop comment "lab04/db isolated for ingress by lab04/db-out"']
    forward = chain(w2, "forward")
    # egress is judged before ingress (a same-node packet passes both)
    assert [line.split(" vmap")[0] for line in forward[2:]] == ["ip saddr", "ip daddr"]
    assert set_elements(w2, "peers-lab04/db-out-egress0") == ["10.244.2.9"]
    nft_check(w2)


def test_named_ingress_ports_resolve_per_selected_pod() -> None:
    named = policy("lab04", "named", {
        "podSelector": {"matchLabels": {"app": "api"}},
        "ingress": [{"ports": [{"port": "http"}, {"port": "dns", "protocol": "UDP"}]}]})
    w1, w2 = script([named], W1), script([named], W2)
    assert chain(w1, "ingress-lab04/api")[:2] == [
        'tcp dport 8080 counter accept comment "lab04/named ingress[0]"',
        'udp dport 53 counter accept comment "lab04/named ingress[0]"']
    # api-2 calls 8081 "http" and has no "dns" port
    assert chain(w2, "ingress-lab04/api-2") == [
        'tcp dport 8081 counter accept comment "lab04/named ingress[0]"',
        'counter drop comment "lab04/api-2 isolated for ingress by lab04/named"']
    nft_check(w1)
    nft_check(w2)


def test_named_egress_ports_become_address_protocol_port_triples() -> None:
    out = policy("lab04", "to-api", {
        "podSelector": {"matchLabels": {"app": "frontend"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                    "ports": [{"port": "http"}, {"port": 9000, "endPort": 9100}]}]})
    text = script([out], W1)
    assert chain(text, "egress-lab04/frontend") == [
        'ip daddr @peers-lab04/to-api-egress0 tcp dport 9000-9100 counter return '
        'comment "lab04/to-api egress[0]"',
        'ip daddr . meta l4proto . th dport @namedports-lab04/to-api-egress0 counter return '
        'comment "lab04/to-api egress[0]"',
        'counter drop comment "lab04/frontend isolated for egress by lab04/to-api"']
    assert set_elements(text, "namedports-lab04/to-api-egress0") == [
        "10.244.1.3 . tcp . 8080", "10.244.2.3 . tcp . 8081"]
    assert set_elements(text, "peers-lab04/to-api-egress0") == ["10.244.1.3", "10.244.2.3"]
    nft_check(text)


def test_a_named_egress_port_no_peer_declares_allows_nothing() -> None:
    out = policy("lab04", "to-db", {
        "podSelector": {"matchLabels": {"app": "frontend"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                    "ports": [{"port": "http"}]}]})
    text = script([out], W1)
    assert chain(text, "egress-lab04/frontend") == [
        'counter drop comment "lab04/frontend isolated for egress by lab04/to-db"']
    assert "namedports" not in text
    nft_check(text)


def test_ip_block_with_except_becomes_collapsed_intervals() -> None:
    block = policy("lab04", "block", {
        "podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                           "except": ["10.244.0.0/16", "10.1.2.0/24"]}},
                              {"ipBlock": {"cidr": "10.1.2.128/25"}},
                              {"podSelector": {"matchLabels": {"app": "api"}}}],
                     "ports": [{"protocol": "UDP", "port": 53}]}]})
    text = script([block], W2)
    nets = [IPv4Network(e) for e in set_elements(text, "peers-lab04/block-ingress0")]
    # already collapsed (nft refuses overlapping intervals) and covering exactly the peers
    assert sorted(collapse_addresses(nets)) == sorted(nets)
    assert sum(n.num_addresses for n in nets) == 2**24 - 2**16 - 256 + 128 + 2
    inside = ["10.0.0.1", "10.1.2.200", "10.1.3.1", "10.255.0.1", "10.244.1.3", "10.244.2.3"]
    outside = ["10.244.5.5", "10.244.2.4", "10.1.2.5", "11.0.0.1", "9.255.255.255"]
    for ip in inside + outside:
        assert any(IPv4Address(ip) in n for n in nets) == (ip in inside), ip
    assert chain(text, "ingress-lab04/db")[0] == (
        'ip saddr @peers-lab04/block-ingress0 udp dport 53 counter accept '
        'comment "lab04/block ingress[0]"')
    nft_check(text)


def test_empty_rules_allow_everything_and_protocol_only_ports_match_the_protocol() -> None:
    allow_all = policy("lab04", "allow-all", {"podSelector": {}, "ingress": [{}]})
    udp_only = policy("lab04", "udp-only", {
        "podSelector": {"matchLabels": {"app": "frontend"}}, "policyTypes": ["Egress"],
        "egress": [{"ports": [{"protocol": "UDP"}]}]})
    text = script([allow_all, udp_only], W1)
    assert chain(text, "ingress-lab04/api")[0] == (
        'counter accept comment "lab04/allow-all ingress[0]"')
    assert chain(text, "egress-lab04/frontend")[0] == (
        'meta l4proto udp counter return comment "lab04/udp-only egress[0]"')
    assert "@peers" not in text
    nft_check(text)


def test_a_peer_matching_no_pod_is_an_empty_set_not_an_open_door() -> None:
    nobody = policy("lab04", "nobody", {
        "podSelector": {"matchLabels": {"app": "api"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "ghost"}}}]}]})
    text = script([nobody], W1)
    assert set_elements(text, "peers-lab04/nobody-ingress0") == []
    assert chain(text, "ingress-lab04/api")[0].startswith("ip saddr @peers-lab04/nobody-ingress0")
    nft_check(text)


def test_output_is_deterministic_whatever_the_input_order() -> None:
    policies = [DENY_ALL, ALLOW_API, policy("lab04", "dns", {
        "podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]}]})]
    first = script(policies, W1)
    for seed in range(5):
        rng = random.Random(seed)
        p, q, n = list(policies), list(PODS), list(NAMESPACES)
        rng.shuffle(p)
        rng.shuffle(q)
        rng.shuffle(n)
        assert script(p, W1, q, n) == first
    scripts = render_nodes(PolicySet.from_objects(policies, PODS, NAMESPACES), [W1, W2], "c")
    assert scripts[W1].text == first
    assert scripts[W1].rules == first.count(" counter ") + first.count("\t\tcounter ") + sum(
        1 for line in chain(first, "forward") if not line.startswith("type "))
    nft_check(first)


def test_names_and_comments_stay_within_nft_limits() -> None:
    assert nft_name("ingress-lab04/api-7d9f") == "ingress-lab04/api-7d9f"
    long = "ingress-" + "n" * 63 + "/" + ("p" * 60 + ".") * 4
    name = nft_name(long)
    assert len(name) <= MAX_NAME and name.startswith("ingress-nnn") and name != long
    assert nft_name(long) == name and nft_name(long + "x") != name
    assert nft_name("9bad name") == nft_name("9bad name")
    assert re.match(r"^[A-Za-z_.][A-Za-z0-9/\-_.]*$", nft_name("9bad name:x"))
    c = nft_comment('x"' * 200)
    assert len(c) == len('comment ""') + MAX_COMMENT and '"' not in c[9:-1]

    # a pod and policy with very long names still load
    pods = [pod("n" * 63, "p" * 253, "10.244.1.2", W1, {"a": "b"})]
    long_policy = policy("n" * 63, "q" * 253, {"podSelector": {}, "ingress": [
        {"from": [{"podSelector": {}}]}]})
    text = script([long_policy], W1, pods, [ns("n" * 63)])
    for line in text.splitlines():
        for word in re.findall(r"(?:chain|set|jump|@)\s?(\S+)", line):
            assert len(word.rstrip(",")) <= MAX_NAME
    nft_check(text)


def test_many_isolating_policies_are_summarised_in_the_drop_comment() -> None:
    many = [policy("lab04", f"deny-{i:02d}-with-a-rather-long-name", {"podSelector": {}})
            for i in range(20)]
    drop = chain(script(many, W1), "ingress-lab04/api")[-1]
    assert drop.startswith('counter drop comment "lab04/api isolated for ingress by '
                           "lab04/deny-00-with-a-rather-long-name")
    assert re.search(r"and \d+ more\"$", drop)


def test_sctp_ports_render_and_warn() -> None:
    sctp = policy("lab04", "sctp", {"podSelector": {}, "ingress": [
        {"ports": [{"protocol": "SCTP", "port": 9999}]}]})
    text = script([sctp], W1)
    assert 'sctp dport 9999 counter accept comment "lab04/sctp ingress[0]"' in text
    nft_check(text)
    (warning,) = sctp_warnings(sctp)
    assert "lab04/sctp" in warning and "spec.ingress[0].ports[0]" in warning
    assert "unsupported on the local engine: the kernel has no SCTP" in warning
    assert sctp_warnings(ALLOW_API) == []


def test_only_scheduled_addressed_live_pod_network_pods_are_considered() -> None:
    base = pod("lab04", "x", "10.244.1.9", W1)
    assert considered_pod(base)
    assert not considered_pod({**base, "status": {}})
    assert not considered_pod({**base, "spec": {"containers": []}})
    assert not considered_pod({**base, "spec": {"nodeName": W1, "hostNetwork": True}})
    assert not considered_pod({**base, "metadata": {**base["metadata"],
                                                    "deletionTimestamp": "2024-01-01T00:00:00Z"}})
