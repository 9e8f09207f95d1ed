"""Lab 04, task 2: the frontend reaches the api on 8080, and nobody else does."""

from __future__ import annotations

from typing import Any

from policy_support import API, FRONTEND_TO_API, lab_matrix

from grader.policy import cells


def test_frontend_reaches_api_on_8080(netpol: Any) -> None:
    """frontend pods reach api pods on port 8080"""
    lab_matrix(netpol).expect(
        "frontend -> api on 8080",
        allowed=[FRONTEND_TO_API],
        hint="Two policies must agree for this connection: one that selects the frontend "
             "and lets it send to the api pods on 8080 (egress), and one that selects the "
             "api and lets the frontend in on 8080 (ingress). The port is the pod's: the "
             "api Service's port 80 was already translated to 8080 when a policy looks "
             "at the packet. The explanation under each cell names the side that says no.",
    )


def test_only_frontend_reaches_api(netpol: Any) -> None:
    """no pod but the frontend reaches the api on 8080"""
    lab_matrix(netpol).only(
        "only the frontend reaches the api on 8080",
        allowed=[FRONTEND_TO_API],
        within=cells("*", API, 8080),
        hint="The api's ingress rule admits more sources than the frontend. A rule without "
             "`from` admits every source; `podSelector: {}` as a peer admits every pod of "
             "the namespace, and `namespaceSelector: {}` every pod of every namespace.",
    )
