"""Finding and removing what the local engine left on the host, by tag and name only.

Cleanup must work when the daemon is dead and no state is left (a crash, a reboot of the
daemon, a deleted state folder). So it never asks anyone what was created; it looks for the
marks the datapath puts on everything it makes:

* network namespaces named ``knl-<cluster>-<control-plane|workerN|pod-HEX>``,
* links in the host namespace whose alias is ``kube-netlab:<cluster>``,
* mounts (persistent UTS namespaces) and files under ``/run/kube-netlab/<cluster>/``,
* per-namespace files under ``/etc/netns/knl-<cluster>-*`` (read by ``ip netns exec``),
* agent processes (a CNI's BIRD) whose command line names a file under
  ``/run/kube-netlab/<cluster>/``.

The name patterns are exact (see :func:`clusters.local.topology.owned_netns`), so cleaning
cluster ``a`` never touches cluster ``a-b``, and nothing without our marks is ever touched.

The small system helpers the datapath shares (``ip -batch``, listing namespaces and links,
unmounting) live here too, so that this module needs nothing from the datapath.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shlex
import shutil
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from clusters.errors import ClusterError, CommandError
from clusters.local import hostfirewall
from clusters.local.netns import NETNS_DIR
from clusters.local.topology import (
    ETC_NETNS,
    RUN_ROOT,
    bridge_name,
    cluster_of_netns,
    owned_netns,
    run_dir,
    tag_for,
    validate_cluster_name,
)
from clusters.proc import run

MNT_DETACH = 2
UTS_SUBDIR = "uts"
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


# ---- system helpers ------------------------------------------------------------------------
def ip_batch(lines: Sequence[str], netns: str | None = None, *, force: bool = False) -> None:
    """Run many ``ip`` commands in one process (in ``netns`` if given).

    One process per command would cost a few milliseconds each; a cluster needs hundreds.
    On failure the error names the batch line that failed. ``force`` keeps going past
    errors (for removal, where "already gone" is fine) and then never raises.
    """
    if not lines:
        return
    argv = ["ip", *(["-n", netns] if netns else []), *(["-force"] if force else []),
            "-batch", "-"]
    text = "\n".join(lines) + "\n"
    if force:
        run(argv, input=text, check=False)
        return
    try:
        run(argv, input=text)
    except CommandError as err:
        detail = "\n".join(f"  {i + 1}: {line}" for i, line in enumerate(lines))
        raise CommandError(err.argv, err.returncode, err.stdout,
                           f"{err.stderr.strip()}\nbatch input:\n{detail}") from err


def list_netns() -> list[str]:
    """Names of the namespaces ``ip netns`` knows (the files in /run/netns)."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def host_links() -> dict[str, str]:
    """Links of the host namespace: name -> alias ("" when none)."""
    out = run(["ip", "-j", "link", "show"]).stdout
    return {str(link["ifname"]): str(link.get("ifalias", "")) for link in json.loads(out or "[]")}


