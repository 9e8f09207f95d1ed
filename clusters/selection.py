"""Choosing an engine: explicit and explained, never a silent fallback.

Order: the ``--engine`` flag, then the ``LAB_ENGINE`` environment variable, then detection
(``kind`` when the kind CLI and a working Docker daemon are present, else ``local`` on Linux
as root). The ``context`` engine is never detected: a shared cluster is always chosen by
name (``--engine context --context NAME``). The caller always gets the reason with the
choice, and prints it.
"""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clusters.engine import Engine
from clusters.errors import EngineUnavailable

if TYPE_CHECKING:
    from clusters.context.engine import ContextSettings

#: Engine names and what they are, in the order detection prefers them.
ENGINES: dict[str, str] = {
    "kind": "real Kubernetes in Docker (kind + kubectl)",
    "context": "an existing cluster from a kubeconfig context",
    "local": "the data plane rebuilt from Linux network namespaces (no Docker)",
}

#: Engines that are implemented in this version. The others are refused with a clear reason.
IMPLEMENTED = ("local", "kind", "context")


@dataclass(frozen=True)
class Choice:
    name: str
    reason: str


def local_available() -> tuple[bool, str]:
    """The local engine needs Linux, root and the ``ip`` tool."""
    if platform.system() != "Linux":
        return False, f"it needs Linux network namespaces (this is {platform.system()})"
    if os.geteuid() != 0:
        return False, "it needs root to create network namespaces (run with sudo)"
    if shutil.which("ip") is None:
        return False, "the `ip` tool (iproute2) is missing: apt-get install iproute2"
    return True, "Linux, running as root, iproute2 present"


def kind_available() -> tuple[bool, str]:
    """kind needs its CLI and a Docker daemon that answers (``docker info``)."""
    if shutil.which("kind") is None:
        return False, "the kind CLI is not installed"
    if shutil.which("docker") is None:
        return False, "docker is not installed"
    from clusters.kind.engine import KindEngine

    return KindEngine().available()


def choose_engine(
    flag: str | None,
    env: Mapping[str, str] | None = None,
    detect_kind: Callable[[], tuple[bool, str]] = kind_available,
    detect_local: Callable[[], tuple[bool, str]] = local_available,
) -> Choice:
    """Pick the engine and say why. Raises :class:`EngineUnavailable` for unknown names."""
    env = os.environ if env is None else env
    for value, origin in ((flag, "--engine"), (env.get("LAB_ENGINE"), "LAB_ENGINE")):
        if value:
            if value not in ENGINES:
                raise EngineUnavailable(
                    value, f"unknown engine (from {origin})", f"use one of: {', '.join(ENGINES)}"
                )
            return Choice(value, f"chosen by {origin}={value}")
    ok_kind, why_kind = detect_kind()
    if ok_kind:
        return Choice("kind", f"detected: {why_kind}")
    ok_local, why_local = detect_local()
    if ok_local:
        return Choice("local", f"detected: {why_local} (kind not usable: {why_kind})")
    raise EngineUnavailable(
        "any",
        f"no engine is usable here: kind: {why_kind}; local: {why_local}",
        "run as root on Linux for the local engine, or pass --engine",
    )


def get_engine(name: str, context: ContextSettings | None = None) -> Engine:
    """The engine object for ``name``; EngineUnavailable for unknown names. ``context``
    configures the context engine (default: from the environment, see
    :class:`clusters.context.engine.ContextSettings`)."""
    if name == "local":
        from clusters.local.engine import LocalEngine

        return LocalEngine()
    if name == "kind":
        from clusters.kind.engine import KindEngine

        return KindEngine()
    if name == "context":
        from clusters.context.engine import ContextEngine

        return ContextEngine(context)
    if name in ENGINES:
        raise EngineUnavailable(
            name,
            "not implemented in this version of kube-netlab",
            "use --engine kind (Docker) or --engine local (Linux, root)",
        )
    raise EngineUnavailable(name, "unknown engine", f"use one of: {', '.join(ENGINES)}")
