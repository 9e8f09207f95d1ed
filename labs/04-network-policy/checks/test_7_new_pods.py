"""Lab 04, hidden checks (they run only when grading): pods added after the policies.

The tasks speak of roles: frontend pods, api pods, the scraper, every lab04 pod. These
checks add new pods with the same role labels (and one with a role no task names) once
the learner's policies are in place, probe the matrix again, and judge each task's
requirement on the cells that involve a new pod. See :mod:`new_pods` for the pods.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from new_pods import (
    NEW_API,
    NEW_DB,
    NEW_FRONTEND,
    NEW_LAB04,
    NEW_MONITORING,
    NEW_SCRAPER,
    ROLES,
    matrix_with_new_pods,
    only_within,
    pods_added,
    role_cells,
)
from policy_support import (
    ALLOWED,
    API,
    API_TO_DB,
    DB,
    EVERY_LAB04_POD,
    FRONTEND,
    FRONTEND_TO_API,
    SCRAPER,
    SCRAPING,
)

from grader.policy import cells


@pytest.fixture(scope="module")
def with_new_pods(cluster: Any, netpol: Any) -> Iterator[Any]:
    """The lab's matrix with the new pods in it; the pods are deleted afterwards."""
    with pods_added(cluster):
        yield matrix_with_new_pods(netpol)


def test_new_pods_are_isolated_by_default(with_new_pods: Any) -> None:
    """pods added later, whatever their labels, get no more than the tasks allow"""
    only_within(
        with_new_pods, "new pods: nothing but the tasks' paths",
        allowed=ALLOWED,
        within=[cells(NEW_LAB04, "*"), cells("*", NEW_LAB04),
                cells(NEW_MONITORING, EVERY_LAB04_POD)],
        hint="A pod added after your policies got through where no task allows it. The "
             "default deny must select every pod of lab04, present and future "
             "(podSelector: {}), and no rule may admit peers by leaving out only today's "
             "other pods (NotIn, DoesNotExist, an empty selector). " + ROLES,
    )


def test_new_frontend_and_api_pods_get_their_path(with_new_pods: Any) -> None:
    """a new frontend pod reaches the api on 8080, and the frontend reaches a new api pod"""
    with_new_pods.expect(
        "new pods: frontend -> api on 8080",
        allowed=role_cells(FRONTEND, NEW_FRONTEND, API, NEW_API, 8080),
        hint="A frontend or api pod added after your policies is not treated as the task "
             "says. " + ROLES,
    )
    only_within(with_new_pods, "new pods: only the frontend reaches the api on 8080",
                allowed=[FRONTEND_TO_API], within=[cells("*", NEW_API, 8080)],
                hint="A new api pod admits more than the frontend on 8080. " + ROLES)


def test_new_api_and_db_pods_get_their_path(with_new_pods: Any) -> None:
    """a new api pod reaches the db on 5432, and the api reaches a new db pod"""
    with_new_pods.expect(
        "new pods: api -> db on 5432",
        allowed=role_cells(API, NEW_API, DB, NEW_DB, 5432),
        hint="An api or db pod added after your policies is not treated as the task says. "
             + ROLES,
    )
    only_within(with_new_pods, "new pods: only the api reaches the db on 5432",
                allowed=[API_TO_DB], within=[cells("*", NEW_DB, 5432)],
                hint="A new db pod admits more than the api on 5432. " + ROLES)


def test_the_scraper_reads_new_pods_metrics(with_new_pods: Any) -> None:
    """the scraper reaches port 9090 of new lab04 pods, and a new scraper reaches every pod"""
    with_new_pods.expect(
        "new pods: scraper -> every lab04 pod on 9090",
        allowed=[cells(SCRAPER, NEW_LAB04, 9090), cells(NEW_SCRAPER, EVERY_LAB04_POD, 9090)],
        hint="The scraper reads port 9090 of every lab04 pod, also of pods added later, and "
             "any pod labelled app=scraper in monitoring is the scraper. " + ROLES,
    )
    only_within(with_new_pods, "new pods: only the scraper reaches 9090",
                allowed=[SCRAPING], within=[cells("*", NEW_LAB04, 9090)],
                hint="Something other than the scraper reads a new pod's metrics. " + ROLES)
