"""The commands a probe runs in the ``netlab-probe`` container, and what their output means.

Pure functions: argv builders and parsers of the tools in the agnhost image
(``registry.k8s.io/e2e-test-images/agnhost``: Alpine with ``bind-tools``, ``curl``,
``netcat-openbsd``, ``iproute2``, ``bash`` and busybox, the ``/agnhost`` binary at the root).
Each parser returns an :class:`~clusters.probing.Observation` whose outcome means what it means
on the local engine, or ``None`` when the tool cannot tell (the prober then asks
``agnhost connect``, whose error classes are the reference).

==============  ==========================================  ==============================
probe           command                                     outcome from
==============  ==========================================  ==============================
tcp             ``/agnhost connect --timeout=D HOST:PORT``  exit 0: CONNECTED; stderr
                                                            ``TIMEOUT``/``REFUSED``/``DNS:``
                                                            /``OTHER:``/``UNKNOWN:``
udp             ``printf PAYLOAD | nc -u -w S HOST PORT``   a reply printed: CONNECTED with
                then, without a reply, ``/agnhost connect   its body; else agnhost's class
                --protocol=udp``                            (TIMEOUT, REFUSED, ...)
http            ``curl`` with a ``--write-out`` marker      a status line: CONNECTED; exit
                                                            6 DNS_ERROR, 7 REFUSED or
                                                            UNREACHABLE (by its errno text,
                                                            else agnhost connect), 28
                                                            TIMEOUT, 52 TIMEOUT, 56 reset:
                                                            REFUSED
dns             ``dig +tries=2 +time=S``                    a header: CONNECTED (rcode,
                                                            records); ``connection refused``
                                                            REFUSED; ``unreachable``
                                                            UNREACHABLE; ``timed out``
                                                            TIMEOUT
ping            busybox ``ping -c 1 -W S``                  a reply: CONNECTED; none:
                                                            TIMEOUT
==============  ==========================================  ==============================

Known limits (the outcome is still the tool's own reading, never a guess):

* Go's ``connect`` reports an ICMP *admin-prohibited* reject like a missing route
  (EHOSTUNREACH, "no route to host"), so such a reject reads UNREACHABLE here where the local
  engine, which reads the ICMP message itself, says REFUSED.
* busybox ``ping`` ignores ICMP errors, so an unreachable or rejecting target reads TIMEOUT.
* ``agnhost connect`` does not read, so a TCP probe has no banner (``body`` is None).
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any

from clusters.engine import ExecResult
from clusters.probing import Observation, Outcome, ProbeSpec, parse_dns_server

AGNHOST = "/agnhost"
BODY_CAP = 64 * 1024  # most bytes of an HTTP body or UDP reply kept (as the local engine)
USER_AGENT = "kube-netlab-probe"
#: Separates curl's body from its ``--write-out`` line; the last one in stdout is curl's.
CURL_MARK = "\n@@netlab-curl@@ "
_CURL_FORMAT = CURL_MARK + "%{http_code} %{remote_ip} %{remote_port}"


# ---------------------------------------------------------------- small helpers


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def hostport(host: str, port: int) -> str:
    """``10.0.0.1:80``, ``[fd00::1]:80``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def whole_seconds(timeout: float) -> int:
    """``timeout`` rounded up to whole seconds, at least 1 (nc, dig and ping count seconds)."""
    return max(1, math.ceil(timeout - 1e-9))


def go_duration(timeout: float) -> str:
    """A Go duration for agnhost's flags, in milliseconds (``1500ms``)."""
    return f"{max(1, round(timeout * 1000))}ms"


def decimal_seconds(timeout: float) -> str:
    """Seconds with at most three decimals (``1.5``), never in exponent form."""
    return f"{max(timeout, 0.001):.3f}".rstrip("0").rstrip(".")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _text(result: ExecResult) -> str:
    return "\n".join(p.strip() for p in (result.stderr, result.stdout) if p and p.strip())


# ---------------------------------------------------------------- agnhost connect


def connect_argv(host: str, port: int, timeout: float, protocol: str = "tcp",
                 payload: str | None = None) -> list[str]:
    """``agnhost connect``: one connection attempt (UDP: one datagram and its reply)."""
    argv = [AGNHOST, "connect", f"--timeout={go_duration(timeout)}", f"--protocol={protocol}"]
    if protocol == "udp" and payload is not None:
        argv.append(f"--udp-data={payload}")
    return [*argv, hostport(host, port)]


