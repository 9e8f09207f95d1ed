"""``lab`` on the context engine, end to end over HTTP with the real kubernetes client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubefake import FakeKube, serve
from labrun import lab

from clusters.context.record import ContextState, Detected
from clusters.context.scope import LEARNER_LABEL

CAPABLE = {"network_policy": Detected(True, "canary blocked"),
           "services": Detected(True, "ClusterIP answered"), "dns": Detected(True, "resolved"),
           "ingress": Detected(False, "no IngressClass"),
           "load_balancer": Detected(False, "not probed")}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("LAB_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAB_CLUSTER", f"knlt{uuid.uuid4().hex[:6]}")
    for var in ("LAB_ENGINE", "LAB_CONTEXT", "LAB_LEARNER", "LAB_ALLOW_PRODUCTION",
                "LAB_ALLOW_CLUSTER_SCOPED"):
        monkeypatch.delenv(var, raising=False)
    found = dict(CAPABLE)
    monkeypatch.setattr("clusters.context.engine.detect", lambda cluster, say: dict(found))
    return {"ws": tmp_path / "ws", "state": tmp_path / "state", "found": found,
            "tmp": tmp_path}


@pytest.fixture
def served(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKube]:
    fake = FakeKube()
    fake.terminating_reads = 0
    with serve(fake, env["tmp"]) as (_, kubeconfig):
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        yield fake


def namespaces(fake: FakeKube) -> list[str]:
    return sorted(k[3] for k in fake.objects if k[1] == "namespaces")


def test_start_puts_the_lab_in_the_learners_namespaces(served: FakeKube,
                                                       env: dict[str, Any]) -> None:
    ran = lab("start", "02", "--context", "kind-fake", "--learner", "alice")
    assert ran.code == 0, ran.err
    assert "engine: context (chosen by --engine=context)" in ran.err
    assert "Detected network policy: yes (canary blocked)" in ran.err
    assert "alice-lab02" in namespaces(served) and "lab02" not in namespaces(served)
    ns = served.obj("Namespace", None, "alice-lab02")
    assert ns is not None and ns["metadata"]["labels"][LEARNER_LABEL] == "alice"
    assert [k[3] for k in served.objects if k[2] == "alice-lab02" and k[1] == "deployments"]
    progress = json.loads((env["ws"] / ".progress.json").read_text())
    assert progress["engine"] == "context"
    assert (env["ws"] / "02-services").is_dir()

    ran = lab("status", "--json")
    status = json.loads(ran.out)
    assert status["engine"] == "context" and status["cni"] is None
    assert "learner alice" in status["detail"]

    ran = lab("stop")
    assert ran.code == 0, ran.err
    assert "the shared cluster itself is untouched" in ran.out
    assert not [n for n in namespaces(served) if n.startswith("alice-")]
    assert ContextState(env["state"]).names() == []


def test_a_lab_whose_needs_the_cluster_lacks_is_refused_before_setup(
        served: FakeKube, env: dict[str, Any]) -> None:
    env["found"]["network_policy"] = Detected(False, "the canary still connected")
    ran = lab("start", "04", "--context", "kind-fake", "--learner", "alice")
    assert ran.code == 1
    assert "lab 04 needs network_policy" in ran.err and "nothing was set up" in ran.err
    assert "detect anew" in ran.err
    assert not [n for n in namespaces(served) if n.startswith("alice-lab04")]
    assert not (env["ws"] / "04-network-policy").exists()


def test_production_contexts_are_refused(env: dict[str, Any],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    config = env["tmp"] / "prod.yaml"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "main", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "acme-prod", "context": {"cluster": "main", "user": "u"}}],
        "current-context": "acme-prod"}))
    ran = lab("start", "01", "--context", "acme-prod", "--kubeconfig", str(config))
    assert ran.code == 1
    assert "looks like a production cluster" in ran.err and "--allow-production" in ran.err
    assert not env["ws"].exists() and not (env["state"] / "context" / "knlt").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("--engine", "local", "--context", "x"), "belong to the context engine"),
    (("--context", "x", "--learner", "Bad!"), "--learner"),
    (("--context", "kind-fake", "--cni", "flannel"), "own CNI"),
])
def test_bad_flags_are_usage_errors(served: FakeKube, env: dict[str, Any], args: tuple[str, ...],
                                    message: str) -> None:
    ran = lab("start", "01", *args)
    assert ran.code == 2, ran.err
    assert message in ran.err
    assert not env["ws"].exists()


def test_cluster_create_attaches_and_list_shows_it(served: FakeKube, env: dict[str, Any]) -> None:
    ran = lab("cluster", "create", "--name", "shared", "--context", "kind-fake",
              "--learner", "bob")
    assert ran.code == 0, ran.err
    assert "cluster name shared attached: context kind-fake, learner bob" in ran.out
    ran = lab("cluster", "list", "--engine", "context", "--json")
    assert [(c["name"], c["engine"]) for c in json.loads(ran.out)] == [("shared", "context")]
    assert lab("cluster", "delete", "--name", "shared", "--engine", "context").code == 0


def test_batch_grading_on_a_shared_cluster_is_refused(env: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (env["tmp"] / "subs" / "alice").mkdir(parents=True)
    ran = lab("grade", str(env["tmp"] / "subs"), "--lab", "01", "--engine", "context")
    assert ran.code == 2 and "'context' is not one of 'local', 'kind'" in ran.err
    monkeypatch.setenv("LAB_ENGINE", "context")
    ran = lab("grade", str(env["tmp"] / "subs"), "--lab", "01")
    assert ran.code == 2 and "lab check NN --grading" in ran.err
