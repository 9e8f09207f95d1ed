"""The docs' runnable commands, run for real on every CNI mode of the local engine.

Each page marks the blocks it promises will work with an HTML comment (the convention is
described in tests/doccmds.py). For each mode this test makes one cluster, solves lab 01 in
it when a block needs its pods, runs every block meant for that mode through the real
``lab`` command (the docs' cluster name ``netlab`` replaced by the test's), and checks that
each command exits 0 and that the texts the marker expects appear in the output. A block
with ``capture: yes`` starts its first command (a capture that stops by itself after a few
packets) and repeats the others, which make the traffic, until the capture is done.

All problems of a mode are collected and reported together, each with its page and line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import doccmds
import pytest
from cnimodes import ALL_MODES
from labcli import lab

from clusters import manifests
from clusters.errors import WaitTimeout
from clusters.local.engine import LocalCluster
from clusters.proc import wait_until

ROOT = Path(__file__).resolve().parents[2]
LAB01 = ROOT / "labs" / "01-pod-networking"
#: How long a capture may wait for its packets while the traffic repeats.
CAPTURE_DEADLINE = 60.0




def _all_blocks() -> list[Any]:
    return [b for page in sorted((ROOT / "docs").rglob("*.md"))
            for b in doccmds.parse_file(page, ROOT)]


def _solve_lab01(cluster: LocalCluster) -> dict[str, str]:
    """Lab 01's setup and solution applied; the placeholders' values from its pods."""
    for entry in (LAB01 / "setup", LAB01 / "solution"):
        for file in manifests.read(str(entry)):
            cluster.apply(file.docs, source=file.source)
    cluster.wait_converged(["lab01"], timeout=60)
    pods = {p["metadata"]["name"]: p for p in cluster.get("Pod", "lab01")}
    values = {}
    for role in ("server", "client"):
        values[f"<{role} IP>"] = pods[role]["status"]["podIP"]
        values[f"<{role} node>"] = pods[role]["spec"]["nodeName"]
    assert values["<server node>"] != values["<client node>"], values
    return values


def _run_plain(block: Any, cluster: str, values: dict[str, str]) -> tuple[str, list[str]]:
    output, problems = [], []
    for command in block.commands:
        argv = command.for_cluster(cluster, values)
        result = lab(*argv, timeout=120)
        output.append(result.stdout + result.stderr)
        if result.returncode != 0:
            problems.append(f"{block.page}:{command.line}: `lab {' '.join(argv)}` exited "
                            f"{result.returncode}: {(result.stderr or result.stdout)[-600:]}")
    return "".join(output), problems


def _run_capture(block: Any, cluster: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """The first command captures in the background; the rest repeat until it is done."""
    first, *traffic = block.commands
    argv = first.for_cluster(cluster, values)
    capture = subprocess.Popen(  # our own process group: ended by its id if it overruns
        [sys.executable, "-m", "labs.cli.main", *argv], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    sent: list[str] = []
    problems: list[str] = []

    def captured() -> bool:
        if capture.poll() is not None:
            return True
        for command in traffic:
            result = lab(*command.for_cluster(cluster, values), timeout=60)
            sent.append(result.stdout + result.stderr)
            if result.returncode != 0:
                problems.append(f"{block.page}:{command.line}: traffic command exited "
                                f"{result.returncode}: {result.stderr[-400:]}")
        return capture.poll() is not None

    try:
        wait_until(f"the capture of {block.where} to see its packets", captured, bool,
                   timeout=CAPTURE_DEADLINE, interval=0.2,
                   describe=lambda _: f"capture still running; traffic sent {len(sent)} times")
    except WaitTimeout as err:  # the capture never ended: report it with what was sent
        problems.append(f"{block.where}: {err}")
    finally:
        if capture.poll() is None:
            os.killpg(capture.pid, signal.SIGTERM)
        out, err_text = capture.communicate(timeout=30)
    if capture.returncode != 0 and not problems:
        problems.append(f"{block.page}:{first.line}: `lab {' '.join(argv)}` exited "
                        f"{capture.returncode}: {err_text[-600:]}")
    return out + err_text + "".join(sent), problems


@ALL_MODES
def test_doc_commands_run(mode: tuple[str, str], make_cluster: Callable[..., LocalCluster],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    cni, backend = mode
    blocks = doccmds.blocks_for(_all_blocks(), cni, backend)
    assert blocks, f"no runnable doc block for {cni} {backend}"
    cluster = make_cluster(cni, backend)
    monkeypatch.setenv("LAB_CLUSTER", cluster.name)
    monkeypatch.delenv("LAB_ENGINE", raising=False)
    values = _solve_lab01(cluster) if any(b.needs == "lab01" for b in blocks) else {}

    problems: list[str] = []
    ran = 0
    for block in blocks:
        run = _run_capture if block.capture else _run_plain
        output, wrong = run(block, cluster.name, values)
        ran += len(block.commands)
        problems += wrong
        for text in block.expect:
            if text not in output:
                problems.append(f"{block.where}: expected {text!r} in the output of "
                                f"{[c.text for c in block.commands]}; got:\n{output[-1500:]}")
    assert not problems, f"{len(problems)} problem(s) in {ran} commands:\n" + "\n".join(problems)
