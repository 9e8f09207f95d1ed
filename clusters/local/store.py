"""The local engine's object store: plain-dict API objects, thread-safe, persisted as JSON.

The store plays the API server's bookkeeping role and nothing more: it stamps uid,
resourceVersion, creationTimestamp and generation, decides whether an apply created,
changed or left an object alone, keeps what the engine owns (status, allocated Service
fields, ownerReferences) across re-applies, and answers queries by kind, namespace and
label selector. It validates nothing beyond label syntax: callers pass objects that
:mod:`clusters.local.validation` accepted. Deletion never cascades; controllers collect
orphans by ownerReferences.

Label syntax and selector semantics live in :mod:`clusters.local.selectors`; the names are
re-exported here because callers that query the store use them alongside it.
"""

from __future__ import annotations

import builtins
import copy
import json
import secrets
import string
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clusters.errors import ClusterError, ObjectNotFound
from clusters.fileio import atomic_write
from clusters.local.kinds import find_kind
from clusters.local.selectors import (
    label_key_error,
    label_value_error,
    matches_selector,
    parse_selector,
)

__all__ = [
    "Store",
    "label_key_error",
    "label_value_error",
    "matches_selector",
    "parse_selector",
]

_STATE_VERSION = 1
# Metadata the server owns: whatever a manifest says about these is ignored.
_SERVER_META = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields",
                "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")

Key = tuple[str, str, str]

# ---------------------------------------------------------------- the store


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scope(kind: str, namespace: str | None) -> str:
    """The namespace part of a key: '' for cluster-scoped kinds."""
    info = find_kind(kind)
    if info is not None and not info.namespaced:
        return ""
    return namespace or ""


def _key_of(obj: Mapping[str, Any]) -> Key:
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(kind, str) or not kind or not isinstance(name, str) or not name:
        raise ValueError("an object needs kind and metadata.name to be stored")
    info = find_kind(kind)
    namespace = meta.get("namespace")
    if (info is None or info.namespaced) and not namespace:
        raise ValueError(f"{kind} {name}: metadata.namespace is required for a namespaced kind")
    return kind, _scope(kind, namespace), name


def _keep_allocated(kind: str, old_spec: Mapping[str, Any], new_spec: dict[str, Any]) -> None:
    """Carry engine-allocated spec fields over to a re-applied spec that omits them."""
    info = find_kind(kind)
    if info is None:
        return
    needs_node_ports = new_spec.get("type") in ("NodePort", "LoadBalancer")
    external_name = kind == "Service" and new_spec.get("type") == "ExternalName"
    for field in info.allocated:
        if external_name:
            continue  # an ExternalName Service has no ClusterIP to keep
        if field == "healthCheckNodePort" and not (
            needs_node_ports and new_spec.get("externalTrafficPolicy") == "Local"
        ):
            continue
        if field not in new_spec and field in old_spec:
            new_spec[field] = copy.deepcopy(old_spec[field])
    if kind == "Service" and needs_node_ports:
        # A port keeps its nodePort when the same (port, protocol) is re-applied without one.
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in old_spec.get("ports") or ()}
        for port in new_spec.get("ports") or ():
            allocated = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
            if "nodePort" not in port and allocated is not None:
                port["nodePort"] = allocated


