"""The one host firewall rule the local engine may need, and its removal by tag.

Node-to-node traffic crosses the cluster's bridge in the host. When ``br_netfilter`` is
loaded with ``bridge-nf-call-iptables=1`` (Docker does this), bridged packets traverse the
host's iptables FORWARD chain, and Docker sets its policy to DROP: cross-node pod traffic
would silently vanish. So, only in that case, we insert one ACCEPT rule for traffic that
enters and leaves our bridge, carrying the cluster's tag as its comment, and remove exactly
the rules with that comment on teardown.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from clusters.proc import run

BRIDGE_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


def bridge_filtering_active(flag: Path = BRIDGE_NF) -> bool:
    try:
        return flag.read_text().strip() == "1"
    except OSError:
        return False


def _rule(bridge: str, tag: str) -> list[str]:
    return ["-i", bridge, "-o", bridge, "-m", "comment", "--comment", tag, "-j", "ACCEPT"]


def allow_bridge(bridge: str, tag: str) -> bool:
    """Make sure bridged traffic of ``bridge`` is accepted; True when a rule is in place."""
    if not bridge_filtering_active() or shutil.which("iptables") is None:
        return False
    rule = _rule(bridge, tag)
    if run(["iptables", "-w", "-C", "FORWARD", *rule], check=False).ok:
        return True
    run(["iptables", "-w", "-I", "FORWARD", "1", *rule])
    return True


def tagged_rules(tag: str) -> list[list[str]]:
    """FORWARD rules whose comment is exactly ``tag``, as ``iptables -S`` argument lists."""
    if shutil.which("iptables") is None:
        return []
    listing = run(["iptables", "-w", "-S", "FORWARD"], check=False)
    found = []
    for line in listing.stdout.splitlines():
        args = shlex.split(line)
        if args[:1] != ["-A"] or "--comment" not in args:
            continue
        if args[args.index("--comment") + 1] == tag:
            found.append(args[2:])
    return found


def remove_tagged(tag: str) -> list[str]:
    """Delete every FORWARD rule carrying ``tag``; returns what was removed."""
    removed = []
    for spec in tagged_rules(tag):
        run(["iptables", "-w", "-D", "FORWARD", *spec])
        removed.append("iptables FORWARD " + shlex.join(spec))
    return removed
