"""Benchmark of batch grading (issue 7's figures): 20 lab 01 submissions on the local engine.

The submissions are a mix, as a class hands them in: 8 reference solutions, 5 starters,
4 half-right ones (podAffinity instead of podAntiAffinity: 7 of 9 points) and 3 invalid ones
(a YAML error, a Pod in namespace default, a Namespace object). They are graded through the
same code as ``lab grade`` (imported, not run as a command: ``labs.grading.find``,
``validate``, ``grade``, ``write``), once with ``--jobs 1`` and once with ``--jobs 2``, each
in a child process of its own so that its memory figures are its own. Printed per run:

- total wall time (validation, cluster setup, grading, cluster removal, reports);
- cluster setup: creating the N clusters up front;
- per submission, graded ones only: median and max of ``run_check`` (reset, apply, converge,
  pytest with the grader plugin), and wall time per submission (total / submissions);
- peak memory: ``ru_maxrss`` of the grading process and of its largest reaped child (a
  pytest run, or a daemon once it exited), the peak RSS sum of the cluster daemons (and
  their children), and the peak RSS sum of the whole process tree, sampled every 0.1 s.

It prints numbers and asserts nothing about time; exit code 1 when a run failed or a
learner did not get the expected status. Run as root::

    .venv/bin/python scripts/bench_grade.py [--jobs 1,2] [--json]

Cluster state goes to a temporary LAB_STATE_DIR; the grading clusters are deleted by the
batch itself, also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clusters.selection import get_engine  # noqa: E402
from labs.catalogue import default_catalogue  # noqa: E402
from labs.grading import find, grade, validate, write  # noqa: E402

LAB = default_catalogue().get("01")
EXPECTED = {"solution": ("graded", 9), "starter": ("graded", 3), "half": ("graded", 7),
            "invalid": ("invalid", 0)}


def make_submissions(root: Path) -> dict[str, str]:
    """20 learner folders under ``root``; returns learner -> kind of submission."""
    solution = (LAB.solution_dir / "pods.yaml").read_text()
    starter = (LAB.starter_dir / "pods.yaml").read_text()
    texts = {
        "solution": solution, "starter": starter,
        "half": solution.replace("podAntiAffinity", "podAffinity"),
    }
    invalid = [solution.replace("  labels:\n", "  labels: [\n", 1),
               solution.replace("namespace: lab01", "namespace: default"),
               "apiVersion: v1\nkind: Namespace\nmetadata: {name: mine}\n"]
    plan = ["solution"] * 8 + ["starter"] * 5 + ["half"] * 4 + ["invalid"] * 3
    kinds: dict[str, str] = {}
    for n, kind in enumerate(plan, 1):
        learner = f"learner{n:02d}"
        folder = root / learner
        folder.mkdir(parents=True)
        text = invalid.pop(0) if kind == "invalid" else texts[kind]
        (folder / "pods.yaml").write_text(text)
        kinds[learner] = kind
    return kinds


# ---- memory sampling ---------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, int, bytes]]:
    """pid -> (parent pid, RSS in KiB, command line) for every process we can read."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = int(fields.get("VmRSS", "0 kB").split()[0])
        found[int(entry)] = (int(fields["PPid"]), rss, cmdline)
    return found


def _tree(procs: dict[int, tuple[int, int, bytes]], roots: set[int]) -> set[int]:
    members, grew = set(roots), True
    while grew:
        new = {pid for pid, (ppid, _, _) in procs.items() if ppid in members} - members
        members |= new
        grew = bool(new)
    return members


