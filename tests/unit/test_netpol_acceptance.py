"""The policy engine against every case of acceptance/netpol.yaml (upstream-derived).

Each case's steps are replayed on the xyz fixture (policies accumulate over a case's
steps), and for every probed port and protocol the set of blocked (from, to) pairs the
engine predicts must equal exactly what the case's ``expect.blocked`` patterns describe.
The engine judges the destination pod after Service DNAT, so ``via: service-ip`` and
``via: pod-ip`` give the same cells.
"""

from __future__ import annotations

import copy
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusters.netpol import PolicySet

CASES_FILE = Path(__file__).resolve().parents[2] / "acceptance" / "netpol.yaml"
NODES = ("knlt-worker", "knlt-worker2")


def _load() -> dict[str, Any]:
    return yaml.safe_load(CASES_FILE.read_text())


def _fixture() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Namespaces and pods of the fixture; pods get fake IPs and nodes (two nodes)."""
    data = _load()
    docs = [d for d in yaml.safe_load_all(data["fixtures"][data["fixture"]]["objects"]) if d]
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    pods = []
    for i, doc in enumerate(d for d in docs if d["kind"] == "Pod"):
        pod = copy.deepcopy(doc)
        pod["spec"]["nodeName"] = NODES[i % 2]
        pod.setdefault("status", {})["podIP"] = f"10.244.{i % 2 + 1}.{10 + i}"
        pods.append(pod)
    return namespaces, pods


def _case_ids() -> list[str]:
    return [case["id"] for case in _load()["cases"]]


def test_fixture_is_the_nine_pod_xyz_fixture() -> None:
    namespaces, pods = _fixture()
    assert sorted(n["metadata"]["name"] for n in namespaces) == ["x", "y", "z"]
    assert len(pods) == 9
    named = {p["name"] for c in pods[0]["spec"]["containers"] for p in c["ports"]}
    assert named == {"serve-80-tcp", "serve-80-udp", "serve-81-tcp", "serve-81-udp"}
    assert _case_ids(), "netpol.yaml has no cases"


def _find(objects: list[dict[str, Any]], kind: str, namespace: str | None, name: str
          ) -> dict[str, Any]:
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] == kind and meta["name"] == name and meta.get("namespace") == namespace:
            return obj
    raise AssertionError(f"step refers to unknown {kind} {namespace}/{name}")


def _run_step(step: dict[str, Any], policies: dict[tuple[str, str], dict[str, Any]],
              namespaces: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
    for doc in yaml.safe_load_all(step.get("apply") or ""):
        if not doc:
            continue
        assert doc["kind"] == "NetworkPolicy", f"only NetworkPolicy applies are replayed, got {doc['kind']}"
        meta = doc["metadata"]
        policies[(meta.get("namespace", "default"), meta["name"])] = doc
    for item in step.get("delete") or ():
        if item["kind"] == "NetworkPolicy":
            del policies[(item["namespace"], item["name"])]
        else:
            raise AssertionError(f"this test cannot replay deleting a {item['kind']}")
    for item in step.get("label") or ():
        target = _find(namespaces + pods, item["kind"], item.get("namespace"), item["name"])
        labels = target["metadata"].setdefault("labels", {})
        labels.update(item.get("set") or {})
        for key in item.get("remove") or ():
            labels.pop(key, None)


@pytest.mark.parametrize("case_id", _case_ids())
def test_engine_matches_every_step_of_case(case_id: str) -> None:
    case = next(c for c in _load()["cases"] if c["id"] == case_id)
    namespaces, pods = _fixture()
    policies: dict[tuple[str, str], dict[str, Any]] = {}
    judged_cells = 0
    for number, step in enumerate(case["steps"], 1):
        _run_step(step, policies, namespaces, pods)
        matrix = step["probe"]["matrix"]
        patterns = [(p["from"], p["to"]) for p in step["expect"]["blocked"]]
        pset = PolicySet.from_objects(list(policies.values()), pods, namespaces)
        labels = [p.label for p in pset.pods]
        for port in matrix["ports"]:
            for protocol in matrix.get("protocols", ["TCP"]):
                expected = {(s, d) for s in labels for d in labels if s != d
                            and any(fnmatchcase(s, f) and fnmatchcase(d, t) for f, t in patterns)}
                predicted = set()
                for src in pset.pods:
                    for dst in pset.pods:
                        if src is dst:
                            continue
                        judged_cells += 1
                        if not pset.verdict(src, dst, port, protocol).allowed:
                            predicted.add((src.label, dst.label))
                assert predicted == expected, (
                    f"{case_id} step {number} {protocol}/{port}: "
                    f"wrongly blocked {sorted(predicted - expected)}, "
                    f"wrongly allowed {sorted(expected - predicted)}")
    assert judged_cells >= 72 * len(case["steps"])
