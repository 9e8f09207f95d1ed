"""The kind engine's records: where they live, what they hold, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusters import fileio as state_mod
from clusters.engine import ClusterProfile
from clusters.fileio import state_root
from clusters.kind.state import CREATING, READY, KindRecord, KindState


def test_state_root_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "lab"))
    assert state_root() == tmp_path / "lab"
    monkeypatch.delenv("LAB_STATE_DIR")
    monkeypatch.setattr(state_mod.os, "geteuid", lambda: 0)
    assert state_root() == Path("/var/lib/kube-netlab")
    monkeypatch.setattr(state_mod.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_root() == tmp_path / "xdg" / "kube-netlab"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_root() == tmp_path / "home" / ".local" / "state" / "kube-netlab"
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "lab"))
    assert KindState().dir == tmp_path / "lab" / "kind"


def test_round_trip_and_layout(tmp_path: Path) -> None:
    st = KindState(tmp_path)
    profile = ClusterProfile(workers=1, cni="calico", addons=("ingress",))
    rec = KindRecord("lab", profile, kind_version="v0.33.0", node_image="kindest/node:v1@sha256:ab",
                     created_at=1700000000.0)
    st.write(rec)
    assert st.record_path("lab") == tmp_path / "kind" / "lab.json"
    assert st.kubeconfig("lab") == tmp_path / "kind" / "lab.kubeconfig"
    assert st.work_dir("lab") == tmp_path / "kind" / "lab.d"
    data = json.loads(st.record_path("lab").read_text())
    assert data == {"name": "lab", "engine": "kind", "status": CREATING,
                    "profile": {"workers": 1, "cni": "calico", "backend": "bgp", "addons": ["ingress"]},
                    "created_at": 1700000000.0, "kind_version": "v0.33.0",
                    "node_image": "kindest/node:v1@sha256:ab"}
    assert st.read("lab") == rec
    st.write(rec.ready())
    back = st.read("lab")
    assert back is not None and back.status == READY and back.profile == profile
    # atomic writes leave no temporary files behind; names() lists records only
    assert sorted(p.name for p in st.dir.iterdir()) == ["lab.json"]
    st.write(KindRecord("a-b.c", ClusterProfile()))
    assert st.names() == ["a-b.c", "lab"]


def test_missing_or_broken_records_read_as_none(tmp_path: Path) -> None:
    st = KindState(tmp_path)
    assert st.read("nope") is None and st.names() == []
    st.dir.mkdir(parents=True)
    st.record_path("bad").write_text("{not json")
    st.record_path("partial").write_text('{"name": "partial"}')
    assert st.read("bad") is None and st.read("partial") is None


def test_remove_forgets_everything_of_one_cluster(tmp_path: Path) -> None:
    st = KindState(tmp_path)
    for name in ("one", "two"):
        st.write(KindRecord(name, ClusterProfile()))
        st.kubeconfig(name).write_text("kubeconfig")
        (st.work_dir(name) / "cni-bin").mkdir(parents=True)
        (st.work_dir(name) / "kind-config.yaml").write_text("kind: Cluster")
    st.remove("one")
    st.remove("one")  # idempotent
    assert sorted(p.name for p in st.dir.iterdir()) == ["two.d", "two.json", "two.kubeconfig"]
