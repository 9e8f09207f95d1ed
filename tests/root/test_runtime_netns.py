"""PodRuntime and ReadinessProber across two real network namespaces joined by a veth pair.

The "pod" namespace runs agnhost netexec through PodRuntime; the "node" namespace is where
clients and the kubelet-like prober connect from. Everything created is named knlt-* and
removed afterwards, also when a test fails.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from clusters.local.netns import socket_in
from clusters.local.runtime import PodRuntime, ReadinessProber, plan_pod
from clusters.proc import run

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces"),
]

POD_IP, NODE_IP = "192.0.2.1", "192.0.2.2"
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    tag = f"{os.getpid() % 100000}"
    pod_ns, node_ns = f"knlt-rt-pod-{tag}", f"knlt-rt-node-{tag}"
    pod_if, node_if = f"knltrp{tag}", f"knltrn{tag}"
    made: list[str] = []
    try:
        for ns in (pod_ns, node_ns):
            run(["ip", "netns", "add", ns])
            made.append(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", pod_ns, "link", "add", pod_if, "type", "veth", "peer", "name", node_if,
             "netns", node_ns])  # fmt: skip
        for ns, ifname, ip in ((pod_ns, pod_if, POD_IP), (node_ns, node_if, NODE_IP)):
            run(["ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", ifname])
            run(["ip", "-n", ns, "link", "set", ifname, "up"])
        yield pod_ns, node_ns
    finally:
        for ns in reversed(made):  # deleting a namespace deletes its end of the veth pair
            run(["ip", "netns", "del", ns], check=False)


def manifest() -> dict[str, Any]:
    container = {
        "name": "netexec", "image": AGNHOST, "args": ["netexec", "--http-port=8080"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
    }  # fmt: skip
    waiting = {
        "name": "sidecar", "image": AGNHOST, "args": ["pause"],
        "readinessProbe": {"tcpSocket": {"port": 9999}, "periodSeconds": 1},
    }  # fmt: skip
    return {
        "metadata": {"name": "web-1", "namespace": "demo"},
        "spec": {"containers": [container, waiting]},
    }


async def http_get_from(netns: str | None, host: str, path: str) -> bytes:
    sock = socket_in(netns, socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, 8080)), 5)
    except BaseException:
        sock.close()
        raise
    r, w = await asyncio.open_connection(sock=sock)
    w.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(r.read(), 5)
    w.close()
    return data.partition(b"\r\n\r\n")[2]


async def udp_from(netns: str, host: str, payload: bytes) -> tuple[bytes, str]:
    sock = socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (host, 8081))
        await loop.sock_sendall(sock, payload)
        reply = await asyncio.wait_for(loop.sock_recv(sock, 1500), 5)
        return reply, "{}:{}".format(*sock.getsockname())


def test_clientip_and_readiness_across_namespaces(namespaces: tuple[str, str]) -> None:
    pod_ns, node_ns = namespaces
    pod = manifest()

    async def main() -> None:
        rt = PodRuntime(name="web-1", namespace="demo", pod_ip=POD_IP, netns=pod_ns,
                        plan=plan_pod(pod))  # fmt: skip
        states = await rt.start()
        assert [s.state for s in states] == ["running", "running"]
        changes: list[tuple[bool, dict[str, bool], str]] = []
        changed = asyncio.Event()

        def on_change(ready: bool, per: dict[str, bool], msg: str) -> None:
            changes.append((ready, per, msg))
            changed.set()

        prober = ReadinessProber(
            pod, pod_ip=POD_IP, node_netns=node_ns, container_states=states,
            on_change=on_change, period_scale=0.05,
        )  # fmt: skip
        task = asyncio.create_task(prober.run())
        try:
            # the node reaches the pod over the veth: the pod sees the node's address
            body = await http_get_from(node_ns, POD_IP, "/clientip")
            assert body.decode().rsplit(":", 1)[0] == NODE_IP
            reply, me = await udp_from(node_ns, POD_IP, b"clientip")
            assert reply.decode() == me
            # inside the pod, its own localhost reaches its servers (wildcard bind)
            assert await http_get_from(pod_ns, "127.0.0.1", "/hostname") == b"web-1"
            # probes come from the node namespace: the http probe passes, the tcp one not
            while not (changes and changes[-1][1].get("netexec")):
                changed.clear()
                await changed.wait()
            ready, per, msg = changes[-1]
            assert (ready, per) == (False, {"netexec": True, "sidecar": False})
            assert "[sidecar]" in msg and f"{POD_IP}:9999" in msg
        finally:
            await prober.stop()
            await task
            await rt.stop()
        # the servers are gone: the node is refused now
        with pytest.raises(ConnectionRefusedError):
            await http_get_from(node_ns, POD_IP, "/hostname")

    asyncio.run(asyncio.wait_for(main(), 30))


def test_servers_are_not_in_the_host_namespace(namespaces: tuple[str, str]) -> None:
    pod_ns, _ = namespaces

    async def main() -> None:
        plan = plan_pod(manifest())
        rt = PodRuntime(name="web-1", namespace="demo", pod_ip=POD_IP, netns=pod_ns, plan=plan,
                        bind_address="127.0.0.1")  # fmt: skip
        await rt.start()
        try:
            assert await http_get_from(pod_ns, "127.0.0.1", "/hostname") == b"web-1"
            # the same address and port in the host's namespace is another socket entirely
            probe = socket.socket()
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", 8080))  # free in the host: the pod's socket is elsewhere
            except OSError as err:
                pytest.skip(f"something in the host already uses 127.0.0.1:8080 ({err})")
            finally:
                probe.close()
        finally:
            await rt.stop()

    asyncio.run(asyncio.wait_for(main(), 30))
