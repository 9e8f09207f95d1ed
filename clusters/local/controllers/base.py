"""What every local controller shares: naming, readiness, ownership and store plumbing.

The pure helpers (template hashes, readiness, ownerReferences, which pod a scale-down
removes first) are plain functions so tests and other controllers can use them alone;
:class:`ControllerBase` holds the store, clock and random source and the small writes
every controller makes (create an owned pod, delete, update status).
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from clusters.local.store import Store

Obj = dict[str, Any]

#: Kubernetes' SafeEncodeString alphabet: no vowels, no look-alike digits, no bad words.
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_GENERATED_BASE = 58  # 63 minus the 5-character random suffix, as the API server does


# ---- pure helpers -----------------------------------------------------------------------
def template_hash(template: Mapping[str, Any]) -> str:
    """A stable 10-character hash of a pod template, in the vowel-free alphabet."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, default=str).encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(10):
        number, index = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[index])
    return "".join(chars)


def is_ready(pod: Mapping[str, Any]) -> bool:
    """Ready as the kubelet reports it: a Ready condition with status "True"."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def is_active(pod: Mapping[str, Any]) -> bool:
    """Counts as a replica: not being deleted and not finished."""
    phase = (pod.get("status") or {}).get("phase")
    return not is_terminating(pod) and phase not in ("Succeeded", "Failed")


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def owner_reference(owner: Mapping[str, Any]) -> Obj:
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


def _meta(obj: Mapping[str, Any]) -> Obj:
    return dict(obj.get("metadata") or {})


def ref_of(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` (or just ``name``) for event messages."""
    meta = _meta(obj)
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


def age_key(obj: Mapping[str, Any]) -> tuple[str, int]:
    """Sort key, oldest first: creation time, then resourceVersion within a second."""
    meta = _meta(obj)
    return str(meta.get("creationTimestamp", "")), int(meta.get("resourceVersion") or 0)


def deletion_order(pods: Iterable[Obj]) -> list[Obj]:
    """Which pods a scale-down removes first: unbound, not running, not ready, then newest."""
    newest_first = sorted(pods, key=age_key, reverse=True)
    return sorted(newest_first, key=lambda p: (
        bool(p.get("spec", {}).get("nodeName")),
        (p.get("status") or {}).get("phase") == "Running", is_ready(p)))


class ControllerBase:
    """Store, clock and random source, and the writes every controller makes."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time,
                 rand: random.Random | None = None) -> None:
        self.store = store
        self.clock = clock
        self.rand = rand or random.Random()

    # ---- shared plumbing ------------------------------------------------------------------
    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _owned(self, kind: str, owner: Mapping[str, Any]) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [o for o in self.store.list(kind, owner["metadata"].get("namespace"))
                if controller_uid(o) == uid]

    def _workloads(self, kind: str) -> list[Obj]:
        return [o for o in self.store.list(kind) if not is_terminating(o)]

    def _set_status(self, obj: Mapping[str, Any], status: Obj, summary: str) -> list[str]:
        if (obj.get("status") or {}) == status:
            return []
        self.store.set_status(obj["kind"], obj["metadata"].get("namespace"),
                              obj["metadata"]["name"], status)
        return [f"updated status of {obj['kind'].lower()} {ref_of(obj)}: {summary}"]

    def _unique_name(self, kind: str, namespace: str, base: str) -> str:
        base = base[:MAX_GENERATED_BASE]
        while True:
            name = base + "".join(self.rand.choice(ALPHABET) for _ in range(5))
            if self.store.get(kind, namespace, name) is None:
                return name

    def _create_pod(self, owner: Mapping[str, Any], template: Mapping[str, Any], name: str,
                    labels: Mapping[str, str] | None = None, **spec: Any) -> str:
        tmeta = _meta(template)
        namespace = owner["metadata"]["namespace"]
        meta: Obj = {"name": name, "namespace": namespace,
                     "labels": {**(tmeta.get("labels") or {}), **(labels or {})},
                     "ownerReferences": [owner_reference(owner)]}
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        pod_spec = {**copy.deepcopy(template.get("spec") or {}), **spec}
        self.store.create_owned({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                                 "spec": pod_spec, "status": {"phase": "Pending"}})
        return f"created pod {namespace}/{name}"

    def _delete(self, obj: Mapping[str, Any], why: str) -> str:
        self.store.delete(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        return f"deleted {obj['kind'].lower()} {ref_of(obj)} ({why})"
