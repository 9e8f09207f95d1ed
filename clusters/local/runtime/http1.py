"""A deliberately small HTTP/1.1 server side, and the outbound dials pods and probes make.

The parser reads a request line, headers and a body by Content-Length or chunked, with
size caps and a 400 (or 413/414/431/501/505) for anything malformed; :func:`serve_http`
answers requests on one connection with an :data:`App` until either side closes it.
The outbound helpers (:func:`open_in`, :func:`http_get`, :func:`udp_exchange`) dial from
inside a pod's network namespace, for netexec's ``/dial`` and for readiness probes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from clusters.local.netns import socket_in

MAX_LINE = 8 * 1024
MAX_HEADERS = 100
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY = 1024 * 1024
IDLE_TIMEOUT = 120.0  # keep-alive connections idle longer than this are closed
READ_TIMEOUT = 30.0  # a request must arrive completely within this

_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def hostport(addr: tuple[Any, ...]) -> str:
    """``ip:port`` as Go prints a remote address (``[v6]:port``; v4-mapped shown as v4)."""
    ip = ipaddress.ip_address(str(addr[0]).split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return f"[{ip}]:{addr[1]}" if ip.version == 6 else f"{ip}:{addr[1]}"


# -- HTTP/1.1 --------------------------------------------------------------------------


class HttpError(Exception):
    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(detail or HTTPStatus(status).phrase)
        self.status = status


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    peer: str = ""

    def header(self, name: str, default: str = "") -> str:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), default)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path or "/"

    @property
    def query(self) -> dict[str, str]:
        """First value of each query (and urlencoded form) field, like Go's FormValue."""
        q = {k: v[0] for k, v in parse_qs(urlsplit(self.target).query).items()}
        if self.header("content-type").startswith("application/x-www-form-urlencoded"):
            form = parse_qs(self.body.decode("latin-1"))
            q.update({k: v[0] for k, v in form.items() if k not in q})
        return q

    @property
    def keep_alive(self) -> bool:
        conn = {t.strip().lower() for t in self.header("connection").split(",")}
        return "keep-alive" in conn if self.version == "HTTP/1.0" else "close" not in conn


