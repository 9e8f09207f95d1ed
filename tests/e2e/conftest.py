"""The kind end-to-end suite: real clusters in Docker, so it runs only where kind can.

Every test here is marked ``kind`` and skipped, with the reason, when the kind CLI or a
working Docker daemon is missing (as on machines without Docker, and in the project's own CI,
which runs the local engine). The GitHub Actions workflow ``.github/workflows/kind-e2e.yml``
runs it on hosted runners, one CNI per job (``LAB_E2E_CNI``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusters.proc import run

HERE = Path(__file__).parent


def _kind_usable() -> str | None:
    """Why the suite cannot run here, or None when it can."""
    for tool in ("kind", "docker", "kubectl"):
        if shutil.which(tool) is None:
            return f"the {tool} CLI is not installed (the kind e2e suite needs kind, Docker, kubectl)"
    info = run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False, timeout=30)
    if not info.ok:
        first = (info.stderr or info.stdout).strip().splitlines()
        return f"the Docker daemon does not answer: {first[0] if first else info.returncode}"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mine = [i for i in items if Path(str(i.fspath)).is_relative_to(HERE)]
    if not mine:
        return
    why = _kind_usable()
    for item in mine:
        item.add_marker(pytest.mark.kind)
        if why:
            item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="session")
def e2e_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """State and workspace of the whole run (one cluster per CNI is reused across labs); the
    ``lab`` processes inherit them through the environment, restored afterwards."""
    home = tmp_path_factory.mktemp("kind-e2e")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LAB_STATE_DIR", str(home / "state"))
        env.setenv("LAB_WORKSPACE", str(home / "ws"))
        env.setenv("LAB_ENGINE", "kind")
        yield home