_UNREACHABLE = ("no route to host", "host is unreachable", "network is unreachable",
                "host unreachable", "network unreachable")


def parse_connect(result: ExecResult, protocol: str = "tcp",
                  peer: str | None = None) -> Observation:
    """The outcome of ``agnhost connect`` from its exit code and stderr prefix."""
    if result.returncode == 0:
        return Observation(Outcome.CONNECTED, peer=peer)
    line = _first_line(result.stderr) or _first_line(result.stdout)
    prefix, _, rest = line.partition(":")
    rest = rest.strip()
    what = "TCP SYN" if protocol == "tcp" else f"the {protocol.upper()} datagram"
    if prefix == "TIMEOUT":
        return Observation(Outcome.TIMEOUT, f"no answer to {what}", peer=peer)
    if prefix == "REFUSED":
        return Observation(Outcome.REFUSED, "connection refused", peer=peer)
    if prefix == "DNS":
        return Observation(Outcome.DNS_ERROR, rest or line, peer=peer)
    if prefix in ("OTHER", "UNKNOWN"):
        lowered = rest.lower()
        if any(word in lowered for word in _UNREACHABLE):
            return Observation(Outcome.UNREACHABLE, rest, peer=peer)
        if protocol == "udp" and "no data received" in lowered:
            # agnhost read a datagram of zero bytes: a reply did arrive.
            return Observation(Outcome.CONNECTED, "an empty reply", body="", peer=peer)
        return Observation(Outcome.ERROR, rest or line, peer=peer)
    if line.startswith("Unsupported protocol"):
        return Observation(Outcome.UNSUPPORTED,
                           f"this agnhost's connect has no {protocol.upper()} (needs agnhost 2.28+)")
    if "unknown flag" in line or "unknown command" in line:
        return Observation(Outcome.UNSUPPORTED, f"this agnhost is too old for the probe: {line}")
    return Observation(Outcome.ERROR, f"agnhost connect exit code {result.returncode}: "
                       f"{_text(result) or 'no output'}", peer=peer)


# ---------------------------------------------------------------- UDP through nc


def udp_argv(host: str, port: int, payload: str, timeout: float) -> list[str]:
    """Send ``payload`` (exactly, no newline added) and print the reply; the values reach
    ``sh`` as positional parameters, never as shell text."""
    script = 'printf "%s" "$1" | nc -u -w "$2" "$3" "$4"'
    return ["/bin/sh", "-c", script, "netlab-udp", payload, str(whole_seconds(timeout)),
            host, str(port)]


def parse_udp(result: ExecResult, peer: str | None = None) -> Observation | None:
    """CONNECTED with the reply as body when one was printed; ``None`` otherwise (nc does not
    say why nothing came back: agnhost connect tells)."""
    if result.stdout:
        return Observation(Outcome.CONNECTED, body=result.stdout[:BODY_CAP], peer=peer)
    return None


# ---------------------------------------------------------------- HTTP through curl


def curl_argv(spec: ProbeSpec) -> list[str]:
    """One HTTP request, no redirects followed, the status line and headers in stdout."""
    if spec.port is None:
        raise ValueError(f"an http probe needs a port: {spec.describe()}")
    host = f"[{spec.target}]" if ":" in spec.target else spec.target
    path = spec.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    argv = ["curl", "--silent", "--show-error", "--globoff", "--include", "--path-as-is",
            "--noproxy", "*", "--connect-timeout", decimal_seconds(spec.timeout),
            "--max-time", decimal_seconds(2 * spec.timeout), "--user-agent", USER_AGENT,
            "--write-out", _CURL_FORMAT]
    method = (spec.method or "GET").upper()
    if method == "HEAD":
        argv.append("--head")
    elif method != "GET":
        argv += ["--request", method]
    if spec.host_header:
        argv += ["--header", f"Host: {spec.host_header}"]
    return [*argv, f"http://{host}:{spec.port}{path}"]


def _http_parts(text: str) -> tuple[dict[str, str], str]:
    """(lower-cased headers, body) of ``--include`` output, interim 1xx responses skipped."""
    while True:
        head, sep, rest = text.partition("\r\n\r\n")
        if not sep:
            return _headers(head), ""
        match = re.match(r"HTTP/[\d.]+ (\d{3})", head)
        if match and match.group(1).startswith("1") and rest.startswith("HTTP/"):
            text = rest
            continue
        return _headers(head), rest


