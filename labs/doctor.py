"""``lab doctor``: what this machine can do, tested for real, each problem with its fix."""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import sys
from dataclasses import dataclass

from clusters.proc import run
from clusters.selection import (
    ENGINES,
    IMPLEMENTED,
    get_engine,
    kind_available,
    local_available,
)

TOOLS: dict[str, tuple[str, str]] = {
    # tool: (what it is for, Debian package)
    "ip": ("namespaces, links, routes", "iproute2"),
    "nsenter": ("lab exec (UTS namespace)", "util-linux"),
    "unshare": ("per-pod hostnames", "util-linux"),
    "iptables": ("kube-proxy's Service rules in every node (iptables-restore)", "iptables"),
    "conntrack": ("clearing stale UDP flows when Service endpoints change", "conntrack"),
    "nft": ("nftables rules", "nftables"),
    "curl": ("HTTP from pods", "curl"),
    "dig": ("DNS from pods", "dnsutils"),
    "nc": ("TCP/UDP from pods", "netcat-openbsd"),
    "ping": ("ICMP from pods", "iputils-ping"),
    "tcpdump": ("watching packets", "tcpdump"),
}


#: The sysctl flannel nodes set so that bridged frames pass through iptables.
BRIDGE_NF_SYSCTL = "net/bridge/bridge-nf-call-iptables"


@dataclass(frozen=True)
class Finding:
    area: str
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _kernel_features() -> list[Finding]:
    """Try each feature inside a throw-away namespace, so nothing on the host changes."""
    found: list[Finding] = []
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return [Finding("kernel", "network namespaces", False, "not tested (needs root and iproute2)",
                        "run `sudo ./lab doctor`")]
    ns = f"knl-doctor-{os.getpid()}"
    made = run(["ip", "netns", "add", ns], check=False)
    if not made.ok:
        return [Finding("kernel", "network namespaces", False, made.stderr.strip(),
                        "a kernel with CONFIG_NET_NS is required")]
    try:
        found.append(Finding("kernel", "network namespaces", True, "created and removed one"))
        tests = {
            "veth": ["link", "add", "knlv0", "type", "veth", "peer", "name", "knlv1"],
            "bridge": ["link", "add", "knlb0", "type", "bridge"],
            # As flannel.1 is made (VNI 1, UDP 8472, FDB programmed, not learnt).
            "vxlan": ["link", "add", "knlx0", "type", "vxlan", "id", "1", "dstport", "8472",
                      "local", "127.0.0.1", "nolearning"],
            "ipip": ["link", "add", "knlt0", "type", "ipip", "local", "127.0.0.1"],
            "wireguard": ["link", "add", "knlw0", "type", "wireguard"],
        }
        needed = {"veth", "bridge", "vxlan"}
        for feature, args in tests.items():
            res = run(["ip", "-n", ns, *args], check=False)
            if res.ok:
                found.append(Finding("kernel", feature, True, "available"))
            elif feature in needed:
                found.append(Finding("kernel", feature, False, res.stderr.strip(),
                                     f"load the module: modprobe {feature}"))
            else:
                found.append(Finding("kernel", feature, False,
                                     "not in this kernel; labs that need it say so (optional)"))
        found.append(_bridge_netfilter(ns))
        if shutil.which("iptables-restore"):
            found.append(_kube_proxy_matches(ns))
        if shutil.which("nft"):
            res = run(["ip", "netns", "exec", ns, "nft", "list", "tables"], check=False)
            found.append(Finding("kernel", "nf_tables", res.ok, "available" if res.ok else
                                 res.stderr.strip(), "" if res.ok else "modprobe nf_tables"))
            if res.ok:
                found.append(_policy_matches(ns))
    finally:
        run(["ip", "netns", "del", ns], check=False)
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132).close()
        found.append(Finding("kernel", "sctp", True, "available"))
    except OSError:
        found.append(Finding("kernel", "sctp", False,
                             "not in this kernel: SCTP probes report 'unsupported' (optional)"))
    return found


# One rule per iptables extension kube-proxy's rules use (statistic balancing, recent for
# session affinity, addrtype for NodePorts, DNAT/MASQUERADE/REJECT, comments, marks).
_KUBE_PROXY_PROBE = """*nat
:KNL-DOCTOR - [0:0]
-A KNL-DOCTOR -m comment --comment doctor -m statistic --mode random --probability 0.5 -j RETURN
-A KNL-DOCTOR -m recent --rcheck --seconds 10 --reap --name KNL -j RETURN
-A KNL-DOCTOR -m addrtype --dst-type LOCAL -j RETURN
-A KNL-DOCTOR -p tcp -m tcp -j DNAT --to-destination 10.0.0.1:80
-A KNL-DOCTOR -m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully
COMMIT
*filter
:KNL-DOCTOR - [0:0]
-A KNL-DOCTOR -m conntrack --ctstate NEW -j REJECT --reject-with icmp-port-unreachable
COMMIT
"""


# What the NetworkPolicy rules use: a forward hook ahead of iptables, conntrack state, verdict
# maps, interval sets and concatenated (address . protocol . port) sets, counters, comments.
_POLICY_PROBE = """table inet knl-doctor {
  set peers { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 192.168.1.1 }; }
  set named { type ipv4_addr . inet_proto . inet_service; elements = { 10.0.0.1 . tcp . 80 }; }
  chain pod {
    ip saddr @peers tcp dport 80-90 accept comment "doctor"
    ip daddr . meta l4proto . th dport @named return
    counter drop
  }
  chain forward {
    type filter hook forward priority -10; policy accept;
    ct state established,related accept
    ip daddr vmap { 10.0.0.2 : jump pod }
  }
}
"""


