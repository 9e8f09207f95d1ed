"""The ``requests`` probe: a batch of sequential requests, each on a new connection.

``to`` takes three forms:

- ``ADDRESS:PORT`` (an IP literal, placeholders already resolved): dialled as is;
- ``SERVICE.NAMESPACE[:PORT]``: before *every* request the name
  ``SERVICE.NAMESPACE.svc.cluster.local.`` is resolved through the cluster DNS from the
  probe's source (an engine ``dns`` probe, as the application would) and the first address
  is dialled; the port defaults to the Service's first port;
- ``http://...`` (``protocol: http`` only): the URL, the name in it resolved by the engine.

Each request is one engine probe (``tcp``: one connection attempt; ``http``: one GET of
``/hostname`` unless a URL gives the path), so each has its own connection and source port.
The *backend identity* of a request is its response body (HTTP) or greeting (TCP), trimmed.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from clusters.probing import Observation, Outcome, ProbeSpec, Source
from grader.conformance import readers
from grader.conformance.probes import DNS_TIMEOUT, Context, outcome_word, probe, source
from grader.conformance.report import Check, Verdict


@dataclass(frozen=True)
class Attempt:
    """One request as observed."""

    outcome: str  # connected | refused | timeout | error
    ok: bool  # succeeded (tcp: connected; http: status 200)
    identity: str  # backend identity ("" when none)
    dialed: str  # the address dialled, before any NAT
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "ok": self.ok, "backend": self.identity,
                "dialed": self.dialed, "detail": self.detail}


@dataclass(frozen=True)
class Target:
    host: str  # an IP literal, a Service name (``svc.ns``) or a URL's host
    port: int | None
    path: str = "/hostname"
    service: tuple[str, str] | None = None  # (namespace, name) when resolved per request


def parse_target(to: str, protocol: str) -> Target:
    """``to`` as a :class:`Target` (see the module docstring for the forms)."""
    text = str(to).strip()
    if text.startswith(("http://", "https://")):
        url = urlsplit(text)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"requests to {text!r}: only http:// URLs are supported")
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        return Target(url.hostname, url.port or 80, path)
    host, sep, port = text.rpartition(":")
    if not sep or (":" in host.strip("[]") and not host.startswith("[")):
        host, port = text, ""
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        name, dot, ns = host.partition(".")
        if not dot or not name or not ns or "." in ns:
            raise ValueError(f"requests to {text!r}: expected ADDRESS:PORT, SERVICE.NAMESPACE"
                             "[:PORT] or an http:// URL") from None
        return Target(host, int(port) if port else None, service=(ns, name))
    if not port:
        raise ValueError(f"requests to {text!r}: an address needs a port (ADDRESS:PORT)")
    return Target(host, int(port))


def _peer_ip(peer: str | None) -> str:
    if not peer:
        return ""
    if peer.startswith("["):
        return peer[1:].partition("]")[0]
    return peer.rpartition(":")[0] if peer.count(":") == 1 else peer


def _resolve(ctx: Context, src: Source, target: Target) -> tuple[str, str]:
    """(address, "") for the next request, or ("", why it did not resolve)."""
    assert target.service is not None
    ns, name = target.service
    qname = f"{name}.{ns}.svc.cluster.local."
    obs = probe(ctx, ProbeSpec(kind="dns", source=src, target=qname, qtype="A",
                               timeout=DNS_TIMEOUT))
    if not obs.connected:
        return "", f"resolving {qname}: {obs.summary()}"
    addresses = [r.get("data") for r in obs.extra.get("records", []) if r.get("type") == "A"]
    if not addresses:
        return "", f"resolving {qname}: no A record (rcode {obs.extra.get('rcode', '?')})"
    return str(addresses[0]), ""


def send(ctx: Context, body: Mapping[str, Any]) -> list[Attempt]:
    """Send the batch, one request after another."""
    src = source(body["from"], ctx.cluster)
    protocol = str(body["protocol"])
    target = parse_target(str(body["to"]), protocol)
    timeout = float(body.get("timeout_seconds", 2))
    port = target.port
    if target.service is not None and port is None:
        ports = (readers.service(ctx.cluster, "/".join(target.service)).get("spec") or {}) \
            .get("ports") or []
        if not ports:
            raise readers.Missing(f"Service {'/'.join(target.service)} has no ports")
        port = int(ports[0]["port"])
    attempts = []
    for _ in range(int(body["count"])):
        address = target.host
        if target.service is not None:
            address, why = _resolve(ctx, src, target)
            if not address:
                attempts.append(Attempt("error", False, "", "", why))
                continue
        spec = ProbeSpec(kind="http" if protocol == "http" else "tcp", source=src, target=address,
                         port=port, timeout=timeout, path=target.path,
                         host_header=body.get("host_header"))
        attempts.append(_attempt(probe(ctx, spec), address))
    return attempts


def _attempt(obs: Observation, address: str) -> Attempt:
    word = outcome_word(obs)
    dialed = _peer_ip(obs.peer) or address
    if obs.outcome is not Outcome.CONNECTED:
        return Attempt(word, False, "", dialed, obs.summary())
    ok = obs.status is None or obs.status == 200
    return Attempt(word, ok, (obs.body or "").strip() if ok else "", dialed,
                   "" if ok else obs.summary())


def run_requests(ctx: Context, body: Mapping[str, Any], expect: Mapping[str, Any]) -> Verdict:
    try:
        attempts = send(ctx, body)
    except (readers.Missing, ValueError) as err:
        return Verdict.failed(str(err))
    data: dict[str, Any] = {"attempts": [a.to_dict() for a in attempts]}
    return Verdict.of(judge(ctx, attempts, expect), data)


def _failures(attempts: list[Attempt]) -> str:
    counts = Counter(a.detail or a.outcome for a in attempts if not a.ok)
    return "; ".join(f"{n}x {what}" for what, n in counts.most_common(4))


def judge(ctx: Context, attempts: list[Attempt], expect: Mapping[str, Any]) -> list[Check]:
    """Each expect key of a ``requests`` probe, judged on the attempts."""
    count = len(attempts)
    succeeded = sum(a.ok for a in attempts)
    backends = Counter(a.identity for a in attempts if a.ok and a.identity)
    spread = ", ".join(f"{b} ({n})" for b, n in sorted(backends.items())) or "none"
    checks = []
    for key, want in expect.items():
        if key == "all_succeed":
            ok = (succeeded == count) == bool(want)
            got = f"{succeeded}/{count} succeeded" + (
                f"; failures: {_failures(attempts)}" if succeeded < count else "")
            checks.append(Check(key, ok, f"all {count} succeed" if want else "not all succeed",
                                got))
        elif key == "outcome":
            allowed = {str(w).lower() for w in (want if isinstance(want, list) else [want])}
            allowed.discard("error")  # an error never satisfies an expectation
            seen = Counter(a.outcome for a in attempts)
            ok = bool(attempts) and all(a.outcome in allowed for a in attempts)
            got = ", ".join(f"{n}x {o}" for o, n in seen.most_common())
            bad = [a.detail for a in attempts if a.outcome not in allowed and a.detail]
            checks.append(Check(key, ok, "every request " + " or ".join(sorted(allowed)),
                                got + (f" ({bad[0]})" if bad else "")))
        elif key == "distinct_backends":
            low, high = want.get("min"), want.get("max")
            n = len(backends)
            ok = (low is None or n >= int(low)) and (high is None or n <= int(high))
            checks.append(Check(key, ok, f"{low if low is not None else 0}..{high or 'any'} "
                                         "distinct backends", f"{n}: {spread}"))
        elif key == "share_each":
            approx, tol = float(want["approx"]), float(want["tolerance"])
            shares = {b: n / count for b, n in backends.items()} if count else {}
            ok = bool(shares) and all(abs(s - approx) <= tol for s in shares.values())
            got = ", ".join(f"{b} {s:.3f}" for b, s in sorted(shares.items())) or "no backend"
            checks.append(Check(key, ok, f"each backend {approx:g} +/- {tol:g} of {count}", got))
        elif key == "backends_equal_ready_pods":
            pods = readers.ready_pods(ctx.cluster, str(want["namespace"]), str(want["selector"]))
            names = {str(readers.meta(p).get("name")) for p in pods}
            ok = set(backends) == names
            checks.append(Check(key, ok, "backends = ready pods " + (", ".join(sorted(names))
                                                                    or "(none)"),
                                "backends " + (", ".join(sorted(backends)) or "(none)")))
        elif key == "dialed_address_in":
            allowed_ips = {str(w) for w in want}
            dialed = Counter(a.dialed for a in attempts)
            outside = [d for d in dialed if d not in allowed_ips]
            ok = bool(attempts) and not outside
            checks.append(Check(key, ok, "dialled only " + ", ".join(sorted(allowed_ips)),
                                "dialled " + ", ".join(f"{d or '(nothing)'} ({n})"
                                                       for d, n in dialed.most_common())))
    return checks
