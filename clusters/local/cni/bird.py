"""BIRD 2, the BGP daemon Calico runs in every node: its config, its process, its answers.

A real ``calico-node`` renders ``/etc/calico/confd/config/bird.cfg`` from the datastore and
runs BIRD with it: a static blackhole route for the node's IPAM block, a kernel protocol that
writes what BIRD selects into the node's routing table (``proto bird``), and one iBGP session
per other node (the node-to-node mesh, AS 64512) named ``Mesh_<ip with underscores>``. This
module writes the equivalent in BIRD 2 syntax, starts and stops one BIRD per node, and reads
``show protocols`` the way ``birdc`` prints it.

Pure parts (:func:`render_config`, :func:`parse_protocols`, :func:`mesh_name`) need no root;
:class:`BirdPaths`, :func:`start`, :func:`stop` and :func:`query` touch the system.

Timers: BIRD waits ``connect delay time`` (5 s by default, never less than 1 s) after start
before its first outgoing connection, and ``connect retry time`` (120 s) after a connection
attempt that got no answer, and ``error wait time`` (60 s) before restarting a session that
failed. Defaults like these would make a fresh cluster wait minutes whenever a peer's BIRD
was not listening yet, so the mesh uses 1-2 s: every session is Established about a second
after the BIRDs start. As on Calico, of each pair only the node with the lower address
connects (the other is ``passive``), so two simultaneous connections never collide.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from clusters.errors import ClusterError, CommandError
from clusters.local import cleanup
from clusters.proc import run

#: Calico's default AS number for every node (one AS: iBGP between all nodes).
AS_NUMBER = 64512
BIRD = "/usr/sbin/bird"
BIRDC = "birdc"
#: Where ``birdc`` looks for the control socket without ``-s`` (the node-shell binds the
#: node's socket folder there).
DEFAULT_SOCKET_DIR = "/run/bird"
SOCKET_NAME = "bird.ctl"


def mesh_name(peer: IPv4Address) -> str:
    """Name of the mesh session to ``peer``, as Calico names it: ``Mesh_172_30_0_3``."""
    return "Mesh_" + str(peer).replace(".", "_")


@dataclass(frozen=True)
class BirdNode:
    """What one node's BIRD needs to know: itself, its block, the pool and its peers."""

    name: str
    address: IPv4Address  # underlay address: router id and BGP source
    block: IPv4Network  # this node's IPAM block (blackholed, exported)
    pool: IPv4Network  # the IP pool: what may be learned and written to the kernel
    peers: tuple[IPv4Address, ...]  # the other nodes' underlay addresses
    interface: str = "eth0"
    log_file: Path | None = None


def render_config(node: BirdNode) -> str:
    """The BIRD 2 config of ``node`` (a pure function of the topology)."""
    log = f'log "{node.log_file}" all;\n' if node.log_file else ""
    peers = "".join(_mesh_peer(node, peer) for peer in sorted(node.peers))
    return f"""\
# BIRD 2 config of node {node.name}, written by kube-netlab like calico-node's confd writes
# bird.cfg: the node's block as a blackhole, the node-to-node mesh (AS {AS_NUMBER}), and the
# routes learned from the mesh written to the kernel table (they show as "proto bird").
{log}router id {node.address};

# Announce this node's IPAM block, never the single pod routes inside it.
filter calico_export_to_bgp_peers {{
  if net = {node.block} then accept;
  reject;
}}

# Learn only blocks of the IP pool from the other nodes.
filter calico_import_from_bgp_peers {{
  if net ~ {node.pool} && net != {node.block} then accept;
  reject;
}}

# Write to the kernel: the other nodes' blocks and this node's blackhole.
filter calico_kernel_programming {{
  if net ~ {node.pool} then accept;
  reject;
}}

# Watch interfaces (BGP needs to know eth0 is up and which addresses are on-link).
protocol device {{
  scan time 2;
}}

protocol kernel {{
  ipv4 {{
    import none;
    export filter calico_kernel_programming;
  }};
  metric 0;  # no metric of its own, like Calico's routes
  merge paths on;
}}

# The whole block is this node's: addresses in it without a pod route are dropped here
# instead of wandering off (each pod adds its own /32 route, which is more specific).
protocol static {{
  ipv4;
  route {node.block} blackhole;
}}

template bgp bgp_template {{
  description "Connection to BGP peer";
  local {node.address} as {AS_NUMBER};
  direct;
  interface "{node.interface}";
  ipv4 {{
    import filter calico_import_from_bgp_peers;
    export filter calico_export_to_bgp_peers;
  }};
  debug {{ states }};
  connect delay time 1;
  connect retry time 2;
  error wait time 1, 5;
}}

# ------------- Node-to-node mesh -------------
{peers}"""


def _mesh_peer(node: BirdNode, peer: IPv4Address) -> str:
    passive = ("  passive on;  # the peer has the higher address: it connects to us\n"
               if peer > node.address else "")
    return (f"protocol bgp {mesh_name(peer)} from bgp_template {{\n"
            f"  neighbor {peer} as {AS_NUMBER};\n"
            f"{passive}}}\n\n")


