"""The grader's canary on a real local cluster: kindnet enforces, and nothing is left behind."""

from __future__ import annotations

from clusters.canary import PREFIX, prove_enforcement
from clusters.local.engine import LocalCluster


def test_canary_proves_that_kindnet_enforces_and_removes_its_namespace(
        local_cluster: LocalCluster) -> None:
    found = prove_enforcement(local_cluster, timeout=60)
    assert found.enforced is True, found.detail
    assert "blocked" in found.detail
    left = [n["metadata"]["name"] for n in local_cluster.get("Namespace")
            if n["metadata"]["name"].startswith(PREFIX)]
    assert left == []
    assert local_cluster.get("Pod", found.namespace) == []
