"""Lab 04, task 1: a default deny in lab04, for ingress and for egress.

Each test is one check; the first line of its docstring is the name learners see.
"""

from __future__ import annotations

from typing import Any

from policy_support import (
    EVERY_LAB04_POD,
    FRONTEND,
    MONITORING,
    NS,
    describe_policy,
    lab_matrix,
    policies,
    policy_types,
    selects_every_pod,
)

from grader.expectations import CheckFailed, Finding
from grader.policy import cells

EMPTY_LIST_TRAP = (
    "{names} says `egress: []` but its policyTypes do not include Egress. When policyTypes "
    "is left out, the cluster fills in Ingress, and adds Egress only when the policy has "
    "at least one egress rule; an empty list has none, so the policy isolates nothing for "
    "egress. Write `policyTypes: [Ingress, Egress]`."
)


def test_default_deny_selects_every_pod_both_ways(cluster: Any) -> None:
    """a policy selecting every lab04 pod isolates them for ingress and for egress"""
    found = policies(cluster)
    defaults = [p for p in found if selects_every_pod(p)]
    missing = [d for d in ("Ingress", "Egress")
               if not any(d in policy_types(p) for p in defaults)]
    if not missing:
        return
    trapped = [p["metadata"]["name"] for p in defaults
               if "egress" in (p.get("spec") or {}) and not (p["spec"].get("egress"))
               and "Egress" not in policy_types(p)]
    if "Egress" in missing and trapped:
        hint = EMPTY_LIST_TRAP.format(names=", ".join(trapped))
    elif not defaults:
        hint = ("A default deny selects every pod of the namespace: `podSelector: {}`. A "
                "policy that names labels only covers the pods that carry them, and a pod "
                "added tomorrow with other labels would be wide open.")
    else:
        hint = ("Every pod is open in a direction until some policy that selects it lists "
                "that direction in its policyTypes. Add the missing one to your default "
                "deny: `policyTypes: [Ingress, Egress]`, and no rules.")
    raise CheckFailed(Finding(
        expected=f"a NetworkPolicy in {NS} with podSelector {{}} and policyTypes Ingress and "
                 "Egress (one policy, or one per direction)",
        observed=f"no such policy for {' and '.join(missing)}; policies in {NS}: "
                 + ("; ".join(describe_policy(p) for p in found) if found else "none"),
        hint=hint,
    ))


def test_default_deny_blocks_what_no_rule_allows(netpol: Any) -> None:
    """no lab04 pod reaches monitoring, and no pod reaches the frontend's port 80"""
    lab_matrix(netpol).expect(
        "default deny: egress from lab04 and ingress that no task opens are blocked",
        blocked=[cells(EVERY_LAB04_POD, f"{MONITORING}/*"), cells("*", FRONTEND, 80)],
        hint="No task opens these paths, so only the default deny decides them: lab04 pods "
             "must not get out to the monitoring namespace (egress), and nothing may reach "
             "the frontend's port 80 (ingress). A pod is isolated for a direction only by a "
             "policy that selects it and lists that direction in its policyTypes.",
    )
