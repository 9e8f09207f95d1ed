"""DNS checks: what a DNS probe should answer, and a finding that says why it did not.

A DNS probe (``ProbeSpec(kind="dns")``) is CONNECTED whenever a response arrived, whatever
its rcode; what a check cares about is the rcode and the answer records. :class:`DnsWant`
adds those to a :class:`~grader.settle.Want`, so :func:`~grader.settle.settle` re-queries
until the answer is the expected one (a Service created a moment ago, an endpoint becoming
ready) and confirms it::

    expect_dns(probe, "lab02/client", "web.lab02.svc.cluster.local", answers=["10.96.0.7"])
    expect_dns(probe, "lab02/client", "nope.lab02.svc.cluster.local", rcode="NXDOMAIN")
    expect_dns(probe, "lab02/client", "_http._tcp.web.lab02.svc.cluster.local", "SRV",
               answers=["0 100 80 web.lab02.svc.cluster.local."], subset=True)

Answers are compared as text, case-insensitively, only for records of the asked type
(the CNAME hops of an A lookup are not answers): an address for A/AAAA, a name with a
trailing dot for PTR/CNAME (a name given without it matches too), the text for TXT, and
``"PRIORITY WEIGHT PORT TARGET."`` for SRV.

Hint keys, in the order a mismatch is explained: the outcome name when no response came
(``TIMEOUT``, ``REFUSED``, ...), then the response's rcode (``NXDOMAIN``, ``SERVFAIL``;
``RCODE_REFUSED`` for a DNS REFUSED so it is not taken for a refused connection), then
``NODATA`` (NOERROR without records of that type) or ``ANSWERS`` (other records).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clusters.probing import Observation, Outcome
from grader.expectations import CheckFailed, Finding, Hints, pick_hint
from grader.settle import Settled, Want

if TYPE_CHECKING:
    from grader.fixtures import PodRef, Prober

RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
          "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE")

DNS_HINTS: dict[str, str] = {
    "TIMEOUT": "No DNS response came back: the source cannot reach the DNS server (the "
               "kube-dns Service at its ClusterIP, or the coredns pods behind it). Is a "
               "NetworkPolicy dropping port 53 (UDP and TCP)? Are the coredns pods running?",
    "REFUSED": "The DNS server's port refused the query: nothing listens on port 53 there, "
               "or the kube-dns Service has no ready endpoints.",
    "UNREACHABLE": "There is no route from the source to the DNS server.",
    "ERROR": "The query could not be sent; the detail says why (a missing source pod, a "
             "malformed name).",
    "UNSUPPORTED": "This cluster cannot run DNS probes; the lab needs another engine.",
    "NXDOMAIN": "The name does not exist: no Service by that name in that namespace "
                "(check `lab get svc -n NAMESPACE`), a typo, or a pod record that needs "
                "hostname and subdomain set.",
    "SERVFAIL": "The DNS server failed to answer this name (a broken upstream or a name it "
                "cannot serve).",
    "RCODE_REFUSED": "The DNS server refused to answer this name: it is not one it serves.",
    "FORMERR": "The DNS server could not read the query: the name is malformed.",
    "NODATA": "The name exists but has no records of this type: a headless Service with no "
              "ready endpoints, a Service without named ports (SRV), or AAAA in an IPv4 "
              "cluster.",
    "ANSWERS": "The name resolved, but to other records than expected: check the Service's "
               "selector, its ports and which pods are ready (`lab get endpointslices`).",
    "UNSTABLE": "The answer changed between queries: endpoints or Services were still "
                "changing, or two DNS servers disagree.",
}


def record_text(record: Mapping[str, Any]) -> str:
    """One record's data as text: ``10.96.0.7``, ``web.ns.svc.cluster.local.``,
    ``0 100 80 web.ns.svc.cluster.local.`` (SRV)."""
    data = record.get("data")
    if isinstance(data, Mapping):
        return (f"{data.get('priority', 0)} {data.get('weight', 0)} {data.get('port', 0)} "
                f"{data.get('target', '')}")
    return str(data)


def _norm(text: str) -> str:
    """Names match with or without their trailing dot, in any case."""
    return text.strip().lower().rstrip(".")


def rcode_of(obs: Observation) -> str | None:
    return str(obs.extra["rcode"]) if obs.connected and "rcode" in obs.extra else None


def answers_of(obs: Observation, qtype: str) -> list[str]:
    """The data of the records of type ``qtype`` in the response."""
    return [record_text(r) for r in obs.extra.get("records") or ()
            if str(r.get("type", "")).upper() == qtype.upper()]


@dataclass(frozen=True)
class DnsWant(Want):
    """A :class:`Want` for DNS: a response (CONNECTED) with this ``rcode`` and/or ``answers``."""

    qtype: str = "A"
    rcode: str | None = None
    answers: frozenset[str] | None = None
    subset: bool = False  # the answers must include ``answers`` (others may come too)

    @classmethod
    def for_query(cls, qtype: str = "A", rcode: str | None = None,
                  answers: Iterable[str] | None = None, subset: bool = False) -> DnsWant:
        if rcode is not None and rcode.upper() not in RCODES:
            raise ValueError(f"rcode {rcode!r}: use one of {', '.join(RCODES)}")
        wanted = None if answers is None else frozenset(str(a).strip() for a in answers)
        if wanted is not None and rcode is None:
            rcode = "NOERROR"
        return cls(frozenset({Outcome.CONNECTED}), qtype=qtype.upper(),
                   rcode=rcode.upper() if rcode else None, answers=wanted, subset=subset)

    def matches(self, obs: Observation) -> bool:
        return Want.matches(self, obs) and not self._dns_mismatch(obs)

    def mismatch(self, obs: Observation) -> str:
        if obs.outcome not in self.outcomes:
            return obs.outcome.value
        return self._dns_mismatch(obs)

    def _dns_mismatch(self, obs: Observation) -> str:
        rcode = rcode_of(obs)
        if self.rcode is not None and rcode != self.rcode:
            key = rcode or "ERROR"
            return f"RCODE_{key}" if key in Outcome.__members__ else key
        if self.answers is None:
            return ""
        got = {_norm(a) for a in answers_of(obs, self.qtype)}
        want = {_norm(a) for a in self.answers}
        if got == want or (self.subset and want <= got):
            return ""
        return "NODATA" if not got and want else "ANSWERS"

    def describe(self) -> str:
        if self.rcode is None and self.answers is None:
            return "a DNS response"
        text = self.rcode or "NOERROR"
        if self.answers is not None:
            shown = ", ".join(sorted(self.answers)) or "no records"
            text += f", {self.qtype} {'including ' if self.subset else ''}{shown}"
        return text


def describe_response(obs: Observation, qtype: str) -> str:
    """``NOERROR: A 10.96.0.7, 10.96.0.8``, ``NXDOMAIN``, or the outcome when no response."""
    if not obs.connected:
        return obs.summary()
    rcode = rcode_of(obs) or "no rcode"
    answers = answers_of(obs, qtype)
    if answers:
        return f"{rcode}: {qtype} {', '.join(answers)}"
    others = [f"{r.get('type')} {record_text(r)}" for r in obs.extra.get("records") or ()]
    if rcode == "NOERROR":
        return f"NOERROR, no {qtype} records" + (f" ({'; '.join(others)})" if others else "")
    return rcode


@dataclass(frozen=True)
class DnsSettled(Settled):
    """A settled DNS probe: reads like :class:`Settled`, plus the response's rcode and records."""

    @property
    def qtype(self) -> str:
        return self.spec.qtype if self.spec is not None else "A"

    @property
    def rcode(self) -> str | None:
        return rcode_of(self.final)

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(self.final.extra.get("records") or ())

    @property
    def answers(self) -> list[str]:
        """The data of the answer records of the asked type (``["10.96.0.7"]``)."""
        return answers_of(self.final, self.qtype)

    def summary(self) -> str:
        if not self.stable:
            seen = ", ".join(describe_response(o, self.qtype) for o in self.window)
            return f"UNSTABLE over {len(self.window)} queries: {seen}"
        return describe_response(self.final, self.qtype)


