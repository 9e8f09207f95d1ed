"""Labs 01 and 02 on every CNI mode of the local engine, through the real ``lab`` command
(kindnet, the default, is covered by test_lab01 and test_lab02 themselves).

For each mode: ``lab start NN --cni X [--backend Y]`` → the starter fails exactly the checks
it fails on kindnet → the solution passes every check. One cluster per mode and lab, reused
from the starter to the solution. Plus the refusals: a lab that needs NetworkPolicy enforced
does not start on flannel, and Cilium on the local engine points to the kind engine; both
before anything is made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnimodes import NON_DEFAULT_MODES, cli_args
from labcli import lab
from test_lab01 import STARTER_FAILS as LAB01_STARTER_FAILS
from test_lab02 import STARTER_PASSES as LAB02_STARTER_PASSES

from clusters.cnis import describe
from clusters.local import cleanup
from labs.catalogue import default_catalogue


def _check(lab_id: str) -> tuple[int, dict[str, Any]]:
    checked = lab("check", lab_id, "--json")
    assert checked.stdout, checked.stderr
    report: dict[str, Any] = json.loads(checked.stdout)
    assert report["apply_error"] is None, report["apply_error"]
    return checked.returncode, report


def _not_passed(report: dict[str, Any]) -> dict[str, str]:
    return {c["function"]: f"{c['outcome']}: {(c.get('message') or '')[:600]}"
            for c in report["checks"] if c["outcome"] != "passed"}


def _start_solve(lab_id: str, mode: tuple[str, str], learner: str,
                 starter_fails: set[str]) -> None:
    started = lab("start", lab_id, *cli_args(mode), "--yes")
    assert started.returncode == 0, started.stderr
    label = describe(*mode)
    assert f"CNI: {label}" in started.stderr
    listed = json.loads(lab("cluster", "list", "--json").stdout)
    mine = next(c for c in listed if c["name"] == learner)
    assert (mine["profile"]["cni"], mine["profile"]["backend"]) == mode

    code, report = _check(lab_id)
    assert report["cluster"] == learner
    assert code == 1 and report["passed"] is False
    failed = _not_passed(report)
    assert set(failed) == starter_fails, failed
    assert all(v.startswith("failed") for v in failed.values()), failed

    applied = lab("solution", lab_id, "--apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    code, report = _check(lab_id)
    assert code == 0 and report["passed"] is True, _not_passed(report)


@NON_DEFAULT_MODES
def test_lab01_on_every_cni_mode(mode: tuple[str, str], learner: str) -> None:
    _start_solve("01", mode, learner, set(LAB01_STARTER_FAILS))


@NON_DEFAULT_MODES
def test_lab02_on_every_cni_mode(mode: tuple[str, str], learner: str) -> None:
    lab02 = default_catalogue().get("02")
    every = set(lab02.check_names())  # lab check runs the visible checks
    _start_solve("02", mode, learner, every - set(LAB02_STARTER_PASSES))


def _nothing_made(learner: str, state_dir: Path) -> None:
    assert cleanup.find_leftovers(learner).empty
    assert not (state_dir / "ws").exists(), "no workspace or progress for a refused start"
    listed = lab("cluster", "list", "--json")
    assert learner not in {c["name"] for c in json.loads(listed.stdout)}


def test_lab04_refuses_flannel_and_says_why(learner: str, state_dir: Path) -> None:
    refused = lab("start", "04", "--cni", "flannel", "--yes")
    assert refused.returncode == 2
    text = " ".join(refused.stderr.split())
    assert "lab 04 supports the CNIs kindnet, calico, not flannel" in text
    assert "flannel does not enforce NetworkPolicy" in text
    _nothing_made(learner, state_dir)


def test_cilium_on_the_local_engine_needs_the_kind_engine(learner: str, state_dir: Path) -> None:
    refused = lab("start", "01", "--engine", "local", "--cni", "cilium", "--yes")
    assert refused.returncode == 1
    text = " ".join(refused.stderr.split())
    assert "Cilium is not emulated on the local engine" in text
    assert "use the kind engine" in text
    assert "Traceback" not in refused.stderr
    _nothing_made(learner, state_dir)
