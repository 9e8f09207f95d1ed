"""What the kind engine remembers about each cluster it made, and where.

A kind cluster is ours only when we hold a record of it here *and* the cluster carries our
marks (a node label and the ``kube-system/kube-netlab`` ConfigMap, see :mod:`engine`). The
record is written before ``kind create cluster`` runs, so a create that dies half-way (a
crash, a killed terminal) still leaves proof that the half-built cluster is ours to delete.

Layout, one set of files per cluster under ``<state root>/kind/``::

    <name>.json         the record (profile, status, kind version, node image, times)
    <name>.kubeconfig   the cluster's own kubeconfig (``kind create --kubeconfig``)
    <name>.d/           work files: the kind config, Helm values, extracted plugins

The state root is ``$LAB_STATE_DIR``, else ``/var/lib/kube-netlab`` for root, else
``$XDG_STATE_HOME/kube-netlab`` (``~/.local/state/kube-netlab``).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clusters.engine import ClusterProfile
from clusters.fileio import JsonRecords, state_root

#: ``status`` of a record: the create is running (or died), or the cluster is complete.
CREATING, READY = "creating", "ready"


@dataclass(frozen=True)
class KindRecord:
    """One cluster we created (or are creating)."""

    name: str
    profile: ClusterProfile
    status: str = CREATING
    created_at: float = field(default_factory=time.time)
    kind_version: str = ""
    node_image: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "engine": "kind", "profile": self.profile.to_dict(),
                "status": self.status, "created_at": self.created_at,
                "kind_version": self.kind_version, "node_image": self.node_image}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KindRecord:
        return cls(name=str(data["name"]), profile=ClusterProfile.from_dict(data["profile"]),
                   status=str(data.get("status", CREATING)),
                   created_at=float(data.get("created_at", 0.0)),
                   kind_version=str(data.get("kind_version", "")),
                   node_image=str(data.get("node_image", "")))

    def ready(self) -> KindRecord:
        return replace(self, status=READY)


class KindState:
    """Reads and writes the records under ``<root>/kind``; writes are atomic."""

    def __init__(self, root: Path | None = None) -> None:
        self.dir = (root if root is not None else state_root()) / "kind"
        self.records = JsonRecords(self.dir)

    def record_path(self, name: str) -> Path:
        return self.records.path(name)

    def kubeconfig(self, name: str) -> Path:
        return self.dir / f"{name}.kubeconfig"

    def work_dir(self, name: str) -> Path:
        return self.dir / f"{name}.d"

    def read(self, name: str) -> KindRecord | None:
        """The record of ``name``, or None when there is none (or it is unreadable)."""
        data = self.records.load(name)
        try:
            return None if data is None else KindRecord.from_dict(data)
        except (ValueError, KeyError, TypeError):
            return None

    def write(self, record: KindRecord) -> None:
        self.records.save(record.name, record.to_dict())

    def names(self) -> list[str]:
        """Names of every cluster with a record, sorted."""
        return self.records.names()

    def remove(self, name: str) -> None:
        """Forget ``name``: its record, kubeconfig and work files."""
        self.record_path(name).unlink(missing_ok=True)
        self.kubeconfig(name).unlink(missing_ok=True)
        shutil.rmtree(self.work_dir(name), ignore_errors=True)
