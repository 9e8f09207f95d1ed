"""What the grader's fixtures hand to a check: pods, probes, and the learner's workspace.

The pytest fixtures themselves live in :mod:`grader.plugin`; these classes hold no pytest
state, so they can be tested and used outside pytest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import yaml

from clusters import manifests
from clusters.engine import Cluster
from clusters.errors import ObjectNotFound
from clusters.probing import DNS_TYPES, Observation, Outcome, ProbeSpec, Source
from grader.dns import DnsSettled, DnsWant
from grader.expectations import CheckFailed, Finding
from grader.matrix import MatrixResult, matrix_pods, probe_matrix
from grader.settle import ExpectLike, Settled, Want, settle

PROBE_KINDS = ("tcp", "udp", "http", "ping")


@dataclass(frozen=True)
class PodRef:
    """A pod as a check sees it, read fresh from the cluster."""

    namespace: str
    name: str
    ip: str | None
    node: str | None
    ready: bool
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    phase: str = ""

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> PodRef:
        meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions") or ())
        return cls(namespace=meta.get("namespace", "default"), name=meta["name"],
                   ip=status.get("podIP") or None, node=spec.get("nodeName") or None,
                   ready=ready, labels=dict(meta.get("labels") or {}),
                   phase=status.get("phase", ""))

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_selector(selector: str | Mapping[str, str]) -> dict[str, str]:
    """``"app=web,tier=front"`` (equality only) or a mapping, as a dict."""
    if not isinstance(selector, str):
        return dict(selector)
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in selector.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"label selector {selector!r}: use key=value[,key=value]")
        pairs[key.strip()] = value.strip().lstrip("=").strip()
    return pairs


class Pods:
    """Look pods up; every call reads the cluster again (pods come and go)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def all(self, namespace: str) -> list[PodRef]:
        """Pods of ``namespace`` that are not being deleted, by name."""
        objs = self.cluster.get("Pod", namespace)
        live = [o for o in objs if not o.get("metadata", {}).get("deletionTimestamp")]
        return sorted((PodRef.from_object(o) for o in live), key=lambda p: p.name)

    def get(self, namespace: str, name: str | None = None) -> PodRef:
        """The pod ``namespace/name`` (or ``get("ns/name")``); a missing pod fails the check."""
        if name is None:
            namespace, _, name = namespace.rpartition("/")
        present = self.all(namespace)
        for pod in present:
            if pod.name == name:
                return pod
        raise self._missing(namespace, f"pod {namespace}/{name}", present)

    def by_label(self, namespace: str, selector: str | Mapping[str, str]) -> list[PodRef]:
        wanted = parse_selector(selector)
        return [p for p in self.all(namespace)
                if all(p.labels.get(k) == v for k, v in wanted.items())]

    def one(self, namespace: str, selector: str | Mapping[str, str]) -> PodRef:
        """The first pod matching ``selector``; none fails the check."""
        found = self.by_label(namespace, selector)
        if not found:
            text = ",".join(f"{k}={v}" for k, v in parse_selector(selector).items())
            raise self._missing(namespace, f"a pod labelled {text} in {namespace}",
                                self.all(namespace))
        return found[0]

    @staticmethod
    def _missing(namespace: str, what: str, present: Sequence[PodRef]) -> CheckFailed:
        there = (f"pods in {namespace}: " + ", ".join(
            f"{p.name} ({', '.join(f'{k}={v}' for k, v in p.labels.items()) or 'no labels'})"
            for p in present)) if present else f"namespace {namespace} has no pods"
        return CheckFailed(Finding(
            expected=f"{what} exists", observed=f"no such pod; {there}",
            hint="Check the name, labels and namespace in your manifests "
                 "(metadata.namespace, and the pod template's labels).",
        ))


