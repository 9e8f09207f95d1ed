"""The hosted-runner workflow for the kind e2e suite stays in step with the code it runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from clusters.cnis import CNIS
from clusters.kind.pins import VERSIONS
from clusters.kind.toolinstall import TOOLS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "kind-e2e.yml"


def load() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def steps() -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = load()["jobs"]["e2e"]["steps"]
    return result


def run_lines() -> list[str]:
    return [line.strip() for s in steps() for line in str(s.get("run", "")).splitlines()]


def test_the_matrix_is_every_cni_the_kind_engine_runs() -> None:
    from e2e.test_kind_labs import KIND_CNIS  # the e2e suite's own list

    matrix = load()["jobs"]["e2e"]["strategy"]["matrix"]["cni"]
    assert sorted(matrix) == sorted(CNIS) == sorted(KIND_CNIS)
    suite = next(s for s in steps() if "LAB_E2E_CNI" in s.get("env", {}))
    assert suite["env"]["LAB_E2E_CNI"] == "${{ matrix.cni }}"
    assert "tests/e2e -m kind" in suite["run"]


def test_tools_come_from_the_pinned_installer_and_no_version_is_written_here() -> None:
    install = next(line for line in run_lines() if "install_kind_tools.py" in line)
    tools = shlex.split(install)[shlex.split(install).index("scripts/install_kind_tools.py") + 1:]
    assert tools and set(tools) <= set(TOOLS)
    assert (ROOT / "scripts" / "install_kind_tools.py").is_file()
    text = WORKFLOW.read_text()
    for version in VERSIONS.values():
        assert not re.search(rf"(?<![\w.]){re.escape(version)}(?![\w.])", text), version


def test_the_commands_it_runs_exist() -> None:
    lines = run_lines()
    assert "sudo ./scripts/setup" in lines
    assert any(line.startswith(".venv/bin/python scripts/pin_checksums.py --check --offline")
               or "pin_checksums.py --check --offline" in line for line in lines)
    for script in ("scripts/setup", "scripts/pin_checksums.py", "tests/e2e/test_kind_labs.py",
                   ".ci/run"):
        assert (ROOT / script).exists(), script
    local = load()["jobs"]["local"]["steps"][-1]["run"]
    assert local == "sudo CI=true bash .ci/run"
