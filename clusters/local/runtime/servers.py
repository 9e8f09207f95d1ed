"""The servers a local-engine pod runs, on sockets the caller created in the pod's netns.

Every handler starts on an already bound socket (listening for TCP), so the caller alone
decides which network namespace and address it lives in; the handlers themselves are
plain asyncio and never switch namespaces. What each handler answers mirrors the image it
stands for (agnhost netexec / serve-hostname, nginx, hashicorp/http-echo) closely enough
that a lab's checks read the same on a real cluster; the generic echo says which pod
answered so learners can see where a connection landed.

HTTP/1.1 itself (the parser, :func:`~clusters.local.runtime.http1.serve_http`) and the
outbound dials live in :mod:`clusters.local.runtime.http1`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clusters.local.dns.server import Responder, serve_dns_stream
from clusters.local.runtime import plan as P
from clusters.local.runtime.http1 import (
    App,
    Request,
    Response,
    hostport,
    http_get,
    serve_http,
    udp_exchange,
)
from clusters.local.serving import DatagramReply, Served, StreamHandler

SNIFF_TIMEOUT = 1.0  # generic echo: how long to wait for a client to speak first

_HTTP_START = re.compile(rb"^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT) ")


@dataclass(frozen=True)
class PodIdentity:
    """Who is answering: shown by the servers, and ``netns`` used for outbound dials."""

    name: str
    namespace: str
    pod_ip: str
    hostname: str = ""
    netns: str | None = None
    #: Answers DNS queries from the engine's zone (rebuilt on every change); only pods that
    #: run the cluster DNS image have one, shared by their UDP and TCP servers.
    dns: Responder | None = field(default=None, compare=False, repr=False)

    @property
    def host(self) -> str:
        return self.hostname or self.name


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


def coredns_app(paths: list[str]) -> App:
    """CoreDNS's side ports: ``/health`` (8080), ``/ready`` (8181), ``/metrics`` (9153)."""

    async def app(req: Request) -> Response:
        if req.path not in paths:
            return Response(404, "404 page not found\n")
        if req.path == "/metrics":
            return Response(200, "# the local engine's DNS server exports no metrics\n",
                            "text/plain; version=0.0.4")
        return Response(200, "OK")

    return app


def echo_line(pod: PodIdentity, client: str) -> bytes:
    return f"pod={pod.name} namespace={pod.namespace} ip={pod.pod_ip} client={client}\n".encode()


# -- connection handlers ---------------------------------------------------------------

Handler = StreamHandler


def _dns_responder(spec: P.ServerSpec, pod: PodIdentity) -> Responder:
    if pod.dns is None:
        raise ValueError(f"pod {pod.namespace}/{pod.name} serves DNS ({spec}) but has no zone")
    return pod.dns


def _tcp_handler(spec: P.ServerSpec, pod: PodIdentity) -> Handler:
    if spec.handler == P.H_DNS_TCP:
        responder = _dns_responder(spec, pod)
        return lambda r, w: serve_dns_stream(responder, r, w)
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
        P.H_COREDNS_HTTP: lambda: coredns_app(list(spec.options.get("paths", []))),
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


def _udp_reply(spec: P.ServerSpec, pod: PodIdentity) -> DatagramReply:
    if spec.handler == P.H_DNS_UDP:
        responder = _dns_responder(spec, pod)
        return lambda data, addr: responder.respond(data, tcp=False)
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


class RunningServer(Served):
    """One started server of a pod; :meth:`close` stops it and every connection it accepted."""

    def __init__(self, spec: P.ServerSpec) -> None:
        super().__init__()
        self.spec = spec


async def start_server(spec: P.ServerSpec, sock: socket.socket, pod: PodIdentity) -> RunningServer:
    """Serve ``spec`` on ``sock`` (bound; listening for TCP). The socket is taken over."""
    running = RunningServer(spec)
    if spec.protocol == "UDP":
        await running.serve_udp(sock, _udp_reply(spec, pod))
    else:
        await running.serve_tcp(sock, _tcp_handler(spec, pod))
    return running
