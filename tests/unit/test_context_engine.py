"""The context engine: attaching a cluster name to a kubeconfig context for one learner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubefake import FakeApi, FakeKube, pod

from clusters import ClusterExists, ClusterNotFound, ClusterProfile, EngineUnavailable
from clusters.context.engine import ContextEngine, ContextSettings
from clusters.context.record import ContextRecord, ContextState, Detected
from clusters.context.scope import LEARNER_LABEL, OWNER_LABEL
from clusters.kube.transport import ApiUnreachable
from clusters.selection import IMPLEMENTED, get_engine

FOUND = {"network_policy": Detected(True, "canary blocked"),
         "services": Detected(True, "ClusterIP answered"), "dns": Detected(True, "resolved"),
         "ingress": Detected(False, "no IngressClass"),
         "load_balancer": Detected(False, "not probed")}


def kubeconfig(path: Path, *contexts: tuple[str, str, str]) -> Path:
    """contexts: (context name, cluster name, server)."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": c, "cluster": {"server": s}} for _, c, s in contexts],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": n, "context": {"cluster": c, "user": "u"}} for n, c, _ in contexts],
        "current-context": contexts[0][0]}))
    return path


class World:
    """A fake API server, a kubeconfig, and what the engine asked of them."""

    def __init__(self, tmp: Path) -> None:
        self.fake = FakeKube()
        self.tmp = tmp
        self.config = kubeconfig(tmp / "kubeconfig",
                                 ("workshop", "gke-course", "https://10.0.0.1:443"),
                                 ("acme-prod", "eu-production", "https://api.live.acme.io"))
        self.apis: list[str] = []
        self.detections = 0

    def api(self, kubeconfig: Path | None, context: str) -> FakeApi:
        self.apis.append(context)
        return FakeApi(self.fake, context=context)

    def detector(self, cluster: Any, say: Any) -> dict[str, Detected]:
        self.detections += 1
        say("detecting")
        return dict(FOUND)

    def engine(self, **settings: Any) -> ContextEngine:
        given = {"kubeconfig": self.config, "learner": "alice", **settings}
        return ContextEngine(ContextSettings(**given), state_dir=self.tmp / "state",
                             api_factory=self.api, detector=self.detector)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_create_attaches_detects_and_records(world: World) -> None:
    said: list[str] = []
    cluster = world.engine(context="workshop").create("netlab", ClusterProfile(), said.append)
    assert cluster.engine == "context" and cluster.name == "netlab"
    caps = cluster.capabilities()
    assert (caps.network_policy, caps.services, caps.dns, caps.ingress) == (True, True, True, False)
    record = ContextState(world.tmp / "state").read("netlab")
    assert record is not None
    assert (record.context, record.learner, record.server) == (
        "workshop", "alice", "https://10.0.0.1:443")
    assert record.owner == ContextState(world.tmp / "state").owner()
    assert record.detected == FOUND
    assert said[0] == "Connecting to context workshop (https://10.0.0.1:443)"
    assert "your namespaces: alice-*" in said[1]
    assert "Detected network policy: yes (canary blocked)" in said


def test_a_second_create_reuses_the_record(world: World) -> None:
    world.engine(context="workshop").create("netlab", ClusterProfile())
    said: list[str] = []
    world.engine().create("netlab", ClusterProfile(), said.append)
    assert world.detections == 1
    assert said == ["Reusing context workshop for learner alice"]


def test_another_context_for_an_attached_name_is_refused(world: World) -> None:
    world.engine(context="workshop").create("netlab", ClusterProfile())
    with pytest.raises(ClusterExists, match=r"attached to context workshop.*lab stop"):
        world.engine(context="other").create("netlab", ClusterProfile())
    with pytest.raises(ClusterExists, match="for learner alice"):
        world.engine(context="workshop", learner="bob").create("netlab", ClusterProfile())


def test_production_is_refused_before_anything_is_contacted(world: World) -> None:
    with pytest.raises(EngineUnavailable) as err:
        world.engine(context="acme-prod").create("netlab", ClusterProfile())
    text = str(err.value)
    assert "context acme-prod looks like a production cluster" in text
    assert "the context name 'acme-prod' contains 'prod'" in text
    assert "the cluster name 'eu-production' contains 'production'" in text
    assert "the API server host 'api.live.acme.io' contains 'live'" in text
    assert "--allow-production" in text
    assert world.apis == [] and world.fake.requests == []
    assert ContextState(world.tmp / "state").names() == []


def test_production_is_allowed_with_the_flag_and_remembered(world: World) -> None:
    world.engine(context="acme-prod", allow_production=True).create("netlab", ClusterProfile())
    record = ContextState(world.tmp / "state").read("netlab")
    assert record is not None and record.allow_production
    assert len(record.production_signals) == 3