def _unescape_mountinfo(field: str) -> str:
    # /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below ``root`` in our mount namespace, deepest first."""
    prefix = str(root).rstrip("/") + "/"
    found: set[Path] = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 4:
                point = _unescape_mountinfo(parts[4])
                if point == str(root) or point.startswith(prefix):
                    found.add(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount(path: Path) -> None:
    """Lazily unmount ``path`` (umount2 MNT_DETACH), ignoring "not mounted"."""
    if _libc.umount2(os.fsencode(str(path)), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (22, 2):  # EINVAL: not a mount point; ENOENT: gone
            raise OSError(err, f"umount {path}: {os.strerror(err)}")


# ---- finding ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Leftovers:
    """What exists on this host that carries ``cluster``'s marks."""

    cluster: str
    netns: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    processes: tuple[tuple[int, str], ...] = ()  # (pid, program name)

    @property
    def empty(self) -> bool:
        return not (self.netns or self.links or self.mounts or self.files or self.rules
                    or self.processes)

    def items(self) -> list[str]:
        """One line per thing, e.g. ``netns knl-demo-worker`` (what :func:`remove` reports)."""
        return ([f"process {pid} ({prog})" for pid, prog in self.processes]
                + [f"netns {n}" for n in self.netns] + [f"link {n}" for n in self.links]
                + [f"mount {m}" for m in self.mounts] + [f"file {f}" for f in self.files]
                + [f"rule {r}" for r in self.rules])


def agent_processes(cluster: str, proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """Processes whose command line names a path under the cluster's run folder: the agents
    a CNI starts (BIRD gets ``-c``/``-s``/``-P`` there). Never the daemon itself, which is
    named by cluster, not by path, and never this process."""
    marker = os.fsencode(f"{run_dir(cluster)}/")
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.startswith(marker) for a in args):
            found.append((int(entry.name), os.fsdecode(os.path.basename(args[0]))))
    return sorted(found)


def stop_processes(processes: Iterable[tuple[int, str]], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL whatever is left after ``timeout``; gone ones are fine."""
    pids = [pid for pid, _ in processes]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
        time.sleep(0.01)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def find_leftovers(cluster: str) -> Leftovers:
    """Everything on the host that belongs to ``cluster`` by name or tag."""
    validate_cluster_name(cluster)
    mine = owned_netns(cluster)
    tag = tag_for(cluster)
    netns = [n for n in list_netns() if mine.match(n)]
    links = [name for name, alias in host_links().items() if alias == tag]
    rdir = run_dir(cluster)
    mounts = [str(m) for m in mounts_under(rdir)]
    files = [str(rdir)] if rdir.exists() else []
    if ETC_NETNS.is_dir():
        files += [str(ETC_NETNS / n) for n in sorted(os.listdir(ETC_NETNS)) if mine.match(n)]
    rules = tuple(f"iptables FORWARD {shlex.join(r)}" for r in hostfirewall.tagged_rules(tag))
    return Leftovers(cluster, tuple(netns), tuple(links), tuple(mounts), tuple(files), rules,
                     tuple(agent_processes(cluster)))


def all_local_clusters() -> list[str]:
    """Clusters that have something on this host: namespaces, tagged links or a run folder."""
    found: set[str] = set()
    for n in list_netns():
        c = cluster_of_netns(n)
        if c:
            found.add(c)
    with contextlib.suppress(CommandError):
        for alias in host_links().values():
            if alias.startswith(tag_for("")):
                found.add(alias[len(tag_for("")):])
    if RUN_ROOT.is_dir():
        found.update(p.name for p in RUN_ROOT.iterdir() if p.is_dir())
    valid = []
    for c in found:
        try:
            validate_cluster_name(c)
        except ValueError:
            continue
        valid.append(c)
    return sorted(valid)


# ---- removing --------------------------------------------------------------------------------
def _removal_order(cluster: str, left: Leftovers) -> list[str]:
    """``ip`` batch lines undoing creation in reverse: pods, node links, nodes, bridge."""
    bridge = bridge_name(cluster)
    pods = [n for n in left.netns if f"{cluster}-pod-" in n]
    nodes = [n for n in left.netns if n not in pods]
    return ([f"netns del {n}" for n in pods]
            + [f"link del {name}" for name in left.links if name != bridge]
            + [f"netns del {n}" for n in nodes]
            + [f"link del {name}" for name in left.links if name == bridge])


def _remove(cluster: str, *, keep_run_dir: bool) -> list[str]:
    left = find_leftovers(cluster)
    if left.empty:
        return []
    stop_processes(left.processes)
    hostfirewall.remove_tagged(tag_for(cluster))
    ip_batch(_removal_order(cluster, left), force=True)
    for m in left.mounts:
        unmount(Path(m))
    rdir = run_dir(cluster)
    targets: Iterable[str] = left.files
    if keep_run_dir:
        targets = [f for f in left.files if f != str(rdir)]
        shutil.rmtree(rdir / UTS_SUBDIR, ignore_errors=True)
    for f in targets:
        shutil.rmtree(f, ignore_errors=True)
    after = find_leftovers(cluster)
    remaining = [i for i in after.items() if not (keep_run_dir and i == f"file {rdir}")]
    if remaining:
        raise ClusterError(
            f"could not remove everything of cluster {cluster}; still present:\n  "
            + "\n  ".join(remaining))
    return [i for i in left.items() if not (keep_run_dir and i == f"file {rdir}")]


def remove_leftovers(cluster: str) -> list[str]:
    """Remove everything of ``cluster`` (also its run folder); returns what was removed.

    Safe to run at any time, also with no daemon and no state. Raises :class:`ClusterError`
    listing what could not be removed.
    """
    return _remove(cluster, keep_run_dir=False)


def remove_datapath(cluster: str) -> list[str]:
    """Like :func:`remove_leftovers` but keeps ``/run/kube-netlab/<cluster>/`` itself.

    The daemon calls this (through ``Datapath.destroy``) while it still serves on its
    socket in that folder; only the datapath's own files there (``uts/``) go.
    """
    return _remove(cluster, keep_run_dir=True)
