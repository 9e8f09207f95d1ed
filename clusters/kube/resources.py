"""Which REST path serves a kind: API discovery, cached per :class:`KubeApi`.

A manifest names ``apiVersion`` + ``kind``; the API serves ``/apis/GROUP/VERSION/[namespaces/
NS/]PLURAL[/NAME]``. The mapping comes from the server's own discovery documents
(``/api/v1``, ``/apis``, ``/apis/GROUP/VERSION``), so custom resources work as soon as their
CRD is served, and nothing is hard-coded per kind. One group version is fetched when a
manifest needs it; the full list only when a person's word (``po``, ``deploy``,
``networkpolicies.networking.k8s.io``) must be resolved. :meth:`Resources.invalidate` forgets
the cache after CRDs were applied.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from clusters.errors import ManifestError, ObjectNotFound


class Requester(Protocol):
    """What this package needs of an API connection (KubeApi, or a test fake)."""

    def request(self, method: str, path: str, *, body: Any = None,
                query: Mapping[str, str] | None = None, content_type: str = ...,
                timeout: float = ...) -> Any: ...


class UnknownKind(ManifestError, ValueError):
    """The server serves no such kind (a ValueError too, like an unknown word on the CLI)."""


@dataclass(frozen=True)
class Resource:
    """One served resource: ``Deployment`` in ``apps/v1`` is ``deployments``, namespaced."""

    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection(self, namespace: str | None) -> str:
        """The list/create path; ``namespace=None`` lists a namespaced kind everywhere."""
        if self.namespaced and namespace is not None:
            return f"{self.prefix}/namespaces/{namespace}/{self.plural}"
        return f"{self.prefix}/{self.plural}"

    def item(self, namespace: str | None, name: str) -> str:
        return f"{self.collection(namespace if self.namespaced else None)}/{name}"

    def names(self) -> tuple[str, ...]:
        """Every word a person may use for it (lower case, without the group)."""
        return (self.kind.lower(), self.plural, self.singular or self.kind.lower(),
                *self.short_names)


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _resources(doc: Any, group: str, version: str) -> list[Resource]:
    out = []
    for r in (doc or {}).get("resources") or ():
        name = str(r.get("name") or "")
        if not name or "/" in name:  # subresources (pods/exec, deployments/scale)
            continue
        out.append(Resource(
            kind=str(r.get("kind")), group=str(r.get("group") or group),
            version=str(r.get("version") or version), plural=name,
            namespaced=bool(r.get("namespaced")), singular=str(r.get("singularName") or ""),
            short_names=tuple(r.get("shortNames") or ()), verbs=tuple(r.get("verbs") or ())))
    return out


class Resources:
    """Discovery for one API connection (use :func:`resources_for` to share it)."""

    def __init__(self, api: Requester) -> None:
        self.api = api
        self._lock = threading.Lock()
        self._by_gv: dict[tuple[str, str], list[Resource] | None] = {}
        self._preferred: list[tuple[str, str]] | None = None

    def invalidate(self) -> None:
        """Forget what was discovered (after CRDs were created or removed)."""
        with self._lock:
            self._by_gv.clear()
            self._preferred = None

    def group_version(self, group: str, version: str) -> list[Resource] | None:
        """The resources of one group version; None when the server does not serve it."""
        key = (group, version)
        with self._lock:
            if key in self._by_gv:
                return self._by_gv[key]
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            found: list[Resource] | None = _resources(self.api.request("GET", path), group, version)
        except ObjectNotFound:
            found = None
        with self._lock:
            self._by_gv[key] = found
        return found

    def _forget(self, group: str, version: str) -> None:
        with self._lock:
            self._by_gv.pop((group, version), None)

    def for_kind(self, kind: str, api_version: str) -> Resource:
        """The resource of a manifest's ``apiVersion``/``kind``; UnknownKind when not served.

        A miss asks the server once more (a CRD may have been installed since)."""
        group, version = split_api_version(api_version)
        for attempt in range(2):
            if attempt:
                self._forget(group, version)
            served = self.group_version(group, version)
            for res in served or ():
                if res.kind == kind:
                    return res
        if served is None:
            why = f"the API server does not serve apiVersion {api_version!r}"
        else:
            why = f"apiVersion {api_version!r} has no kind {kind!r}"
        raise UnknownKind(
            f"no kind {kind!r} in apiVersion {api_version!r}: {why}; if it is a custom "
            "resource, its CustomResourceDefinition may be missing (install it first)",
            path="kind")

    def preferred(self) -> list[tuple[str, str]]:
        """Every served (group, preferred version), the core group first."""
        with self._lock:
            if self._preferred is not None:
                return list(self._preferred)
        pairs = [("", "v1")]
        for g in (self.api.request("GET", "/apis") or {}).get("groups") or ():
            pref = (g.get("preferredVersion") or {}).get("version") or \
                ((g.get("versions") or [{}])[0]).get("version")
            if g.get("name") and pref:
                pairs.append((str(g["name"]), str(pref)))
        with self._lock:
            self._preferred = pairs
        return list(pairs)

    def resolve(self, word: str) -> Resource:
        """What a person means by ``word`` (see :meth:`_resolve`); a miss refreshes discovery
        once, in case a CRD was installed since it was read."""
        try:
            return self._resolve(word)
        except UnknownKind:
            self.invalidate()
            return self._resolve(word)

    def _resolve(self, word: str) -> Resource:
        """What a person means: ``Pod``, ``pods``, ``po``, ``deploy``, ``deployments.apps``,
        ``networkpolicy.v1.networking.k8s.io``. Built-in groups win over custom ones as in
        kubectl (core, then the server's group order); UnknownKind when nothing matches."""
        text = word.strip()
        key = text.lower()
        name, _, rest = key.partition(".")
        group_filter: str | None = None
        version_filter: str | None = None
        if rest:
            first, _, tail = rest.partition(".")
            pairs = self.preferred()
            if tail and any(g == tail for g, _v in pairs) and first.startswith("v"):
                version_filter, group_filter = first, tail
            else:
                group_filter = rest
        candidates: list[tuple[str, str]] = []
        if group_filter is not None and version_filter is not None:
            candidates = [(group_filter, version_filter)]
        else:
            candidates = [(g, v) for g, v in self.preferred()
                          if group_filter is None or g == group_filter]
        exact = text if "." not in text else None
        for group, version in candidates:
            for res in self.group_version(group, version) or ():
                if exact is not None and res.kind == exact:
                    return res
        for group, version in candidates:
            for res in self.group_version(group, version) or ():
                if name in res.names():
                    return res
        raise UnknownKind(f"the server has no resource type {word!r}; if it is a custom "
                          "resource, its CustomResourceDefinition may be missing")


_CACHE: weakref.WeakKeyDictionary[Any, Resources] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def resources_for(api: Requester) -> Resources:
    """The discovery cache of ``api`` (one per connection, dropped with it)."""
    with _CACHE_LOCK:
        found = _CACHE.get(api)
        if found is None:
            found = _CACHE[api] = Resources(api)
        return found


def resource_of(doc: Mapping[str, Any], resources: Resources) -> Resource:
    """The resource a manifest document addresses (its apiVersion and kind)."""
    return resources.for_kind(str(doc.get("kind") or ""), str(doc.get("apiVersion") or ""))
