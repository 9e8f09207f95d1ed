"""The matrix probes every cell of a 9-pod x 2-port matrix at once (the issue's figure).

Each probe waits at a barrier sized to the whole matrix: the barrier only opens when every
cell is in flight together, so too little parallelism breaks it (after its deadline)
instead of passing slowly.
"""

from __future__ import annotations

import threading

from test_matrix_fakes import ScriptedCluster, pod

from clusters.probing import Observation, Outcome, ProbeSpec
from grader.matrix import matrix_pods, probe_matrix


class BarrierCluster(ScriptedCluster):
    def __init__(self, pods: list[dict[str, object]], parties: int) -> None:
        super().__init__(pods)
        self.barrier = threading.Barrier(parties, timeout=20)

    def probe(self, spec: ProbeSpec) -> Observation:
        self.barrier.wait()  # BrokenBarrierError when not every cell is in flight at once
        blocked = spec.port == 5432
        return Observation(Outcome.TIMEOUT if blocked else Outcome.CONNECTED)


def test_every_cell_of_a_nine_pod_two_port_matrix_is_probed_at_once() -> None:
    pods = [pod("lab", f"p{i}", f"10.244.1.{i + 10}") for i in range(9)]
    cluster = BarrierCluster(pods, parties=9 * 8 * 2)
    result = probe_matrix(cluster, matrix_pods(cluster, ["lab"]), ports=[8080, 5432],
                          attempts=1)
    assert result.summary() == {"probed": 144, "allowed": 72, "blocked": 72, "other": 0,
                                "not_probed": 9 * 2}

