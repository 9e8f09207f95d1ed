"""Installing the kind engine's tools: the pinned file, verified by fetch, one binary taken out."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from clusters.kind.pins import Pin
from clusters.kind.toolinstall import ToolInstallError, install_tool


def tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_bare_binary_is_installed_executable_from_the_fetched_file(tmp_path: Path) -> None:
    seen: list[Pin] = []
    download = tmp_path / "kind-linux-amd64"
    download.write_bytes(b"\x7fELF kind")

    def fetcher(p: Pin) -> Path:
        seen.append(p)
        return download

    target = install_tool("kind", tmp_path / "bin", fetcher=fetcher, platform=("linux", "amd64"))
    assert target == tmp_path / "bin" / "kind"
    assert target.read_bytes() == b"\x7fELF kind" and target.stat().st_mode & 0o777 == 0o755
    assert seen[0].name == "kind" and seen[0].url.endswith("/kind-linux-amd64")
    assert not list((tmp_path / "bin").glob(".*partial"))


def test_only_the_binary_leaves_an_archive_for_the_platform_asked(tmp_path: Path) -> None:
    archive = tarball(tmp_path / "helm.tgz", {"darwin-arm64/helm": b"helm!",
                                              "darwin-arm64/LICENSE": b"text"})
    seen: list[Pin] = []

    def fetcher(p: Pin) -> Path:
        seen.append(p)
        return archive

    target = install_tool("helm", tmp_path / "bin", fetcher=fetcher, platform=("darwin", "arm64"))
    assert target.read_bytes() == b"helm!"
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["helm"]
    assert "darwin-arm64" in seen[0].url


def test_an_archive_without_the_binary_or_an_unknown_tool_is_refused(tmp_path: Path) -> None:
    archive = tarball(tmp_path / "istioctl.tgz", {"bin/istioctl": b"moved"})
    with pytest.raises(ToolInstallError, match=r"has no 'istioctl' \(it holds: bin/istioctl\)"):
        install_tool("istioctl", tmp_path / "bin", fetcher=lambda p: archive,
                     platform=("linux", "amd64"))
    assert not (tmp_path / "bin" / "istioctl").exists()
    with pytest.raises(ToolInstallError, match="unknown tool 'kubeadm'; choose from kind, kubectl"):
        install_tool("kubeadm", tmp_path / "bin")
