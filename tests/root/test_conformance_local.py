"""The acceptance files (``acceptance/`` in this repository) against the real local engine:
every case must pass.

This is the CI measure of the local engine's fidelity for Services and cluster DNS. A case
reported N/A here means the engine does not claim the feature yet; that fails this test too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clusters.local.engine import LocalCluster
from grader.conformance import Options, Runner, Status, load, render
from grader.conformance.readers import find

ACCEPTANCE = Path(__file__).resolve().parents[2] / "acceptance"

pytestmark = pytest.mark.root


@pytest.mark.parametrize("name", ["services", "dns"])
def test_every_case_passes_on_the_local_engine(local_cluster: LocalCluster, name: str) -> None:
    suite = load(ACCEPTANCE / f"{name}.yaml")
    report = Runner(local_cluster, Options()).run([suite])
    print(render(report))
    assert {c.id: c.status for c in report.cases()} == {c.id: Status.PASS for c in suite.cases}, \
        render(report)
    assert report.exit_code == 0
    for ns in suite.namespaces:  # the fixture is removed at the end
        assert not find(local_cluster, "Namespace", None, ns)
