"""``lab probe``: the probes the grader runs, by hand, from a pod or from the host.

``tcp``, ``udp``, ``http`` and ``dns`` run one probe and print one line (plus the HTTP body
or the DNS answer); ``matrix`` probes every pod from every other pod and prints truth
tables. Exit codes: 0 when the probe connected (dns: a NOERROR response with at least one
answer record), 1 otherwise (or when the cluster failed), 2 for bad input. A matrix run
exits 0 once it ran: its table is the result; with ``--expect`` it also computes what the
cluster's NetworkPolicies allow and exits 1 when some probed cell differs from that.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
import yaml

from clusters.engine import Cluster, find
from clusters.errors import ClusterError, ObjectNotFound
from clusters.probing import DNS_TYPES, Observation, ProbeSpec, Source
from grader.dns import record_text
from grader.fixtures import Workspace as ManifestFolder
from grader.matrix import VIAS, check_ports, check_via, matrix_pods, normalise_protocols, probe_matrix
from grader.policy import expect_vs_observe, policy_set, workspace_sources
from labs.catalogue import LabDefinitionError, UnknownLab
from labs.cli.ui import note, print_json
from labs.session import Session

F = TypeVar("F", bound=Callable[..., Any])

#: Namespaces ``lab probe matrix`` leaves out unless named: the cluster's own machinery.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease",
                               "local-path-storage", "ingress-nginx", "tigera-operator",
                               "calico-apiserver"})
BODY_LINES = 20
BODY_CHARS = 2000


def common(func: F) -> F:
    """The options every probe takes: where the cluster is, how long to wait, JSON."""
    for option in reversed((
        click.option("--timeout", type=click.FloatRange(min=0.05, max=60), default=2.0,
                     show_default=True, help="Seconds to wait for an answer."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
        click.option("--engine", default=None, help="Engine (default: the one `lab start` used)."),
        click.option("--cluster", "cluster_name", default=None,
                     help="Cluster name (default: current)."),
    )):
        func = option(func)
    return func


from_opt = click.option("--from", "source", required=True, metavar="NS/POD|host",
                        help="Where the probe starts: a pod (NS/POD; POD alone means "
                             "namespace default) or host (outside the cluster).")


@click.group("probe")
def probe() -> None:
    """Probe connectivity like the grader does: tcp, udp, http, dns, matrix.

    \b
    Examples:
      lab probe tcp --from lab01/client 10.244.2.3:8080
      lab probe tcp --from lab01/client lab01/server:8080
      lab probe http --from host 172.30.0.2:30080/hostname
      lab probe dns --from lab02/client web.lab02.svc.cluster.local
      lab probe matrix --namespaces lab02 --ports 80 --via pod-ip,service-ip
      lab probe matrix --namespaces lab04 --ports 8080,5432 --expect

    Exit code: 0 connected (dns: answered), 1 not, 2 bad input; matrix: 0 once it
    ran (with --expect: 1 when a cell differs from what the policies say).
    """


# --------------------------------------------------------------------------- tcp / udp / http


@probe.command("tcp")
@from_opt
@click.argument("target", metavar="HOST:PORT")
@common
def tcp_cmd(source: str, target: str, timeout: float, as_json: bool, engine: str | None,
            cluster_name: str | None) -> None:
    """Open a TCP connection; CONNECTED once the handshake completes.

    HOST is an IP, a name the source resolves, or NS/POD for that pod's IP.
    """
    _stream("tcp", source, target, timeout, as_json, engine, cluster_name)


@probe.command("udp")
@from_opt
@click.argument("target", metavar="HOST:PORT")
@click.option("--payload", default="hostname", show_default=True, help="The datagram to send.")
@common
def udp_cmd(source: str, target: str, payload: str, timeout: float, as_json: bool,
            engine: str | None, cluster_name: str | None) -> None:
    """Send a UDP datagram; CONNECTED when a reply comes back.

    HOST is an IP, a name the source resolves, or NS/POD for that pod's IP.
    """
    _stream("udp", source, target, timeout, as_json, engine, cluster_name, payload=payload)


def _stream(kind: str, source: str, target: str, timeout: float, as_json: bool,
            engine: str | None, cluster_name: str | None, payload: str = "hostname") -> None:
    host, port = split_host_port(target)
    cluster = Session(engine, cluster_name).cluster()
    src = resolve_source(cluster, source)
    spec = ProbeSpec(kind=kind, source=src, target=pod_ip(cluster, host),  # type: ignore[arg-type]
                     port=port, timeout=timeout, payload=payload)
    _finish(spec, cluster.probe(spec), as_json)


@probe.command("http")
@from_opt
@click.argument("url", metavar="URL|HOST[:PORT][/PATH]")
@click.option("--host-header", default=None, help="Send this Host header.")
@click.option("--method", type=click.Choice(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS",
                                             "PATCH"], case_sensitive=False), default="GET",
              show_default=True)
@common
def http_cmd(source: str, url: str, host_header: str | None, method: str, timeout: float,
             as_json: bool, engine: str | None, cluster_name: str | None) -> None:
    """Send one HTTP request and show the status and the start of the body."""
    host, port, path = split_url(url)
    cluster = Session(engine, cluster_name).cluster()
    src = resolve_source(cluster, source)
    spec = ProbeSpec(kind="http", source=src, target=host, port=port, path=path,
                     host_header=host_header, method=method.upper(), timeout=timeout)
    _finish(spec, cluster.probe(spec), as_json)


@probe.command("dns")
@from_opt
@click.argument("name")
@click.option("--type", "qtype", type=click.Choice(DNS_TYPES, case_sensitive=False),
              default="A", show_default=True, help="The record type to ask for.")
@click.option("--tcp", "use_tcp", is_flag=True, help="Query over TCP instead of UDP.")
@click.option("--search", is_flag=True,
              help="Expand NAME with the pod's search list and ndots, as its resolver would.")
@click.option("--server", default=None, metavar="IP",
              help="Ask this server (default: the source pod's nameserver).")
@common
def dns_cmd(source: str, name: str, qtype: str, use_tcp: bool, search: bool,
            server: str | None, timeout: float, as_json: bool, engine: str | None,
            cluster_name: str | None) -> None:
    """Ask a DNS question from the source's network; print the answer like dig."""
    if server is not None:
        try:
            ipaddress.ip_address(server)
        except ValueError as err:
            raise click.UsageError(f"--server {server!r}: give an IP address") from err
    if not name.strip() or ".." in name or len(name.rstrip(".")) > 253:
        raise click.UsageError(f"{name!r} is not a DNS name")
    cluster = Session(engine, cluster_name).cluster()
    src = resolve_source(cluster, source)
    spec = ProbeSpec(kind="dns", source=src, target=name.strip(), timeout=timeout,
                     qtype=qtype.upper(),  # type: ignore[arg-type]
                     transport="tcp" if use_tcp else "udp", search=search, dns_server=server)
    _finish(spec, cluster.probe(spec), as_json)


