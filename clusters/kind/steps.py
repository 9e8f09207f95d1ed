"""Building blocks of installs: named steps, their deadlines, manifests and charts.

Long work is a list of named steps: each is announced as it starts, then run in order.
Installing a CNI or an add-on is "install" then "wait until ready"; keeping them as data
lets the engine print a line per step, and lets tests check the plan without running it.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from clusters.engine import StepReporter
from clusters.errors import ClusterError

if TYPE_CHECKING:
    from clusters.kind.pins import Pin

#: Objects that run pods and can be waited on with ``kubectl rollout status``.
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[], None]


@dataclass(frozen=True)
class Timeouts:
    """Deadlines in seconds: pulling images on a slow link is the long part of each."""

    create: float = 900.0   # `kind create cluster` (pulls the node image the first time)
    apply: float = 180.0    # an apply that outwaits webhooks, fresh CRDs, API restarts
    ready: float = 600.0    # a component rolling out (its images are pulled)


def run_steps(steps: Iterable[Step], report: StepReporter) -> None:
    """Announce and run each step; the first failure stops the list (and propagates)."""
    for step in steps:
        report(step.name)
        step.run()


def load_docs(path: Path) -> list[dict[str, Any]]:
    """The non-empty documents of a YAML manifest file."""
    with path.open(encoding="utf-8") as handle:
        return [d for d in yaml.safe_load_all(handle) if isinstance(d, dict)]


def workloads(docs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """``(kind, namespace, name)`` of the Deployments/DaemonSets/StatefulSets in ``docs``."""
    found = []
    for doc in docs:
        if doc.get("kind") in WORKLOAD_KINDS:
            meta = doc.get("metadata", {})
            found.append((str(doc["kind"]), str(meta.get("namespace", "default")),
                          str(meta["name"])))
    return found


def chart_args(p: Pin) -> list[str]:
    """The chart reference of ``helm upgrade --install`` for a chart pin, with its version.

    ``--repo`` installs from a repository URL without ``helm repo add``, which would change
    the user's own Helm configuration."""
    if p.url.startswith("oci://"):
        return [p.url, "--version", p.version]
    return [p.chart or p.name, "--repo", p.url, "--version", p.version]


def extract_member(archive: Path, member: str, dest: Path) -> Path:
    """Copy the file called ``member`` (at any depth) out of a .tgz archive to ``dest``."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar.getmembers():
                if info.isfile() and Path(info.name).name == member:
                    handle = tar.extractfile(info)
                    data = handle.read() if handle is not None else b""
                    break
            else:
                raise ClusterError(f"{archive.name} has no file named {member!r}")
    except (tarfile.TarError, OSError) as err:
        raise ClusterError(f"cannot read {archive}: {err}") from err
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        out.write(data)
    dest.chmod(0o755)
    return dest
