"""Settling: judge a probe only once the cluster has caught up, and never trust a flapping one.

A learner's manifests are applied just before the checks run, so rules may still be being
programmed when the first probe leaves. :func:`settle` re-probes until the expected result
appears or the settle deadline passes. An expected result must then hold for
``confirmations`` more probes in a row; if any of them disagrees the result is *unstable*
(some backends answer, others not; a rule half-written) and never counts as a pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TypeAlias

from clusters.probing import Observation, Outcome, ProbeSpec

#: What "blocked" means: nothing came back, something rejected, or no route.
BLOCKED = frozenset({Outcome.TIMEOUT, Outcome.REFUSED, Outcome.UNREACHABLE})

@dataclass(frozen=True)
class Want:
    """What a check expects one probe to observe.

    ``body`` is a piece of text the body (HTTP body, UDP reply, TCP banner) must contain.
    """

    outcomes: frozenset[Outcome]
    status: int | None = None
    body: str | None = None
    label: str = ""  # how to say it, when the outcome names alone read badly ("blocked")

    @classmethod
    def of(cls, value: ExpectLike) -> Want:
        """A Want from a Want, an Outcome, an outcome name, or several of them."""
        if isinstance(value, Want):
            return value
        if isinstance(value, (Outcome, str)):
            return cls(frozenset({Outcome(str(value).upper())}))
        return cls(frozenset(Outcome(str(v).upper()) for v in value))

    def with_content(self, status: int | None = None, body: str | None = None) -> Want:
        """This Want, also asking for an HTTP ``status`` and/or a ``body`` text."""
        return replace(self, status=status if status is not None else self.status,
                       body=body if body is not None else self.body)

    def matches(self, obs: Observation) -> bool:
        if obs.outcome not in self.outcomes:
            return False
        if self.status is not None and obs.status != self.status:
            return False
        return self.body is None or (obs.body is not None and self.body in obs.body)

    def mismatch(self, obs: Observation) -> str:
        """The hint key for ``obs`` failing this Want: its outcome name, STATUS or BODY."""
        if obs.outcome not in self.outcomes:
            return obs.outcome.value
        if self.status is not None and obs.status != self.status:
            return "STATUS"
        return "BODY" if not self.matches(obs) else ""

    def describe(self) -> str:
        """``CONNECTED, HTTP 200, body "server"`` or ``blocked (TIMEOUT, REFUSED or ...)``."""
        names = sorted(o.value for o in self.outcomes)
        text = self.label or (names[0] if len(names) == 1
                              else f"{', '.join(names[:-1])} or {names[-1]}")
        if self.status is not None:
            text += f", HTTP {self.status}"
        if self.body is not None:
            text += f', body "{self.body}"'
        return text


#: What checks may pass as ``expect=``: a Want, an outcome (or its name), or several outcomes.
ExpectLike: TypeAlias = "Want | Outcome | str | Iterable[Outcome | str]"


def describe_observation(obs: Observation, want: Want | None = None) -> str:
    """``obs.summary()`` plus the body when the Want asked about it (or it is short)."""
    text = obs.summary()
    if obs.connected and obs.body is not None and (want is None or want.body is not None):
        body = obs.body.strip()
        text += f', body "{body[:60]}{"..." if len(body) > 60 else ""}"'
    return text


@dataclass(frozen=True)
class Settled:
    """The verdict of a settled probe. Reads like an :class:`Observation` of the last attempt.

    ``outcome`` is ``"UNSTABLE"`` (never an :class:`Outcome`) when the confirmations
    disagreed, so comparing it with any outcome, or asking ``connected``, is false.
    """

    want: Want
    observations: tuple[Observation, ...]
    stable: bool = True
    spec: ProbeSpec | None = None
    source: str = ""  # how to name the source in a finding ("client", "host")
    destination: str = ""  # how to name the destination ("10.244.2.5:8080 (lab01/server)")

    @property
    def final(self) -> Observation:
        return self.observations[-1]

    @property
    def matched(self) -> bool:
        """True only when the expected result appeared and every confirmation agreed."""
        return self.stable and self.want.matches(self.final)

    @property
    def outcome(self) -> str:
        return self.final.outcome if self.stable else "UNSTABLE"

    @property
    def connected(self) -> bool:
        return self.stable and self.final.connected

    @property
    def status(self) -> int | None:
        return self.final.status

    @property
    def body(self) -> str | None:
        return self.final.body

    @property
    def detail(self) -> str:
        return self.final.detail

    @property
    def peer(self) -> str | None:
        return self.final.peer

    @property
    def elapsed(self) -> float:
        return self.final.elapsed

    @property
    def window(self) -> tuple[Observation, ...]:
        """The attempts from the first expected one on: the ones that were confirming."""
        for index, obs in enumerate(self.observations):
            if self.want.matches(obs):
                return self.observations[index:]
        return self.observations[-1:]

    @property
    def hint_key(self) -> str:
        """Which hint explains this result: UNSTABLE, an outcome name, STATUS or BODY."""
        return "UNSTABLE" if not self.stable else self.want.mismatch(self.final)

    def summary(self) -> str:
        if not self.stable:
            seen = ", ".join(describe_observation(o, self.want) for o in self.window)
            return f"UNSTABLE over {len(self.window)} probes: {seen}"
        return describe_observation(self.final, self.want)


def settle(
    attempt: Callable[[], Observation],
    want: Want,
    *,
    within: float,
    confirmations: int = 2,
    interval: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Settled:
    """Probe with ``attempt`` until ``want`` is seen (then confirm it) or ``within`` s pass.

    The result is stable and not matched when the deadline passed first (the last attempt
    says what was seen), and unstable when a confirmation disagreed.
    """
    deadline = clock() + within
    seen: list[Observation] = []
    while True:
        seen.append(attempt())
        if want.matches(seen[-1]):
            break
        if clock() >= deadline:
            return Settled(want, tuple(seen))
        sleep(max(0.0, min(interval, deadline - clock())))
        interval = min(interval * 1.5, 1.0)
    for _ in range(confirmations):
        seen.append(attempt())
        if not want.matches(seen[-1]):
            return Settled(want, tuple(seen), stable=False)
    return Settled(want, tuple(seen))
