"""Probes on real clusters (kind, context), run from inside the source pod.

A probe from a pod runs in the pod's ``netlab-probe`` ephemeral container
(:mod:`clusters.kube.debugpod`), which shares the pod's network namespace: the connection
leaves from the pod's own address, through its CNI, Service rules and NetworkPolicy, like
the local engine's probes do. The commands and how their output becomes an
:class:`~clusters.probing.Observation` are in :mod:`clusters.kube.agnhost`; this module
chooses them, runs them with :func:`clusters.kube.podexec.pod_exec` and measures the time.

Probes from a node or from the host are not made here (``UNSUPPORTED`` with the reason):
the Kubernetes API cannot run commands on a node, so the kind engine runs those itself
(``docker exec`` into a node container, or from the machine running kind) and hands only
pod sources to this prober.

Never raises for network outcomes: a source pod that is missing or whose probe container
cannot run is ``ERROR`` with the reason; a tool missing from the probe image is
``UNSUPPORTED``. A spec without a needed port raises ValueError (as on the local engine).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from clusters.engine import ExecResult
from clusters.errors import ClusterError, CommandError, ObjectNotFound
from clusters.kube import agnhost
from clusters.kube.debugpod import DebugContainers
from clusters.kube.podexec import ContainerUnavailable, pod_exec
from clusters.probing import Observation, Outcome, ProbeSpec

#: Same signature as :func:`clusters.kube.podexec.pod_exec` (tests inject a fake).
ExecFn = Callable[..., ExecResult]
#: How long one exec may take beyond twice the probe's own timeout (API round trips).
EXEC_SLACK = 15.0


class _ToolMissing(Exception):
    def __init__(self, tool: str, why: str) -> None:
        super().__init__(f"the probe image has no {tool} ({why})")


class _Session:
    """One probe's execs into one pod; re-adds the probe container once if it vanished."""

    def __init__(self, prober: KubeProber, namespace: str, pod: str, spec: ProbeSpec) -> None:
        self.prober, self.namespace, self.pod, self.spec = prober, namespace, pod, spec
        self.container = prober.containers.ensure(namespace, pod)
        self.retried = False

    def run(self, argv: Sequence[str]) -> ExecResult:
        timeout = 2 * self.spec.timeout + EXEC_SLACK
        try:
            try:
                return self._exec(argv, timeout)
            except (ContainerUnavailable, ObjectNotFound):
                if self.retried:
                    raise
                self.retried = True
                self.prober.containers.forget(self.namespace, self.pod)
                self.container = self.prober.containers.ensure(self.namespace, self.pod)
                return self._exec(argv, timeout)
        except CommandError as err:
            text = f"{err.reason} {err.stderr}".lower()
            if err.returncode is None and ("not found" in text or "no such file" in text):
                raise _ToolMissing(argv[0], err.reason) from err
            raise

    def _exec(self, argv: Sequence[str], timeout: float) -> ExecResult:
        return self.prober.exec_fn(self.prober.api, self.namespace, self.pod, list(argv),
                                   container=self.container, timeout=timeout)


