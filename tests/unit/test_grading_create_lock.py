"""Creating local clusters at once (batch grading recreates clusters while others grade):
the underlay is planned and recorded under one lock, so two creates never pick the same /24.

No root: the daemon, the host's routes and the run folder are replaced; the planning,
the lock and the cluster.json files are the real ones.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from clusters import ClusterProfile
from clusters.local import engine as local_engine
from clusters.local import paths as local_paths
from clusters.local.engine import PLANNING_LOCK, LocalCluster, LocalEngine, planning_lock
from clusters.local.topology import plan


@pytest.fixture
def no_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(local_paths, "RUN_ROOT", tmp_path / "run")
    monkeypatch.setattr(LocalEngine, "_require", lambda self: None)
    monkeypatch.setattr(LocalEngine, "_spawn", lambda self, paths: None)
    monkeypatch.setattr(LocalCluster, "wait_nodes_ready", lambda self, timeout=30: None)
    monkeypatch.setattr(local_engine, "host_routes", lambda: [])
    return tmp_path / "state" / "clusters"


def test_concurrent_creates_get_distinct_underlays(no_root: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_plan(*args: Any, **kwargs: Any) -> Any:
        # Widen the window between reading the taken underlays and writing our own: without
        # the lock both creates read "none taken" here and pick the same /24.
        time.sleep(0.3)
        return plan(*args, **kwargs)

    monkeypatch.setattr(local_engine, "plan", slow_plan)
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def create(name: str) -> None:
        start.wait()
        try:
            LocalEngine().create(name, ClusterProfile())
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=create, args=(n,)) for n in ("knlta", "knltb", "knltc")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    underlays = [json.loads((no_root / n / "cluster.json").read_text())["topology"]["underlay"]
                 for n in ("knlta", "knltb", "knltc")]
    assert len(set(underlays)) == 3, underlays


def test_the_lock_is_exclusive_while_held_and_free_after(no_root: Path) -> None:
    with planning_lock():
        fd = os.open(no_root / PLANNING_LOCK, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    fd = os.open(no_root / PLANNING_LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: taken at once
    finally:
        os.close(fd)