@dataclass
class Response:
    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False

    def render(self, head_only: bool, keep_alive: bool) -> bytes:
        body = self.body.encode() if isinstance(self.body, str) else self.body
        phrase = (
            HTTPStatus(self.status).phrase if self.status in HTTPStatus._value2member_map_ else ""
        )
        lines = [f"HTTP/1.1 {self.status} {phrase}".rstrip(), f"Date: {formatdate(usegmt=True)}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        if body or self.status not in (204, 304):
            lines += [f"Content-Type: {self.content_type}", f"Content-Length: {len(body)}"]
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + body


class _Stream:
    """A StreamReader with a push-back buffer (the generic echo sniffs first bytes)."""

    def __init__(self, reader: asyncio.StreamReader, prefix: bytes = b"") -> None:
        self.reader = reader
        self.buf = bytearray(prefix)

    async def _fill(self, timeout: float) -> bool:
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        self.buf += data
        return bool(data)

    async def readline(self, limit: int, timeout: float) -> bytes | None:
        while (i := self.buf.find(b"\n")) < 0:
            if len(self.buf) > limit:
                raise HttpError(431 if limit != MAX_LINE else 414)
            if not await self._fill(timeout):
                if self.buf:
                    raise HttpError(400, "connection closed mid-request")
                return None
        line = bytes(self.buf[: i + 1])
        del self.buf[: i + 1]
        return line.rstrip(b"\r\n")

    async def readexactly(self, n: int, timeout: float) -> bytes:
        while len(self.buf) < n:
            if not await self._fill(timeout):
                raise HttpError(400, "body shorter than announced")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data


async def _read_body(s: _Stream, req: Request, writer: asyncio.StreamWriter) -> bytes:
    te = req.header("transfer-encoding").strip().lower()
    lengths = {v.strip() for k, v in req.headers if k.lower() == "content-length"}
    if te and te != "chunked":
        raise HttpError(501, f"transfer-encoding {te} is not supported")
    if not te and len(lengths) > 1:
        raise HttpError(400, "conflicting Content-Length")
    if not te and (not lengths or lengths == {"0"}):
        return b""
    if req.header("expect").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if not te:
        text = lengths.pop()
        if not text.isdigit():
            raise HttpError(400, "bad Content-Length")
        if int(text) > MAX_BODY:
            raise HttpError(413)
        return await s.readexactly(int(text), READ_TIMEOUT)
    body = bytearray()
    while True:
        size_line = await s.readline(MAX_LINE, READ_TIMEOUT)
        try:
            size = int((size_line or b"").split(b";", 1)[0].strip(), 16)
        except ValueError as err:
            raise HttpError(400, "bad chunk size") from err
        if size == 0:
            while await s.readline(MAX_HEADER_BYTES, READ_TIMEOUT):
                pass  # trailers are read and dropped
            return bytes(body)
        if len(body) + size > MAX_BODY:
            raise HttpError(413)
        body += await s.readexactly(size, READ_TIMEOUT)
        await s.readexactly(2, READ_TIMEOUT)


async def read_request(s: _Stream, writer: asyncio.StreamWriter, idle: float) -> Request | None:
    """Read one request; ``None`` at a clean end of the connection; raise HttpError if bad."""
    line: bytes | None = b""
    while line == b"":  # tolerate blank lines before a request (RFC 9112 2.2)
        line = await s.readline(MAX_LINE, idle)
    if line is None:
        return None
    parts = line.split(b" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[1]:
        raise HttpError(400, "malformed request line")
    method, target, version = (p.decode("latin-1") for p in parts)
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505 if version.startswith("HTTP/") else 400)
    headers: list[tuple[str, str]] = []
    total = 0
    while True:
        h = await s.readline(MAX_HEADER_BYTES, READ_TIMEOUT)
        if h is None:
            raise HttpError(400, "connection closed in headers")
        if h == b"":
            break
        total += len(h)
        name, colon, value = h.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise HttpError(400, "malformed header")
        if total > MAX_HEADER_BYTES or len(headers) >= MAX_HEADERS:
            raise HttpError(431)
        headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    req = Request(method, target, version, headers)
    if version == "HTTP/1.1" and not req.header("host"):
        raise HttpError(400, "missing Host header")
    req.body = await _read_body(s, req, writer)
    return req


App = Callable[[Request], Awaitable[Response]]


async def serve_http(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: App, prefix: bytes = b""
) -> None:
    """Answer requests on one connection until the client or a response closes it."""
    peer = hostport(writer.get_extra_info("peername"))
    stream = _Stream(reader, prefix)
    while True:
        try:
            req = await read_request(stream, writer, IDLE_TIMEOUT)
        except HttpError as err:
            resp = Response(err.status, f"{err.status} {HTTPStatus(err.status).phrase}: {err}\n")
            writer.write(resp.render(False, keep_alive=False))
            await writer.drain()
            return
        except TimeoutError:
            return
        if req is None:
            return
        req.peer = peer
        resp = await app(req)
        keep = req.keep_alive and not resp.close
        if keep and req.version == "HTTP/1.0":
            resp.headers.append(("Connection", "keep-alive"))
        writer.write(resp.render(req.method == "HEAD", keep))
        await writer.drain()
        if not keep:
            return


# -- outbound (netexec /dial, readiness probes) ----------------------------------------


async def open_in(
    netns: str | None, host: str, port: int, timeout: float, tls: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect from inside ``netns`` to an IP literal; TLS without verification if asked."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket_in(netns, family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), timeout)
        ctx: ssl.SSLContext | None = None
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return await asyncio.wait_for(
            asyncio.open_connection(sock=sock, ssl=ctx, server_hostname=host if tls else None),
            timeout,
        )
    except BaseException:
        sock.close()
        raise


async def http_get(
    netns: str | None, host: str, port: int, path: str, *, timeout: float,
    headers: list[tuple[str, str]] | None = None, tls: bool = False, body: bool = True,
) -> tuple[int, bytes]:  # fmt: skip
    """One GET on a new connection; returns (status, body). Raises OSError/TimeoutError."""
    reader, writer = await open_in(netns, host, port, timeout, tls)
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        extra = list(headers or [])
        head = [f"GET {path or '/'} HTTP/1.1", "Connection: close"]
        if not any(k.lower() == "host" for k, _ in extra):
            head.insert(1, f"Host: {authority}")
        head += [f"{k}: {v}" for k, v in extra]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(MAX_BODY) if body else reader.readline(), timeout)
        if body:
            while len(data) < MAX_BODY and (
                more := await asyncio.wait_for(reader.read(65536), timeout)
            ):
                data += more
        status_line, _, rest = data.partition(b"\r\n")
        parts = status_line.split(b" ")
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise OSError(f"malformed HTTP response from {authority}: {status_line[:60]!r}")
        return int(parts[1]), rest.partition(b"\r\n\r\n")[2]
    finally:
        writer.close()


async def udp_exchange(
    netns: str | None, host: str, port: int, payload: bytes, timeout: float
) -> bytes:
    """Send one datagram from ``netns`` and wait for one reply."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket_in(netns, family, socket.SOCK_DGRAM)
    with sock:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (host, port))
        await loop.sock_sendall(sock, payload)
        return await asyncio.wait_for(loop.sock_recv(sock, 65536), timeout)
