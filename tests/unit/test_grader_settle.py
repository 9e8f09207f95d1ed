"""Settling probes: wait for the expected result, confirm it, never pass a flapping one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from clusters.probing import Observation, Outcome
from grader.settle import BLOCKED, Settled, Want, settle

C, T, R = Outcome.CONNECTED, Outcome.TIMEOUT, Outcome.REFUSED


class FakeClock:
    """Time that moves only when the code under test sleeps or a probe takes time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(clock: FakeClock, outcomes: list[Outcome], each: float = 0.1,
             body: str | None = None) -> tuple[Callable[[], Observation], list[Observation]]:
    """An attempt function returning ``outcomes`` in order, then the last one forever."""
    made: list[Observation] = []

    def attempt() -> Observation:
        clock.now += each
        outcome = outcomes[min(len(made), len(outcomes) - 1)]
        made.append(Observation(outcome, body=body, elapsed=each))
        return made[-1]

    return attempt, made


def run(outcomes: list[Outcome], want: Want, within: float = 5.0) -> tuple[Settled, int]:
    clock = FakeClock()
    attempt, made = scripted(clock, outcomes)
    result = settle(attempt, want, within=within, clock=clock, sleep=clock.sleep)
    return result, len(made)


def test_expected_at_once_is_confirmed_twice() -> None:
    result, probes = run([C], Want.of("CONNECTED"))
    assert result.matched and result.stable
    assert probes == 3
    assert result.outcome is C and result.connected


def test_waits_for_rules_to_be_programmed() -> None:
    result, probes = run([C, C, C, T], Want.of(T))
    assert result.matched
    assert probes == 6
    assert [o.outcome for o in result.window] == [T, T, T]


def test_never_expected_fails_with_the_last_observation() -> None:
    result, probes = run([R], Want.of(C), within=1.0)
    assert not result.matched and result.stable
    assert result.outcome is R
    assert result.hint_key == "REFUSED"
    assert probes > 1  # it kept trying until the deadline


def test_a_disagreeing_confirmation_is_unstable_never_a_pass() -> None:
    result, probes = run([C, T, C, C], Want.of(C))
    assert probes == 2
    assert not result.stable
    assert not result.matched
    assert not result.connected
    assert result.outcome == "UNSTABLE"
    assert result.outcome != C
    assert result.hint_key == "UNSTABLE"
    assert result.summary() == "UNSTABLE over 2 probes: CONNECTED, TIMEOUT after 0.1s"


def test_blocked_accepts_any_blocking_outcome_but_not_dns_errors() -> None:
    blocked = Want(BLOCKED, label="blocked")
    assert run([R, T, R], blocked)[0].matched
    assert not run([Outcome.DNS_ERROR], blocked, within=0.5)[0].matched


def test_want_body_and_status() -> None:
    want = Want.of("connected").with_content(status=200, body="server")
    assert want.describe() == 'CONNECTED, HTTP 200, body "server"'
    good = Observation(C, status=200, body="server-7d9f\n")
    assert want.matches(good)
    assert want.mismatch(Observation(C, status=503, body="server")) == "STATUS"
    assert want.mismatch(Observation(C, status=200, body="other")) == "BODY"
    assert want.mismatch(Observation(T)) == "TIMEOUT"
    assert Want.of([T, R]).describe() == "REFUSED or TIMEOUT"


def test_unknown_outcome_name_is_rejected() -> None:
    with pytest.raises(ValueError):
        Want.of("REACHABLE")


def test_deadline_bounds_the_waiting() -> None:
    clock = FakeClock()
    attempt, _ = scripted(clock, [T], each=1.0)
    result = settle(attempt, Want.of(C), within=3.0, clock=clock, sleep=clock.sleep)
    assert not result.matched
    assert clock.now < 3.0 + 1.0 + 1.0  # stops after the first attempt past the deadline
