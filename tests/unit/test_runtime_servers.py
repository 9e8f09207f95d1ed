"""The pod servers, PodRuntime and ReadinessProber, on 127.0.0.1 with ephemeral ports."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from clusters.errors import DaemonError
from clusters.local.runtime import (
    PodIdentity,
    PodRuntime,
    ReadinessProber,
    ServerSpec,
    plan_pod,
    start_server,
)
from clusters.local.runtime import plan as P

T = TypeVar("T")
POD = PodIdentity("web-1", "demo", "10.244.1.5", "web-1")
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a test coroutine with a hard deadline so a hung server fails instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, 30))


@asynccontextmanager
async def serving(spec: ServerSpec, pod: PodIdentity = POD) -> AsyncIterator[int]:
    kind = socket.SOCK_STREAM if spec.protocol == "TCP" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        sock.listen()
    port = sock.getsockname()[1]
    srv = await start_server(spec, sock, pod)
    try:
        yield port
    finally:
        await srv.close()


async def read_response(r: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await r.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := await r.readline()) not in (b"\r\n", b""):
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    body = await r.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def request(
    port: int, path: str = "/", method: str = "GET", extra: str = "", body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    w.write(head.encode() + b"\r\n" + body)
    if method == "HEAD":
        status_line = await r.readline()
        rest = await r.read()
        w.close()
        return int(status_line.split()[1]), {}, rest.partition(b"\r\n\r\n")[2]
    resp = await read_response(r)
    assert await r.read() == b"", "server must close after Connection: close"
    w.close()
    return resp


async def raw(port: int, data: bytes) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(data)
    out = await r.read()
    w.close()
    return out


async def udp(port: int, payload: bytes, timeout: float = 1.0) -> bytes | None:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        s.connect(("127.0.0.1", port))
        await loop.sock_sendall(s, payload)
        try:
            return await asyncio.wait_for(loop.sock_recv(s, 65536), timeout)
        except TimeoutError:
            return None


NETEXEC = ServerSpec("TCP", 0, P.H_NETEXEC_HTTP)


# -- netexec HTTP ----------------------------------------------------------------------


def test_netexec_http_endpoints() -> None:
    async def main() -> None:
        async with serving(NETEXEC) as port:
            assert (await request(port, "/hostname"))[::2] == (200, b"web-1")
            assert (await request(port, "/hostName"))[2] == b"web-1"
            assert (await request(port, "/healthz"))[::2] == (200, b"ok")
            assert (await request(port, "/echo?msg=hello%20world"))[2] == b"hello world"
            assert (await request(port, "/echo?msg=gone&code=503"))[::2] == (503, b"gone")
            hdr = await request(port, "/header?key=X-Probe", extra="X-Probe: 42\r\n")
            assert hdr[2] == b"42"
            status, _, body = await request(port, "/")
            assert status == 200 and body.startswith(b"NOW: ")
            # agnhost registers "/" as a catch-all: unknown paths answer like "/".
            assert (await request(port, "/no/such/path"))[2].startswith(b"NOW: ")
            assert (await request(port, "/shell?cmd=id"))[0] == 501

    run(main())


def test_netexec_clientip_is_the_peer_address() -> None:
    async def main() -> None:
        async with serving(NETEXEC) as port:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /clientip HTTP/1.1\r\nHost: t\r\n\r\n")
            _, _, body = await read_response(r)
            ip, mine = w.get_extra_info("sockname")
            assert body.decode() == f"{ip}:{mine}"
            w.close()

    run(main())


def test_any_method_and_bodies() -> None:
    async def main() -> None:
        async with serving(NETEXEC) as port:
            assert (await request(port, "/hostname", "POST", body=b"x=1"))[2] == b"web-1"
            form = "Content-Type: application/x-www-form-urlencoded\r\n"
            assert (await request(port, "/echo", "PUT", form, b"msg=from-body"))[2] == b"from-body"
            status, _, rest = await request(port, "/hostname", "HEAD")
            assert status == 200 and rest == b""

    run(main())


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    async def main() -> None:
        async with serving(NETEXEC) as port:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            # a POST with a body, then a pipelined pair: the body must not leak into the next
            w.write(b"POST /echo?msg=a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nGET /x")
            w.write(b"GET /hostname HTTP/1.1\r\nHost: t\r\n\r\n")
            w.write(b"GET /echo?msg=b HTTP/1.1\r\nHost: t\r\n\r\n")
            first, second, third = [await read_response(r) for _ in range(3)]
            assert [first[2], second[2], third[2]] == [b"a", b"web-1", b"b"]
            assert "connection" not in third[1]
            # still open: one more request, chunked this time, then close
            w.write(
                b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n"
                b"4\r\nmsg=\r\n5\r\nchunk\r\n0\r\n\r\n"
            )
            status, headers, body = await read_response(r)
            assert (status, body, headers["connection"]) == (200, b"chunk", "close")
            assert await r.read() == b""
            w.close()

    run(main())


def test_http10_closes_unless_keep_alive_asked() -> None:
    async def main() -> None:
        async with serving(NETEXEC) as port:
            out = await raw(port, b"GET /hostname HTTP/1.0\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"web-1")

    run(main())


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", 400),
        (b"GET /hostname\r\n\r\n", 400),
        (b"GET /hostname HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: t\r\nbad header line\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    ],
)
def test_garbage_gets_an_error_and_the_connection_closes(data: bytes, status: int) -> None:
    async def main() -> None:
        async with serving(NETEXEC) as port:
            out = await raw(port, data)
            assert out.startswith(f"HTTP/1.1 {status} ".encode()), out[:80]
            assert b"Connection: close" in out

    run(main())


# -- UDP, serve-hostname, nginx, http-echo, generic echo -------------------------------


def test_netexec_udp_protocol() -> None:
    async def main() -> None:
        async with serving(ServerSpec("UDP", 0, P.H_NETEXEC_UDP)) as port:
            assert await udp(port, b"hostname\n") == b"web-1"
            assert await udp(port, b"echo Hello There") == b"hello there"  # agnhost lowercases
            reply = await udp(port, b"clientip")
            assert reply is not None and reply.startswith(b"127.0.0.1:")
            assert await udp(port, b"what is this", timeout=0.3) is None

    run(main())


def test_serve_hostname_tcp_udp_http() -> None:
    async def main() -> None:
        async with serving(ServerSpec("TCP", 0, P.H_HOSTNAME_TCP)) as port:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            assert await r.read() == b"web-1"  # written, then closed by the server
            w.close()
        async with serving(ServerSpec("UDP", 0, P.H_HOSTNAME_UDP)) as port:
            assert await udp(port, b"anything") == b"web-1"
        async with serving(ServerSpec("TCP", 0, P.H_HOSTNAME_HTTP, {"close": False})) as port:
            assert (await request(port, "/any/path", "DELETE"))[::2] == (200, b"web-1")

    run(main())


def test_nginx_page_names_the_pod() -> None:
    async def main() -> None:
        async with serving(ServerSpec("TCP", 0, P.H_NGINX, {"flavour": "nginx"})) as port:
            status, headers, body = await request(port, "/")
            assert status == 200 and headers["content-type"].startswith("text/html")
            text = "Welcome to nginx on the kube-netlab local engine. Served by pod web-1 (demo)"
            assert text.encode() in body
            assert (await request(port, "/missing"))[0] == 404
            assert (await request(port, "/", "POST", body=b"x"))[0] == 405

    run(main())


def test_http_echo_answers_text_with_status() -> None:
    async def main() -> None:
        spec = ServerSpec("TCP", 0, P.H_HTTP_ECHO, {"text": "hi", "status": 418})
        async with serving(spec) as port:
            assert (await request(port, "/whatever"))[::2] == (418, b"hi\n")

    run(main())


def test_generic_echo_tcp_raw_and_http_and_udp() -> None:
    async def main() -> None:
        async with serving(ServerSpec("TCP", 0, P.H_ECHO_TCP)) as port:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            me = "{}:{}".format(*w.get_extra_info("sockname"))
            line = await r.readline()  # a silent client gets the line after the sniff delay
            assert line.decode() == f"pod=web-1 namespace=demo ip=10.244.1.5 client={me}\n"
            w.write(b"ping\n")
            assert await r.readline() == b"ping\n"
            w.close()

            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"hello\n")  # a client that speaks first gets the line, then its bytes
            assert (await r.readline()).startswith(b"pod=web-1 ")
            assert await r.readline() == b"hello\n"
            w.write_eof()
            assert await r.read() == b""
            w.close()

            status, _, body = await request(port, "/")
            assert status == 200 and body.startswith(b"pod=web-1 namespace=demo ip=10.244.1.5")
        async with serving(ServerSpec("UDP", 0, P.H_ECHO_UDP)) as port:
            reply = await udp(port, b"x")
            assert reply is not None and reply.startswith(b"pod=web-1 namespace=demo")

    run(main())


def test_netexec_dial_reaches_other_servers() -> None:
    async def main() -> None:
        other = PodIdentity("other", "demo", "127.0.0.1")
        async with (
            serving(NETEXEC) as port,
            serving(NETEXEC, other) as http_port,
            serving(ServerSpec("UDP", 0, P.H_NETEXEC_UDP), other) as udp_port,
        ):
            q = f"/dial?host=127.0.0.1&port={http_port}&request=hostname&tries=2"
            assert json.loads((await request(port, q))[2]) == {"responses": ["other", "other"]}
            q = f"/dial?host=127.0.0.1&port={udp_port}&request=hostname&protocol=udp"
            assert json.loads((await request(port, q))[2]) == {"responses": ["other"]}
            q = f"/dial?host=127.0.0.1&port={_free_port()}&request=hostname"
            assert list(json.loads((await request(port, q))[2])) == ["errors"]
            assert (await request(port, "/dial?host=svc.ns&port=80&request=x"))[0] == 400

    run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- PodRuntime --------------------------------------------------------------------------


def ephemeral(plan: P.PodPlan) -> dict[tuple[str, int], int]:
    return {(s.protocol, s.port): 0 for c in plan.containers for s in c.servers}


def test_runtime_port_clash_fails_only_the_later_container() -> None:
    manifest = {
        "metadata": {"name": "web-1", "namespace": "demo"},
        "spec": {
            "containers": [
                {"name": "a", "image": AGNHOST, "args": ["netexec", "--udp-port=-1"]},
                {"name": "b", "image": "nginxinc/nginx-unprivileged"},
                {"name": "c", "image": "hashicorp/http-echo"},
                {"name": "d", "image": "busybox", "command": ["sleep", "infinity"]},
            ]
        },
    }
    plan = plan_pod(manifest)

    async def main() -> None:
        rt = PodRuntime(
            name="web-1", namespace="demo", pod_ip="127.0.0.1", netns=None, plan=plan,
            port_map=ephemeral(plan), bind_address="127.0.0.1",
        )  # fmt: skip
        states = {s.name: s for s in await rt.start()}
        assert (states["a"].state, states["a"].started) == ("running", True)
        assert (states["b"].state, states["b"].reason) == ("waiting", "CrashLoopBackOff")
        assert "address already in use" in states["b"].message
        assert states["c"].state == "waiting" and "-text" in states["c"].message
        assert states["d"].state == "running"
        port = rt.port_of("a", "TCP", 8080)
        assert (await request(port, "/hostname"))[2] == b"web-1"
        await rt.stop()
        await rt.stop()  # idempotent
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)

    run(main())


def test_runtime_stop_closes_open_keep_alive_connections() -> None:
    plan = plan_pod({"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "a", "image": AGNHOST, "args": ["netexec", "--udp-port=-1"]}]}})  # fmt: skip

    async def main() -> None:
        rt = PodRuntime(
            name="p", namespace="default", pod_ip="127.0.0.1", netns=None, plan=plan,
            port_map=ephemeral(plan),
        )  # fmt: skip
        await rt.start()
        r, w = await asyncio.open_connection("127.0.0.1", rt.port_of("a", "TCP", 8080))
        w.write(b"GET /hostname HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await read_response(r))[2] == b"p"
        await rt.stop()
        assert await r.read() == b""
        w.close()

    run(main())


# -- ReadinessProber -----------------------------------------------------------------------


class RecordingProber(ReadinessProber):
    """Records every probe result, and lets a test wait for a condition on them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.results: list[bool] = []
        self.changes: list[tuple[bool, dict[str, bool], str]] = []
        self.on_change = lambda ready, per, msg: self.changes.append((ready, per, msg))
        self.tick = asyncio.Event()

    async def check(self, container: dict[str, Any], probe: dict[str, Any]) -> str | None:
        why = await super().check(container, probe)
        self.results.append(why is None)
        self.tick.set()
        return why

    async def until(self, cond: Any) -> None:
        while not cond():
            self.tick.clear()
            await self.tick.wait()