class Prober:
    """Probes from a pod (``"ns/pod"``, a PodRef) or ``"host"`` to an IP, a name or a PodRef.

    Each probe settles (see :mod:`grader.settle`) towards ``expect`` (CONNECTED unless
    told otherwise) and returns a :class:`~grader.settle.Settled` result.
    """

    def __init__(self, cluster: Cluster, pods: Pods, *, settle_seconds: float = 5.0,
                 namespaces: Sequence[str] = (), confirmations: int = 2) -> None:
        self.cluster = cluster
        self.pods = pods
        self.settle_seconds = settle_seconds
        self.namespaces = tuple(namespaces)
        self.confirmations = confirmations

    def tcp(self, src: str | PodRef, dst: str | PodRef, port: int, timeout: float = 1.0, *,
            expect: ExpectLike = "CONNECTED") -> Settled:
        return self.run("tcp", src, dst, port, expect=expect, timeout=timeout)

    def udp(self, src: str | PodRef, dst: str | PodRef, port: int, timeout: float = 1.0, *,
            payload: str = "hostname", expect: ExpectLike = "CONNECTED") -> Settled:
        return self.run("udp", src, dst, port, expect=expect, timeout=timeout, payload=payload)

    def http(self, src: str | PodRef, url_or_host: str | PodRef, port: int = 80,
             path: str = "/", host_header: str | None = None, timeout: float = 1.0, *,
             expect: ExpectLike = "CONNECTED", status: int | None = None,
             body: str | None = None) -> Settled:
        want = Want.of(expect).with_content(status=status, body=body)
        return self.run("http", src, url_or_host, port, expect=want, timeout=timeout,
                        path=path, host_header=host_header)

    def ping(self, src: str | PodRef, dst: str | PodRef, timeout: float = 1.0, *,
             expect: ExpectLike = "CONNECTED") -> Settled:
        return self.run("ping", src, dst, None, expect=expect, timeout=timeout)

    def dns(self, src: str | PodRef, name: str, type: str = "A",
            transport: str = "udp", search: bool = False, server: str | None = None, *,
            expect_rcode: str | None = None, answers: Iterable[str] | None = None,
            subset: bool = False, timeout: float = 2.0) -> DnsSettled:
        """Query ``name`` (record ``type``) from ``src``'s network, as :mod:`grader.dns` says.

        Settles until the response has ``expect_rcode`` and/or exactly ``answers`` (with
        ``subset``: at least them); with neither, until any response arrives. ``server``
        defaults to the source pod's nameserver; ``search`` applies its search list.
        """
        qtype = type.upper()
        if qtype not in DNS_TYPES:
            raise ValueError(f"DNS record type {type!r}: use one of {', '.join(DNS_TYPES)}")
        if transport not in ("udp", "tcp"):
            raise ValueError(f"DNS transport {transport!r}: use udp or tcp")
        source = self.source(src)
        spec = ProbeSpec(kind="dns", source=source, target=name, timeout=timeout,
                         qtype=qtype,  # type: ignore[arg-type]
                         transport=transport,  # type: ignore[arg-type]
                         search=search, dns_server=server)
        want = DnsWant.for_query(qtype, expect_rcode, answers, subset)
        settled = settle(lambda: self._attempt(spec), want, within=self.settle_seconds,
                         confirmations=self.confirmations)
        if not settled.matched and settled.final.outcome is Outcome.ERROR and source.pod:
            self.pods.get(source.namespace or "default", source.pod)  # a missing source fails
        shown = f"{name} {qtype}" + (f" @{server}" if server else "")
        return DnsSettled(settled.want, settled.observations, settled.stable, spec,
                          self._source_label(source), shown)

    def matrix(self, namespaces: Sequence[str] | None = None, ports: Sequence[int] = (80,),
               protocols: Sequence[str] = ("TCP",), via: Sequence[str] = ("pod-ip",), *,
               timeout: float = 1.0, attempts: int = 3,
               services: Mapping[str, str] | None = None) -> MatrixResult:
        """Every running pod of ``namespaces`` (default: the lab's) probes every other one;
        see :mod:`grader.matrix`. No pod to probe fails the check."""
        chosen = tuple(namespaces) if namespaces else self.namespaces
        pods = matrix_pods(self.cluster, chosen)
        if not pods:
            raise CheckFailed(Finding(
                expected=f"running pods with IPs in {', '.join(chosen) or 'the lab namespaces'}",
                observed="none", hint="Look at the pods and their events: are they scheduled "
                                      "and running?"))
        return probe_matrix(self.cluster, pods, ports=ports, protocols=protocols, via=via,
                            timeout=timeout, attempts=attempts, services=services)

    def run(self, kind: str, src: str | PodRef, dst: str | PodRef, port: int | None = None, *,
            expect: ExpectLike = "CONNECTED", timeout: float = 1.0, path: str = "/",
            host_header: str | None = None, payload: str = "hostname") -> Settled:
        """One settled probe of any kind; the typed helpers above all come here."""
        if kind not in PROBE_KINDS:
            raise ValueError(f"unknown probe protocol {kind!r}: use one of {PROBE_KINDS}")
        source = self.source(src)
        if kind == "http" and isinstance(dst, str) and "://" in dst:
            dst, port, path = _split_url(dst, path)
        target, shown = self._target(dst, None if kind == "ping" else port)
        spec = ProbeSpec(kind=kind, source=source, target=target,  # type: ignore[arg-type]
                         port=None if kind == "ping" else port, timeout=timeout,
                         path=path or "/", host_header=host_header, payload=payload)
        settled = settle(lambda: self._attempt(spec), Want.of(expect),
                         within=self.settle_seconds, confirmations=self.confirmations)
        if not settled.matched and settled.final.outcome is Outcome.ERROR and source.pod:
            self.pods.get(source.namespace or "default", source.pod)  # a missing source fails
        return Settled(settled.want, settled.observations, settled.stable, spec,
                       self._source_label(source), shown)

    def source(self, src: str | PodRef) -> Source:
        """``"host"``, ``"ns/pod"``, a PodRef, or a bare pod name (the lab's first namespace)."""
        if not isinstance(src, str):
            return Source(src.namespace, src.name)
        if "/" not in src and src.strip() not in ("", "host") and self.namespaces:
            return Source(self.namespaces[0], src.strip())
        return Source.parse(src)

    def _source_label(self, source: Source) -> str:
        if source.pod is not None and self.namespaces == (source.namespace,):
            return source.pod
        return str(source)

    @staticmethod
    def _target(dst: str | PodRef, port: int | None) -> tuple[str, str]:
        suffix = "" if port is None else f":{port}"
        if isinstance(dst, str):
            return dst, f"{dst}{suffix}"
        if not dst.ip:
            raise CheckFailed(Finding(
                expected=f"pod {dst} has an IP address",
                observed=f"no IP yet (phase {dst.phase or 'unknown'}, node {dst.node or '-'})",
                hint="The pod is not running yet; look at its events and its node.",
            ))
        return dst.ip, f"{dst.ip}{suffix} ({dst})"

    def _attempt(self, spec: ProbeSpec) -> Observation:
        try:
            return self.cluster.probe(spec)
        except ObjectNotFound as err:
            if spec.source.pod is not None and spec.source.namespace is not None:
                self.pods.get(spec.source.namespace, spec.source.pod)  # fails when missing
            raise CheckFailed(Finding(expected=f"{spec.describe()} can run",
                                      observed=str(err))) from err


