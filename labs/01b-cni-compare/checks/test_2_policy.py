"""Lab 01b, task 2: a default deny and one allow rule, and what the CNI does with them.

Each test is one check; the first line of its docstring is the name learners see. The
policies are judged twice: as written (the policy engine reads them like the API server
stores them) and on the wire (real probes). Where the CNI enforces policy both agree; on
Flannel the wire shows the policies have no effect, and the learner has to say so.
"""

from __future__ import annotations

from typing import Any

from trace_support import NS, answer

from grader.expectations import CheckFailed, Finding, check
from grader.policy import policy_set

PORT = 8080
ENFORCED_WORDS = {"true": True, "yes": True, "false": False, "no": False}


def _verdict(cluster: Any, src: str, dst: str) -> Any:
    policies = policy_set(cluster)
    source, dest = policies.pod(f"{NS}/{src}"), policies.pod(f"{NS}/{dst}")
    if source is None or dest is None:
        raise CheckFailed(Finding(expected=f"pods {src} and {dst} in {NS}", observed="missing",
                                  hint="The lab's setup makes them; `lab check 01b` resets it."))
    return policies.verdict(source, dest, PORT, "TCP")


def test_policies_as_written(cluster: Any) -> None:
    """the policies deny the intruder and allow the client into the server on 8080"""
    intruder = _verdict(cluster, "intruder", "server")
    check(not intruder.allowed, expected=f"intruder -> server:{PORT} denied by the policies",
          observed=intruder.explain(),
          hint="A default deny selects every pod (`podSelector: {}`) with policyTypes "
               "[Ingress] and no rules; then no allow rule may match the intruder: select "
               "the client by its label, not every pod.")
    client = _verdict(cluster, "client", "server")
    check(client.allowed, expected=f"client -> server:{PORT} allowed by the policies",
          observed=client.explain(),
          hint="Add a policy that selects the server (app=server) and allows ingress from "
               "pods labelled app=client on TCP 8080: `from` and `ports` in the same rule.")


def test_client_reaches_server(probe: Any, pods: Any) -> None:
    """the client reaches the server on TCP 8080"""
    server = pods.get(NS, "server")
    settled = probe.tcp(f"{NS}/client", server, PORT)
    check(settled.matched, expected=f"client -> {server.ip}:{PORT} CONNECTED",
          observed=f"{settled.final.outcome.value}",
          hint="On a CNI that enforces policy, the default deny blocks the client too until "
               "a policy allows it: add the allow rule for app=client on 8080.")


def test_policy_effect_understood(probe: Any, pods: Any, cluster: Any,
                                  lab_options: Any) -> None:
    """the intruder is blocked where the CNI enforces policy, and you say whether it does"""
    caps = cluster.capabilities()
    server = pods.get(NS, "server")
    denied = not _verdict(cluster, "intruder", "server").allowed
    check(denied, expected="your policies deny intruder -> server (previous check)",
          observed="they allow it", hint="Fix the policies first: this check is about "
                                        "whether the cluster applies them.")
    want = "CONNECTED" if not caps.network_policy else ("TIMEOUT", "UNREACHABLE", "REFUSED")
    settled = probe.tcp(f"{NS}/intruder", server, PORT, expect=want)
    got_in = settled.final.outcome.value == "CONNECTED"
    check(not (caps.network_policy and got_in),
          expected=f"intruder -> {server.ip}:{PORT} blocked ({caps.cni} enforces policy)",
          observed="CONNECTED", hint="The policies deny it, yet the packet got through: "
                                    "look at `lab get networkpolicy -n lab01b -o yaml`.")
    given = answer(lab_options, caps.cni, "policy_enforced")
    said = ENFORCED_WORDS.get(given)
    enforced = not got_in
    why = (f"{caps.cni} enforced it: the intruder's connection was dropped"
           if enforced else
           f"the intruder got in although your policies deny it: {caps.cni} stores "
           "NetworkPolicies (the API accepts them) but nothing in its datapath applies them")
    check(said is enforced, expected=f"policy_enforced: {str(enforced).lower()} ({why})",
          observed=f"your answer: {given}",
          hint="Try it: `lab exec -n lab01b intruder -- curl -s -m 2 "
               f"http://{server.ip}:{PORT}/hostname`. An answer means nothing enforced the "
               "policy; a timeout means the CNI dropped the packet.")
