"""Install the kind engine's command-line tools at their pinned versions, checksums verified.

For machines the project sets up itself (CI runners, a workshop VM): ``kind``, ``kubectl``,
``helm``, ``istioctl`` and ``cilium`` come from :mod:`clusters.kind.pins` through
:func:`clusters.kind.fetch.fetch`, so every binary is checked against its pinned sha256 or the
checksum file upstream publishes before it is installed. Archives are opened in memory and only
the one binary is taken out; nothing else in them is written anywhere.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path

from clusters.errors import ClusterError
from clusters.kind.pins import Pin, build_pins, host_platform

#: Tool -> (pin name, the binary's path inside the archive, or None for a bare binary).
#: ``{os}``/``{arch}`` are the platform's names as the release files use them.
TOOLS: dict[str, tuple[str, str | None]] = {
    "kind": ("kind", None),
    "kubectl": ("kubectl", None),
    "helm": ("helm", "{os}-{arch}/helm"),
    "istioctl": ("istioctl", "istioctl"),
    "cilium": ("cilium-cli", "cilium"),
}

Fetcher = Callable[[Pin], Path]


class ToolInstallError(ClusterError):
    """A tool could not be installed (unknown name, archive without the binary, ...)."""


def _default_fetch(p: Pin) -> Path:
    from clusters.kind.fetch import fetch

    return fetch(p)


def install_tool(tool: str, dest: Path, *, fetcher: Fetcher = _default_fetch,
                 platform: tuple[str, str] | None = None) -> Path:
    """Put ``tool`` at ``dest/tool`` (mode 0755), replacing an older copy atomically."""
    if tool not in TOOLS:
        raise ToolInstallError(f"unknown tool {tool!r}; choose from {', '.join(TOOLS)}")
    pin_name, member = TOOLS[tool]
    platform = platform or host_platform()
    p = build_pins(platform=platform)[pin_name]
    path = fetcher(p)
    data = path.read_bytes() if member is None else _member(path, member.format(
        os=platform[0], arch=platform[1]), p)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / tool
    partial = dest / f".{tool}.partial"
    partial.write_bytes(data)
    partial.chmod(0o755)
    os.replace(partial, target)
    return target


def _member(archive: Path, member: str, p: Pin) -> bytes:
    try:
        with tarfile.open(archive, "r:*") as tar:
            try:
                info = tar.getmember(member)
            except KeyError:
                names = ", ".join(tar.getnames()[:8])
                raise ToolInstallError(
                    f"{p.url} has no {member!r} (it holds: {names}); the release's layout "
                    "changed: update TOOLS in clusters/kind/toolinstall.py") from None
            if not info.isfile():
                raise ToolInstallError(f"{member!r} in {p.url} is not a regular file")
            extracted = tar.extractfile(info)
            assert extracted is not None  # a regular file always has content
            return extracted.read()
    except tarfile.TarError as err:
        raise ToolInstallError(f"{archive} ({p.url}) is not a readable archive: {err}") from err
