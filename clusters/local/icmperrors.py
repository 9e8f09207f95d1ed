"""What an ICMP error queued on a socket says: REJECTed, or no route.

A failed connect or send only gives an errno; ``ECONNREFUSED`` and ``EHOSTUNREACH`` look
alike for UDP and say nothing about *who* answered. With ``IP_RECVERR`` set, the kernel
also queues the ICMP message itself, so a probe can tell what a filter's REJECT sends
(port-unreachable, the prohibited codes: REFUSED) from a router that has no route (the
other unreachable codes: UNREACHABLE), and name the sender. Used by every probe that opens
sockets (:mod:`clusters.local.probes`, :mod:`clusters.local.dns.client`).
"""

from __future__ import annotations

import socket
import struct

from clusters.probing import Outcome

IP_RECVERR = 11
IPV6_RECVERR = 25
_ORIGIN_ICMP, _ORIGIN_ICMP6 = 2, 3
_ICMP_NAMES = {0: "net-unreachable", 1: "host-unreachable", 2: "protocol-unreachable",
               3: "port-unreachable", 4: "fragmentation-needed", 9: "net-prohibited",
               10: "host-prohibited", 13: "admin-prohibited"}
_ICMP_REJECTS = {3, 9, 10, 13}  # what a filter's REJECT sends
_ICMP6_NAMES = {0: "no-route", 1: "admin-prohibited", 3: "address-unreachable",
                4: "port-unreachable", 5: "policy-failed", 6: "reject-route"}
_ICMP6_REJECTS = {1, 4, 5, 6}


def enable(sock: socket.socket) -> socket.socket:
    """Ask the kernel to queue ICMP errors on ``sock`` (IPv4 or IPv6); returns ``sock``."""
    if sock.family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    return sock


def queued(sock: socket.socket) -> tuple[Outcome, str] | None:
    """The ICMP error queued on ``sock``, as (REFUSED or UNREACHABLE, description), if any."""
    sock.setblocking(False)
    try:
        _, ancillary, _, _ = sock.recvmsg(1, 512, socket.MSG_ERRQUEUE)
    except OSError:
        return None
    for _level, _type, data in ancillary:
        if len(data) < 16:
            continue
        _errno, origin, _itype, code = struct.unpack("=IBBB", data[:7])
        if origin == _ORIGIN_ICMP and len(data) >= 24:
            sender, name = socket.inet_ntoa(data[20:24]), _ICMP_NAMES.get(code, f"code {code}")
            rejected = code in _ICMP_REJECTS
        elif origin == _ORIGIN_ICMP6 and len(data) >= 40:
            sender = socket.inet_ntop(socket.AF_INET6, data[24:40])
            name, rejected = _ICMP6_NAMES.get(code, f"code {code}"), code in _ICMP6_REJECTS
        else:
            continue
        outcome = Outcome.REFUSED if rejected else Outcome.UNREACHABLE
        return outcome, f"ICMP {name} from {sender}"
    return None
