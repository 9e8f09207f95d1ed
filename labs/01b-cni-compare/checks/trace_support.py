"""Lab 01b helpers: the learner's answers, and the truth read from the live cluster.

Nothing here knows the right answers in advance: every fact is read from the running
cluster (routes and devices in the nodes, the client's eth0, Node addresses), so a check
is right on any CNI backend, any machine and any placement of the pods.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from grader.expectations import CheckFailed, Finding, check

NS = "lab01b"
ANSWERS = "answers.txt"
#: Values a learner may write for "no overlay".
NONE_WORDS = {"none", "no", "-", "null", ""}


def answer(lab_options: Any, cni: str, key: str) -> str:
    """The learner's answer to ``key`` in the section of ``cni``, as lower-case text."""
    if lab_options.workspace is None:
        raise CheckFailed(Finding(expected=f"{ANSWERS} in your workspace",
                                  observed="no workspace given",
                                  hint="Run the checks with `lab check 01b`."))
    path = Path(lab_options.workspace) / ANSWERS
    if not path.is_file():
        raise CheckFailed(Finding(expected=f"{path}", observed="no such file",
                                  hint="`lab start 01b` copies it from the starter; "
                                       "`lab reset 01b` brings it back."))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise CheckFailed(Finding(expected=f"{ANSWERS} is valid YAML", observed=str(err),
                                  hint="Keep the layout of the starter: `key: value`, two "
                                       "spaces of indentation under the CNI's name.")) from err
    section = data.get(cni) if isinstance(data, Mapping) else None
    value = section.get(key) if isinstance(section, Mapping) else None
    text = "" if value is None else str(value).strip().lower()
    check(text not in ("", "?"), expected=f"an answer for {cni}.{key} in {ANSWERS}",
          observed=f"{cni}.{key}: {value if value is not None else 'missing'}",
          hint=f"This cluster runs {cni}: fill in the `{cni}:` section of {ANSWERS}; its "
               "comments say which command shows each fact.")
    return text


def node_json(cluster: Any, node: str, argv: list[str]) -> Any:
    """``ip -j ...`` in ``node``, parsed."""
    result = cluster.node_exec(node, argv, capture=True)
    if result.returncode != 0:
        raise CheckFailed(Finding(expected=f"`{' '.join(argv)}` works in {node}",
                                  observed=(result.stderr or result.stdout).strip()[:300]))
    return json.loads(result.stdout or "[]")


def route_get(cluster: Any, node: str, ip: str) -> Mapping[str, Any]:
    """The kernel's choice for ``ip`` in ``node`` (``dev``, ``gateway``, ...)."""
    found = node_json(cluster, node, ["ip", "-j", "route", "get", ip])
    return found[0] if found else {}


def covering_route(cluster: Any, node: str, ip: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The most specific route of ``node`` whose prefix holds ``ip`` (default excluded)."""
    nets = []
    for route in node_json(cluster, node, ["ip", "-j", "route", "show", "match", ip]):
        dst = route.get("dst", "default")
        if dst != "default":
            nets.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32"))
    return max(nets, key=lambda n: n.prefixlen, default=None)


def vxlan_port(cluster: Any, node: str, dev: str) -> int | None:
    """The UDP port of ``dev`` when it is a VXLAN device, else None."""
    links = node_json(cluster, node, ["ip", "-j", "-d", "link", "show", "dev", dev])
    info = (links[0].get("linkinfo") or {}) if links else {}
    if info.get("info_kind") != "vxlan":
        return None
    return int((info.get("info_data") or {}).get("port", 0)) or None


def next_hop_owner(cluster: Any, gateway: str) -> tuple[str, str]:
    """What the address ``gateway`` is: ``("node-ip", node)`` for a node's InternalIP,
    ``("tunnel-ip", "<dev> of <node>")`` for an address on an overlay device."""
    nodes = cluster.get("Node")
    for node in nodes:
        for addr in (node.get("status") or {}).get("addresses") or []:
            if addr.get("address") == gateway:
                return "node-ip", node["metadata"]["name"]
    for node in nodes:
        name = node["metadata"]["name"]
        for link in node_json(cluster, name, ["ip", "-j", "-d", "addr", "show"]):
            if any(a.get("local") == gateway for a in link.get("addr_info") or []):
                kind = (link.get("linkinfo") or {}).get("info_kind", "")
                what = "tunnel-ip" if kind == "vxlan" else "other"
                return what, f"{link.get('ifname')} of {name}"
    return "other", "no node"


def pod_mtu(cluster: Any, pod: str) -> int:
    result = cluster.exec(NS, pod, ["ip", "-j", "link", "show", "dev", "eth0"], capture=True)
    links = json.loads(result.stdout or "[]") if result.returncode == 0 else []
    check(bool(links), expected=f"{NS}/{pod} has an eth0", observed=result.stderr.strip())
    return int(links[0]["mtu"])


def as_int(text: str) -> int | None:
    try:
        return int(text.strip().lstrip("/"))
    except ValueError:
        return None