class KubeProber:
    """``prober(spec) -> Observation`` for :class:`clusters.kube.cluster.KubeCluster`."""

    def __init__(self, api: Any, *, image: str | None = None, ready_timeout: float = 60,
                 exec_fn: ExecFn | None = None) -> None:
        self.api = api
        self.containers = DebugContainers(api, image=image, ready_timeout=ready_timeout)
        self.exec_fn: ExecFn = exec_fn or pod_exec

    def __call__(self, spec: ProbeSpec) -> Observation:
        source = spec.source
        if source.node is not None:
            return Observation(Outcome.UNSUPPORTED, f"probes from node {source.node} cannot go "
                               "through the Kubernetes API (it runs commands in pods, not on "
                               "nodes); the engine runs them on the node itself")
        if source.is_host:
            return Observation(Outcome.UNSUPPORTED, "probes from outside the cluster cannot go "
                               "through the Kubernetes API; the engine runs them itself")
        runner = _RUNNERS.get(spec.kind)
        if runner is None:
            return Observation(Outcome.UNSUPPORTED, f"no {spec.kind!r} probe on this engine "
                               f"(it runs {', '.join(_RUNNERS)})")
        if spec.kind in ("tcp", "udp", "http") and spec.port is None:
            raise ValueError(f"a {spec.kind} probe needs a port: {spec.describe()}")
        try:
            session = _Session(self, source.namespace or "default", source.pod or "", spec)
        except ClusterError as err:
            return Observation(Outcome.ERROR, f"source {source}: {err}")
        started = time.monotonic()
        try:
            observation = runner(session, spec)
        except _ToolMissing as err:
            observation = Observation(Outcome.UNSUPPORTED, str(err))
        except ClusterError as err:
            observation = Observation(Outcome.ERROR, f"probe from {source}: {err}")
        return replace(observation, elapsed=time.monotonic() - started)


# ---------------------------------------------------------------- the probe kinds


def _peer(spec: ProbeSpec) -> str | None:
    if spec.port is None or not agnhost.is_ip(spec.target):
        return None
    return agnhost.hostport(spec.target, spec.port)


def _tcp(session: _Session, spec: ProbeSpec) -> Observation:
    assert spec.port is not None
    result = session.run(agnhost.connect_argv(spec.target, spec.port, spec.timeout))
    return agnhost.parse_connect(result, "tcp", _peer(spec))


def _udp(session: _Session, spec: ProbeSpec) -> Observation:
    """nc prints the reply; when none came, agnhost connect says why (a second datagram)."""
    assert spec.port is not None
    peer = _peer(spec)
    first = session.run(agnhost.udp_argv(spec.target, spec.port, spec.payload, spec.timeout))
    observation = agnhost.parse_udp(first, peer)
    if observation is not None:
        return observation
    second = session.run(agnhost.connect_argv(spec.target, spec.port, spec.timeout, "udp",
                                              spec.payload))
    observation = agnhost.parse_connect(second, "udp", peer)
    if observation.connected and observation.body is None:
        why = ("nc is missing from the probe image, so the reply's text is unknown"
               if first.returncode == 127 else
               "the first datagram got no reply, a second one did (its text is unknown)")
        observation = replace(observation, detail=why)
    return observation


def _http(session: _Session, spec: ProbeSpec) -> Observation:
    """curl; when it could not connect without saying why, agnhost connect tells."""
    assert spec.port is not None
    result = session.run(agnhost.curl_argv(spec))
    observation = agnhost.parse_curl(result)
    if observation is not None:
        return observation
    said = result.stderr.strip() or f"curl exit code {result.returncode}"
    tcp = agnhost.parse_connect(
        session.run(agnhost.connect_argv(spec.target, spec.port, spec.timeout)), "tcp",
        _peer(spec))
    if tcp.connected:
        return Observation(Outcome.ERROR, f"curl could not connect ({said}), but a TCP connect "
                           "right after did: the path changed between the two tries",
                           peer=tcp.peer)
    return replace(tcp, detail=f"{tcp.detail} ({said})")


def _dns(session: _Session, spec: ProbeSpec) -> Observation:
    try:
        argv = agnhost.dig_argv(spec)
    except ValueError as err:
        return Observation(Outcome.ERROR, f"no usable DNS server: {err}")
    return agnhost.parse_dig(session.run(argv), spec)


def _ping(session: _Session, spec: ProbeSpec) -> Observation:
    result = session.run(agnhost.ping_argv(spec.target, spec.timeout))
    if result.returncode == 127 and "not found" in result.stderr:
        raise _ToolMissing("ping", result.stderr.strip())
    return agnhost.parse_ping(result, spec.target)


_RUNNERS: dict[str, Callable[[_Session, ProbeSpec], Observation]] = {
    "tcp": _tcp, "udp": _udp, "http": _http, "ping": _ping, "dns": _dns,
}