class Sampler(threading.Thread):
    """Peak RSS sums (KiB) of the grading clusters' daemons and of this process's tree."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.daemons_peak = 0
        self.tree_peak = 0

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.wait(0.1):
            procs = _processes()
            daemons = {pid for pid, (_, _, cmd) in procs.items()
                       if b"clusters.local.daemon" in cmd and b"grd" in cmd}
            in_daemons = _tree(procs, daemons)
            in_tree = _tree(procs, {me}) | in_daemons  # daemons start their own session
            self.daemons_peak = max(self.daemons_peak, sum(procs[p][1] for p in in_daemons))
            self.tree_peak = max(self.tree_peak, sum(procs[p][1] for p in in_tree))


# ---- one run (in a child process) -----------------------------------------------------


def one_run(jobs: int, subs: Path, out: Path) -> dict[str, Any]:
    engine = get_engine("local")
    sampler = Sampler()
    sampler.start()
    began = time.monotonic()
    found = find(subs)
    for sub in found.submissions:
        validate(sub, LAB)
    batch = grade(LAB, engine, LAB.profile(), found.submissions, jobs=jobs,
                  ignored=found.ignored, progress=lambda line: print(line, file=sys.stderr))
    write(batch, out)
    total = time.monotonic() - began
    sampler.stop.set()
    sampler.join()
    graded = [r.seconds for r in batch.results if r.status not in ("invalid", "error")]
    return {
        "jobs": jobs, "submissions": len(batch.results), "graded": len(graded),
        "total_s": total, "setup_s": batch.setup_seconds,
        "median_s": statistics.median(graded) if graded else 0.0,
        "max_s": max(graded, default=0.0), "wall_per_submission_s": total / len(batch.results),
        "maxrss_self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "maxrss_children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "daemons_peak_kib": sampler.daemons_peak, "tree_peak_kib": sampler.tree_peak,
        "statuses": {r.learner: [r.status, r.points] for r in batch.results},
        "interrupted": batch.interrupted,
    }


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the batch removes its clusters on the way out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default="1,2", help="comma-separated --jobs values (1,2)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: one run
    parser.add_argument("--subs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    if args.one:
        print(json.dumps(one_run(args.one, args.subs, args.out)))
        return 0
    if os.geteuid() != 0:
        print("bench_grade.py needs root (the local engine builds network namespaces)",
              file=sys.stderr)
        return 1
    runs, failed = [], False
    with tempfile.TemporaryDirectory(prefix="bench-grade-") as tmp:
        subs = Path(tmp) / "subs"
        kinds = make_submissions(subs)
        env = dict(os.environ, LAB_STATE_DIR=str(Path(tmp) / "state"))
        for jobs in (int(j) for j in args.jobs.split(",")):
            child = subprocess.run(
                [sys.executable, __file__, "--one", str(jobs), "--subs", str(subs),
                 "--out", str(Path(tmp) / f"out-{jobs}")],
                stdout=subprocess.PIPE, text=True, env=env, check=False)
            if child.returncode != 0:
                print(f"--jobs {jobs}: the run failed (exit code {child.returncode})",
                      file=sys.stderr)
                failed = True
                continue
            run = json.loads(child.stdout)
            wrong = {name: got for name, got in run["statuses"].items()
                     if tuple(got) != EXPECTED[kinds[name]]}
            if wrong:
                print(f"--jobs {jobs}: unexpected results: {wrong}", file=sys.stderr)
                failed = True
            runs.append(run)
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "statuses"} for r in runs],
                         indent=2))
    else:
        _print(runs)
    return 1 if failed else 0


def _print(runs: list[dict[str, Any]]) -> None:
    mib = 1024
    rows = [
        ("submissions (graded)", lambda r: f"{r['submissions']} ({r['graded']})"),
        ("total wall time", lambda r: f"{r['total_s']:.1f} s"),
        ("cluster setup", lambda r: f"{r['setup_s']:.1f} s"),
        ("per submission: median", lambda r: f"{r['median_s']:.2f} s"),
        ("per submission: max", lambda r: f"{r['max_s']:.2f} s"),
        ("wall time / submission", lambda r: f"{r['wall_per_submission_s']:.2f} s"),
        ("maxrss grading process", lambda r: f"{r['maxrss_self_kib'] / mib:.0f} MiB"),
        ("maxrss largest child", lambda r: f"{r['maxrss_children_kib'] / mib:.0f} MiB"),
        ("peak RSS sum, daemons", lambda r: f"{r['daemons_peak_kib'] / mib:.0f} MiB"),
        ("peak RSS sum, all", lambda r: f"{r['tree_peak_kib'] / mib:.0f} MiB"),
    ]
    print(f"{'lab 01, local engine':<26}" + "".join(f"{'--jobs ' + str(r['jobs']):>14}"
                                                    for r in runs))
    for label, cell in rows:
        print(f"{label:<26}" + "".join(f"{cell(r):>14}" for r in runs))


if __name__ == "__main__":
    sys.exit(main())
