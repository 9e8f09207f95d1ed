"""Readiness of one pod, decided by really probing it from its node, like the kubelet does.

Endpoints are built from ready pods only, so readiness must be earned: an httpGet probe
makes a real HTTP request, a tcpSocket probe a real connection, both from the *node's*
network namespace (where the kubelet runs) to the pod IP. Thresholds and periods follow
the kubelet: ``successThreshold`` consecutive successes make a container ready,
``failureThreshold`` consecutive failures make it unready again.

Two deliberate differences, both announced: ``exec`` probes cannot run commands here and
count as passing (with a warning), and until a container is first ready it is probed every
``min(periodSeconds, 1s)`` so that pods become Ready quickly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clusters.local.runtime.http1 import http_get, open_in
from clusters.local.runtime.pods import RUNNING, ContainerState

log = logging.getLogger(__name__)

OnChange = Callable[[bool, dict[str, bool], str], None]
PROBE_USER_AGENT = "kube-probe/1.30"


@dataclass(frozen=True)
class ProbeTiming:
    """The timing fields of a probe, with the kubelet's defaults."""

    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: dict[str, Any]) -> ProbeTiming:
        def num(key: str, default: float, low: float) -> float:
            value = probe.get(key)
            return max(float(value), low) if isinstance(value, int | float) else default

        return cls(
            initial_delay=num("initialDelaySeconds", 0.0, 0.0),
            period=num("periodSeconds", 10.0, 1.0),
            timeout=num("timeoutSeconds", 1.0, 1.0),
            success_threshold=int(num("successThreshold", 1, 1)),
            failure_threshold=int(num("failureThreshold", 3, 1)),
        )


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    """An IntOrString probe port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for p in container.get("ports") or []:
        if (
            isinstance(p, dict)
            and p.get("name") == text
            and isinstance(p.get("containerPort"), int)
        ):
            return int(p["containerPort"])
    raise ValueError(f"port {text!r} is not the name of a containerPort")


def _reason(err: OSError) -> str:
    """``connection refused`` rather than asyncio's "Connect call failed (...)"."""
    return os.strerror(err.errno).lower() if err.errno else str(err)


