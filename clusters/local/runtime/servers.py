"""The servers a local-engine pod runs, on sockets the caller created in the pod's netns.

Every handler starts on an already bound socket (listening for TCP), so the caller alone
decides which network namespace and address it lives in; the handlers themselves are
plain asyncio and never switch namespaces. What each handler answers mirrors the image it
stands for (agnhost netexec / serve-hostname, nginx, hashicorp/http-echo) closely enough
that a lab's checks read the same on a real cluster; the generic echo says which pod
answered so learners can see where a connection landed.

HTTP/1.1 is parsed here by a deliberately small parser (request line, headers, a body by
Content-Length or chunked), with size caps and a 400 for anything malformed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from clusters.local.netns import socket_in
from clusters.local.runtime import plan as P

MAX_LINE = 8 * 1024
MAX_HEADERS = 100
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY = 1024 * 1024
IDLE_TIMEOUT = 120.0  # keep-alive connections idle longer than this are closed
READ_TIMEOUT = 30.0  # a request must arrive completely within this
SNIFF_TIMEOUT = 1.0  # generic echo: how long to wait for a client to speak first

_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HTTP_START = re.compile(rb"^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT) ")


@dataclass(frozen=True)
class PodIdentity:
    """Who is answering: shown by the servers, and ``netns`` used for outbound dials."""

    name: str
    namespace: str
    pod_ip: str
    hostname: str = ""
    netns: str | None = None

    @property
    def host(self) -> str:
        return self.hostname or self.name


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


# -- applications ----------------------------------------------------------------------


def _now() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S.%f %z %Z")


async def _dial(pod: PodIdentity, q: dict[str, str]) -> Response:
    """netexec /dial: connect from this pod's namespace to host:port, ``tries`` times."""
    host, port, request = q.get("host", ""), q.get("port", ""), q.get("request", "")
    protocol = q.get("protocol", "http").lower() or "http"
    if not request:
        return Response(400, "request parameter not specified.\n")
    if protocol not in ("http", "udp"):
        return Response(400, f"unsupported protocol. {protocol}\n")
    try:
        tries = int(q.get("tries", "1") or "1")
        ipaddress.ip_address(host)
        port_n = int(port)
    except ValueError:
        return Response(
            400, "host and/or port param are invalid (the local engine dials IPs only).\n"
        )
    responses: list[str] = []
    errors: list[str] = []
    for _ in range(max(tries, 0)):
        try:
            if protocol == "http":
                _, data = await http_get(pod.netns, host, port_n, "/" + request, timeout=5.0)
            else:
                data = await udp_exchange(pod.netns, host, port_n, request.encode(), 5.0)
            responses.append(data.decode("utf-8", "replace"))
        except (OSError, TimeoutError) as err:
            errors.append(f"{protocol} dial {host}:{port_n} failed: {err or 'timeout'}")
    out = {k: v for k, v in (("responses", responses), ("errors", errors)) if v}
    return Response(200, json.dumps(out), "application/json")


def netexec_app(pod: PodIdentity) -> App:
    async def app(req: Request) -> Response:
        path, q = req.path, req.query
        if path in ("/hostname", "/hostName"):
            return Response(200, pod.host)
        if path == "/clientip":
            return Response(200, req.peer)
        if path == "/healthz":
            return Response(200, "ok")
        if path == "/echo":
            code = q.get("code", "")
            if code and not code.lstrip("-").isdigit():
                return Response(200, f"argument 'code' must be an integer or empty, got {code!r}\n")
            status = int(code) if code and 100 <= int(code) <= 999 else 200
            return Response(status, q.get("msg", ""))
        if path == "/header":
            return Response(200, req.header(q.get("key", "")))
        if path == "/redirect":
            status = int(q["code"]) if q.get("code", "").isdigit() else 302
            return Response(status, "", headers=[("Location", q.get("location", "/"))])
        if path == "/dial":
            return await _dial(pod, q)
        if path in ("/exit", "/shutdown", "/shell", "/upload"):
            return Response(501, f"{path} is not supported on the local engine (no process runs)\n")
        return Response(200, f"NOW: {_now()}")  # agnhost's "/" pattern matches every other path

    return app


def hostname_app(pod: PodIdentity, close: bool) -> App:
    async def app(req: Request) -> Response:
        return Response(200, pod.host, close=close)

    return app


def nginx_app(pod: PodIdentity, flavour: str) -> App:
    title = "nginx" if flavour == "nginx" else flavour
    page = (
        f"<!DOCTYPE html>\n<html><head><title>Welcome to {title}!</title></head>\n<body>\n"
        f"<h1>Welcome to {title}!</h1>\n<p>Welcome to {title} on the kube-netlab local engine. "
        f"Served by pod {pod.name} ({pod.namespace})</p>\n</body></html>\n"
    )
    not_found = (
        "<html><head><title>404 Not Found</title></head>"
        "<body><h1>404 Not Found</h1></body></html>\n"
    )

    async def app(req: Request) -> Response:
        server = [("Server", "nginx")]
        if req.method not in ("GET", "HEAD"):
            return Response(
                405, "<html><body><h1>405 Not Allowed</h1></body></html>\n", "text/html", server
            )
        if req.path in ("/", "/index.html"):
            return Response(200, page, "text/html", server)
        return Response(404, not_found, "text/html", server)

    return app


