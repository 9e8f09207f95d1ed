"""Shared fixtures for tests that build real namespaces (root only)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from labcli import lab

from clusters import ClusterProfile
from clusters.local import cleanup
from clusters.local.engine import LocalCluster, LocalEngine


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.root)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="needs root (network namespaces)"))


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test keeps cluster state and the learner's workspace in its own folders."""
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAB_WORKSPACE", str(tmp_path / "ws"))
    return tmp_path


@pytest.fixture
def cluster_name() -> str:
    return f"knlt{uuid.uuid4().hex[:6]}"


@pytest.fixture
def local_cluster(state_dir: Path, cluster_name: str) -> Iterator[LocalCluster]:
    engine = LocalEngine()
    cluster = engine.create(cluster_name, ClusterProfile())
    try:
        yield cluster
    finally:
        engine.delete(cluster_name)
        assert cleanup.find_leftovers(cluster_name).empty


@pytest.fixture
def make_cluster(state_dir: Path, cluster_name: str) -> Iterator[Callable[..., LocalCluster]]:
    """``make_cluster(cni, backend, workers=2)``: a cluster of that CNI mode, deleted after the
    test (and proven gone). One per test."""
    engine = LocalEngine()
    made: list[str] = []

    def make(cni: str = "kindnet", backend: str = "", workers: int = 2) -> LocalCluster:
        assert not made, "make_cluster makes one cluster per test"
        made.append(cluster_name)
        return engine.create(cluster_name, ClusterProfile(workers=workers, cni=cni,
                                                          backend=backend))

    try:
        yield make
    finally:
        for name in made:
            engine.delete(name)
            assert cleanup.find_leftovers(name).empty


@pytest.fixture
def learner(state_dir: Path, cluster_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``lab`` works on a private cluster; ``lab stop`` removes it, and nothing is left."""
    monkeypatch.setenv("LAB_CLUSTER", cluster_name)
    monkeypatch.delenv("LAB_ENGINE", raising=False)
    try:
        yield cluster_name
    finally:
        stopped = lab("stop")
        assert stopped.returncode == 0, stopped.stderr
        assert cleanup.find_leftovers(cluster_name).empty
