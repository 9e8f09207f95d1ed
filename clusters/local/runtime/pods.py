"""One pod's runtime: bind its planned servers inside its network namespace and run them.

The daemon keeps one :class:`PodRuntime` per pod. Sockets are created inside the pod's
namespace (``socket_in``) and then served by the daemon's event loop like any other
socket, so a pod "runs" without a process of its own. Containers fail the way a real
one would when it cannot listen (a port already taken by another container of the pod)
and the failure is reported in the container's state, never swallowed.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

from clusters.errors import DaemonError
from clusters.local.dns.server import Responder
from clusters.local.dns.zone import Zone
from clusters.local.netns import exists as netns_exists
from clusters.local.netns import socket_in
from clusters.local.runtime import plan as P
from clusters.local.runtime.servers import PodIdentity, RunningServer, start_server

RUNNING = "running"
WAITING = "waiting"
CRASH_LOOP = "CrashLoopBackOff"


@dataclass
class ContainerState:
    """Status of one container, shaped like ``status.containerStatuses[]``.

    ``ready`` belongs to the readiness prober; the runtime only sets it back to False when
    a container stops.
    """

    name: str
    image: str
    ready: bool = False
    started: bool = False
    state: str = WAITING  # "running" | "waiting"
    reason: str = "ContainerCreating"
    message: str = ""
    restart_count: int = 0


class PodRuntime:
    """Serve a pod's :class:`~clusters.local.runtime.plan.PodPlan` in namespace ``netns``.

    ``netns=None`` serves in the calling process's namespace (unit tests). ``port_map``
    rewrites planned ports, ``(protocol, port) -> port`` (0 = any free port), so tests can
    run on loopback without privileged or fixed ports; :meth:`port_of` tells the real one.
    ``bind_address`` defaults to the wildcard, as the images' servers listen on ``:port``
    (reachable on the pod IP and on the pod's own localhost).
    """

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        pod_ip: str,
        netns: str | None,
        plan: P.PodPlan,
        port_map: dict[tuple[str, int], int] | None = None,
        bind_address: str | None = None,
        dns_zone: Callable[[], Zone] | None = None,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.pod_ip = pod_ip
        self.netns = netns
        self.plan = plan
        self.port_map = dict(port_map or {})
        v6 = bool(pod_ip) and ipaddress.ip_address(pod_ip).version == 6
        self.family = socket.AF_INET6 if v6 else socket.AF_INET
        self.bind_address = bind_address or ("::" if v6 else "0.0.0.0")
        serves_dns = any(s.handler in (P.H_DNS_UDP, P.H_DNS_TCP)
                         for c in plan.containers for s in c.servers)
        responder = Responder(dns_zone) if dns_zone is not None and serves_dns else None
        self.identity = PodIdentity(name, namespace, pod_ip, plan.hostname or name, netns,
                                    dns=responder)
        self.container_states = [ContainerState(c.name, c.image) for c in plan.containers]
        self._servers: list[RunningServer] = []
        self._bound: dict[tuple[str, str, int], int] = {}
        self._started = False

    def port_of(self, container: str, protocol: str, port: int) -> int:
        """The port a planned server really listens on (differs only under ``port_map``)."""
        return self._bound[(container, protocol, port)]

    def _bind(self, spec: P.ServerSpec) -> socket.socket:
        stream = spec.protocol == "TCP"
        sock = socket_in(
            self.netns, self.family, socket.SOCK_STREAM if stream else socket.SOCK_DGRAM
        )
        try:
            if stream:
                # Lets a restarted daemon rebind while old connections sit in TIME_WAIT;
                # never set for UDP, where it would let two containers share a port.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            addr = str(spec.options.get("bind") or self.bind_address)
            if self.family == socket.AF_INET6 and addr == "127.0.0.1":
                addr = "::1"
            sock.bind((addr, self.port_map.get((spec.protocol, spec.port), spec.port)))
            if stream:
                sock.listen(socket.SOMAXCONN)
            return sock
        except BaseException:
            sock.close()
            raise

    async def _start_container(self, cp: P.ContainerPlan, st: ContainerState,
                               claimed: dict[tuple[str, int], str]) -> None:  # fmt: skip
        if cp.behaviour == P.CRASH:
            st.state, st.reason, st.message = WAITING, CRASH_LOOP, cp.note
            return
        for s in cp.servers:
            owner = claimed.get((s.protocol, s.port))
            if owner is not None and owner != cp.name:
                st.state, st.reason = WAITING, CRASH_LOOP
                st.message = (
                    f"listen {s.protocol.lower()} :{s.port}: bind: address already in use "
                    f"(container {owner} of this pod listens there)"
                )
                return
        socks: list[socket.socket] = []
        try:
            for s in cp.servers:
                socks.append(self._bind(s))
        except OSError as err:
            for sock in socks:
                sock.close()
            st.state, st.reason = WAITING, CRASH_LOOP
            what = "address already in use" if err.errno == errno.EADDRINUSE else str(err)
            st.message = f"listen {s.protocol.lower()} :{s.port}: bind: {what}"
            return
        started: list[RunningServer] = []
        try:
            for s, sock in zip(cp.servers, socks, strict=True):
                self._bound[(cp.name, s.protocol, s.port)] = sock.getsockname()[1]
                started.append(await start_server(s, sock, self.identity))
        except BaseException:
            for r in started:
                await r.close()
            for sock in socks[len(started) :]:
                sock.close()
            raise
        self._servers.extend(started)
        for s in cp.servers:
            claimed[(s.protocol, s.port)] = cp.name
        st.state, st.reason, st.message, st.started = RUNNING, "", cp.note, True

    async def start(self) -> list[ContainerState]:
        """Bind and serve every container's servers; return the containers' states.

        A container that cannot listen is left ``waiting`` with the reason; the others
        run. Calling it again returns the current states.
        """
        if self._started:
            return self.container_states
        if self.netns is not None and not netns_exists(self.netns):
            # An engine bug, not a container failure: say so instead of failing every bind.
            raise DaemonError(
                f"pod {self.namespace}/{self.name}: network namespace {self.netns} does not exist"
            )
        self._started = True
        claimed: dict[tuple[str, int], str] = {}
        for cp, st in zip(self.plan.containers, self.container_states, strict=True):
            await self._start_container(cp, st, claimed)
        return self.container_states

    async def stop(self) -> None:
        """Close every socket and connection of the pod. Safe to call more than once."""
        servers, self._servers = self._servers, []
        for r in servers:
            await r.close()
        for st in self.container_states:
            if st.started:
                st.state, st.reason, st.message = WAITING, "Terminated", "pod stopped"
            st.ready = st.started = False

    def describe(self) -> str:
        """One line per container for logs and ``lab describe``."""
        lines = []
        for cp, st in zip(self.plan.containers, self.container_states, strict=True):
            ports = ", ".join(f"{s.port}/{s.protocol} {s.handler}" for s in cp.servers)
            status = f"{st.state} ({st.reason})" if st.reason else st.state
            lines.append(f"{cp.name} [{cp.behaviour}] {status}: {ports or 'no ports'}")
        return "\n".join(lines)
