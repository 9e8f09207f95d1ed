"""Expectations: checks declared like the task reads, failing with a finding that explains itself.

::

    expect_reach(probe, src="lab01/client", dst=server, port=8080, protocol="http",
                 path="/hostname", body="server",
                 hints={"TIMEOUT": "...", "REFUSED": "...", "default": "..."})
    expect_blocked(probe, src="lab01/client", dst=db, port=5432)
    check(a.node != b.node, expected="pods on different nodes", observed=f"both on {a.node}")

A failure raises :class:`CheckFailed` (an AssertionError, so pytest reports a failed check,
not an error) carrying a :class:`Finding`: source → destination, expected vs observed, and
the hint for what was observed. Hints are looked up by key:

============  ===============================================================
key           used when
============  ===============================================================
TIMEOUT ...   the observed outcome (any :class:`~clusters.probing.Outcome` name)
STATUS        an HTTP response came, with another status code
BODY          a response came, from the wrong server (body text missing)
UNSTABLE      the confirmations disagreed
default       no hint for the key above
============  ===============================================================

A finding whose result flapped (:attr:`Finding.unstable`) is no verdict on the learner's work:
the reporter marks the check ``unstable``, never ``failed`` (and never passed).

When the check gives no hint for a key, a generic one (:data:`GENERIC_HINTS`) explains
what that outcome usually means.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from clusters.probing import Observation
from grader.settle import BLOCKED, ExpectLike, Settled, Want

if TYPE_CHECKING:
    from grader.fixtures import PodRef, Prober

Hints = Mapping[str, str] | str | None

GENERIC_HINTS: dict[str, str] = {
    "TIMEOUT": "Nothing came back before the timeout: packets were dropped on the way "
               "(a NetworkPolicy or firewall DROP), or nothing routes the reply back.",
    "REFUSED": "Something actively refused: nothing listens on that port, the Service has "
               "no ready endpoints, or a REJECT rule matched.",
    "UNREACHABLE": "There is no route from the source to the destination: check the pod "
                   "CIDRs and the routes between nodes.",
    "DNS_ERROR": "The name did not resolve from the source pod: check the Service's name "
                 "and namespace, and the pod's DNS settings.",
    "CONNECTED": "The traffic got through: nothing blocks this path (does a NetworkPolicy "
                 "select the destination pod?).",
    "STATUS": "A web server answered, but with another status code than expected.",
    "BODY": "A server answered, but not the expected one: the traffic reached another "
            "backend.",
    "UNSTABLE": "The result changed between attempts: some backends answer and others do "
                "not, or rules were still being written.",
    "UNSUPPORTED": "This cluster cannot run this probe; the lab needs another engine.",
}


@dataclass(frozen=True)
class Finding:
    """Why a check failed, as data (for the JSON report) and as text (``str()``)."""

    check: str = ""
    source: str = ""
    destination: str = ""
    expected: str = ""
    observed: str = ""
    hint: str = ""
    observations: tuple[Observation, ...] = ()
    probe: str = ""  # "http /hostname", "tcp", ...
    hint_key: str = "default"
    hint_is_generic: bool = False
    #: The result flapped (confirmations disagreed): the check is reported ``unstable``, with
    #: every observation as evidence. Set for the ``UNSTABLE`` hint key whoever built it.
    unstable: bool = False

    def __post_init__(self) -> None:
        if self.hint_key == "UNSTABLE" and not self.unstable:
            object.__setattr__(self, "unstable", True)

    def __str__(self) -> str:
        lines: list[str] = []
        if self.source or self.destination:
            head = f"  {self.source} → {self.destination}"
            lines.append(f"{head}   [{self.probe}]" if self.probe else head)
        lines.append(f"  expected: {self.expected}")
        if self.observed:
            lines.append(f"  observed: {self.observed}")
        if self.hint:
            lines.append(textwrap.fill(" ".join(self.hint.split()), width=96,
                                       initial_indent="  hint:     ",
                                       subsequent_indent=" " * 12, break_on_hyphens=False))
        return "\n".join(lines)

    def with_hint(self, hint: str) -> Finding:
        return replace(self, hint=hint, hint_is_generic=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["observations"] = [o.to_dict() for o in self.observations]
        return data


class CheckFailed(AssertionError):
    """A check's expectation did not hold; ``finding`` says how."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(str(finding))
        self.finding = finding