def probe_pod(probe: dict[str, Any] | None, port: int) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "web", "image": AGNHOST, "args": ["netexec", f"--http-port={port}"],
        "ports": [{"name": "http", "containerPort": port}],
    }  # fmt: skip
    if probe is not None:
        container["readinessProbe"] = probe
    return {"metadata": {"name": "web-1", "namespace": "demo"}, "spec": {"containers": [container]}}


async def start_pod(pod: dict[str, Any]) -> PodRuntime:
    plan = plan_pod(pod)
    rt = PodRuntime(
        name="web-1", namespace="demo", pod_ip="127.0.0.1", netns=None, plan=plan,
        port_map={("UDP", 8081): 0}, bind_address="127.0.0.1",
    )  # fmt: skip
    await rt.start()
    return rt


def test_ready_after_http_probe_passes_with_named_port() -> None:
    async def main() -> None:
        port = _free_port()
        pod = probe_pod({"httpGet": {"path": "/healthz", "port": "http"}}, port)
        rt = await start_pod(pod)
        prober = RecordingProber(
            pod, pod_ip="127.0.0.1", node_netns=None, container_states=rt.container_states,
            period_scale=0.02,
        )  # fmt: skip
        task = asyncio.create_task(prober.run())
        await prober.until(lambda: prober.ready)
        assert prober.changes[0][0] is False  # starts unready until the probe passes
        assert prober.changes[-1] == (True, {"web": True}, "")
        assert rt.container_states[0].ready
        await prober.stop()
        await task
        await rt.stop()

    run(main())


