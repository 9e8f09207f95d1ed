"""The CNI modes of the local engine, for tests that run once per mode."""

from __future__ import annotations

import pytest

#: (cni, backend) of every mode the local engine builds.
MODES: list[tuple[str, str]] = [
    ("kindnet", ""), ("flannel", "vxlan"), ("flannel", "host-gw"),
    ("calico", "bgp"), ("calico", "vxlan"),
]


def mode_id(mode: tuple[str, str]) -> str:
    return f"{mode[0]}-{mode[1]}" if mode[1] else mode[0]


#: ``@ALL_MODES`` on a test taking ``mode`` runs it once per mode, ids like ``flannel-vxlan``.
ALL_MODES = pytest.mark.parametrize("mode", MODES, ids=[mode_id(m) for m in MODES])


def cli_args(mode: tuple[str, str]) -> list[str]:
    """``lab start``/``lab cluster create`` options choosing ``mode``."""
    return ["--cni", mode[0], *(["--backend", mode[1]] if mode[1] else [])]

#: The modes besides kindnet, for tests whose kindnet run already exists elsewhere (the
#: per-lab tests run on kindnet, the default).
OTHER_MODES = [m for m in MODES if m[0] != "kindnet"]
NON_DEFAULT_MODES = pytest.mark.parametrize("mode", OTHER_MODES,
                                            ids=[mode_id(m) for m in OTHER_MODES])