def dns_finding(settled: Settled, hints: Hints = None, check: str = "") -> Finding:
    """The finding for a DNS probe that did not answer as wanted; the hint names the
    namespace to look in when the name is a Service name."""
    key = settled.hint_key or "default"
    hint, generic = pick_hint(hints, key)
    if generic:
        hint = _dns_hint(key, settled)
    spec = settled.spec
    probe = f"dns {spec.qtype}/{spec.transport}" if spec is not None else "dns"
    if spec is not None and spec.dns_server:
        probe += f" @{spec.dns_server}"
    return Finding(check=check, source=settled.source, destination=settled.destination,
                   expected=settled.want.describe(), observed=settled.summary(), hint=hint,
                   observations=settled.observations, probe=probe, hint_key=key,
                   hint_is_generic=generic)


def _dns_hint(key: str, settled: Settled) -> str:
    hint = DNS_HINTS.get(key, "")
    name = settled.spec.target.rstrip(".").lower() if settled.spec is not None else ""
    labels = name.split(".")
    if key == "NXDOMAIN" and len(labels) >= 3 and labels[2] == "svc":
        svc, ns = labels[0], labels[1]
        hint = (f"NXDOMAIN: there is no Service {svc} in namespace {ns} (check "
                f"`lab get svc -n {ns}` and the spelling), or for a pod name "
                "<hostname>.<subdomain>: the pod needs hostname and subdomain, and a "
                "headless Service named like the subdomain.")
    return hint


def expect_dns(
    probe: Prober,
    src: str | PodRef,
    name: str,
    type: str = "A",
    *,
    rcode: str | None = None,
    answers: Iterable[str] | None = None,
    subset: bool = False,
    transport: str = "udp",
    search: bool = False,
    server: str | None = None,
    timeout: float = 2.0,
    hints: Hints = None,
    check: str = "",
) -> Settled:
    """``name`` resolves from ``src`` as expected (``rcode`` and/or ``answers``; with neither,
    any response). Returns the settled result; raises :class:`CheckFailed` otherwise."""
    settled = probe.dns(src, name, type, transport, search, server, expect_rcode=rcode,
                        answers=answers, subset=subset, timeout=timeout)
    if not settled.matched:
        raise CheckFailed(dns_finding(settled, hints, check))
    return settled