def http_echo_app(text: str, status: int) -> App:
    async def app(req: Request) -> Response:
        if req.path == "/health":
            return Response(200, '{"status":"ok"}\n', "application/json")
        return Response(status, text + "\n", headers=[("X-App-Name", "http-echo")])

    return app


def echo_line(pod: PodIdentity, client: str) -> bytes:
    return f"pod={pod.name} namespace={pod.namespace} ip={pod.pod_ip} client={client}\n".encode()


# -- connection handlers ---------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _tcp_handler(spec: P.ServerSpec, pod: PodIdentity) -> Handler:
    if spec.handler == P.H_HOSTNAME_TCP:

        async def hostname(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(pod.host.encode())
            await w.drain()

        return hostname
    if spec.handler == P.H_ECHO_TCP:

        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            client = hostport(w.get_extra_info("peername"))
            try:
                first = await asyncio.wait_for(r.read(65536), SNIFF_TIMEOUT)
            except TimeoutError:
                first = b""
            if _HTTP_START.match(first):

                async def line_app(req: Request) -> Response:
                    return Response(200, echo_line(pod, client))

                await serve_http(r, w, line_app, prefix=first)
                return
            w.write(echo_line(pod, client) + first)
            await w.drain()
            while data := await r.read(65536):
                w.write(data)
                await w.drain()

        return echo
    apps: dict[str, Callable[[], App]] = {
        P.H_NETEXEC_HTTP: lambda: netexec_app(pod),
        P.H_HOSTNAME_HTTP: lambda: hostname_app(pod, bool(spec.options.get("close"))),
        P.H_NGINX: lambda: nginx_app(pod, str(spec.options.get("flavour", "nginx"))),
        P.H_HTTP_ECHO: lambda: http_echo_app(
            str(spec.options.get("text", "")), int(spec.options.get("status", 200))
        ),
    }
    if spec.handler not in apps:
        raise ValueError(f"no TCP handler named {spec.handler!r}")
    app = apps[spec.handler]()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await serve_http(r, w, app)

    return handle


def _udp_reply(
    spec: P.ServerSpec, pod: PodIdentity
) -> Callable[[bytes, tuple[Any, ...]], bytes | None]:
    if spec.handler == P.H_NETEXEC_UDP:

        def netexec(data: bytes, addr: tuple[Any, ...]) -> bytes | None:
            # agnhost trims and lower-cases the datagram (including an echoed message).
            text = data.decode("utf-8", "replace").strip().lower()
            if text == "hostname":
                return pod.host.encode()
            if text.startswith("echo "):
                return text[5:].encode()
            if text == "clientip":
                return hostport(addr).encode()
            return None  # unknown commands get no answer

        return netexec
    if spec.handler == P.H_HOSTNAME_UDP:
        return lambda data, addr: pod.host.encode()
    if spec.handler == P.H_ECHO_UDP:
        return lambda data, addr: echo_line(pod, hostport(addr))
    raise ValueError(f"no UDP handler named {spec.handler!r}")


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, reply: Callable[[bytes, tuple[Any, ...]], bytes | None]) -> None:
        self.reply = reply
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        answer = self.reply(data, addr)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors for earlier replies (client went away): nothing to do


class RunningServer:
    """One started server; :meth:`close` stops it and every connection it accepted."""

    def __init__(self, spec: P.ServerSpec) -> None:
        self.spec = spec
        self._server: asyncio.Server | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._transport is not None:
            self._transport.close()
        # Aborting the transports ends every handler at its next read (EOF); cancelling
        # the tasks instead would make asyncio's stream machinery log each cancellation.
        for w in list(self._writers):
            w.transport.abort()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=2.0)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._server is not None:
            await self._server.wait_closed()
        self._server = self._transport = None


async def start_server(spec: P.ServerSpec, sock: socket.socket, pod: PodIdentity) -> RunningServer:
    """Serve ``spec`` on ``sock`` (bound; listening for TCP). The socket is taken over."""
    running = RunningServer(spec)
    sock.setblocking(False)
    if spec.protocol == "UDP":
        reply = _udp_reply(spec, pod)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Datagrams(reply), sock=sock
        )
        running._transport = transport
        return running
    handler = _tcp_handler(spec, pod)

    async def on_connection(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        running._tasks.add(task)
        running._writers.add(w)
        try:
            await handler(r, w)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or stalled: just drop the connection
        finally:
            running._tasks.discard(task)
            running._writers.discard(w)
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()

    running._server = await asyncio.start_server(on_connection, sock=sock)
    return running
