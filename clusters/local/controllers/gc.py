"""Garbage collection by ownerReferences, and namespaces that empty before they go."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clusters.local.controllers.base import ControllerBase, is_terminating
from clusters.local.kinds import find_kind


class GarbageCollection(ControllerBase):
    """Namespace deletion and the background cascade that removes orphans."""

    def _namespaces(self) -> list[str]:
        """Empty a namespace marked for deletion, then remove it."""
        events: list[str] = []
        for ns in self.store.list("Namespace"):
            if not is_terminating(ns):
                continue
            name = ns["metadata"]["name"]
            remaining = 0
            for kind in self.store.kinds():
                info = find_kind(kind)
                if info is not None and not info.namespaced:
                    continue
                for obj in self.store.list(kind, name):
                    if kind == "Pod" and is_terminating(obj):
                        remaining += 1  # the runtime is stopping it; wait until it is gone
                    else:
                        events.append(self._delete(obj, f"namespace {name} is being deleted"))
            if remaining:
                events += self._set_status(ns, {**(ns.get("status") or {}),
                                                "phase": "Terminating"}, "Terminating")
            else:
                events.append(self._delete(ns, "emptied"))
        return events

    def _owner_alive(self, ref: Mapping[str, Any], namespace: str | None) -> bool:
        owner = self.store.get(str(ref.get("kind")), namespace, str(ref.get("name")))
        return owner is not None and owner["metadata"].get("uid") == ref.get("uid")

    def _collect_garbage(self) -> list[str]:
        """Background cascade: delete objects all of whose owners are gone (by uid)."""
        events = []
        for kind in self.store.kinds():
            for obj in self.store.list(kind, readonly=True):
                refs = obj["metadata"].get("ownerReferences") or []
                if refs and not any(self._owner_alive(r, obj["metadata"].get("namespace"))
                                    for r in refs):
                    events.append(self._delete(obj, f"owner {refs[0].get('kind')} "
                                                    f"{refs[0].get('name')} is gone"))
        return events
