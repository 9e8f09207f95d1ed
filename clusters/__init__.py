"""Clusters: one :class:`Engine` protocol and its engines (``local`` now; ``kind`` and
``context`` later). This package imports neither ``grader`` nor ``labs``."""

from clusters.engine import (
    ApplyResult,
    Capabilities,
    Cluster,
    ClusterInfo,
    ClusterProfile,
    Engine,
    ExecResult,
)
from clusters.errors import (
    AddressConflict,
    ClusterError,
    ClusterExists,
    ClusterNotFound,
    CommandError,
    DaemonError,
    EngineUnavailable,
    ManifestError,
    ObjectNotFound,
    WaitTimeout,
)
from clusters.probing import Observation, Outcome, ProbeSpec, Source
from clusters.selection import ENGINES, choose_engine, get_engine

__all__ = [
    "ENGINES",
    "AddressConflict",
    "ApplyResult",
    "Capabilities",
    "Cluster",
    "ClusterError",
    "ClusterExists",
    "ClusterInfo",
    "ClusterNotFound",
    "ClusterProfile",
    "CommandError",
    "DaemonError",
    "Engine",
    "EngineUnavailable",
    "ExecResult",
    "ManifestError",
    "ObjectNotFound",
    "Observation",
    "Outcome",
    "ProbeSpec",
    "Source",
    "WaitTimeout",
    "choose_engine",
    "get_engine",
]
