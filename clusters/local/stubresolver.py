"""A tiny DNS stub resolver that looks names up the way a pod would.

It reads the pod's ``/etc/netns/<netns>/resolv.conf`` (search list, ndots, nameservers) and
sends plain A queries over UDP from inside the pod's network namespace, so a probe's name
resolution takes the same path through Service VIPs, DNS pods and NetworkPolicy as the
pod's own lookups would. Only what probes need: A records, first answer wins.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from clusters.local import netns as nsmod

__all__ = ["ResolvConf", "ResolveError", "lookup", "query_a"]

_RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


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


def lookup(name: str, conf: ResolvConf, netns: str | None, timeout: float,
           port: int = 53) -> str:
    """Resolve ``name`` to its first A record with ``conf``, querying from ``netns``."""
    if not conf.nameservers:
        raise ResolveError(f"{name}: no nameserver in resolv.conf")
    tried: list[str] = []
    for candidate in conf.candidates(name):
        answer: tuple[int, list[str]] | None = None
        silent: list[str] = []
        for server in conf.nameservers:
            try:
                answer = query_a(candidate, (server, port), netns, timeout)
                break
            except TimeoutError:
                silent.append(server)
            except OSError as err:
                silent.append(f"{server} ({err.strerror or err})")
        if answer is None:
            raise ResolveError(f"no DNS answer from {', '.join(silent)}")
        rcode, addresses = answer
        if addresses:
            return addresses[0]
        tried.append(f"{candidate} ({_RCODES.get(rcode, 'no A record')})")
    raise ResolveError(f"{name} did not resolve; tried {', '.join(tried)}")


def query_a(name: str, server: tuple[str, int], netns: str | None,
            timeout: float) -> tuple[int, list[str]]:
    """One A query over UDP: (rcode, addresses). Raises TimeoutError when nothing answers."""
    qid = int.from_bytes(os.urandom(2), "big")
    labels = [p.encode("idna") for p in name.split(".") if p]
    if not labels or any(len(label) > 63 for label in labels):
        raise ResolveError(f"{name!r} is not a valid DNS name")
    question = b"".join(bytes([len(label)]) + label for label in labels)
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + b"\0" + struct.pack(
        "!HH", 1, 1)
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    deadline = time.monotonic() + timeout
    with nsmod.socket_in(netns, family, socket.SOCK_DGRAM) as sock:
        sock.connect(server)
        sock.send(packet)
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            reply = sock.recv(4096)
            if len(reply) >= 12 and struct.unpack("!H", reply[:2])[0] == qid:
                return _parse_a(reply)


def _parse_a(reply: bytes) -> tuple[int, list[str]]:
    _, flags, qdcount, ancount = struct.unpack("!HHHH", reply[:8])
    offset = 12
    for _ in range(qdcount):
        offset = _skip_name(reply, offset) + 4
    addresses: list[str] = []
    for _ in range(ancount):
        offset = _skip_name(reply, offset)
        rtype, _cls, _ttl, length = struct.unpack("!HHIH", reply[offset:offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            addresses.append(socket.inet_ntoa(reply[offset:offset + 4]))
        offset += length
    return flags & 0x000F, addresses


def _skip_name(buf: bytes, offset: int) -> int:
    while offset < len(buf):
        size = buf[offset]
        if size == 0:
            return offset + 1
        if size & 0xC0 == 0xC0:  # compression pointer: two bytes, ends the name
            return offset + 2
        offset += size + 1
    raise ResolveError("malformed DNS reply")
