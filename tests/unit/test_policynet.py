"""What makes the local engine rewrite its NetworkPolicy rules, and what it warns about."""

from __future__ import annotations

import copy
from typing import Any

from clusters.local.policynet import enforces_policy, fingerprint


def pod(**labels: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "lab", "name": "web", "labels": dict(labels)},
            "spec": {"nodeName": "n1", "containers": [
                {"name": "c", "ports": [{"name": "http", "containerPort": 80}]}]},
            "status": {"podIP": "10.244.1.5", "phase": "Running",
                       "conditions": [{"type": "Ready", "status": "False"}]}}


NS = [{"metadata": {"name": "lab", "labels": {"kubernetes.io/metadata.name": "lab"}}}]
POLICY = [{"metadata": {"namespace": "lab", "name": "deny"}, "spec": {"podSelector": {}}}]


def test_readiness_and_status_changes_do_not_touch_the_rules() -> None:
    before = pod(app="web")
    after = copy.deepcopy(before)
    after["status"]["conditions"][0]["status"] = "True"
    after["metadata"]["resourceVersion"] = "42"
    assert fingerprint(POLICY, [before], NS) == fingerprint(POLICY, [after], NS)


def test_what_policies_depend_on_changes_the_fingerprint() -> None:
    base = fingerprint(POLICY, [pod(app="web")], NS)
    assert fingerprint(POLICY, [pod(app="api")], NS) != base  # a pod label
    moved = pod(app="web")
    moved["status"]["podIP"] = "10.244.2.9"
    assert fingerprint(POLICY, [moved], NS) != base  # a new IP
    renamed = pod(app="web")
    renamed["spec"]["containers"][0]["ports"][0]["name"] = "web"
    assert fingerprint(POLICY, [renamed], NS) != base  # a named port
    labelled = [{"metadata": {"name": "lab", "labels": {"team": "a"}}}]
    assert fingerprint(POLICY, [pod(app="web")], labelled) != base  # a namespace label
    changed = [{"metadata": {"namespace": "lab", "name": "deny"},
                "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}]
    assert fingerprint(changed, [pod(app="web")], NS) != base  # a policy
    assert fingerprint([], [pod(app="web")], NS) != base


def test_which_cnis_enforce() -> None:
    assert enforces_policy("kindnet") and enforces_policy("calico")
    assert not enforces_policy("flannel")
