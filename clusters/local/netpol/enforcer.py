"""Programs NetworkPolicy into every node of a local cluster, like a policy-enforcing CNI agent.

Each node is a network namespace with its own nftables ruleset. A sync renders every node's
table from the stored policies, pods and namespaces (:mod:`.nftables`), then writes the
nodes whose text changed since their last successful write, all in parallel, with one
``nft -f -`` per node entered through ``nsenter --net``. The script deletes and recreates
the table in one transaction, so a node is never seen half-programmed and a failing script
leaves the previous table in place.

Only pods that take part in pod networking count: scheduled (``spec.nodeName``), with an
address (``status.podIP``), not ``hostNetwork`` and not terminating (``deletionTimestamp``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from clusters.errors import CommandError
from clusters.local.netns import netns_path
from clusters.local.netpol.nftables import NodeScript, clear_script, render_nodes
from clusters.local.topology import NodePlan, Topology
from clusters.netpol.engine import PolicySet
from clusters.proc import run

__all__ = ["PolicyEnforcer", "PolicySyncStats", "considered_pod", "sctp_warnings"]

T = TypeVar("T")
# nft names the input and the position of a problem: "/dev/stdin:12:5-20: Error: ..."
_NFT_LINE = re.compile(r"^(?:/dev/stdin|-):(\d+):", re.MULTILINE)


@dataclass(frozen=True)
class PolicySyncStats:
    """What one sync did: nodes written, nodes left alone (unchanged), rules in all tables."""

    nodes_written: int
    nodes_skipped: int
    rules: int
    seconds: float


def considered_pod(pod: Mapping[str, Any]) -> bool:
    """Whether a Pod object takes part in policy: scheduled, addressed, pod network, alive."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    return bool(spec.get("nodeName") and (pod.get("status") or {}).get("podIP")
                and not spec.get("hostNetwork") and not meta.get("deletionTimestamp"))


def sctp_warnings(policy_obj: Mapping[str, Any]) -> list[str]:
    """Apply-time warnings for a NetworkPolicy naming SCTP ports: stored, but the local engine's
    kernel has no SCTP, so no SCTP traffic exists to allow or block."""
    meta = policy_obj.get("metadata") or {}
    ref = f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"
    spec = policy_obj.get("spec") or {}
    out: list[str] = []
    for direction in ("ingress", "egress"):
        for i, rule in enumerate(spec.get(direction) or []):
            for j, port in enumerate((rule or {}).get("ports") or []):
                if isinstance(port, Mapping) and port.get("protocol") == "SCTP":
                    what = f"port {port['port']}" if port.get("port") is not None else "every port"
                    out.append(
                        f"NetworkPolicy {ref}: spec.{direction}[{i}].ports[{j}] allows SCTP "
                        f"({what}), which is unsupported on the local engine: the kernel has no "
                        "SCTP. The policy is stored; SCTP probes answer UNSUPPORTED.")
    return out


class PolicyEnforcer:
    """Keeps every node of ``topo`` programmed with the cluster's NetworkPolicy. Thread-safe."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self._lock = threading.Lock()
        self._applied: dict[str, NodeScript] = {}

    # ---- helpers -----------------------------------------------------------------------------
    def _argv(self, node: NodePlan) -> list[str]:
        return ["nsenter", f"--net={netns_path(node.netns)}", "--", "nft", "-f", "-"]

    def _parallel(self, fn: Callable[[NodePlan], T], nodes: Sequence[NodePlan]) -> list[T]:
        if len(nodes) <= 1:
            return [fn(n) for n in nodes]
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            return list(pool.map(fn, nodes))

    def _load(self, node: NodePlan, text: str) -> None:
        """Feed ``text`` to nft in ``node``; CommandError names the node and the failing line."""
        argv = self._argv(node)
        res = run(argv, input=text, check=False)
        if res.ok:
            return
        message = (res.stderr or res.stdout).strip()
        lines = text.splitlines()
        reason = f"node {node.name}"
        m = _NFT_LINE.search(message)
        if m and 0 < int(m.group(1)) <= len(lines):
            reason += f"; nft input line {m.group(1)}: {lines[int(m.group(1)) - 1].strip()}"
        raise CommandError(argv, res.returncode, res.stdout, res.stderr, reason=reason)

    def _write(self, node: NodePlan, script: NodeScript) -> CommandError | None:
        try:
            self._load(node, script.text)
        except CommandError as err:
            return err
        return None

    # ---- public ----------------------------------------------------------------------------
    def sync(self, policies: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]],
             namespaces: Iterable[Mapping[str, Any]]) -> PolicySyncStats:
        """Program every node for ``policies`` over ``pods`` and ``namespaces`` (all of them).

        Nodes whose script is unchanged since their last successful write are skipped. Raises
        ``ValueError`` for a policy the engine cannot read, and :class:`CommandError` naming
        the node, the nft input line, the command and nft's output when a node refuses its
        script (the other nodes are still written; the failed one is retried next time).
        """
        started = time.monotonic()
        with self._lock:
            policyset = PolicySet.from_objects(
                list(policies), [p for p in pods if considered_pod(p)], list(namespaces))
            nodes = list(self.topo.nodes)
            scripts = render_nodes(policyset, [n.name for n in nodes], self.topo.cluster)
            todo = [n for n in nodes
                    if (old := self._applied.get(n.name)) is None
                    or old.text != scripts[n.name].text]
            errors = self._parallel(lambda n: self._write(n, scripts[n.name]), todo)
            failed: CommandError | None = None
            for node, err in zip(todo, errors, strict=True):
                if err is None:
                    self._applied[node.name] = scripts[node.name]
                else:
                    self._applied.pop(node.name, None)
                    failed = failed or err
            if failed is not None:
                raise failed
        return PolicySyncStats(nodes_written=len(todo), nodes_skipped=len(nodes) - len(todo),
                               rules=sum(s.rules for s in scripts.values()),
                               seconds=time.monotonic() - started)

    def applied(self, node: str) -> str | None:
        """The script last written to ``node`` (None before its first successful write)."""
        with self._lock:
            script = self._applied.get(node)
            return script.text if script else None

    def clear(self) -> None:
        """Delete the policy table in every node that still exists (absent tables are fine)."""
        with self._lock:
            live = [n for n in self.topo.nodes if netns_path(n.netns).exists()]
            self._parallel(lambda n: self._load(n, clear_script()), live)
            self._applied.clear()

