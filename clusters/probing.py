"""What a probe asks and what it observed: the same on every engine.

A probe is one attempt from a source (a pod, or the host outside the cluster) to a target.
Its :class:`Observation` carries exactly one :class:`Outcome`, whose meaning never depends on
the engine:

========== ==============================================================================
CONNECTED  TCP handshake completed; UDP reply datagram arrived; ping answered; for HTTP a
           response arrived (``status`` holds its code)
REFUSED    TCP RST or ICMP port-unreachable / admin-prohibited (what a REJECT rule makes)
TIMEOUT    nothing came back within the timeout (what a DROP rule makes)
UNREACHABLE no route to the target (ICMP host/net unreachable, EHOSTUNREACH, ENETUNREACH)
DNS_ERROR  the target name did not resolve
UNSUPPORTED the engine cannot run this probe (e.g. SCTP on the local engine); never a pass
ERROR      anything else (the detail says what)
========== ==============================================================================
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

ProbeKind = Literal["tcp", "udp", "http", "ping", "dns"]
DnsType = Literal["A", "AAAA", "SRV", "PTR", "CNAME", "TXT"]
DNS_TYPES: tuple[str, ...] = ("A", "AAAA", "SRV", "PTR", "CNAME", "TXT")


class Outcome(StrEnum):
    CONNECTED = "CONNECTED"
    REFUSED = "REFUSED"
    TIMEOUT = "TIMEOUT"
    UNREACHABLE = "UNREACHABLE"
    DNS_ERROR = "DNS_ERROR"
    UNSUPPORTED = "UNSUPPORTED"
    ERROR = "ERROR"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Source:
    """Where a probe starts: a pod (``namespace``/``pod``), a node's own network
    (``node``, where kubelet probes and hostNetwork pods live), or the host outside the
    cluster (neither)."""

    namespace: str | None = None
    pod: str | None = None
    node: str | None = None

    @property
    def is_host(self) -> bool:
        return self.pod is None and self.node is None

    @classmethod
    def parse(cls, text: str) -> Source:
        """``host``, ``node:NAME``, ``NS/POD`` or ``POD`` (namespace ``default``)."""
        text = text.strip()
        if text in ("", "host"):
            return cls()
        if text.startswith("node:"):
            return cls(node=text.removeprefix("node:"))
        ns, _, pod = text.rpartition("/")
        return cls(ns or "default", pod)

    def __str__(self) -> str:
        if self.node is not None:
            return f"node:{self.node}"
        return "host" if self.pod is None else f"{self.namespace}/{self.pod}"


@dataclass(frozen=True)
class ProbeSpec:
    """One probe. ``target`` is an IP address or a name; ``port`` is unused for ``ping``.

    For ``dns``, ``target`` is the name to query (absolute when it ends in ``.``), sent to
    ``dns_server`` (default: the first ``nameserver`` of the source pod's resolv.conf, port
    53) over ``transport``; ``search`` expands the name with the pod's search list and
    ``ndots`` as its stub resolver would. A DNS probe is CONNECTED when any response arrived
    (whatever its rcode); ``Observation.extra`` then holds ``rcode`` (``NOERROR``,
    ``NXDOMAIN``, ...), ``qname`` (the name that produced the result) and ``records``: a list
    of ``{"name", "type", "ttl", "data"}`` where ``data`` is an address (A/AAAA), a name with
    a trailing dot (PTR/CNAME), the concatenated text (TXT) or ``{"priority", "weight",
    "port", "target"}`` (SRV).
    """

    kind: ProbeKind
    source: Source
    target: str
    port: int | None = None
    timeout: float = 1.0
    path: str = "/"
    host_header: str | None = None
    method: str = "GET"
    payload: str = "hostname"  # UDP datagram sent
    protocol_note: str = ""
    qtype: DnsType = "A"
    transport: Literal["udp", "tcp"] = "udp"
    search: bool = False
    dns_server: str | None = None

    def describe(self) -> str:
        dest = self.target if self.port is None else f"{self.target}:{self.port}"
        if self.kind == "http":
            dest = f"http://{dest}{self.path}"
        elif self.kind == "dns":
            via = f" @{self.dns_server}" if self.dns_server else ""
            return f"dns {self.source} -> {self.target} {self.qtype}/{self.transport}{via}"
        return f"{self.kind} {self.source} -> {dest}"


@dataclass(frozen=True)
class Observation:
    """What one probe saw."""

    outcome: Outcome
    detail: str = ""
    status: int | None = None  # HTTP status code
    body: str | None = None  # HTTP body / UDP reply / TCP banner (trimmed to 4 KiB)
    peer: str | None = None  # the address actually connected to
    elapsed: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def connected(self) -> bool:
        return self.outcome is Outcome.CONNECTED

    def summary(self) -> str:
        """A short human form: ``CONNECTED (HTTP 200)``, ``TIMEOUT after 1.0s``."""
        text = self.outcome.value
        if self.status is not None:
            text += f" (HTTP {self.status})"
        if self.outcome is Outcome.TIMEOUT and self.elapsed:
            text += f" after {self.elapsed:.1f}s"
        if self.detail and self.outcome not in (Outcome.CONNECTED, Outcome.TIMEOUT):
            text += f": {self.detail}"
        return text

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        return data


def parse_dns_server(text: str) -> tuple[str, int]:
    """A ``dns_server`` as (ip, port): ``IP``, ``IP:PORT``, ``[IPv6]`` or ``[IPv6]:PORT``
    (port 53 when none is given); ValueError otherwise. Every engine reads it the same way."""
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"not a DNS server address: {text!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        port = int(number)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return str(ipaddress.ip_address(host)), port