def pick_hint(hints: Hints, key: str) -> tuple[str, bool]:
    """(hint, is_generic) for ``key``: the check's own, else its default, else generic."""
    if isinstance(hints, str):
        return hints, False
    if hints:
        for candidate in (key, "default"):
            if hints.get(candidate):
                return hints[candidate], False
    return GENERIC_HINTS.get(key, ""), True


def finding_for(settled: Settled, hints: Hints = None, check: str = "") -> Finding:
    """The finding for a settled probe that did not match what was wanted."""
    key = settled.hint_key or "default"
    hint, generic = pick_hint(hints, key)
    return Finding(
        check=check,
        source=settled.source,
        destination=settled.destination,
        expected=settled.want.describe(),
        observed=settled.summary(),
        hint=hint,
        observations=settled.observations,
        probe=probe_label(settled),
        hint_key=key,
        hint_is_generic=generic,
        unstable=not settled.stable,
    )


def probe_label(settled: Settled) -> str:
    spec = settled.spec
    if spec is None:
        return ""
    if spec.kind != "http":
        return spec.kind
    label = f"http {spec.path}"
    return f"{label} Host: {spec.host_header}" if spec.host_header else label


def expect_reach(
    probe: Prober,
    src: str | PodRef,
    dst: str | PodRef,
    port: int | None = None,
    protocol: str | None = None,
    *,
    path: str = "/",
    host_header: str | None = None,
    expect: ExpectLike = "CONNECTED",
    status: int | None = None,
    body: str | None = None,
    timeout: float = 1.0,
    hints: Hints = None,
    check: str = "",
) -> Settled:
    """``src`` reaches ``dst`` (``expect``, CONNECTED by default, plus status/body if given).

    ``protocol`` is tcp, udp, http or ping; left out it is http for an ``http://`` URL in
    ``dst``, else tcp.

    Returns the settled result; raises :class:`CheckFailed` when it does not hold.
    """
    want = Want.of(expect).with_content(status=status, body=body)
    settled = probe.run(_protocol(protocol, dst), src, dst, port, expect=want, timeout=timeout, path=path,
                        host_header=host_header)
    if not settled.matched:
        raise CheckFailed(finding_for(settled, hints, check))
    return settled


def expect_blocked(
    probe: Prober,
    src: str | PodRef,
    dst: str | PodRef,
    port: int | None = None,
    protocol: str | None = None,
    *,
    path: str = "/",
    host_header: str | None = None,
    expect: ExpectLike | None = None,
    timeout: float = 1.0,
    hints: Hints = None,
    check: str = "",
) -> Settled:
    """``src`` cannot reach ``dst``: TIMEOUT, REFUSED or UNREACHABLE (or just ``expect``).

    A DNS error is not "blocked": it means the check's name is wrong or DNS is broken.
    """
    want = (Want.of(expect) if expect is not None
            else Want(BLOCKED, label="blocked (TIMEOUT, REFUSED or UNREACHABLE)"))
    settled = probe.run(_protocol(protocol, dst), src, dst, port, expect=want, timeout=timeout, path=path,
                        host_header=host_header)
    if not settled.matched:
        raise CheckFailed(finding_for(settled, hints, check))
    return settled


def _protocol(protocol: str | None, dst: str | PodRef) -> str:
    """The protocol asked for, else http for an ``http://`` URL, else tcp."""
    if protocol:
        return protocol
    return "http" if isinstance(dst, str) and dst.startswith("http://") else "tcp"


def check(condition: object, *, expected: str, observed: str = "", hint: str = "",
          name: str = "") -> None:
    """A non-probe check: raise :class:`CheckFailed` saying expected vs observed if false."""
    if not condition:
        raise CheckFailed(Finding(check=name, expected=expected, observed=observed, hint=hint,
                                  hint_is_generic=not hint))
