"""Grading a lab: a pytest plugin whose checks probe real connectivity.

A lab's checks are ordinary pytest tests using the fixtures of :mod:`grader.plugin`
(``cluster``, ``pods``, ``probe``, ``workspace``, ``netpol``) and the expectations below.
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
from grader.policy import (
    Enforcement,
    ExpectedMatrix,
    NetpolGrader,
    PolicyMatrix,
    cells,
    expect_vs_observe,
    prove_enforcement,
)
from grader.settle import BLOCKED, Settled, Want, settle

__all__ = [
    "BLOCKED",
    "GENERIC_HINTS",
    "CheckFailed",
    "Enforcement",
    "ExpectedMatrix",
    "Finding",
    "MatrixCell",
    "MatrixPod",
    "MatrixResult",
    "NetpolGrader",
    "PodRef",
    "Pods",
    "PolicyMatrix",
    "Prober",
    "Settled",
    "Want",
    "Workspace",
    "cells",
    "check",
    "expect_blocked",
    "expect_dns",
    "expect_reach",
    "expect_vs_observe",
    "probe_matrix",
    "prove_enforcement",
    "settle",
]
