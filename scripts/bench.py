"""Benchmarks of the ``lab`` CLI on the local engine: how long the learner waits, and what is left.

The figures are what a learner feels: ``lab start 01`` from nothing to ready, ``lab check 01``
with the solution and with the starter (failing checks, settle time included), ``lab stop``, the
daemon's peak memory, and whether many start/stop cycles leave anything on the host. Every
command runs the real CLI in a subprocess (``python -m labs.cli.main``), so imports, engine
choice and the daemon's start are all inside the figures.

This prints numbers; it asserts nothing about time. The exit code is 1 only when something is
*wrong* rather than slow: a command failed, the solution did not pass, the starter did not fail,
or a leftover was found. Run as root::

    .venv/bin/python scripts/bench.py [--runs 5] [--cycles 20] [--json]

It isolates itself: a temporary LAB_STATE_DIR and LAB_WORKSPACE, a cluster named
``knlbench<4 hex>``, and ``lab stop`` in a ``finally`` (also on Ctrl-C and SIGTERM). It never
looks at other clusters' names, so it can run beside the root tests (``knlt*``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

# The checkout this file belongs to, not whatever copy the venv was installed from.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clusters.errors import CommandError  # noqa: E402
from clusters.local.topology import bridge_name, tag_for  # noqa: E402
from clusters.proc import Result, run  # noqa: E402

LAB = "01"
COMMAND_TIMEOUT = 300.0
RUN_KUBE_NETLAB = Path("/run/kube-netlab")


class BenchError(Exception):
    """A CLI command did something that makes the figures meaningless."""


@dataclass
class Figure:
    """One row of the table: samples and an optional goal (an upper bound, for reading only)."""

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    goal: float | None = None

    def to_dict(self) -> dict[str, Any]:
        s = self.samples
        return {"name": self.name, "unit": self.unit, "samples": s, "goal": self.goal,
                "median": statistics.median(s) if s else None,
                "min": min(s) if s else None, "max": max(s) if s else None}


@dataclass
class Bench:
    """The isolated environment: a throw-away cluster name, state dir and workspace."""

    tmp: Path
    cluster: str
    quiet: bool
    figures: list[Figure] = field(default_factory=list)
    leftovers: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    def env(self, workspace: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update(LAB_STATE_DIR=str(self.state_dir), LAB_WORKSPACE=str(workspace),
                   LAB_CLUSTER=self.cluster, LAB_ENGINE="local", NO_COLOR="1", TERM="dumb")
        return env

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def lab(self, *args: str, workspace: Path | None = None,
            expect: Sequence[int] = (0,)) -> tuple[float, Result]:
        """Run ``lab ARGS`` in the repo root; seconds taken and the result.

        An exit code outside ``expect`` raises :class:`BenchError` with the command's output.
        """
        argv = [sys.executable, "-m", "labs.cli.main", *args]
        began = time.perf_counter()
        res = run(argv, check=False, timeout=COMMAND_TIMEOUT,
                  env=self.env(workspace or self.tmp / "workspace"))
        took = time.perf_counter() - began
        if res.returncode not in expect:
            tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-25:])
            raise BenchError(f"`lab {' '.join(args)}` exited with {res.returncode} "
                             f"(expected {'/'.join(map(str, expect))}):\n{tail}")
        return took, res

    def figure(self, name: str, unit: str, goal: float | None = None) -> Figure:
        fig = Figure(name, unit, goal=goal)
        self.figures.append(fig)
        return fig


# ---- what a cluster leaves on the host ------------------------------------------------------
def _ip_json(*args: str) -> list[dict[str, Any]]:
    out = run(["ip", "-j", *args]).stdout.strip()
    return list(json.loads(out)) if out else []


def _count_tree(path: Path) -> int:
    """``path`` itself plus everything below it (0 when it does not exist)."""
    if not (path.exists() or path.is_symlink()):
        return 0
    if not path.is_dir() or path.is_symlink():
        return 1
    return 1 + sum(len(dirs) + len(files) for _, dirs, files in os.walk(path))


def _daemon_pids(cluster: str) -> list[int]:
    """Processes whose command line names the daemon module and this cluster."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"clusters.local.daemon" in a for a in cmdline) and cluster.encode() in cmdline:
            found.append(int(entry.name))
    return found


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if len(line.split()) > 4]


