"""Lab 04, task 5: the scraper in namespace monitoring reads port 9090 of every lab04 pod,
and no other pod reaches those ports."""

from __future__ import annotations

from typing import Any

from policy_support import EVERY_LAB04_POD, SCRAPING, lab_matrix

from grader.policy import cells


def test_scraper_reaches_every_metrics_port(netpol: Any) -> None:
    """the scraper in monitoring reaches port 9090 of every lab04 pod"""
    lab_matrix(netpol).expect(
        "monitoring/scraper -> every lab04 pod on 9090",
        allowed=[SCRAPING],
        hint="The scraper lives in another namespace. A podSelector alone in a peer only "
             "looks in the policy's own namespace (lab04); to name pods of monitoring, the "
             "same peer needs a namespaceSelector too, for instance on the label every "
             "namespace carries: kubernetes.io/metadata.name: monitoring. The policy must "
             "select every lab04 pod (`podSelector: {}`).",
    )


def test_only_the_scraper_reaches_metrics(netpol: Any) -> None:
    """no pod but the scraper reaches port 9090 of a lab04 pod"""
    lab_matrix(netpol).only(
        "only the scraper reaches the lab04 pods' port 9090",
        allowed=[SCRAPING],
        within=cells("*", EVERY_LAB04_POD, 9090),
        hint="Something other than the scraper gets in on 9090. If it is the toolbox: "
             "`- namespaceSelector: ...` and `- podSelector: ...`, each with its own dash, "
             "are two peers and either one admits (every pod of monitoring, or app=scraper "
             "pods of lab04). Remove the dash before podSelector to make it one peer that "
             "needs both: pods labelled app=scraper in namespace monitoring.",
    )
