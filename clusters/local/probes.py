"""Running one probe for the local engine, from inside a pod's network namespace.

The calling process is root. A probe's socket is created inside the source pod's network
namespace (:func:`clusters.local.netns.socket_in`) and then used from the current thread like
any other socket, so a probe is a real connection from the pod, judged by the kernel.

How kernel errors become outcomes (the same meaning as on every other engine):

=============================================  ============  ==================================
what came back                                  errno         outcome
=============================================  ============  ==================================
TCP RST (nothing listens, ``-j REJECT           ECONNREFUSED  REFUSED
--reject-with tcp-reset``)
ICMP port-unreachable (REJECT's default)        ECONNREFUSED  REFUSED
ICMP host/net/admin-prohibited (REJECT with     EHOSTUNREACH  REFUSED (read from the socket's
``icmp-*-prohibited``)                                        error queue, see below)
ICMP host/net unreachable, no route             EHOSTUNREACH  UNREACHABLE
                                                ENETUNREACH
nothing within the timeout (DROP)               --            TIMEOUT
=============================================  ============  ==================================

Linux reports a *prohibited* ICMP to ``connect()`` as EHOSTUNREACH, the same errno as a real
"host unreachable". The sockets here set ``IP_RECVERR``, so the kernel also queues the ICMP
message itself; its type and code (and the address that sent it) tell a filter's rejection
(REFUSED) from a missing route (UNREACHABLE). Without a queued ICMP message, EHOSTUNREACH and
ENETUNREACH mean UNREACHABLE.

Names resolve the way the pod would resolve them: the engine's DNS client
(:func:`clusters.local.dns.client.lookup`) sends A queries to the nameserver of the pod's
``/etc/netns/<netns>/resolv.conf``, honouring ``search`` and ``ndots``. Sources on the host
use the host's resolver.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
import time
from collections.abc import Callable

from clusters.errors import CommandError
from clusters.local import icmperrors
from clusters.local import netns as nsmod
from clusters.local.dns.client import dns_probe, lookup
from clusters.local.stubresolver import ResolvConf, ResolveError
from clusters.probing import Observation, Outcome, ProbeSpec
from clusters.proc import run

# The stub resolver's names stay importable from here, where probes and tests found them.
__all__ = ["BANNER_WAIT", "HTTP_CAP", "IPV6_RECVERR", "IP_RECVERR", "ResolvConf", "ResolveError",
           "lookup", "parse_http_response", "resolve", "run_probe"]

BANNER_WAIT = 0.2  # how long a TCP probe waits for a greeting after connecting
HTTP_CAP = 64 * 1024  # most bytes of an HTTP body kept
IP_RECVERR, IPV6_RECVERR = icmperrors.IP_RECVERR, icmperrors.IPV6_RECVERR


class _Done(Exception):
    """Ends a probe early with its observation (a resolution or connection failure)."""

    def __init__(self, observation: Observation) -> None:
        super().__init__(observation.summary())
        self.observation = observation


def run_probe(spec: ProbeSpec, netns: str | None) -> Observation:
    """Run ``spec`` once from network namespace ``netns`` (``None``: the host's).

    Never raises for network outcomes; a spec without a needed port raises ValueError.
    """
    if spec.kind == "dns":
        if netns is not None and not nsmod.exists(netns):
            return Observation(Outcome.ERROR, f"network namespace {netns} does not exist")
        return dns_probe(spec, netns)
    runner = _RUNNERS.get(spec.kind)
    if runner is None:
        return Observation(Outcome.UNSUPPORTED,
                           f"the local engine cannot run {spec.kind!r} probes "
                           f"(it runs {', '.join(_RUNNERS)}, dns)")
    if spec.kind != "ping" and spec.port is None:
        raise ValueError(f"a {spec.kind} probe needs a port: {spec.describe()}")
    if netns is not None and not nsmod.exists(netns):
        return Observation(Outcome.ERROR, f"network namespace {netns} does not exist")
    try:
        ip = resolve(spec.target, netns, spec.timeout)
        return runner(spec, ip, netns)
    except _Done as done:
        return done.observation


# ---------------------------------------------------------------- name resolution


def resolve(target: str, netns: str | None, timeout: float) -> str:
    """``target`` as an IP address string; raises _Done with DNS_ERROR when it does not resolve."""
    try:
        return str(ipaddress.ip_address(target))
    except ValueError:
        pass
    started = time.monotonic()
    try:
        if netns is None:
            return _host_lookup(target)
        return lookup(target, ResolvConf.for_netns(netns), netns, timeout)
    except (ResolveError, OSError) as err:
        raise _Done(Observation(Outcome.DNS_ERROR, str(err),
                                elapsed=time.monotonic() - started)) from err


def _host_lookup(name: str) -> str:
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ResolveError(f"{name}: {err.strerror}") from err
    return str(infos[0][4][0])


# ---------------------------------------------------------------- sockets and errors


def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _peer(ip: str, port: int | None) -> str:
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _open(ip: str, netns: str | None, kind: int) -> socket.socket:
    family = _family(ip)
    try:
        sock = nsmod.socket_in(netns, family, kind)
    except OSError as err:
        if err.errno in (errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT, errno.ESOCKTNOSUPPORT):
            raise _Done(Observation(Outcome.UNSUPPORTED,
                                    f"this kernel cannot make the socket: {err.strerror}")) from err
        raise
    return icmperrors.enable(sock)


def _failure(sock: socket.socket, err: OSError, what: str, started: float,
             peer: str) -> Observation:
    """The observation for a socket error (see the table in the module docstring)."""
    elapsed = time.monotonic() - started
    icmp = icmperrors.queued(sock)
    if icmp is not None:
        return Observation(icmp[0], icmp[1], peer=peer, elapsed=elapsed)
    if isinstance(err, TimeoutError):
        return Observation(Outcome.TIMEOUT, f"no answer to {what}", peer=peer, elapsed=elapsed)
    code = err.errno
    if code == errno.ECONNREFUSED:
        return Observation(Outcome.REFUSED, "connection refused", peer=peer, elapsed=elapsed)
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return Observation(Outcome.UNREACHABLE, err.strerror or str(err), peer=peer,
                           elapsed=elapsed)
    return Observation(Outcome.ERROR, f"{what}: {err.strerror or err}", peer=peer,
                       elapsed=elapsed)


def _connect_tcp(ip: str, port: int, netns: str | None, timeout: float,
                 started: float) -> socket.socket:
    sock = _open(ip, netns, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((ip, port))
    except OSError as err:
        observation = _failure(sock, err, "TCP SYN", started, _peer(ip, port))
        sock.close()
        raise _Done(observation) from err
    return sock


# ---------------------------------------------------------------- the probe kinds


def _tcp(spec: ProbeSpec, ip: str, netns: str | None) -> Observation:
    assert spec.port is not None
    started = time.monotonic()
    with _connect_tcp(ip, spec.port, netns, spec.timeout, started) as sock:
        sock.settimeout(BANNER_WAIT)
        try:
            banner = sock.recv(4096)
        except OSError:  # no greeting (most servers), or a reset after the handshake
            banner = b""
    return Observation(Outcome.CONNECTED, body=banner.decode(errors="replace") or None,
                       peer=_peer(ip, spec.port), elapsed=time.monotonic() - started)


def _udp(spec: ProbeSpec, ip: str, netns: str | None) -> Observation:
    assert spec.port is not None
    started, peer = time.monotonic(), _peer(ip, spec.port)
    with _open(ip, netns, socket.SOCK_DGRAM) as sock:
        sock.settimeout(spec.timeout)
        try:
            sock.connect((ip, spec.port))
            sock.send(spec.payload.encode())
            reply = sock.recv(65535)
        except OSError as err:
            return _failure(sock, err, "the UDP datagram", started, peer)
    return Observation(Outcome.CONNECTED, body=reply.decode(errors="replace"), peer=peer,
                       elapsed=time.monotonic() - started)


def _http(spec: ProbeSpec, ip: str, netns: str | None) -> Observation:
    assert spec.port is not None
    started, peer = time.monotonic(), _peer(ip, spec.port)
    host = spec.host_header or (spec.target if spec.port == 80 else f"{spec.target}:{spec.port}")
    request = (f"{spec.method} {spec.path or '/'} HTTP/1.1\r\nHost: {host}\r\n"
               "User-Agent: kube-netlab-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n")
    with _connect_tcp(ip, spec.port, netns, spec.timeout, started) as sock:
        sock.settimeout(spec.timeout)
        data, problem = bytearray(), ""
        try:
            sock.sendall(request.encode())
            while not _http_complete(data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            problem = f"no complete HTTP response within {spec.timeout:g}s"
        except OSError as err:
            problem = f"connection broken: {err.strerror or err}"
    elapsed = time.monotonic() - started
    head, sep, _ = bytes(data).partition(b"\r\n\r\n")
    if not sep:
        if not data and "reset" in problem:
            return Observation(Outcome.REFUSED, f"connected, then {problem}", peer=peer,
                               elapsed=elapsed)
        if not data or problem.startswith("no complete"):
            return Observation(Outcome.TIMEOUT, f"connected, but {problem or 'no response'}",
                               peer=peer, elapsed=elapsed)
        return Observation(Outcome.ERROR, f"not an HTTP response: {bytes(data[:80])!r}",
                           peer=peer, elapsed=elapsed)
    status, headers, body = parse_http_response(bytes(data))
    if status is None:
        return Observation(Outcome.ERROR, f"not an HTTP response: {head[:80]!r}", peer=peer,
                           elapsed=elapsed)
    return Observation(Outcome.CONNECTED, problem, status=status,
                       body=body.decode(errors="replace"), peer=peer, elapsed=elapsed,
                       extra={"headers": headers})


_STATUS_LINE = re.compile(rb"HTTP/\d(?:\.\d)? (\d{3})")


def _headers(head: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        key, sep, value = line.decode("latin-1").partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields


def _http_complete(data: bytearray) -> bool:
    """Whether ``data`` holds a whole response (or as much of it as we keep)."""
    head, sep, body = bytes(data).partition(b"\r\n\r\n")
    if not sep:
        return len(data) > HTTP_CAP
    if len(body) >= HTTP_CAP:
        return True
    fields = _headers(head)
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return body.endswith(b"0\r\n\r\n")
    length = fields.get("content-length", "")
    if length.isdigit():
        return len(body) >= int(length)
    match = _STATUS_LINE.match(head)
    return match is not None and match.group(1) in (b"204", b"304")  # no body; else until close


def parse_http_response(data: bytes) -> tuple[int | None, dict[str, str], bytes]:
    """(status, lower-cased headers, body at most HTTP_CAP bytes) of a raw HTTP/1.x response."""
    head, _, body = data.partition(b"\r\n\r\n")
    match = _STATUS_LINE.match(head)
    if match is None:
        return None, {}, b""
    fields = _headers(head)
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    elif fields.get("content-length", "").isdigit():
        body = body[: int(fields["content-length"])]
    return int(match.group(1)), fields, body[:HTTP_CAP]


def _dechunk(body: bytes) -> bytes:
    out, offset = bytearray(), 0
    while True:
        line_end = body.find(b"\r\n", offset)
        if line_end < 0:
            break
        try:
            size = int(body[offset:line_end].split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += body[line_end + 2: line_end + 2 + size]
        offset = line_end + 2 + size + 2
    return bytes(out)


def _ping(spec: ProbeSpec, ip: str, netns: str | None) -> Observation:
    argv = ["ping", "-n", "-c", "1", "-W", f"{max(spec.timeout, 0.1):g}", ip]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    started = time.monotonic()
    try:
        result = run(argv, check=False, timeout=spec.timeout + 5)
    except CommandError as err:
        return Observation(Outcome.ERROR, str(err), peer=ip)
    elapsed = time.monotonic() - started
    text = f"{result.stdout}\n{result.stderr}"
    found = re.search(r"From (\S+).*?(Destination \w+ (?:Unreachable|Prohibited)|Packet filtered)",
                      text)
    if result.returncode == 0:
        return Observation(Outcome.CONNECTED, peer=ip, elapsed=elapsed)
    if found:
        rejected = "Prohibited" in found.group(2) or found.group(2) in (
            "Packet filtered", "Destination Port Unreachable")
        return Observation(Outcome.REFUSED if rejected else Outcome.UNREACHABLE,
                           f"{found.group(2)} from {found.group(1)}", peer=ip, elapsed=elapsed)
    if "Network is unreachable" in text or "No route to host" in text:
        return Observation(Outcome.UNREACHABLE, text.strip().splitlines()[-1], peer=ip,
                           elapsed=elapsed)
    if result.returncode == 1:
        return Observation(Outcome.TIMEOUT, "no echo reply", peer=ip, elapsed=elapsed)
    return Observation(Outcome.ERROR, text.strip() or f"ping exit code {result.returncode}",
                       peer=ip, elapsed=elapsed)


_RUNNERS: dict[str, Callable[[ProbeSpec, str, str | None], Observation]] = {
    "tcp": _tcp, "udp": _udp, "http": _http, "ping": _ping,
}