def count_leftovers(cluster: str, state_dir: Path) -> dict[str, int]:
    """Everything on the host with this cluster's name or tag; each count should be 0.

    Counted independently of the engine's own cleanup code, from what the kernel and the
    file system show. Only this cluster's names count, never another cluster's.
    """
    netns_prefix = f"knl-{cluster}"
    links = _ip_json("-d", "link", "show")
    tag = tag_for(cluster)
    tagged = {str(link["ifname"]) for link in links if link.get("ifalias") == tag}
    bridges = {b for b in tagged | {bridge_name(cluster)} if b.startswith("knlbr-")}
    routes = [r for fam in ("-4", "-6") for r in _ip_json(fam, "route", "show", "table", "all")
              if r.get("dev") in bridges]
    etc_netns = Path("/etc/netns")
    etc = sorted(etc_netns.glob(f"{netns_prefix}*")) if etc_netns.is_dir() else []
    run_dir = RUN_KUBE_NETLAB / cluster
    mounts = [m for m in _mount_points()
              if m == str(run_dir) or m.startswith(f"{run_dir}/")
              or m.startswith(f"/run/netns/{netns_prefix}")]
    return {
        "network namespaces knl-<cluster>*": sum(
            str(n.get("name", "")).startswith(netns_prefix) for n in _ip_json("netns", "list")),
        f"host links with alias {tag}": len(tagged),
        "routes on the cluster's knlbr-* bridge": len(routes),
        f"files under {run_dir}": _count_tree(run_dir),
        f"files under /etc/netns/{netns_prefix}*": sum(_count_tree(p) for p in etc),
        "daemon processes of the cluster": len(_daemon_pids(cluster)),
        f"mounts under {run_dir} or /run/netns/{netns_prefix}*": len(mounts),
        "state files (LAB_STATE_DIR/clusters/<cluster>)": _count_tree(
            state_dir / "clusters" / cluster),
    }


def daemon_memory_kib(cluster: str) -> dict[str, int]:
    """VmHWM (peak resident set) and VmRSS of the cluster's daemon, from /proc/<pid>/status."""
    pid_file = RUN_KUBE_NETLAB / cluster / "daemon.pid"
    pid = int(pid_file.read_text().strip())
    if pid not in _daemon_pids(cluster):
        raise BenchError(f"{pid_file} names pid {pid}, which is not the daemon of {cluster}")
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0])
    return values


# ---- the measurements -----------------------------------------------------------------------
def measure_start_stop(b: Bench, runs: int) -> None:
    """1, 4 and 6: ``lab start 01`` from nothing (fresh workspace each run), then ``lab stop``."""
    start = b.figure(f"lab start {LAB} (nothing -> ready)", "s", goal=3.0)
    stop = b.figure(f"lab stop (lab {LAB} running)", "s", goal=2.0)
    hwm = b.figure("daemon peak RSS after start (VmHWM)", "MiB")
    for i in range(1, runs + 1):
        ws = b.tmp / f"workspace-start-{i}"
        took, res = b.lab("start", LAB, workspace=ws)
        if "copied:" not in res.stdout:
            raise BenchError(f"lab start {LAB} copied no starter file:\n{res.stdout[-800:]}")
        start.samples.append(took)
        hwm.samples.append(daemon_memory_kib(b.cluster)["VmHWM"] / 1024)
        took_stop, _ = b.lab("stop", workspace=ws)
        stop.samples.append(took_stop)
        b.say(f"  run {i}/{runs}: start {start.samples[-1]:.2f} s, stop {took_stop:.2f} s")


