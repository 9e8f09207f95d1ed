"""Running one step's probe and judging it against ``expect``.

Every probe goes through the engine-neutral ``Cluster.probe`` (``ProbeSpec``), except two
things the probe API does not offer: ``read_file`` uses ``Cluster.exec`` (``cat`` inside the
pod), and an HTTPS request with ``tls`` verification from ``host`` is made by this process
itself, because ``host`` is where the runner runs (the machine outside the cluster).

Outcome words of the format map from :class:`~clusters.probing.Outcome`: CONNECTED ->
``connected``, REFUSED -> ``refused``, TIMEOUT -> ``timeout``, anything else -> ``error``
(which never satisfies an expectation). UNSUPPORTED makes the step not applicable, with the
engine's reason; it never passes.
"""

from __future__ import annotations

import fnmatch
import http.client
import socket
import ssl
import time
from base64 import b64decode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from clusters.engine import Capabilities, Cluster, find
from clusters.errors import ClusterError
from clusters.probing import Observation, Outcome, ProbeSpec, Source
from grader.conformance import readers
from grader.conformance.report import Check, Verdict

HTTP_TIMEOUT = 5.0
DNS_TIMEOUT = 2.0


class NotApplicable(Exception):
    """The probe cannot run on this cluster; the message says why."""


@dataclass
class Context:
    """What a probe needs: the cluster, its capabilities and the fixture's namespaces."""

    cluster: Cluster
    capabilities: Capabilities
    namespaces: tuple[str, ...]
    matrix: Callable[..., Any] | None = None  # grader.matrix.probe_matrix, injectable


def outcome_word(obs: Observation) -> str:
    return {Outcome.CONNECTED: "connected", Outcome.REFUSED: "refused",
            Outcome.TIMEOUT: "timeout", Outcome.UNSUPPORTED: "unsupported"}.get(obs.outcome, "error")


def source(text: str, cluster: Cluster | None = None) -> Source:
    """``host``, ``ns/pod``, or ``node-of ns/pod``: the node that runs that pod (its own
    network namespace, where kubelet's probes start). An engine that cannot probe from a
    node answers UNSUPPORTED, which makes the step not applicable."""
    text = str(text).strip()
    if text.startswith("node-of "):
        ns, sep, pod = text.removeprefix("node-of ").strip().partition("/")
        if not sep or cluster is None:
            raise ValueError(f"probe source {text!r}: expected node-of NS/POD")
        found = find(cluster, "Pod", ns, pod)
        node = (found[0].get("spec") or {}).get("nodeName") if found else None
        if not node:
            raise ValueError(f"probe source {text!r}: pod {ns}/{pod} does not exist or has "
                             "no node yet")
        return Source(node=node)
    if text == "host":
        return Source()
    ns, sep, pod = text.partition("/")
    if not sep:
        raise ValueError(f"probe source {text!r}: expected host, NS/POD or node-of NS/POD")
    return Source(ns, pod)


def probe(ctx: Context, spec: ProbeSpec) -> Observation:
    obs = ctx.cluster.probe(spec)
    if obs.outcome is Outcome.UNSUPPORTED:
        raise NotApplicable(f"the engine cannot run {spec.describe()}: {obs.detail}")
    return obs


def run(ctx: Context, kind: str, body: Mapping[str, Any], expect: Mapping[str, Any]) -> Verdict:
    """Run one resolved probe of ``kind`` and judge it."""
    from grader.conformance import requests  # the requests probe lives in its own module

    runners: dict[str, Callable[[Context, Mapping[str, Any], Mapping[str, Any]], Verdict]] = {
        "matrix": run_matrix, "requests": requests.run_requests, "http": run_http,
        "dns": run_dns, "read_file": run_read_file, "ingress_status": run_ingress_status,
    }
    try:
        return runners[kind](ctx, body, expect)
    except NotApplicable as err:
        return Verdict.na(str(err))


# ---- matrix ---------------------------------------------------------------------------------