def _headers(head: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in head.split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields


def _curl_message(stderr: str) -> str:
    line = _first_line(stderr)
    return re.sub(r"^curl: \(\d+\)\s*", "", line) or stderr.strip()


def parse_curl(result: ExecResult) -> Observation | None:
    """The HTTP outcome; ``None`` when curl failed to connect without saying why (curl 8
    prints "Could(n't) connect to server" instead of the errno)."""
    out, sep, tail = result.stdout.rpartition(CURL_MARK)
    if not sep:
        out, tail = result.stdout, ""
    code, ip, port = [*tail.strip().split(" "), "", "", ""][:3]
    peer = hostport(ip, int(port)) if ip and port.isdigit() and int(port) > 0 else None
    problem = _curl_message(result.stderr) if result.returncode else ""
    if code.isdigit() and int(code) > 0:
        headers, body = _http_parts(out)
        return Observation(Outcome.CONNECTED, problem, status=int(code), body=body[:BODY_CAP],
                           peer=peer, extra={"headers": headers})
    rc, lowered = result.returncode, problem.lower()
    if rc == 6:
        return Observation(Outcome.DNS_ERROR, problem, peer=peer)
    if rc == 7:
        if "connection refused" in lowered:
            return Observation(Outcome.REFUSED, "connection refused", peer=peer)
        if any(word in lowered for word in _UNREACHABLE):
            return Observation(Outcome.UNREACHABLE, problem, peer=peer)
        return None
    if rc == 28:
        return Observation(Outcome.TIMEOUT, problem or "no answer", peer=peer)
    if rc == 52:  # as the local engine: connected, then closed without any response
        return Observation(Outcome.TIMEOUT, f"connected, but no response ({problem})", peer=peer)
    if rc in (55, 56) and "reset" in lowered:
        return Observation(Outcome.REFUSED, f"connected, then {problem}", peer=peer)
    if rc == 0:
        return Observation(Outcome.ERROR, "curl finished without an HTTP status", peer=peer)
    return Observation(Outcome.ERROR, f"curl exit code {rc}: {problem or 'no output'}", peer=peer)


# ---------------------------------------------------------------- DNS through dig


def dig_argv(spec: ProbeSpec) -> list[str]:
    """One question, one retry after ``timeout`` (as the local engine asks), dig's own
    search-list walk when ``spec.search``; the pod's resolv.conf names the server unless
    ``spec.dns_server`` does (ValueError when that is not an address)."""
    argv = ["dig", f"+time={whole_seconds(spec.timeout)}", "+tries=2",
            "+tcp" if spec.transport == "tcp" else "+notcp",
            "+search" if spec.search else "+nosearch"]
    if spec.dns_server:
        ip, port = parse_dns_server(spec.dns_server)
        argv += [f"@{ip}", "-p", str(port)]
    return [*argv, "-t", spec.qtype or "A", "-q", spec.target]


def _txt(rdata: str) -> str:
    """dig's presentation of TXT strings (quoted, ``\\"`` and ``\\DDD`` escapes) joined."""
    out, quoted, i = bytearray(), False, 0
    while i < len(rdata):
        ch = rdata[i]
        if ch == "\\" and i + 1 < len(rdata):
            digits = rdata[i + 1:i + 4]
            if len(digits) == 3 and digits.isdigit():
                out.append(int(digits) & 0xFF)
                i += 4
                continue
            out += rdata[i + 1].encode()
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif quoted or not ch.isspace():
            out += ch.encode()
        i += 1
    return out.decode("utf-8", "replace")


def _rdata(rtype: str, text: str) -> Any:
    if rtype in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return text
    if rtype == "TXT":
        return _txt(text)
    if rtype == "SRV":
        parts = text.split()
        if len(parts) == 4 and all(p.isdigit() for p in parts[:3]):
            return {"priority": int(parts[0]), "weight": int(parts[1]), "port": int(parts[2]),
                    "target": parts[3]}
    return text


def _records(block: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    lines = block.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(";; ANSWER SECTION:"))
    except StopIteration:
        return records
    for line in lines[start + 1:]:
        if not line.strip() or line.startswith(";"):
            break
        parts = line.split(None, 4)
        if len(parts) == 5 and parts[1].isdigit():
            name, ttl, _cls, rtype, rdata = parts
            records.append({"name": name, "type": rtype, "ttl": int(ttl),
                            "data": _rdata(rtype, rdata.strip())})
    return records


def _dig_failure(text: str) -> tuple[Outcome, str]:
    problems = [line.strip().lstrip(";").strip() for line in text.splitlines()
                if line.strip() and not line.startswith("; <<>>")
                and "global options" not in line]
    detail = "; ".join(dict.fromkeys(problems)) or "dig printed nothing"
    lowered = detail.lower()
    if "connection refused" in lowered:
        return Outcome.REFUSED, detail
    if any(word in lowered for word in _UNREACHABLE):
        return Outcome.UNREACHABLE, detail
    if "timed out" in lowered or "no servers could be reached" in lowered:
        return Outcome.TIMEOUT, detail
    return Outcome.ERROR, detail


def parse_dig(result: ExecResult, spec: ProbeSpec) -> Observation:
    """CONNECTED when a reply arrived, whatever its rcode, with the contract's ``extra``."""
    text = result.stdout
    server = ""
    if spec.dns_server:
        try:
            server = hostport(*parse_dns_server(spec.dns_server))
        except ValueError:
            server = spec.dns_server
    qname = spec.target if spec.target.endswith(".") else spec.target + "."
    if ";; ->>HEADER<<-" not in text:
        outcome, detail = _dig_failure(f"{result.stdout}\n{result.stderr}")
        return Observation(outcome, detail, peer=server or None,
                           extra={"qname": qname, "server": server})
    block = text.rsplit(";; ->>HEADER<<-", 1)[1]
    status = re.search(r"status: ([A-Z0-9]+)", block)
    rcode = status.group(1) if status else "UNKNOWN"
    question = re.search(r";; QUESTION SECTION:\n;(\S+)", block)
    if question:
        qname = question.group(1)
    transport = spec.transport
    found = re.search(r";; SERVER: ([^#\s]+)#(\d+)\([^)]*\)(?: \((\w+)\))?", block)
    if found:
        server = hostport(found.group(1), int(found.group(2)))
        if found.group(3):
            transport = "tcp" if found.group(3).upper() == "TCP" else "udp"
    records = _records(block)
    qtype = (spec.qtype or "A").upper()
    wanted = sum(1 for r in records if r["type"] == qtype)
    detail = f"{rcode}, {wanted} {qtype} record{'s' if wanted != 1 else ''}"
    return Observation(Outcome.CONNECTED, detail, peer=server or None,
                       extra={"rcode": rcode, "qname": qname, "records": records,
                              "server": server, "transport": transport})


# ---------------------------------------------------------------- ping (busybox)


def ping_argv(target: str, timeout: float) -> list[str]:
    return ["ping", "-c", "1", "-W", str(whole_seconds(timeout)), target]


def parse_ping(result: ExecResult, target: str) -> Observation:
    text = f"{result.stdout}\n{result.stderr}"
    lowered = text.lower()
    peer = target if is_ip(target) else None
    replied = re.search(r"bytes from ([^\s:]+)", text)
    received = re.search(r"(\d+) packets received", text)
    if result.returncode == 0 or (received and int(received.group(1)) > 0):
        return Observation(Outcome.CONNECTED, peer=replied.group(1) if replied else peer)
    if "permission denied" in lowered or "operation not permitted" in lowered:
        return Observation(Outcome.UNSUPPORTED, "ping needs CAP_NET_RAW in the probe container, "
                           f"which this cluster does not grant ({_first_line(text)})")
    if "bad address" in lowered or "unknown host" in lowered:
        return Observation(Outcome.DNS_ERROR, _first_line(result.stderr) or _first_line(text))
    icmp = re.search(r"From (\S+).*?(Destination \w+ (?:Unreachable|Prohibited)|Packet filtered)",
                     text)
    if icmp:
        rejected = "Prohibited" in icmp.group(2) or icmp.group(2) in (
            "Packet filtered", "Destination Port Unreachable")
        return Observation(Outcome.REFUSED if rejected else Outcome.UNREACHABLE,
                           f"{icmp.group(2)} from {icmp.group(1)}", peer=peer)
    if any(word in lowered for word in _UNREACHABLE):
        return Observation(Outcome.UNREACHABLE, _first_line(result.stderr) or text.strip(),
                           peer=peer)
    if received is not None or result.returncode == 1:
        return Observation(Outcome.TIMEOUT, "no echo reply", peer=peer)
    return Observation(Outcome.ERROR, text.strip() or f"ping exit code {result.returncode}",
                       peer=peer)
