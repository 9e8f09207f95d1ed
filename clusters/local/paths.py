"""Where the local engine keeps a cluster's state and runtime files.

State (persists across reboots of the daemon): ``$LAB_STATE_DIR`` or
``/var/lib/kube-netlab``, one folder per cluster. Runtime (sockets, pid file; gone at
reboot): ``/run/kube-netlab/<cluster>/``, the same folder the datapath tags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RUN_ROOT = Path("/run/kube-netlab")


def state_root() -> Path:
    return Path(os.environ.get("LAB_STATE_DIR", "/var/lib/kube-netlab")) / "clusters"


@dataclass(frozen=True)
class ClusterPaths:
    name: str

    @property
    def state_dir(self) -> Path:
        return state_root() / self.name

    @property
    def cluster_file(self) -> Path:
        """Profile and topology, written before the daemon starts."""
        return self.state_dir / "cluster.json"

    @property
    def store_file(self) -> Path:
        return self.state_dir / "store.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "daemon.log"

    @property
    def run_dir(self) -> Path:
        return RUN_ROOT / self.name

    @property
    def socket(self) -> Path:
        return self.run_dir / "daemon.sock"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "daemon.pid"

    def ensure(self) -> None:
        for d in (self.state_dir, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)


def known_clusters() -> list[str]:
    """Clusters that have state on this machine."""
    root = state_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "cluster.json").exists())
