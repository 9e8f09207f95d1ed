"""What a pod's stub resolver reads: its ``/etc/resolv.conf`` (search list, ndots,
nameservers), as the engine writes it under ``/etc/netns/<netns>/``.

The queries themselves are sent by :mod:`clusters.local.dns.client` (``lookup`` for a
probe's own name resolution, ``dns_probe`` for the ``dns`` probe), from inside the pod's
network namespace, so they take the same path through Service VIPs, DNS pods and
NetworkPolicy as the pod's own lookups would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ResolvConf", "ResolveError"]


@dataclass(frozen=True)
class ResolvConf:
    """The parts of resolv.conf(5) a pod's lookups depend on."""

    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    ndots: int = 1

    @classmethod
    def parse(cls, text: str) -> ResolvConf:
        servers: list[str] = []
        search: tuple[str, ...] = ()
        ndots = 1
        for line in text.splitlines():
            words = line.split("#", 1)[0].split(";", 1)[0].split()
            if not words:
                continue
            if words[0] == "nameserver" and len(words) > 1:
                servers.append(words[1])
            elif words[0] in ("search", "domain"):
                search = tuple(w.rstrip(".") for w in words[1:])
            elif words[0] == "options":
                for opt in words[1:]:
                    if opt.startswith("ndots:") and opt[6:].isdigit():
                        ndots = min(int(opt[6:]), 15)
        return cls(tuple(servers), search, ndots)

    @classmethod
    def for_netns(cls, name: str) -> ResolvConf:
        """What ``ip netns exec NAME`` would show as /etc/resolv.conf."""
        own = Path("/etc/netns") / name / "resolv.conf"
        path = own if own.exists() else Path("/etc/resolv.conf")
        return cls.parse(path.read_text())

    def candidates(self, name: str) -> list[str]:
        """The names a resolver tries for ``name``, in order (search list and ndots)."""
        if name.endswith("."):
            return [name.rstrip(".")]
        searched = [f"{name}.{domain}" for domain in self.search]
        if name.count(".") >= self.ndots:
            return [name, *searched]
        return [*searched, name]


class ResolveError(Exception):
    """A name did not resolve; the message says why."""