def _split_url(url: str, default_path: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{url}: only http:// URLs can be probed")
    path = parts.path or default_path
    if parts.query:
        path += f"?{parts.query}"
    return parts.hostname, parts.port or 80, path


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class Workspace:
    """The learner's manifests, read-only. ``lab check`` applied them before the checks ran."""

    path: Path | None
    documents: tuple[Mapping[str, Any], ...] = ()
    sources: tuple[str, ...] = ()  # the file (relative to ``path``) of each document

    @classmethod
    def load(cls, path: Path | None) -> Workspace:
        """Every document of the manifest files under ``path``, in file-name order; hidden
        files and folders (``.backup/``) are not the learner's current work and are skipped."""
        if path is None:
            return cls(None)
        docs: list[Mapping[str, Any]] = []
        sources: list[str] = []
        for file in manifests.expand(path):
            for doc in yaml.safe_load_all(file.read_text()):
                if isinstance(doc, Mapping):
                    docs.append(_frozen(doc))
                    sources.append(str(file.relative_to(path)))
        return cls(path, tuple(docs), tuple(sources))

    def find(self, kind: str, name: str | None = None,
             namespace: str | None = None) -> list[Mapping[str, Any]]:
        """Documents of ``kind`` (and ``name`` / ``namespace`` when given)."""
        found = []
        for doc in self.documents:
            meta = doc.get("metadata") or {}
            if doc.get("kind") != kind:
                continue
            if name is not None and meta.get("name") != name:
                continue
            if namespace is not None and meta.get("namespace", "default") != namespace:
                continue
            found.append(doc)
        return found
