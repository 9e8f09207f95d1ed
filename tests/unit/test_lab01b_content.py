"""Lab 01b (one packet, two CNIs) without a cluster: its definition loads for Flannel and
Calico, its manifests are valid as the local engine stores them, its answers files have a
section per CNI with every question the checks ask, the starter's policy blocks the client
while the solution's lets only the client in (judged by the policy engine), and its page is
in the docs. The root test (tests/root/test_lab01b.py) runs the checks on real clusters.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusters import manifests
from clusters.local import validation
from clusters.netpol.engine import PolicySet
from labs.catalogue import Lab, default_catalogue

ROOT = Path(__file__).resolve().parents[2]
LAB: Lab = default_catalogue().get("01b")
NS = "lab01b"
CNIS = ("flannel", "calico")
QUESTIONS = ("leaves_node_via", "next_hop", "overlay_udp_port", "pod_mtu",
             "route_prefix_length", "policy_enforced")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for file in manifests.read(str(path))
            for doc in validation.validate_all(file.docs, file.source)]


def _answers(folder: Path) -> dict[str, Any]:
    data = yaml.safe_load((folder / "answers.txt").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_lab_loads_for_flannel_and_calico() -> None:
    assert LAB.id == "01b" and LAB.name == "01b-cni-compare"
    assert tuple(LAB.cluster.cni) == CNIS
    assert LAB.profile("flannel").backend == "vxlan"
    assert LAB.profile("calico").backend == "bgp"
    assert LAB.total_points() == 8


def test_every_check_function_grades_a_task() -> None:
    defined = set()
    for source in LAB.checks_dir.glob("test_*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        defined |= {n.name for n in tree.body
                    if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    listed = {c for checks in LAB.all_checks.values() for c in checks}
    assert defined == listed


def test_checks_ask_exactly_the_questions_of_the_answers_file() -> None:
    asked = set()
    for source in LAB.checks_dir.glob("test_*.py"):
        asked |= set(re.findall(r'answer\(lab_options, [^,]+, "(\w+)"\)', source.read_text()))
    assert asked == set(QUESTIONS)
    starter_text = (LAB.starter_dir / "answers.txt").read_text()
    for question in QUESTIONS:
        assert f"#   {question}" in starter_text, f"the starter does not explain {question}"


def test_setup_places_client_and_server_apart() -> None:
    docs = _documents(LAB.folder / "setup")
    pods = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Pod"}
    assert set(pods) == {"server", "client", "intruder"}
    assert all(p["metadata"]["namespace"] == NS for p in pods.values())
    anti = pods["client"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == {"app": "server"}
    assert "--http-port=8080" in pods["server"]["spec"]["containers"][0]["args"]


def test_starter_answers_nothing_and_solution_answers_everything() -> None:
    starter, solution = _answers(LAB.starter_dir), _answers(LAB.solution_dir)
    for cni in CNIS:
        assert set(starter[cni]) == set(QUESTIONS) == set(solution[cni])
        assert set(starter[cni].values()) == {"?"}
        assert "?" not in {str(v) for v in solution[cni].values()}
    assert solution["flannel"]["policy_enforced"] is False
    assert solution["calico"]["policy_enforced"] is True
    assert solution["flannel"]["pod_mtu"] == 1500 - 50 and solution["calico"]["pod_mtu"] == 1500
    assert solution["flannel"]["overlay_udp_port"] == 8472
    assert solution["calico"]["overlay_udp_port"] == "none"


def test_workspace_files_are_not_applied_as_manifests() -> None:
    """answers.txt must stay out of `lab check`'s apply; policy.yaml must be applied."""
    for folder in (LAB.starter_dir, LAB.solution_dir):
        applied = {p.name for p in manifests.expand(folder)}
        assert applied == {"policy.yaml"}


def _policies(folder: Path) -> PolicySet:
    pods = []
    for i, doc in enumerate(d for d in _documents(LAB.folder / "setup") if d["kind"] == "Pod"):
        pods.append({**doc, "spec": {**doc["spec"], "nodeName": f"netlab-worker{i or ''}"},
                     "status": {"phase": "Running", "podIP": f"10.244.1.{10 + i}"}})
    namespaces = [d for d in _documents(LAB.folder / "setup") if d["kind"] == "Namespace"]
    return PolicySet.from_objects(_documents(folder), pods, namespaces)


@pytest.mark.parametrize(("folder", "client_allowed"), [("starter", False), ("solution", True)])
def test_policies_as_the_engine_judges_them(folder: str, client_allowed: bool) -> None:
    policies = _policies(LAB.folder / folder)
    server = policies.pod(f"{NS}/server")
    client, intruder = policies.pod(f"{NS}/client"), policies.pod(f"{NS}/intruder")
    assert server and client and intruder
    assert policies.verdict(client, server, 8080, "TCP").allowed is client_allowed
    assert not policies.verdict(intruder, server, 8080, "TCP").allowed
    assert not policies.verdict(client, server, 9090, "TCP").allowed


def test_docs_page_includes_the_lab_files_and_is_in_the_nav() -> None:
    page = ROOT / "docs" / "labs" / "01b-cni-compare.md"
    text = page.read_text(encoding="utf-8")
    for rel in ("starter/answers.txt", "solution/answers.txt", "solution/policy.yaml"):
        assert f'--8<-- "labs/01b-cni-compare/{rel}"' in text
    flat = " ".join(text.split())
    for source in LAB.checks_dir.glob("test_*.py"):
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                name = (ast.get_docstring(node) or "").splitlines()[0]
                assert f"*{name}*" in flat, f"the page does not name the check {name!r}"
    assert "labs/01b-cni-compare.md" in (ROOT / "mkdocs.yml").read_text()
    assert LAB.chapter == "chapters/01-pod-networking.md"