def test_a_missing_or_unknown_context_lists_the_contexts(world: World) -> None:
    with pytest.raises(EngineUnavailable, match=r"(?s)no context chosen.*--context NAME.*"
                                                "workshop, acme-prod"):
        world.engine().create("netlab", ClusterProfile())
    with pytest.raises(EngineUnavailable, match=r"(?s)no context 'nope'.*workshop, acme-prod"):
        world.engine(context="nope").create("netlab", ClusterProfile())
    ok, why = world.engine(context="workshop").available()
    assert ok and why == "kubeconfig context workshop (https://10.0.0.1:443)"
    ok, why = world.engine().available()
    assert not ok and "no context chosen" in why


def test_an_unreachable_server_leaves_no_record(world: World) -> None:
    world.fake.fail("GET", "/version", "timeout")
    with pytest.raises(ApiUnreachable, match="no answer"):
        world.engine(context="workshop").create("netlab", ClusterProfile())
    assert ContextState(world.tmp / "state").names() == []


def test_connect_finds_everything_by_the_cluster_name(world: World) -> None:
    with pytest.raises(ClusterNotFound, match="lab start NN --engine context --context CONTEXT"):
        world.engine().connect("netlab")
    world.engine(context="workshop").create("netlab", ClusterProfile())
    # another process (the grader) knows only the name
    cluster = ContextEngine(ContextSettings(), state_dir=world.tmp / "state",
                            api_factory=world.api).connect("netlab")
    assert cluster.capabilities().network_policy
    assert world.apis[-1] == "workshop"
    assert cluster.scope.prefix == "alice"


def test_delete_removes_only_the_learners_namespaces(world: World) -> None:
    cluster = world.engine(context="workshop").create("netlab", ClusterProfile())
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab04"}},
                   pod("api", "lab04")])
    world.fake.add({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "bob-lab04",
                                 "labels": {LEARNER_LABEL: "bob", OWNER_LABEL: "x"}}})
    world.fake.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "alice-x"}})
    assert world.engine().delete("netlab")
    assert world.fake.obj("Namespace", None, "alice-lab04") is None
    assert world.fake.obj("Namespace", None, "bob-lab04") is not None
    assert world.fake.obj("Namespace", None, "alice-x") is not None
    assert ContextState(world.tmp / "state").read("netlab") is None
    assert not world.engine().delete("netlab")


def test_a_failed_delete_keeps_the_record(world: World) -> None:
    world.engine(context="workshop").create("netlab", ClusterProfile())
    world.fake.fail("GET", "/api/v1/namespaces", "timeout")
    with pytest.raises(Exception, match="record is kept"):
        world.engine().delete("netlab")
    assert ContextState(world.tmp / "state").read("netlab") is not None


def test_list_and_info_read_records_only(world: World) -> None:
    world.engine(context="workshop").create("netlab", ClusterProfile())
    world.fake.requests.clear()
    infos = world.engine().list()
    assert [(i.name, i.engine) for i in infos] == [("netlab", "context")]
    assert "context workshop, learner alice (namespaces alice-*)" in infos[0].detail
    assert "network policy yes" in infos[0].detail
    assert world.engine().info("nope") is None
    assert world.fake.requests == []


def test_settings_from_flags_then_environment() -> None:
    env = {"LAB_CONTEXT": "env-ctx", "LAB_LEARNER": "envy", "LAB_ALLOW_PRODUCTION": "1"}
    s = ContextSettings.from_env(env)
    assert (s.context, s.learner, s.allow_production, s.allow_cluster_scoped) == (
        "env-ctx", "envy", True, False)
    s = ContextSettings.from_env(env, context="flag", learner="alice", allow_cluster_scoped=True)
    assert (s.context, s.learner, s.allow_cluster_scoped) == ("flag", "alice", True)
    assert ContextSettings(learner="Bad!").learner is not None
    with pytest.raises(ValueError, match="--learner alice"):
        ContextSettings(learner="Bad!").learner_prefix()


def test_the_default_prefix_is_the_login_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_USER", "Dana.Scully")
    assert ContextSettings().learner_prefix() == "dana-scully"


def test_the_engine_is_selectable() -> None:
    assert "context" in IMPLEMENTED
    engine = get_engine("context", ContextSettings(context="x"))
    assert isinstance(engine, ContextEngine) and engine.settings.context == "x"


def test_records_round_trip() -> None:
    record = ContextRecord("n", "c", "alice", "f00d", detected=dict(FOUND),
                           production_signals=("a",))
    assert ContextRecord.from_dict(record.to_dict()) == record
    assert record.capabilities().cni == "(the cluster's own)"