def test_no_probe_is_ready_once_running() -> None:
    async def main() -> None:
        pod = probe_pod(None, _free_port())
        rt = await start_pod(pod)
        prober = RecordingProber(
            pod, pod_ip="127.0.0.1", node_netns=None, container_states=rt.container_states
        )
        task = asyncio.create_task(prober.run())
        await asyncio.sleep(0)
        assert prober.changes == [(True, {"web": True}, "")]
        await prober.stop()
        await task
        await rt.stop()

    run(main())


def test_not_ready_while_probe_port_is_closed() -> None:
    async def main() -> None:
        pod = probe_pod({"tcpSocket": {"port": _free_port()}, "periodSeconds": 1}, _free_port())
        rt = await start_pod(pod)
        prober = RecordingProber(
            pod, pod_ip="127.0.0.1", node_netns=None, container_states=rt.container_states,
            period_scale=0.02,
        )  # fmt: skip
        task = asyncio.create_task(prober.run())
        await prober.until(lambda: len(prober.results) >= 5)
        assert not any(prober.results)
        assert not prober.ready
        ready, per, msg = prober.changes[-1]
        assert (ready, per) == (False, {"web": False})
        assert "containers with unready status: [web]" in msg and "connection refused" in msg
        await prober.stop()
        await task
        await rt.stop()

    run(main())