def _timed_checks(b: Bench, ws: Path, fig: Figure, runs: int, want: int, what: str) -> None:
    """Time ``lab check`` ``runs`` times; an unexpected verdict is a problem, its time still counts."""
    for i in range(1, runs + 1):
        took, res = b.lab("check", LAB, workspace=ws, expect=(0, 1))
        fig.samples.append(took)
        verdict = "passed" if res.returncode == 0 else "failed"
        b.say(f"  {what} check {i}/{runs}: {took:.2f} s ({verdict})")
        if res.returncode != want:
            lines = res.stdout.splitlines()
            first = next((n for n, line in enumerate(lines) if "FAIL" in line), 0)
            detail = "\n    ".join(lines[first:first + 6] if want == 0 else lines[-3:])
            kept = _keep_evidence(b, f"check-{what}-{i}", res)
            b.problems.append(f"lab check {LAB} with the {what} {verdict} (run {i}/{runs}; "
                              f"output and daemon log kept in {kept}):\n    {detail}")


def _keep_evidence(b: Bench, label: str, res: Result) -> Path:
    """Save a surprising command's output and the daemon log outside the temp dir we delete."""
    path = Path(tempfile.gettempdir()) / f"{b.cluster}-{label}.log"
    log = b.state_dir / "clusters" / b.cluster / "daemon.log"
    daemon_log = log.read_text(errors="replace") if log.exists() else "(no daemon log)\n"
    path.write_text(f"$ lab {' '.join(res.argv[3:])}\nexit code {res.returncode}\n"
                    f"--- stdout\n{res.stdout}--- stderr\n{res.stderr}--- {log}\n{daemon_log}")
    return path


def measure_checks(b: Bench, runs: int) -> None:
    """2, 3 and 6: ``lab check 01`` with the starter (fails), then with the solution (passes)."""
    ws = b.tmp / "workspace-check"
    b.lab("start", LAB, workspace=ws)
    starter = b.figure(f"lab check {LAB}, starter (failing)", "s", goal=3.0)
    _timed_checks(b, ws, starter, runs, want=1, what="starter")
    b.lab("solution", LAB, "--apply", "--yes", workspace=ws)
    solution = b.figure(f"lab check {LAB}, solution (passing)", "s", goal=3.0)
    _timed_checks(b, ws, solution, runs, want=0, what="solution")
    mem = daemon_memory_kib(b.cluster)
    peak = b.figure(f"daemon peak RSS after {2 * runs} checks (VmHWM)", "MiB")
    peak.samples.append(mem["VmHWM"] / 1024)
    b.lab("stop", workspace=ws)


def measure_cycles(b: Bench, cycles: int) -> None:
    """5: ``lab start 01`` + ``lab stop`` repeated, then count what is left on the host."""
    ws = b.tmp / "workspace-cycles"
    cycle = b.figure(f"start+stop cycle ({cycles} cycles)", "s")
    for i in range(1, cycles + 1):
        t_start, _ = b.lab("start", LAB, workspace=ws)
        t_stop, _ = b.lab("stop", workspace=ws)
        cycle.samples.append(t_start + t_stop)
        b.say(f"  cycle {i}/{cycles}: {t_start + t_stop:.2f} s")
    b.leftovers = count_leftovers(b.cluster, b.state_dir)
    total = sum(b.leftovers.values())
    b.figure(f"leftovers after {cycles} cycles (all kinds)", "items", goal=0).samples.append(total)
    if total:
        b.problems.append(f"{total} leftover item(s) after {cycles} start/stop cycles")


# ---- output -----------------------------------------------------------------------------------
def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {"nproc": os.cpu_count(), "kernel": platform.release(),
                             "python": platform.python_version(), "machine": platform.machine()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                facts["memory_mib"] = int(line.split()[1]) // 1024
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                facts["os"] = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return facts


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:g}"


