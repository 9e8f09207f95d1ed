"""Running ``lab ARGS`` in-process, as the ``lab`` script does, for CLI unit tests."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from click.testing import CliRunner

from labs.cli.main import main


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def lab(*args: str, stdin: str = "") -> Ran:
    """Run ``lab ARGS`` as the ``lab`` script does: ``main()``, its error mapping and exit code."""
    runner = CliRunner()
    saved = sys.argv
    with runner.isolation(input=stdin) as (stdout, stderr, _):
        sys.argv = ["lab", *args]
        try:
            main()
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        finally:
            sys.argv = saved
            sys.stdout.flush()  # print_json writes through the text wrapper's buffer
            sys.stderr.flush()
        return Ran(code, stdout.getvalue().decode(), stderr.getvalue().decode())