def run_matrix(ctx: Context, body: Mapping[str, Any], expect: Mapping[str, Any]) -> Verdict:
    protocols = [str(p).upper() for p in body.get("protocols", ["TCP"])]
    if "SCTP" in protocols and not ctx.capabilities.sctp:
        raise NotApplicable("the cluster cannot carry SCTP (Capabilities.sctp is false)")
    from grader.matrix import matrix_pods, probe_matrix

    matrix: Callable[..., Any] = ctx.matrix or probe_matrix
    pods = matrix_pods(ctx.cluster, ctx.namespaces)
    try:
        result = matrix(ctx.cluster, pods, ports=[int(p) for p in body["ports"]],
                        protocols=protocols, via=list(body.get("via", ["pod-ip"])),
                        timeout=float(body.get("timeout_seconds", 1)), attempts=3)
    except ValueError as err:
        if "SCTP" in protocols:
            raise NotApplicable(f"the probe matrix cannot probe SCTP: {err}") from err
        return Verdict.failed(f"the matrix could not run: {err}")
    blocked = [(str(b["from"]), str(b["to"])) for b in expect.get("blocked", [])]
    wrong: list[str] = []
    judged = should_block = 0
    for cell in result.cells:
        if cell.outcome is None and cell.note == "self":
            continue
        if cell.outcome is Outcome.UNSUPPORTED:
            raise NotApplicable(f"the engine cannot probe {cell.protocol}: {cell.note}")
        must_block = any(fnmatch.fnmatchcase(cell.source, f) and fnmatch.fnmatchcase(cell.dest, t)
                         for f, t in blocked)
        judged += 1
        should_block += must_block
        seen = "not probed" + (f" ({cell.note})" if cell.note else "") if cell.outcome is None \
            else str(cell.outcome)
        if cell.outcome is Outcome.ERROR and cell.detail:
            seen += f" ({cell.detail})"  # a probe that broke says why: no silent ERRORs
        ok = cell.outcome is not None and (cell.blocked if must_block else cell.allowed)
        if not ok:
            wrong.append(f"{cell.source} -> {cell.dest} {cell.protocol}/{cell.port} via {cell.via} "
                         f"({cell.target}): expected {'blocked' if must_block else 'allowed'}, "
                         f"observed {seen}")
    shown = "; ".join(wrong[:12]) + (f"; ... {len(wrong) - 12} more" if len(wrong) > 12 else "")
    check = Check("blocked", not wrong,
                  f"{should_block} of {judged} cells blocked, the others allowed",
                  f"{len(wrong)} cell(s) differ: {shown}" if wrong else "as expected")
    return Verdict.of([check], {"matrix": result.to_dict()})


# ---- http -----------------------------------------------------------------------------------


def backend_of(body: str) -> str:
    """The Deployment behind a pod name: the body without its last two ``-`` segments."""
    return "-".join(body.strip().split("-")[:-2])


def run_http(ctx: Context, body: Mapping[str, Any], expect: Mapping[str, Any]) -> Verdict:
    url = urlsplit(str(body["url"]))
    src = source(body.get("from", "host"), ctx.cluster)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    method = str(body.get("method", "GET")).upper()
    header = body.get("host_header")
    data: dict[str, Any] = {"url": str(body["url"])}
    tls_checks: list[Check] = []
    if url.scheme == "https" or body.get("tls"):
        obs, tls_checks = _https(ctx, src, host, port, path, method, header, body.get("tls"))
    else:
        obs = probe(ctx, ProbeSpec(kind="http", source=src, target=host, port=port,
                                   timeout=HTTP_TIMEOUT, path=path, host_header=header,
                                   method=method))
    data["observation"] = obs.to_dict()
    got = obs.summary() + (f', body "{(obs.body or "").strip()[:80]}"' if obs.body else "")
    checks = list(tls_checks)
    for key, want in expect.items():
        if key == "status":
            checks.append(Check(key, obs.connected and obs.status == want, f"HTTP {want}", got))
        elif key == "backend":
            name = backend_of(obs.body or "") if obs.connected else ""
            checks.append(Check(key, obs.connected and name == want, f"served by {want}",
                                f"served by {name}" if name else got))
        elif key == "client_ip":
            text = (obs.body or "").strip()
            ip = text.rsplit(":", 1)[0].strip("[]") if ":" in text else ""
            checks.append(Check(key, obs.connected and ip == str(want), f"client IP {want}",
                                f"client IP {ip}" if ip else got))
    return Verdict.of(checks, data)


