"""KindCLI against a fake ``kind`` that logs its argv and answers like the real one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import sh

import clusters.kind
from clusters.errors import CommandError
from clusters.kind import KindCLI

FAKE = Path(__file__).parent / "fakes" / "kind"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "argv.jsonl"


def make(log: Path, timeout: float = 30, **env: str) -> KindCLI:
    return KindCLI(str(FAKE), env={"FAKE_KIND_LOG": str(log), **env}, timeout=timeout)


def words(line: str) -> list[str]:
    return line.split()


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_public_surface() -> None:
    assert clusters.kind.__all__ == ["KindCLI"]
    assert all(hasattr(clusters.kind, name) for name in clusters.kind.__all__)


def test_create_cluster_argv(log: Path, tmp_path: Path) -> None:
    kind = make(log)
    kind.create_cluster("c1", tmp_path / "kind.yaml")
    kind.create_cluster(
        "c2", Path("/cfg.yaml"), "kindest/node:v1.30.0", wait="120s", kubeconfig=Path("/kc"), retain=True
    )
    assert calls(log) == [
        ["create", "cluster", "--name", "c1", "--config", str(tmp_path / "kind.yaml")],
        words("create cluster --name c2 --config /cfg.yaml --image kindest/node:v1.30.0 --wait 120s")
        + words("--kubeconfig /kc --retain"),
    ]


def test_delete_export_load_argv(log: Path, tmp_path: Path) -> None:
    kind = make(log, FAKE_KIND_CLUSTERS="c1")
    kind.delete_cluster("c1")
    kind.delete_cluster("c1", kubeconfig=Path("/kc"))
    kind.export_kubeconfig("c1", tmp_path / "config")
    kind.load_images("c1", ["a:1", "b:2"])
    kind.load_images("c1", ["a:1"], nodes=["c1-worker", "c1-worker2"])
    assert calls(log) == [
        words("delete cluster --name c1"),
        words("delete cluster --name c1 --kubeconfig /kc"),
        ["export", "kubeconfig", "--name", "c1", "--kubeconfig", str(tmp_path / "config")],
        words("load docker-image a:1 b:2 --name c1"),
        words("load docker-image a:1 --name c1 --nodes c1-worker,c1-worker2"),
    ]
    assert "server: https://127.0.0.1:" in (tmp_path / "config").read_text()
    with pytest.raises(ValueError):
        kind.load_images("c1", [])


def test_clusters_and_nodes_parse_stdout_only(log: Path) -> None:
    assert make(log, FAKE_KIND_CLUSTERS="alpha,beta").clusters() == ["alpha", "beta"]
    empty = make(log)
    assert empty.clusters() == []  # "No kind clusters found." goes to stderr, exit 0
    assert empty.nodes("ghost") == []
    assert make(log, FAKE_KIND_CLUSTERS="c1").nodes("c1") == ["c1-worker", "c1-control-plane"]
    assert calls(log) == [
        words(s) for s in ("get clusters", "get clusters", "get nodes --name ghost", "get nodes --name c1")
    ]


def test_kubeconfig_and_version(log: Path) -> None:
    kind = make(log, FAKE_KIND_CLUSTERS="c1")
    text = kind.kubeconfig("c1")
    assert text.startswith("apiVersion: v1\nkind: Config\n") and "\r" not in text
    assert "server: https://127.0.0.1:" in text
    assert "server: https://c1-control-plane:6443" in kind.kubeconfig("c1", internal=True)
    assert kind.version() == "v0.23.0"
    expected = ("get kubeconfig --name c1", "get kubeconfig --name c1 --internal", "version")
    assert calls(log) == [words(s) for s in expected]


def test_version_parsing(log: Path) -> None:
    dev = "kind v0.24.0-alpha.1+0a1b2c3d4e5f67 go1.22.2 linux/arm64"
    assert make(log, FAKE_KIND_VERSION=dev).version() == "v0.24.0-alpha.1+0a1b2c3d4e5f67"
    with pytest.raises(CommandError, match="garbage"):
        make(log, FAKE_KIND_VERSION="garbage").version()


def test_failure_carries_command_output_and_code(log: Path, tmp_path: Path) -> None:
    with pytest.raises(CommandError) as info:
        make(log, FAKE_KIND_FAIL="create").create_cluster("c1", tmp_path / "k.yaml")
    err = info.value
    assert err.argv == [str(FAKE), "create", "cluster", "--name", "c1", "--config", str(tmp_path / "k.yaml")]
    assert err.returncode == 1
    assert err.stderr.startswith("ERROR: failed to create cluster")
    assert f"{FAKE} create cluster --name c1" in str(err)
    assert "exit code 1" in str(err)
    assert isinstance(err.__cause__, sh.ErrorReturnCode)
    with pytest.raises(CommandError, match="could not locate"):
        make(log).kubeconfig("missing")


def test_timeout_becomes_command_error(log: Path) -> None:
    with pytest.raises(CommandError) as info:
        make(log, timeout=0.5, FAKE_KIND_SLEEP="60").clusters()
    assert info.value.returncode is None
    assert "no answer within 0.5s" in str(info.value)
    assert isinstance(info.value.__cause__, sh.TimeoutException)


def test_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(CommandError) as info:
        KindCLI(env={"PATH": str(tmp_path)}).version()
    err = info.value
    assert err.argv == ["kind", "version"] and err.returncode is None
    assert err.reason.startswith("kind: not found") and "install kind" in err.reason
    assert isinstance(err.__cause__, sh.CommandNotFound)
    with pytest.raises(CommandError, match="not found"):
        KindCLI(str(tmp_path / "kind")).clusters()


def test_binary_is_found_on_the_given_path(log: Path, tmp_path: Path) -> None:
    (tmp_path / "kind").symlink_to(FAKE)
    kind = KindCLI(env={"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "FAKE_KIND_LOG": str(log)})
    assert kind.version() == "v0.23.0"


def test_env_is_laid_over_the_process_environment(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KIND_CLUSTERS", "from-host")
    assert make(log).clusters() == ["from-host"]
    assert make(log, FAKE_KIND_CLUSTERS="given").clusters() == ["given"]