# ---- show protocols ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Protocol:
    """One row of ``birdc show protocols``."""

    name: str
    proto: str  # Device, Kernel, Static, BGP...
    table: str
    state: str  # up, down, start...
    since: str
    info: str  # for BGP: Established, Active, Connect, Idle, Passive, OpenSent...

    @property
    def established(self) -> bool:
        return self.proto == "BGP" and self.state == "up" and self.info.startswith("Established")

    def describe(self) -> str:
        return f"{self.name} {self.state} {self.info}".rstrip()


def parse_protocols(text: str) -> list[Protocol]:
    """Rows of ``birdc show protocols`` output (the banner and the header are skipped).

    Names longer than their column push the others right, so the row is split on blanks:
    the first five fields are single words, Info is the rest of the line.
    """
    rows = []
    for line in text.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 5 or fields[0] in ("BIRD", "Name"):
            continue
        info = fields[5].strip() if len(fields) > 5 else ""
        rows.append(Protocol(fields[0], fields[1], fields[2], fields[3], fields[4], info))
    return rows


# ---- the control socket -----------------------------------------------------------------------
def query(sock_path: Path, command: str, timeout: float = 2.0) -> str:
    """Send ``command`` to BIRD's control socket; return the reply as ``birdc`` prints it.

    BIRD answers in lines ``NNNN-text`` (more follows), ``NNNN text`` (last line of the
    reply) or `` text`` (continuation). Codes from 8000 up are errors. Talking to the
    socket directly saves a ``birdc`` process per poll while waiting for the mesh.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(sock_path))
            reader = s.makefile("r", encoding="utf-8", errors="replace")
            _read_reply(reader)  # the "0001 BIRD x.y.z ready." banner
            s.sendall(command.encode() + b"\n")
            code, lines = _read_reply(reader)
        except OSError as err:
            raise ClusterError(f"BIRD control socket {sock_path}: {err}") from err
    if code >= 8000:
        raise ClusterError(f"BIRD refused {command!r}: {' '.join(lines)}")
    return "\n".join(lines)


def _read_reply(reader: Iterable[str]) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = 0
    for raw in reader:
        line = raw.rstrip("\n")
        if line.startswith(" "):
            lines.append(line[1:])
            continue
        if len(line) < 4 or not line[:4].isdigit():
            raise OSError(f"unexpected line from BIRD: {line!r}")
        code = int(line[:4])
        text = line[5:]
        if code != 0 or text:
            lines.append(text)
        if line[4:5] != "-":
            return code, lines
    raise OSError("BIRD closed the control socket mid-reply")


# ---- processes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BirdPaths:
    """A node's BIRD files, all under its agent folder (so cleanup recognises the process by
    its command line): config, control socket (in a folder of its own, bind-mounted at
    /run/bird for ``birdc``), pid file and log."""

    agent_dir: Path

    @property
    def config(self) -> Path:
        return self.agent_dir / "bird.conf"

    @property
    def socket_dir(self) -> Path:
        return self.agent_dir / "bird"

    @property
    def socket(self) -> Path:
        return self.socket_dir / SOCKET_NAME

    @property
    def pid_file(self) -> Path:
        return self.agent_dir / "bird.pid"

    @property
    def log_file(self) -> Path:
        return self.agent_dir / "bird.log"

    def argv(self, netns: str) -> list[str]:
        """BIRD in the node's network namespace; it forks into the background itself."""
        return ["ip", "netns", "exec", netns, BIRD, "-c", str(self.config),
                "-s", str(self.socket), "-P", str(self.pid_file)]


def running(paths: BirdPaths, proc: Path = Path("/proc")) -> list[int]:
    """Pids of BIRDs started with this config: the pid file's, if its command line still
    names the config (a pid can be reused), and any other found by command line."""
    pids: set[int] = set()
    with contextlib.suppress(OSError, ValueError):
        pid = int(paths.pid_file.read_text().strip())
        if _names_config(proc / str(pid), paths.config):
            pids.add(pid)
    for entry in proc.iterdir():
        if entry.name.isdigit() and _names_config(entry, paths.config):
            pids.add(int(entry.name))
    pids.discard(os.getpid())
    return sorted(pids)


def _names_config(entry: Path, config: Path) -> bool:
    try:
        args = (entry / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return os.fsencode(str(config)) in args and any(a.endswith(b"bird") for a in args[:1])


def start(paths: BirdPaths, netns: str, config: str) -> None:
    """(Re)start the node's BIRD with ``config``: a BIRD left by an earlier run is stopped
    first, so the running one always has the config of this topology."""
    stop([paths])
    paths.socket_dir.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(config)
    paths.log_file.unlink(missing_ok=True)
    try:
        run(paths.argv(netns), timeout=10)
    except CommandError as err:
        raise ClusterError(f"BIRD did not start in {netns} with {paths.config}:\n{err}") from err


def stop(all_paths: Sequence[BirdPaths], timeout: float = 5.0) -> None:
    """Stop these BIRDs (SIGTERM, then SIGKILL after ``timeout``) and remove their pid
    files and sockets. BIRD withdraws the routes it wrote to the kernel as it exits."""
    found = [(pid, "bird") for p in all_paths for pid in running(p)]
    if found:
        cleanup.stop_processes(found, timeout)
    for p in all_paths:
        p.pid_file.unlink(missing_ok=True)
        p.socket.unlink(missing_ok=True)