def _https(ctx: Context, src: Source, host: str, port: int, path: str, method: str,
           header: str | None, tls: Mapping[str, Any] | None) -> tuple[Observation, list[Check]]:
    if not src.is_host:
        raise NotApplicable("HTTPS with certificate checks runs only from `host`: the engine's "
                            "probe API has no TLS client inside pods")
    sni = str((tls or {}).get("sni") or header or host)
    context = ssl.create_default_context()
    expected_der: bytes | None = None
    if tls:
        ns, name = readers.split_ref(str(tls["verify_against"]).split(None, 1)[1], "secret")
        secret = readers.one(ctx.cluster, "Secret", ns, name)
        pem = b64decode((secret.get("data") or {}).get("tls.crt", "")).decode()
        expected_der = ssl.PEM_cert_to_DER_cert(pem)
        context = ssl.create_default_context(cadata=pem)
    else:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    started = time.monotonic()
    try:
        raw = socket.create_connection((host, port), timeout=HTTP_TIMEOUT)
    except OSError as err:
        outcome = Outcome.TIMEOUT if isinstance(err, TimeoutError) else (
            Outcome.REFUSED if isinstance(err, ConnectionRefusedError) else Outcome.ERROR)
        return Observation(outcome, str(err), elapsed=time.monotonic() - started), []
    checks: list[Check] = []
    try:
        with context.wrap_socket(raw, server_hostname=sni) as conn:
            der = conn.getpeercert(binary_form=True)
            if expected_der is not None:
                checks.append(Check("tls", der == expected_der,
                                    f"the certificate of {tls and tls['verify_against']}, "
                                    f"valid for {sni}", "that certificate" if der == expected_der
                                    else "a different certificate"))
            request = (f"{method} {path} HTTP/1.1\r\nHost: {header or host}\r\n"
                       "Connection: close\r\n\r\n")
            conn.sendall(request.encode())
            response = http.client.HTTPResponse(conn)
            response.begin()
            text = response.read().decode(errors="replace")
            return Observation(Outcome.CONNECTED, status=response.status, body=text,
                               peer=f"{host}:{port}", elapsed=time.monotonic() - started), checks
    except ssl.SSLError as err:
        expected = f"the certificate of {tls['verify_against']}, valid for {sni}" if tls \
            else "a TLS handshake"
        return (Observation(Outcome.ERROR, f"TLS: {err}", elapsed=time.monotonic() - started),
                [Check("tls", False, expected, f"TLS failed: {err}")])
    except OSError as err:
        return Observation(Outcome.ERROR, str(err), elapsed=time.monotonic() - started), checks


# ---- dns ------------------------------------------------------------------------------------


def _norm_name(value: Any) -> str:
    return str(value).lower().rstrip(".") + "."


def _record_key(qtype: str, data: Any) -> Any:
    if qtype in ("A", "AAAA"):
        return str(data)
    if qtype in ("PTR", "CNAME"):
        return _norm_name(data)
    return str(data)


def _srv_matches(want: Mapping[str, Any], got: Mapping[str, Any]) -> bool:
    if int(want["port"]) != int(got.get("port", -1)) \
            or _norm_name(want["target"]) != _norm_name(got.get("target", "")):
        return False
    return all(int(want[k]) == int(got.get(k, -1)) for k in ("priority", "weight") if k in want)