def test_http_status_decides_readiness() -> None:
    async def main() -> None:
        spec = ServerSpec("TCP", 0, P.H_HTTP_ECHO, {"text": "down", "status": 503})
        async with serving(spec) as port:
            pod = probe_pod({"httpGet": {"path": "/", "port": port}}, _free_port())
            rt = await start_pod(pod)
            prober = RecordingProber(
                pod, pod_ip="127.0.0.1", node_netns=None, container_states=rt.container_states,
                period_scale=0.02,
            )  # fmt: skip
            task = asyncio.create_task(prober.run())
            await prober.until(lambda: len(prober.results) >= 2)
            assert not prober.ready
            assert "HTTP probe failed with statuscode: 503" in prober.message()
            await prober.stop()
            await task
            await rt.stop()

    run(main())


def test_failure_threshold_consecutive_failures_make_unready() -> None:
    async def main() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = await start_server(NETEXEC, sock, POD)
        probe = {"httpGet": {"path": "/healthz", "port": port}, "failureThreshold": 3}
        pod = probe_pod(probe, _free_port())
        rt = await start_pod(pod)
        prober = RecordingProber(
            pod, pod_ip="127.0.0.1", node_netns=None, container_states=rt.container_states,
            period_scale=0.02,
        )  # fmt: skip
        task = asyncio.create_task(prober.run())
        await prober.until(lambda: prober.ready)
        await server.close()  # the server goes away; the prober must notice after 3 failures
        await prober.until(lambda: not prober.ready)
        tail = prober.results[prober.results.index(True) :]
        last_success = len(tail) - 1 - tail[::-1].index(True)
        assert tail[last_success + 1 :] == [False, False, False]
        assert prober.changes[-1][:2] == (False, {"web": False})
        await prober.stop()
        await task
        await rt.stop()

    run(main())