class ReadinessProber:
    """Evaluate every container's readinessProbe of one pod; report changes.

    ``container_states`` (from :meth:`PodRuntime.start`) say which containers run; their
    ``ready`` flags are kept up to date. ``on_change(ready, per_container, message)`` is
    called with the initial state and on every change. ``period_scale`` multiplies
    ``initialDelaySeconds`` and ``periodSeconds`` (tests and benchmarks use e.g. 0.05).
    """

    def __init__(
        self,
        pod: dict[str, Any],
        *,
        pod_ip: str,
        node_netns: str | None,
        container_states: list[ContainerState],
        on_change: OnChange | None = None,
        period_scale: float = 1.0,
    ) -> None:
        self.pod = pod
        self.pod_ip = pod_ip
        self.node_netns = node_netns
        self.states = {st.name: st for st in container_states}
        self.on_change = on_change
        self.period_scale = period_scale
        self.warnings: list[str] = []
        self.failures: dict[str, str] = {}  # container -> last probe failure
        self._containers = [
            c for c in (pod.get("spec") or {}).get("containers") or [] if isinstance(c, dict)
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self._last: tuple[bool, dict[str, bool], str] | None = None

    # -- state -------------------------------------------------------------------------

    @property
    def per_container(self) -> dict[str, bool]:
        return {name: st.ready for name, st in self.states.items()}

    @property
    def ready(self) -> bool:
        return bool(self.states) and all(st.ready for st in self.states.values())

    def message(self) -> str:
        unready = [n for n, st in self.states.items() if not st.ready]
        if not unready:
            return ""
        text = f"containers with unready status: [{' '.join(unready)}]"
        for name in unready:
            st = self.states[name]
            why = self.failures.get(name) or (st.message if st.state != RUNNING else "")
            if why:
                text += f"; {name}: {why}"
        return text

    def _set(self, name: str, ready: bool) -> None:
        self.states[name].ready = ready
        self._emit()

    def _emit(self) -> None:
        now = (self.ready, self.per_container, self.message())
        if now == self._last:
            return
        self._last = now
        if self.on_change is not None:
            try:
                self.on_change(*now)
            except Exception:  # a broken listener must not stop probing
                log.exception("readiness on_change callback failed for %s", self._pod_name())

    def _pod_name(self) -> str:
        meta = self.pod.get("metadata") or {}
        return f"{meta.get('namespace', 'default')}/{meta.get('name', '?')}"

    def _warn_once(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)
            log.warning("%s: %s", self._pod_name(), text)

    # -- probing -----------------------------------------------------------------------

    async def check(self, container: dict[str, Any], probe: dict[str, Any]) -> str | None:
        """Run ``probe`` once; ``None`` on success, else why it failed."""
        name = container.get("name", "")
        timeout = ProbeTiming.of(probe).timeout
        try:
            if "httpGet" in probe:
                return await self._http(container, probe["httpGet"] or {}, timeout)
            if "tcpSocket" in probe:
                return await self._tcp(container, probe["tcpSocket"] or {}, timeout)
        except ValueError as err:
            return str(err)
        if "exec" in probe:
            self._warn_once(
                f"container {name}: exec probes cannot run commands on the local engine; "
                "counted as passing"
            )
            return None
        if "grpc" in probe:
            self._warn_once(
                f"container {name}: grpc probes are not checked by the local engine; "
                "counted as passing"
            )
            return None
        return "probe has no handler (httpGet, tcpSocket, exec or grpc)"

    async def _address(self, host: str | None) -> str:
        host = host or self.pod_ip
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM
            )
            return str(infos[0][4][0])

    async def _http(
        self, container: dict[str, Any], spec: dict[str, Any], timeout: float
    ) -> str | None:
        port = resolve_port(spec.get("port"), container)
        path = str(spec.get("path") or "/")
        path = path if path.startswith("/") else "/" + path
        scheme = str(spec.get("scheme") or "HTTP").upper()
        headers = [("User-Agent", PROBE_USER_AGENT), ("Accept", "*/*")]
        for h in spec.get("httpHeaders") or []:
            if isinstance(h, dict) and h.get("name"):
                headers = [x for x in headers if x[0].lower() != str(h["name"]).lower()]
                headers.append((str(h["name"]), str(h.get("value", ""))))
        url = f"{scheme.lower()}://{spec.get('host') or self.pod_ip}:{port}{path}"
        try:
            host = await self._address(spec.get("host"))
            status, _ = await http_get(
                self.node_netns, host, port, path, timeout=timeout, headers=headers,
                tls=scheme == "HTTPS", body=False,
            )  # fmt: skip
        except TimeoutError:
            return f'Get "{url}": context deadline exceeded (timeout {timeout:g}s)'
        except OSError as err:
            return f'Get "{url}": dial tcp: connect: {_reason(err)}'
        if 200 <= status < 400:
            return None
        return f"HTTP probe failed with statuscode: {status}"

    async def _tcp(
        self, container: dict[str, Any], spec: dict[str, Any], timeout: float
    ) -> str | None:
        port = resolve_port(spec.get("port"), container)
        target = f"{spec.get('host') or self.pod_ip}:{port}"
        try:
            host = await self._address(spec.get("host"))
            _, writer = await open_in(self.node_netns, host, port, timeout)
        except TimeoutError:
            return f"dial tcp {target}: i/o timeout"
        except OSError as err:
            return f"dial tcp {target}: connect: {_reason(err)}"
        writer.close()
        return None

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self.period_scale)

    async def _until_passes(self, container: dict[str, Any], probe: dict[str, Any]) -> None:
        """Startup probe: nothing else is probed before it passes once."""
        t = ProbeTiming.of(probe)
        await self._sleep(t.initial_delay)
        while (why := await self.check(container, probe)) is not None:
            self.failures[container["name"]] = f"Startup probe failed: {why}"
            self._emit()
            await self._sleep(min(t.period, 1.0))
        self.failures.pop(container["name"], None)

    async def _probe_loop(self, container: dict[str, Any]) -> None:
        name = container["name"]
        if isinstance(container.get("startupProbe"), dict):
            await self._until_passes(container, container["startupProbe"])
        probe = container["readinessProbe"]
        t = ProbeTiming.of(probe)
        await self._sleep(t.initial_delay)
        successes = failures = 0
        ever_ready = False
        while True:
            try:
                why = await self.check(container, probe)
            except Exception as err:  # an unexpected error is a failed probe, not a dead loop
                log.exception("readiness probe of %s/%s raised", self._pod_name(), name)
                why = f"probe error: {err}"
            if why is None:
                successes, failures = successes + 1, 0
                self.failures.pop(name, None)
                if not self.states[name].ready and successes >= t.success_threshold:
                    ever_ready = True
                    self._set(name, True)
            else:
                successes, failures = 0, failures + 1
                self.failures[name] = f"Readiness probe failed: {why}"
                if self.states[name].ready and failures >= t.failure_threshold:
                    self._set(name, False)
                else:
                    self._emit()
            await self._sleep(t.period if ever_ready else min(t.period, 1.0))

    async def run(self) -> None:
        """Probe until :meth:`stop`. Containers without a probe are ready once running."""
        loops = []
        for c in self._containers:
            st = self.states.get(str(c.get("name")))
            if st is None:
                continue
            running = st.state == RUNNING
            has_probe = isinstance(c.get("readinessProbe"), dict)
            st.ready = running and not has_probe
            if running and has_probe:
                loops.append(c)
        self._emit()
        self._tasks = [asyncio.create_task(self._probe_loop(c)) for c in loops]
        try:
            await self._stopped.wait()
        finally:
            await self._cancel()

    async def _cancel(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("readiness probe loop of %s failed", self._pod_name())

    async def stop(self) -> None:
        """Stop probing (idempotent). Readiness flags keep their last value."""
        self._stopped.set()
        await self._cancel()