def run_dns(ctx: Context, body: Mapping[str, Any], expect: Mapping[str, Any]) -> Verdict:
    qtype: Any = str(body.get("type", "A"))
    transport: Any = str(body.get("transport", "udp"))
    spec = ProbeSpec(kind="dns", source=source(body["from"], ctx.cluster), target=str(body["name"]),
                     qtype=qtype, transport=transport, search=bool(body.get("search", False)),
                     timeout=DNS_TIMEOUT)
    obs = probe(ctx, spec)
    data = {"query": spec.describe(), "observation": obs.to_dict()}
    if not obs.connected:
        return Verdict.of([Check(k, False, _dns_expected(k, v, qtype), f"no answer: {obs.summary()}")
                           for k, v in expect.items()], data)
    rcode = str(obs.extra.get("rcode", ""))
    records = [r.get("data") for r in obs.extra.get("records", []) if r.get("type") == qtype]
    shown = ", ".join(_show(r) for r in records) or "no records"
    checks = []
    if "answers" in expect:
        want = list(expect["answers"])
        if not want:
            ok = not records and rcode in ("NOERROR", "NXDOMAIN")
        elif qtype == "SRV":
            ok = all(isinstance(w, Mapping) and any(
                isinstance(g, Mapping) and _srv_matches(w, g) for g in records) for w in want) \
                and all(isinstance(g, Mapping) and any(
                    isinstance(w, Mapping) and _srv_matches(w, g) for w in want) for g in records)
        else:
            ok = {_record_key(qtype, w) for w in want} == {_record_key(qtype, g) for g in records}
        checks.append(Check("answers", ok, _dns_expected("answers", want, qtype),
                            f"{qtype} {shown} (rcode {rcode})"))
    if "rcode" in expect:
        checks.append(Check("rcode", rcode == str(expect["rcode"]).upper(),
                            f"rcode {str(expect['rcode']).upper()}", f"rcode {rcode} ({shown})"))
    return Verdict.of(checks, data)


def _dns_expected(key: str, value: Any, qtype: str) -> str:
    if key == "rcode":
        return f"rcode {value}"
    if not value:
        return f"no {qtype} record (NOERROR or NXDOMAIN)"
    return f"{qtype} exactly " + ", ".join(_show(v) for v in value)


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


# ---- read_file ------------------------------------------------------------------------------


def _line(text: str) -> str:
    return " ".join(text.split())


def run_read_file(ctx: Context, body: Mapping[str, Any], expect: Mapping[str, Any]) -> Verdict:
    ns, pod = readers.split_ref(str(body["pod"]), "pod")
    path = str(body["path"])
    try:
        result = ctx.cluster.exec(ns, pod, ["cat", path], capture=True, timeout=10)
    except ClusterError as err:
        return Verdict.failed(f"cannot read {path} in {ns}/{pod}: {err}")
    if result.returncode != 0:
        return Verdict.failed(f"cat {path} in {ns}/{pod} exited {result.returncode}: "
                              f"{result.stderr.strip()}")
    content = result.stdout
    lines = [_line(x) for x in content.splitlines()]
    meaningful = [x for x in lines if x and not x.startswith("#")]
    shown = " | ".join(meaningful) or "(no lines)"
    listed = [_line(str(x)) for x in expect.get("lines_include", [])]
    checks = []
    if "lines_include" in expect:
        missing = [x for x in listed if x not in lines]
        checks.append(Check("lines_include", not missing, "lines " + " | ".join(listed),
                            f"missing {' | '.join(missing)}; file: {shown}" if missing else shown))
    if expect.get("no_other_lines"):
        extra = [x for x in meaningful if x not in listed]
        checks.append(Check("no_other_lines", not extra, "no other lines",
                            f"also {' | '.join(extra)}" if extra else "none"))
    if "equals" in expect:
        checks.append(Check("equals", content == str(expect["equals"]),
                            repr(str(expect["equals"])), repr(content)))
    return Verdict.of(checks, {"content": content})


# ---- ingress_status -------------------------------------------------------------------------


def run_ingress_status(ctx: Context, body: Mapping[str, Any],
                       expect: Mapping[str, Any]) -> Verdict:
    ns, name = str(body["namespace"]), str(body["name"])
    want = bool(expect.get("address_assigned", True))
    observe = float(body.get("observe_seconds", 10))

    def read() -> list[str]:
        found = find(ctx.cluster, "Ingress", ns, name)
        if not found:
            raise readers.Missing(f"Ingress {ns}/{name} does not exist")
        return readers.ingress_addresses(found[0])

    try:
        addresses = read()
        if not want:
            deadline = time.monotonic() + observe
            while not addresses and time.monotonic() < deadline:
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
                addresses = read()
    except readers.Missing as err:
        return Verdict.failed(str(err))
    shown = ", ".join(addresses) or "no address"
    expected = "an address in status.loadBalancer.ingress" if want else \
        f"no address for {observe:g}s"
    return Verdict.of([Check("address_assigned", bool(addresses) == want, expected, shown)],
                      {"addresses": addresses})
