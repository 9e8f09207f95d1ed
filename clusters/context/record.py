"""What the context engine remembers about each cluster name it attached to a context.

``lab start --engine context --context workshop`` attaches the cluster name (``netlab`` by
default) to the context, the learner's prefix and what detection found; later commands (and
the grader, in its own process) only name the cluster and find the rest here. The files
live under ``<state root>/context/`` (see :func:`clusters.fileio.state_root`):

    owner           this installation's owner id (random, made once): the label value that
                    tells this machine's namespaces from a namesake learner's elsewhere
    <name>.json     the record
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clusters.engine import Capabilities
from clusters.fileio import JsonRecords, atomic_write, state_root


@dataclass(frozen=True)
class Detected:
    """One detected capability: whether the cluster has it, and how we know."""

    present: bool
    how: str

    def __str__(self) -> str:
        return f"{'yes' if self.present else 'no'} ({self.how})"


@dataclass(frozen=True)
class ContextRecord:
    """A cluster name attached to a kubeconfig context for one learner."""

    name: str
    context: str
    learner: str
    owner: str
    kubeconfig: str = ""  # empty: $KUBECONFIG, else ~/.kube/config
    server: str = ""
    allow_cluster_scoped: bool = False
    allow_production: bool = False
    production_signals: tuple[str, ...] = ()
    detected: dict[str, Detected] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    def capabilities(self) -> Capabilities:
        """The Capabilities the cluster handle reports (what detection found)."""
        def has(key: str) -> bool:
            found = self.detected.get(key)
            return bool(found and found.present)
        return Capabilities(network_policy=has("network_policy"), services=has("services"),
                            dns=has("dns"), ingress=has("ingress"),
                            load_balancer=has("load_balancer"), gateway=has("gateway"),
                            istio=has("istio"), sctp=False,
                            cni="(the cluster's own)", propagation_seconds=10.0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["engine"] = "context"
        data["production_signals"] = list(self.production_signals)
        data["detected"] = {k: asdict(v) for k, v in self.detected.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContextRecord:
        return cls(
            name=str(data["name"]), context=str(data["context"]), learner=str(data["learner"]),
            owner=str(data["owner"]), kubeconfig=str(data.get("kubeconfig", "")),
            server=str(data.get("server", "")),
            allow_cluster_scoped=bool(data.get("allow_cluster_scoped", False)),
            allow_production=bool(data.get("allow_production", False)),
            production_signals=tuple(data.get("production_signals") or ()),
            detected={str(k): Detected(bool(v["present"]), str(v["how"]))
                      for k, v in (data.get("detected") or {}).items()},
            created_at=float(data.get("created_at", 0.0)))


class ContextState:
    """Reads and writes the records under ``<root>/context``; writes are atomic."""

    def __init__(self, root: Path | None = None) -> None:
        self.dir = (root if root is not None else state_root()) / "context"
        self.records = JsonRecords(self.dir)

    def path(self, name: str) -> Path:
        return self.records.path(name)

    def owner(self) -> str:
        """This installation's owner id, made on first use."""
        path = self.dir / "owner"
        try:
            value = path.read_text().strip()
            if value:
                return value
        except OSError:
            pass
        value = secrets.token_hex(8)
        atomic_write(path, value + "\n")
        return value

    def read(self, name: str) -> ContextRecord | None:
        data = self.records.load(name)
        try:
            return None if data is None else ContextRecord.from_dict(data)
        except (ValueError, KeyError, TypeError):
            return None

    def write(self, record: ContextRecord) -> None:
        self.records.save(record.name, record.to_dict())

    def names(self) -> list[str]:
        return self.records.names()

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)
