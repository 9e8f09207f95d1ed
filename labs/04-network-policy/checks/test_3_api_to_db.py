"""Lab 04, task 3: the api reaches the db on 5432, and nobody else does."""

from __future__ import annotations

from typing import Any

from policy_support import API_TO_DB, DB, lab_matrix

from grader.policy import cells


def test_api_reaches_db_on_5432(netpol: Any) -> None:
    """api pods reach db pods on port 5432"""
    lab_matrix(netpol).expect(
        "api -> db on 5432",
        allowed=[API_TO_DB],
        hint="As for the frontend and the api: an egress rule on the api pods towards the "
             "db pods on 5432, and an ingress rule on the db pods from the api pods on "
             "5432. Either one missing, and the connection times out.",
    )


def test_only_api_reaches_db(netpol: Any) -> None:
    """no pod but the api reaches the db on 5432"""
    lab_matrix(netpol).only(
        "only the api reaches the db on 5432",
        allowed=[API_TO_DB],
        within=cells("*", DB, 5432),
        hint="The database admits sources other than the api. Rules of a policy add up, "
             "and each `-` directly under `ingress:` starts a new rule: `- from: ...` and "
             "then `- ports: ...` are two rules, the second one admitting every source on "
             "5432. Keep `from` and `ports` in one list item.",
    )