# --------------------------------------------------------------------------- parsing input


def split_host_port(text: str) -> tuple[str, int]:
    """``10.0.0.1:80``, ``name:80``, ``[fd00::1]:80``, ``ns/pod:80``; UsageError otherwise."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep:
            port_text = ""
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text:
        raise click.UsageError(f"{text!r}: give the target as HOST:PORT (e.g. 10.244.1.5:8080)")
    return host, parse_port(port_text, text)


def parse_port(text: str, where: str = "") -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise click.UsageError(f"port {text!r}{f' in {where!r}' if where else ''}: "
                               "a port is a number from 1 to 65535")
    return int(text)


def split_url(text: str) -> tuple[str, int, str]:
    """(host, port, path) of ``http://host[:port]/path`` or ``host[:port][/path]``."""
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    if parts.scheme != "http":
        raise click.UsageError(f"{text!r}: only http:// can be probed")
    try:
        port = parts.port or 80
    except ValueError as err:
        raise click.UsageError(f"{text!r}: a port is a number from 1 to 65535") from err
    if not parts.hostname:
        raise click.UsageError(f"{text!r}: no host; give http://HOST[:PORT]/PATH")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, path


def _pods_in(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    try:
        return cluster.get("Pod", namespace)
    except ObjectNotFound:
        return []


def _find_pod(cluster: Cluster, namespace: str, name: str, role: str) -> dict[str, Any]:
    found = find(cluster, "Pod", namespace, name)
    if found:
        return found[0]
    names = sorted(p["metadata"]["name"] for p in _pods_in(cluster, namespace))
    there = f"pods there: {', '.join(names)}" if names else f"namespace {namespace} has no pods"
    raise click.UsageError(f"{role}: no pod {namespace}/{name} ({there})")


def resolve_source(cluster: Cluster, text: str) -> Source:
    """``host`` or an existing pod; UsageError naming the pods there when it does not exist."""
    src = Source.parse(text)
    if src.pod is None:
        return src
    if not src.pod or not src.namespace:
        raise click.UsageError(f"--from {text!r}: give NS/POD or host")
    _find_pod(cluster, src.namespace, src.pod, f"--from {text}")
    return src


def pod_ip(cluster: Cluster, host: str) -> str:
    """An IP or name as given; ``NS/POD`` as that pod's IP."""
    if "/" not in host:
        return host
    namespace, _, name = host.rpartition("/")
    pod = _find_pod(cluster, namespace or "default", name, f"target {host}")
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        raise click.UsageError(f"target {host}: the pod has no IP yet "
                               f"(phase {(pod.get('status') or {}).get('phase', 'unknown')})")
    return str(ip)


# --------------------------------------------------------------------------- output


def succeeded(spec: ProbeSpec, obs: Observation) -> bool:
    """Connected; for DNS, a NOERROR response with at least one answer record."""
    if spec.kind != "dns":
        return obs.connected
    return obs.connected and obs.extra.get("rcode") == "NOERROR" and bool(obs.extra.get("records"))


def spec_dict(spec: ProbeSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": spec.kind, "source": str(spec.source),
                            "target": spec.target, "port": spec.port, "timeout": spec.timeout}
    if spec.kind == "http":
        data.update(path=spec.path, method=spec.method, host_header=spec.host_header)
    elif spec.kind == "udp":
        data["payload"] = spec.payload
    elif spec.kind == "dns":
        data.update(type=spec.qtype, transport=spec.transport, search=spec.search,
                    server=spec.dns_server)
    return data


def _elapsed(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def describe(spec: ProbeSpec, obs: Observation) -> list[str]:
    """The human lines: the outcome line, then the HTTP body or the DNS answer section."""
    head = obs.outcome.value
    if spec.kind == "dns" and obs.connected:
        head = str(obs.extra.get("rcode") or "no rcode")
    elif obs.status is not None:
        head += f" HTTP {obs.status}"
    facts = []
    if obs.detail:
        facts.append(obs.detail)
    if obs.peer and obs.peer not in (spec.target, f"{spec.target}:{spec.port}"):
        facts.append(f"peer {obs.peer}")
    facts.append(_elapsed(obs.elapsed))
    lines = [f"{head}  {spec.describe()}  ({'; '.join(facts)})"]
    if spec.kind == "dns" and obs.connected:
        lines.extend(answer_section(obs))
    elif obs.connected and obs.body:
        lines.extend(_body(obs.body))
    return lines


def answer_section(obs: Observation) -> list[str]:
    records = obs.extra.get("records") or []
    qname = obs.extra.get("qname")
    if not records:
        return [f";; no answer records{f' for {qname}' if qname else ''}"]
    rows = [(str(r.get("name", "")), str(r.get("ttl", "")), "IN", str(r.get("type", "")),
             record_text(r)) for r in records]
    width = max(len(r[0]) for r in rows)
    lines = [f";; ANSWER SECTION{f' ({qname})' if qname else ''}:"]
    lines += [f"{n.ljust(width)}  {ttl:>5}  {cls}  {kind:<5}  {data}".rstrip()
              for n, ttl, cls, kind, data in rows]
    return lines


def _body(body: str) -> list[str]:
    text = body[:BODY_CHARS]
    lines = text.splitlines()
    shown = [f"  | {line}" for line in lines[:BODY_LINES]]
    if len(lines) > BODY_LINES or len(body) > BODY_CHARS:
        shown.append(f"  | ... ({len(body)} characters in all)")
    return shown


def _finish(spec: ProbeSpec, obs: Observation, as_json: bool) -> None:
    ok = succeeded(spec, obs)
    if as_json:
        print_json({"probe": spec_dict(spec), "observation": obs.to_dict(), "ok": ok})
    else:
        for line in describe(spec, obs):
            click.echo(line)
    sys.exit(0 if ok else 1)


# --------------------------------------------------------------------------- matrix


def _list(values: Iterable[str]) -> list[str]:
    """Repeatable options that also take comma lists: ``--via a --via b,c``."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@probe.command("matrix")
@click.option("--namespaces", "-n", "namespaces", multiple=True, metavar="NS[,NS...]",
              help="Namespaces whose pods take part (default: the started lab's, else every "
                   "namespace with pods outside the system ones).")
@click.option("--ports", "-p", "ports", multiple=True, metavar="PORT[,PORT...]",
              help="Ports to probe (default: the container ports the pods declare).")
@click.option("--protocols", multiple=True, metavar="tcp|udp", help="tcp (default), udp, or both.")
@click.option("--via", multiple=True, metavar="|".join(VIAS),
              help="Dial the pod IP (default), its Service's ClusterIP, or its Service's DNS "
                   "name; repeatable or a comma list.")
@click.option("--attempts", type=click.IntRange(1, 10), default=3, show_default=True,
              help="Tries per cell; a cell is blocked only when all fail.")
@click.option("--details", is_flag=True, help="Also list each cell that did not connect.")
@click.option("--expect", "expect", is_flag=True,
              help="Also show what the cluster's NetworkPolicies allow (expected) and explain "
                   "each cell that differs; exit 1 when some do.")
@click.option("--timeout", type=click.FloatRange(min=0.05, max=30), default=1.0,
              show_default=True, help="Seconds per attempt.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--engine", default=None, help="Engine (default: the one `lab start` used).")
@click.option("--cluster", "cluster_name", default=None, help="Cluster name (default: current).")
def matrix_cmd(namespaces: tuple[str, ...], ports: tuple[str, ...], protocols: tuple[str, ...],
               via: tuple[str, ...], attempts: int, details: bool, expect: bool, timeout: float,
               as_json: bool, engine: str | None, cluster_name: str | None) -> None:
    """Probe every pod from every other pod and print truth tables.

    \b
    One table per port, protocol and via: rows are sources, columns destinations.
    . connected   X blocked (every attempt REFUSED or TIMEOUT)   - self
    U unreachable   D name did not resolve   E error   S unsupported   ~ not probed

    \b
    With --expect: the expected tables (from the NetworkPolicies), the observed ones,
    and each differing cell with the rule that allows it or why none does.
    o in an expected table: allowed by policy, port closed (REFUSED: nothing listens
    there), which is not a difference. Through a Service, a cell is judged on the pod
    port the Service sends to. Exit code 1 when a probed cell differs.
    """
    try:
        proto_list = normalise_protocols(_list(protocols) or ["tcp"])
        via_list = check_via(_list(via) or ["pod-ip"])
        port_list = check_ports([parse_port(p) for p in _list(ports)])
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    session = Session(engine, cluster_name)
    cluster = session.cluster()
    chosen, why = choose_namespaces(session, cluster, _list(namespaces))
    pods = matrix_pods(cluster, chosen)
    if not pods:
        message = f"no running pods with an IP in {', '.join(chosen) or 'any namespace'}"
        raise click.UsageError(message) if namespaces else click.ClickException(message)
    if not port_list:
        port_list = declared_ports(cluster, chosen, proto_list)
        if not port_list:
            raise click.UsageError("the pods declare no container ports: give --ports")
    if not as_json:
        note(f"{len(pods)} pods in {', '.join(chosen)} ({why}); ports "
             f"{', '.join(map(str, port_list))}; {', '.join(proto_list)}; via {', '.join(via_list)}")
    policies = None
    if expect:  # the policies in force while probing
        try:
            policies = policy_set(cluster, lab_sources(session))
        except ValueError as err:
            raise click.ClickException(f"cannot judge the NetworkPolicies: {err}") from err
    result = probe_matrix(cluster, pods, ports=port_list, protocols=proto_list, via=via_list,
                          timeout=timeout, attempts=attempts)
    if policies is not None:
        compared = expect_vs_observe(policies, result)
        if as_json:
            print_json(compared.to_dict())
        else:
            click.echo(compared.render(details=details), nl=False)
        sys.exit(1 if compared.differences else 0)
    if as_json:
        print_json(result.to_dict())
    else:
        click.echo(result.render(details=details), nl=False)


def lab_sources(session: Session) -> dict[str, str]:
    """``"ns/name"`` -> file of each NetworkPolicy in the started lab's workspace, so the
    explanations can name files; empty when no lab is started or its files cannot be read."""
    lab_id = session.progress.current_lab()
    if not lab_id:
        return {}
    try:
        folder = session.workspace.lab_dir(session.catalogue.get(lab_id))
        if not folder.is_dir():
            return {}
        return workspace_sources(ManifestFolder.load(folder))
    except (UnknownLab, LabDefinitionError, OSError, UnicodeDecodeError, yaml.YAMLError,
            ClusterError):
        return {}


def choose_namespaces(session: Session, cluster: Cluster,
                      given: Sequence[str]) -> tuple[list[str], str]:
    """The namespaces asked for, else the started lab's (when they have pods), else every
    non-system namespace with pods; and why, for the note line."""
    if given:
        return list(dict.fromkeys(given)), "as asked"
    lab_id = session.progress.current_lab()
    if lab_id:
        try:
            lab = session.catalogue.get(lab_id)
        except (UnknownLab, LabDefinitionError):  # no longer in the catalogue: fall through
            lab = None
        if lab is not None and matrix_pods(cluster, lab.namespaces):
            return list(lab.namespaces), f"lab {lab.id}"
    found = sorted({str(p["metadata"].get("namespace") or "default")
                    for p in cluster.get("Pod", None)})
    return [ns for ns in found if not _is_system(ns)], "every namespace with pods"


def _is_system(namespace: str) -> bool:
    return namespace in SYSTEM_NAMESPACES or namespace.endswith("-system")


def declared_ports(cluster: Cluster, namespaces: Sequence[str], protocols: Sequence[str]) -> list[int]:
    """The containerPorts the pods in ``namespaces`` declare with one of ``protocols``."""
    found: set[int] = set()
    for ns in namespaces:
        for pod in cluster.get("Pod", ns):
            for container in (pod.get("spec") or {}).get("containers") or ():
                for entry in container.get("ports") or ():
                    proto = str(entry.get("protocol") or "TCP").upper()
                    if proto in protocols and isinstance(entry.get("containerPort"), int):
                        found.add(int(entry["containerPort"]))
    return sorted(found)


COMMANDS = [probe]
