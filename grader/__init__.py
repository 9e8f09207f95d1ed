"""Grading a lab: a pytest plugin whose checks probe real connectivity.

A lab's checks are ordinary pytest tests using the fixtures of :mod:`grader.plugin`
(``cluster``, ``pods``, ``probe``, ``workspace``) and the expectations below.
"""

from grader.dns import expect_dns
from grader.expectations import (
    GENERIC_HINTS,
    CheckFailed,
    Finding,
    check,
    expect_blocked,
    expect_reach,
)
from grader.fixtures import PodRef, Pods, Prober, Workspace
from grader.matrix import MatrixCell, MatrixPod, MatrixResult, probe_matrix
from grader.settle import BLOCKED, Settled, Want, settle

__all__ = [
    "BLOCKED",
    "GENERIC_HINTS",
    "CheckFailed",
    "Finding",
    "MatrixCell",
    "MatrixPod",
    "MatrixResult",
    "PodRef",
    "Pods",
    "Prober",
    "Settled",
    "Want",
    "Workspace",
    "check",
    "expect_blocked",
    "expect_dns",
    "expect_reach",
    "probe_matrix",
    "settle",
]