def test_exec_probe_passes_with_one_warning() -> None:
    async def main() -> None:
        pod = probe_pod({"exec": {"command": ["cat", "/tmp/ready"]}}, _free_port())
        rt = await start_pod(pod)
        prober = RecordingProber(
            pod, pod_ip="127.0.0.1", node_netns=None, container_states=rt.container_states,
            period_scale=0.01,
        )  # fmt: skip
        task = asyncio.create_task(prober.run())
        await prober.until(lambda: len(prober.results) >= 3)
        assert prober.ready
        assert len(prober.warnings) == 1 and "exec probes" in prober.warnings[0]
        await prober.stop()
        await task
        await rt.stop()

    run(main())


def test_crashed_container_is_never_ready() -> None:
    async def main() -> None:
        pod = {"metadata": {"name": "x"}, "spec": {"containers": [
            {"name": "echo", "image": "hashicorp/http-echo"}]}}  # fmt: skip
        rt = PodRuntime(name="x", namespace="default", pod_ip="127.0.0.1", netns=None,
                        plan=plan_pod(pod))  # fmt: skip
        await rt.start()
        prober = RecordingProber(
            pod, pod_ip="127.0.0.1", node_netns=None, container_states=rt.container_states
        )
        task = asyncio.create_task(prober.run())
        await asyncio.sleep(0)
        ready, _, msg = prober.changes[-1]
        assert not ready and "-text" in msg
        await prober.stop()
        await task

    run(main())


def test_runtime_refuses_a_missing_namespace() -> None:
    plan = plan_pod({"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "a", "image": AGNHOST, "args": ["pause"]}]}})  # fmt: skip
    rt = PodRuntime(name="p", namespace="default", pod_ip="10.0.0.1",
                    netns="knlt-no-such-netns", plan=plan)  # fmt: skip
    with pytest.raises(DaemonError, match="knlt-no-such-netns"):
        run(rt.start())
