"""Lab 04, task 6: nothing else. Every cell of the matrix that touches lab04 and that no
task allows must be blocked, in both directions."""

from __future__ import annotations

from typing import Any

from policy_support import ALLOWED, EVERY_LAB04_POD, lab_matrix

from grader.policy import cells

RULE_SHAPES = (
    "A rule without `ports` allows every port, a rule without `from`/`to` every peer, and an "
    "empty selector in a peer every pod (podSelector) or every namespace "
    "(namespaceSelector). Each wrong cell names the rule that allows it."
)


def test_nothing_else_reaches_lab04(netpol: Any) -> None:
    """no other connection reaches a lab04 pod"""
    lab_matrix(netpol).only(
        "into lab04: frontend -> api 8080, api -> db 5432, scraper -> 9090, nothing else",
        allowed=ALLOWED,
        within=cells("*", EVERY_LAB04_POD),
        hint="Some ingress rule admits more than its task asks for. " + RULE_SHAPES,
    )


def test_lab04_reaches_nothing_else(netpol: Any) -> None:
    """lab04 pods open no other connection"""
    lab_matrix(netpol).only(
        "out of lab04: frontend -> api 8080, api -> db 5432, nothing else",
        allowed=ALLOWED,
        within=cells(EVERY_LAB04_POD, "*"),
        hint="Some lab04 pod can send where no task allows it. Is every lab04 pod isolated "
             "for egress (a policy selecting it with Egress in its policyTypes)? Then look "
             "for an egress rule that allows too much. " + RULE_SHAPES,
    )