def render_text(b: Bench, facts: dict[str, Any], runs: int) -> str:
    lines = ["machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()),
             f"repo: {ROOT}   cluster: {b.cluster}   runs: {runs} (median, min, max)", ""]
    rows = [["FIGURE", "MEDIAN", "MIN", "MAX", "GOAL", ""]]
    for fig in b.figures:
        d = fig.to_dict()
        goal = "-" if fig.goal is None else ("0" if fig.goal == 0 else f"<= {_fmt(fig.goal, fig.unit)}")
        verdict = "" if fig.goal is None or d["median"] is None else (
            "ok" if d["median"] <= fig.goal else "over goal")
        rows.append([fig.name, _fmt(d["median"], fig.unit), _fmt(d["min"], fig.unit),
                     _fmt(d["max"], fig.unit), goal, verdict])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if b.leftovers:
        lines += ["", "leftovers by kind (expected 0 each):"]
        lines += [f"  {count:>3}  {kind}" for kind, count in b.leftovers.items()]
    if b.problems:
        lines += ["", "problems:"] + [f"  - {p}" for p in b.problems]
    return "\n".join(lines)


# ---- running it all, and always cleaning up --------------------------------------------------
def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def cleanup(b: Bench) -> None:
    """``lab stop`` and a last leftover count; Ctrl-C is ignored meanwhile (also by the child)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        b.say(f"cleaning up: lab stop (cluster {b.cluster})")
        try:
            b.lab("stop")
        except (BenchError, CommandError) as err:
            b.problems.append(f"cleanup: {err}")
        try:
            left = {k: v for k, v in count_leftovers(b.cluster, b.state_dir).items() if v}
            if left:
                b.problems.append(f"still present after the final lab stop: {left}")
        except (CommandError, OSError, ValueError) as err:
            b.problems.append(f"cleanup: could not count leftovers: {err}")
        shutil.rmtree(b.tmp, ignore_errors=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=positive, default=5, help="runs per timed figure (default 5)")
    parser.add_argument("--cycles", type=positive, default=20,
                        help="start/stop cycles before counting leftovers (default 20)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.py needs root (the local engine builds network namespaces): "
              "sudo .venv/bin/python scripts/bench.py", file=sys.stderr)
        return 2
    os.chdir(ROOT)  # the CLI runs as `python -m labs.cli.main` from this checkout
    signal.signal(signal.SIGTERM, _raise_interrupt)
    b = Bench(Path(tempfile.mkdtemp(prefix="knlbench-")), f"knlbench{secrets.token_hex(2)}",
              quiet=args.json)
    facts = machine_facts()
    interrupted = False
    steps: list[tuple[str, Callable[[], None]]] = [
        (f"lab start/stop x{args.runs}", lambda: measure_start_stop(b, args.runs)),
        (f"lab check x{args.runs} (starter) + x{args.runs} (solution)",
         lambda: measure_checks(b, args.runs)),
        (f"start/stop cycles x{args.cycles}, then leftovers", lambda: measure_cycles(b, args.cycles)),
    ]
    try:
        for title, step in steps:
            b.say(f"== {title}")
            step()
    except (BenchError, CommandError, OSError, ValueError) as err:
        b.problems.append(f"{type(err).__name__}: {err}")
    except KeyboardInterrupt:
        interrupted = True
        b.problems.append("interrupted; figures are partial")
    finally:
        cleanup(b)
    if args.json:
        print(json.dumps({"machine": facts, "repo": str(ROOT), "cluster": b.cluster,
                          "runs": args.runs, "cycles": args.cycles,
                          "figures": [f.to_dict() for f in b.figures],
                          "leftovers": b.leftovers, "problems": b.problems}, indent=2))
    else:
        print(render_text(b, facts, args.runs))
    if interrupted:
        return 130
    return 1 if b.problems else 0


if __name__ == "__main__":
    sys.exit(main())