class Store:
    """Thread-safe in-memory API objects keyed by (kind, namespace, name).

    ``revision`` counts changes; every change stamps the object's resourceVersion with the
    new revision, like etcd's global revision. Objects go in and come out as deep copies, so
    callers can never change stored state behind the store's back.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.revision = 0
        self._objects: dict[Key, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)

    # ---- persistence

    def load(self) -> None:
        """Replace the contents with the state file's, when it exists."""
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            objects = {_key_of(obj): obj for obj in data["objects"]}
            revision = int(data["revision"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ClusterError(f"cannot read the object store {self.path}: {err}") from err
        with self._lock:
            self._objects = objects
            self.revision = revision

    def save(self) -> None:
        """Write the state file atomically (temporary file, fsync, rename), mode 0600."""
        if self.path is None:
            return
        with self._lock:
            payload = json.dumps(
                {"version": _STATE_VERSION, "revision": self.revision,
                 "objects": [self._objects[k] for k in sorted(self._objects)]},
                indent=1, sort_keys=True,
            )
        atomic_write(self.path, payload)

    # ---- writes

    def _commit(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` as a new revision (lock held) and return a copy of it."""
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self._objects[key] = obj
        self._changed.notify_all()
        return copy.deepcopy(obj)

    def _stamp_new(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1

    def apply(self, obj: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """Create or update like ``kubectl apply``; returns (stored copy, what happened).

        What happened is "created", "configured" or "unchanged". An update replaces every
        top-level field (labels, annotations, spec, data, ...) with the manifest's and keeps
        uid, creationTimestamp, status, ownerReferences (unless given) and allocated fields.
        A status given on create is kept (the engine creates Nodes that way; validation has
        already removed any status a user wrote); on update the stored status wins, status
        changes go through :meth:`set_status`.
        """
        new = copy.deepcopy(dict(obj))
        meta = new.setdefault("metadata", {})
        for field in _SERVER_META:
            meta.pop(field, None)
        key = _key_of(new)
        if not key[1]:
            meta.pop("namespace", None)
        with self._lock:
            old = self._objects.get(key)
            if old is None:
                self._stamp_new(new)
                return self._commit(key, new), "created"
            old_meta = old["metadata"]
            for field in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                meta[field] = old_meta[field]
            for field in ("ownerReferences", "finalizers"):
                if field not in meta and field in old_meta:
                    meta[field] = copy.deepcopy(old_meta[field])
            if isinstance(new.get("spec"), dict) and isinstance(old.get("spec"), dict):
                _keep_allocated(key[0], old["spec"], new["spec"])
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            if new == old:
                return copy.deepcopy(old), "unchanged"
            if new.get("spec") != old.get("spec"):
                meta["generation"] = int(old_meta.get("generation", 1)) + 1
            return self._commit(key, new), "configured"

    def create_owned(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object for a controller, keeping ownerReferences and status as given.

        ``metadata.generateName`` without a name gets a random 5-character suffix, as the
        API server does for ReplicaSet pods. An existing object raises ``ValueError``.
        """
        new = copy.deepcopy(dict(obj))
        meta = new.setdefault("metadata", {})
        for field in _SERVER_META:
            meta.pop(field, None)
        with self._lock:
            if not meta.get("name") and meta.get("generateName"):
                alphabet = string.ascii_lowercase + string.digits
                while True:
                    suffix = "".join(secrets.choice(alphabet) for _ in range(5))
                    meta["name"] = f"{meta['generateName']}{suffix}"
                    if _key_of(new) not in self._objects:
                        break
            key = _key_of(new)
            if key in self._objects:
                raise ValueError(f"{key[0]} {key[1]}/{key[2]} already exists")
            self._stamp_new(new)
            return self._commit(key, new)

    def _existing(self, kind: str, namespace: str | None, name: str) -> tuple[Key, dict[str, Any]]:
        key = (kind, _scope(kind, namespace), name)
        obj = self._objects.get(key)
        if obj is None:
            where = f"{key[1]}/{name}" if key[1] else name
            raise ObjectNotFound(f"{kind} {where} not found")
        return key, obj

    def set_status(self, kind: str, namespace: str | None, name: str,
                   status: Mapping[str, Any]) -> dict[str, Any]:
        """Replace ``.status``; the resourceVersion moves only when the status changed."""
        with self._lock:
            key, obj = self._existing(kind, namespace, name)
            if obj.get("status") == status:
                return copy.deepcopy(obj)
            updated = copy.deepcopy(obj)
            updated["status"] = copy.deepcopy(dict(status))
            return self._commit(key, updated)

    def relabel(self, kind: str, namespace: str | None, name: str,
                set_labels: Mapping[str, str], remove: Sequence[str] = ()) -> dict[str, Any]:
        """Set and remove labels (like ``kubectl label --overwrite``). Bad labels: ValueError."""
        for k, v in set_labels.items():
            problem = label_key_error(k) or label_value_error(v)
            if problem:
                raise ValueError(f"invalid label {k}={v}: {problem}")
        with self._lock:
            key, obj = self._existing(kind, namespace, name)
            updated = copy.deepcopy(obj)
            labels = dict(updated["metadata"].get("labels") or {})
            for k in remove:
                labels.pop(k, None)
            labels.update(set_labels)
            if labels == (obj["metadata"].get("labels") or {}):
                return copy.deepcopy(obj)
            if labels:
                updated["metadata"]["labels"] = labels
            else:
                updated["metadata"].pop("labels", None)
            return self._commit(key, updated)

    def delete(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """Remove one object and return it, or None when it did not exist. No cascade."""
        with self._lock:
            obj = self._objects.pop((kind, _scope(kind, namespace), name), None)
            if obj is None:
                return None
            self.revision += 1
            self._changed.notify_all()
            return obj

    # ---- reads

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A copy of one object, or None."""
        with self._lock:
            obj = self._objects.get((kind, _scope(kind, namespace), name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, kind: str, namespace: str | None = None,
             selector: Mapping[str, str] | None = None,
             label_selector: Mapping[str, Any] | None = None, *,
             readonly: bool = False) -> builtins.list[dict[str, Any]]:
        """Copies of the objects of ``kind``, sorted by namespace and name.

        ``namespace=None``: all namespaces. ``selector``: labels that must all match;
        ``label_selector``: a full LabelSelector (matchLabels and matchExpressions).
        ``readonly``: the stored objects themselves, not copies, for the controllers' hot
        read paths (copying every object on every pass dominated a reconcile). Safe because
        every write replaces an object instead of changing it; the caller must never modify
        what it gets.
        """
        scope = None if namespace is None else _scope(kind, namespace)
        with self._lock:
            found = []
            for (k, ns, _name), obj in sorted(self._objects.items()):
                if k != kind or (scope is not None and ns != scope):
                    continue
                labels = obj["metadata"].get("labels") or {}
                if selector is not None and any(labels.get(a) != b for a, b in selector.items()):
                    continue
                if label_selector is not None and not matches_selector(labels, label_selector):
                    continue
                found.append(obj if readonly else copy.deepcopy(obj))
            return found

    def kinds(self) -> builtins.list[str]:
        """The kinds that have at least one stored object."""
        with self._lock:
            return sorted({k for k, _, _ in self._objects})

    def wait_for_change(self, since: int, timeout: float) -> int:
        """Block until ``revision`` exceeds ``since`` or ``timeout`` passes; returns revision.

        Lets controllers sleep until there is something to reconcile instead of polling.
        """
        with self._changed:
            self._changed.wait_for(lambda: self.revision > since, timeout=timeout)
            return self.revision
