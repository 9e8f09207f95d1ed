"""``lab conformance``: run acceptance files (``shared/acceptance`` format) against a cluster.

Each file builds a fixture, runs cases of steps (a change, convergence, one probe, an
expectation) and restores the fixture after every case; each case and step ends ``pass``,
``fail`` (expected vs observed) or ``n/a`` (with the reason). The modules:

- :mod:`~grader.conformance.model`: load and validate a file (errors say file:line and field)
- :mod:`~grader.conformance.placeholders`: ``{{clusterIP ns/svc}}`` and friends
- :mod:`~grader.conformance.converge`: the convergence rule
- :mod:`~grader.conformance.preconditions`: when a case is not applicable
- :mod:`~grader.conformance.probes`, :mod:`~grader.conformance.requests`: probes and judging
- :mod:`~grader.conformance.runner`: fixture, cases, steps, restore
- :mod:`~grader.conformance.report`: results as text and JSON
"""

from grader.conformance.model import ConformanceFileError, Suite, load
from grader.conformance.report import RunReport, Status, render
from grader.conformance.runner import FixtureConflict, Options, Runner

__all__ = [
    "ConformanceFileError",
    "FixtureConflict",
    "Options",
    "RunReport",
    "Runner",
    "Status",
    "Suite",
    "load",
    "render",
]
