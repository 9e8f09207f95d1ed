"""Running commands and waiting for things.

Commands are argv lists, never shell strings; failures raise :class:`CommandError` carrying
the command, its output and its exit code. Waits have a deadline and an interval and report
the last thing they saw.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from clusters.errors import CommandError, WaitTimeout

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = 60.0,
    env: Mapping[str, str] | None = None,
) -> Result:
    """Run ``argv`` and capture its output; raise :class:`CommandError` when it fails."""
    args = [str(a) for a in argv]
    try:
        cp = subprocess.run(
            args,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except FileNotFoundError as err:
        raise CommandError(args, None, reason=f"{args[0]}: not found") from err
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        raise CommandError(args, None, out, reason=f"no answer within {timeout:g}s") from err
    res = Result(args, cp.returncode, cp.stdout, cp.stderr)
    if check and cp.returncode != 0:
        raise CommandError(args, cp.returncode, cp.stdout, cp.stderr)
    return res


def wait_until(
    what: str,
    observe: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float,
    interval: float = 0.05,
    describe: Callable[[T], str] = repr,
) -> T:
    """Call ``observe`` until ``done(observation)`` holds or ``timeout`` seconds pass.

    Returns the observation that satisfied ``done``; raises :class:`WaitTimeout` carrying the
    last observation otherwise. The interval grows gently up to 0.5 s.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    seen = False
    while True:
        last = observe()
        seen = True
        if done(last):
            return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(what, timeout, describe(last) if seen else "nothing")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.5)
