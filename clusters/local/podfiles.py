"""The files a pod sees that the kubelet writes: ``/etc/resolv.conf`` and ``/etc/hosts``.

Rules follow the kubelet: ``dnsPolicy`` ClusterFirst (the default) points at the cluster DNS
Service with the namespace search path and ``ndots:5``; Default inherits the node's
resolver; None takes only ``dnsConfig``; ``dnsConfig`` is merged into the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

CLUSTER_DOMAIN = "cluster.local"
CLUSTER_DNS = "10.96.0.10"


def _host_resolv(path: Path = Path("/etc/resolv.conf")) -> tuple[list[str], list[str], list[str]]:
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    try:
        text = path.read_text()
    except OSError:
        return servers, search, options
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith(("#", ";")):
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            servers.append(parts[1])
        elif parts[0] in ("search", "domain"):
            search = parts[1:]
        elif parts[0] == "options":
            options.extend(parts[1:])
    return servers, search, options


def resolv_conf(pod: Mapping[str, Any], host_resolv: Path = Path("/etc/resolv.conf")) -> str:
    """The ``/etc/resolv.conf`` the kubelet would write for ``pod``."""
    spec = pod.get("spec", {})
    ns = pod.get("metadata", {}).get("namespace", "default")
    policy = spec.get("dnsPolicy", "ClusterFirst")
    if spec.get("hostNetwork") and policy == "ClusterFirst":
        policy = "Default"
    if policy == "ClusterFirstWithHostNet":
        policy = "ClusterFirst"
    servers: list[str]
    search: list[str]
    options: list[str]
    if policy == "ClusterFirst":
        servers = [CLUSTER_DNS]
        search = [f"{ns}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
        options = ["ndots:5"]
    elif policy == "Default":
        servers, search, options = _host_resolv(host_resolv)
    else:  # None
        servers, search, options = [], [], []
    config = spec.get("dnsConfig") or {}
    servers = servers + [s for s in config.get("nameservers", []) if s not in servers]
    search = search + [s for s in config.get("searches", []) if s not in search]
    merged: dict[str, str | None] = {}
    for opt in options:
        key, _, value = opt.partition(":")
        merged[key] = value or None
    for opt in config.get("options", []):
        merged[opt["name"]] = opt.get("value")
    lines = [f"search {' '.join(search)}"] if search else []
    lines += [f"nameserver {s}" for s in servers[:3]]
    if merged:
        lines.append(
            "options " + " ".join(k if v is None else f"{k}:{v}" for k, v in merged.items())
        )
    return "\n".join(lines) + "\n"


def hosts_file(pod: Mapping[str, Any], pod_ip: str) -> str:
    """The ``/etc/hosts`` the kubelet would write: localhost, the pod's own names, hostAliases."""
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    name = spec.get("hostname") or meta.get("name", "")
    lines = [
        "# Kubernetes-managed hosts file (kube-netlab local engine).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    subdomain = spec.get("subdomain")
    if subdomain:
        ns = meta.get("namespace", "default")
        lines.append(f"{pod_ip}\t{name}.{subdomain}.{ns}.svc.{CLUSTER_DOMAIN}\t{name}")
    else:
        lines.append(f"{pod_ip}\t{name}")
    aliases = spec.get("hostAliases") or []
    if aliases:
        lines.append("")
        lines.append("# Entries added by HostAliases.")
        for alias in aliases:
            lines.append(f"{alias['ip']}\t" + "\t".join(alias.get("hostnames", [])))
    return "\n".join(lines) + "\n"