def _policy_matches(ns: str) -> Finding:
    res = run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=_POLICY_PROBE, check=False)
    if res.ok:
        return Finding("kernel", "NetworkPolicy nftables rules", True,
                       "forward hook, conntrack, verdict maps, interval and concatenated sets")
    return Finding("kernel", "NetworkPolicy nftables rules", False, res.stderr.strip(),
                   "load the netfilter modules: modprobe -a nf_tables nft_ct nft_counter "
                   "nf_conntrack")


def _kube_proxy_matches(ns: str) -> Finding:
    res = run(["ip", "netns", "exec", ns, "iptables-restore", "--noflush"],
              input=_KUBE_PROXY_PROBE, check=False)
    if res.ok:
        return Finding("kernel", "kube-proxy iptables rules", True,
                       "statistic, recent, addrtype, DNAT, MASQUERADE, REJECT available")
    return Finding("kernel", "kube-proxy iptables rules", False, res.stderr.strip(),
                   "load the netfilter modules: modprobe -a xt_statistic xt_recent "
                   "xt_addrtype xt_conntrack nf_nat")


def _bridge_netfilter(ns: str) -> Finding:
    """Flannel's cni0 bridge needs bridged frames to pass iptables (kube-proxy's DNAT for a
    Service whose endpoint sits on the same node). The sysctl exists per namespace only
    once br_netfilter is loaded, so look from inside a new namespace, as a node would."""
    name = "bridge netfilter (flannel)"
    res = run(["ip", "netns", "exec", ns, "cat", f"/proc/sys/{BRIDGE_NF_SYSCTL}"], check=False)
    if res.ok:
        return Finding("kernel", name, True,
                       f"net.bridge.bridge-nf-call-iptables available (now {res.stdout.strip()})")
    return Finding("kernel", name, False,
                   "net.bridge.bridge-nf-call-iptables is missing in new namespaces: flannel "
                   "clusters would drop same-node Service traffic",
                   "load the module: modprobe br_netfilter")


def _bird_version() -> tuple[bool, str]:
    """``(is BIRD 2, what was found)``; bird prints its version on stderr."""
    res = run(["bird", "--version"], check=False)
    text = (res.stdout + res.stderr).strip()
    match = re.search(r"BIRD version (\S+)", text)
    if match is None:
        return False, text or f"`bird --version` exited {res.returncode}"
    version = match.group(1)
    return version.startswith("2."), f"BIRD {version}"


def _cni_tools() -> list[Finding]:
    """Tools only some CNI modes (and the CNI benchmark) use: missing ones are not fatal."""
    found: list[Finding] = []
    missing = [t for t in ("bird", "birdc") if shutil.which(t) is None]
    if missing:
        found.append(Finding("cni", "BIRD 2 (calico bgp)", False,
                             f"missing {' and '.join(missing)}: calico's BGP mode cannot start "
                             "its BGP daemons (other modes work)", "apt-get install bird2"))
    else:
        ok, seen = _bird_version()
        found.append(Finding("cni", "BIRD 2 (calico bgp)", ok,
                             f"{seen}: one bird per node, sessions in `birdc show protocols`"
                             if ok else f"{seen}; calico's configuration is written for BIRD 2",
                             "" if ok else "apt-get install bird2"))
    iperf = shutil.which("iperf3")
    found.append(Finding("cni", "iperf3 (benchmark)", iperf is not None,
                         iperf or "missing: only scripts/bench_cni.py uses it for throughput "
                         "(a note, not a problem)", "" if iperf else "apt-get install iperf3"))
    return found


def kind_findings() -> list[Finding]:
    """The kind engine's machine checks (Docker, tool versions against the pins, inotify,
    memory), area ``kind``; none of them decides ``lab doctor``'s exit code (the ``engines``
    rows do)."""
    from clusters.kind.preflight import preflight

    return [Finding("kind", c.name, c.ok, c.detail, c.fix) for c in preflight()]


def diagnose() -> list[Finding]:
    findings = [
        Finding("system", "operating system", platform.system() == "Linux",
                f"{platform.system()} {platform.release()}",
                "" if platform.system() == "Linux" else "the local engine needs Linux"),
        Finding("system", "python", sys.version_info >= (3, 11), platform.python_version(),
                "" if sys.version_info >= (3, 11) else "Python 3.11 or newer is required"),
        Finding("system", "root", os.geteuid() == 0,
                "running as root" if os.geteuid() == 0 else f"uid {os.geteuid()}",
                "" if os.geteuid() == 0 else "the local engine needs root: sudo ./lab ..."),
    ]
    findings += _kernel_features()
    for tool, (why, pkg) in TOOLS.items():
        path = shutil.which(tool)
        findings.append(Finding("tools", tool, path is not None, path or f"missing ({why})",
                                "" if path else f"apt-get install {pkg}"))
    findings += _cni_tools()
    findings += kind_findings()
    checks = {"local": local_available(), "kind": kind_available(),
              "context": get_engine("context").available()}
    for name, what in ENGINES.items():
        if name not in IMPLEMENTED:
            ok, why = False, "not available in this version of kube-netlab"
        else:
            ok, why = checks[name]
        findings.append(Finding("engines", name, ok, f"{what}: {why}"))
    return findings
