"""Add-ons asked for in lab.yaml: one list of names, what each provides, who refuses them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from clusters.addons import ADDONS, check_addons, provided
from clusters.engine import Capabilities, ClusterProfile
from clusters.errors import EngineUnavailable
from clusters.local.engine import LocalEngine
from labs.cli.context_opts import missing_needs


def test_every_addon_provides_a_capability() -> None:
    fields = set(Capabilities.__dataclass_fields__)
    assert {provided(a) for a in ADDONS} <= fields
    check_addons(list(ADDONS))
    with pytest.raises(ValueError, match="unknown add-ons 'a', 'b'; choose from: ingress"):
        check_addons(["a", "ingress", "b"])


def test_the_local_engine_refuses_addons_before_creating_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(LocalEngine, "_require", lambda self: None)
    with pytest.raises(EngineUnavailable, match=r"(?s)add-ons ingress, istio.*--engine kind"):
        LocalEngine().create("knltaddon", ClusterProfile(addons=("ingress", "istio")))
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").rglob("knltaddon*"))


def lab(needs: list[str], addons: list[str]) -> object:
    return SimpleNamespace(cluster=SimpleNamespace(needs=needs, addons=addons))


@pytest.mark.parametrize(("needs", "addons", "caps", "missing"), [
    (["services", "dns"], [], Capabilities(services=True, dns=True), []),
    (["network_policy"], [], Capabilities(), ["network_policy"]),
    (["ingress"], ["ingress", "load-balancer"], Capabilities(ingress=True), ["load_balancer"]),
    ([], ["gateway", "istio"], Capabilities(gateway=True, istio=True), []),
])
def test_missing_needs_counts_what_addons_provide(needs: list[str], addons: list[str],
                                                  caps: Capabilities, missing: list[str]) -> None:
    assert missing_needs(lab(needs, addons), caps) == missing  # type: ignore[arg-type]
