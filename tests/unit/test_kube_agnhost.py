"""The probe container's commands (exact argv) and how their output becomes an outcome.

The outputs below are written from the tools' documented formats: agnhost connect's fixed
stderr prefixes, curl's ``(N) message`` errors and exit codes, dig's sections, busybox ping.
"""

from __future__ import annotations

import pytest

from clusters.engine import ExecResult
from clusters.kube import agnhost
from clusters.probing import Outcome, ProbeSpec, Source

SRC = Source("lab", "client")


def res(rc: int, stdout: str = "", stderr: str = "") -> ExecResult:
    return ExecResult(rc, stdout, stderr)


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize(("timeout", "secs", "go", "dec"), [
    (1.0, 1, "1000ms", "1"), (0.2, 1, "200ms", "0.2"), (1.5, 2, "1500ms", "1.5"),
    (2.0, 2, "2000ms", "2"), (0.00001, 1, "1ms", "0.001"),
])
def test_timeouts_are_rendered_for_each_tool(timeout: float, secs: int, go: str, dec: str) -> None:
    assert agnhost.whole_seconds(timeout) == secs
    assert agnhost.go_duration(timeout) == go
    assert agnhost.decimal_seconds(timeout) == dec


def test_hostport_brackets_ipv6() -> None:
    assert agnhost.hostport("10.0.0.1", 80) == "10.0.0.1:80"
    assert agnhost.hostport("fd00::1", 53) == "[fd00::1]:53"


# ---------------------------------------------------------------- agnhost connect


def test_connect_argv_tcp_and_udp() -> None:
    assert agnhost.connect_argv("10.244.1.7", 8080, 1.0) == [
        "/agnhost", "connect", "--timeout=1000ms", "--protocol=tcp", "10.244.1.7:8080"]
    assert agnhost.connect_argv("fd00::7", 8081, 0.5, "udp", "hostname") == [
        "/agnhost", "connect", "--timeout=500ms", "--protocol=udp", "--udp-data=hostname",
        "[fd00::7]:8081"]


@pytest.mark.parametrize(("stderr", "protocol", "outcome", "detail"), [
    ("TIMEOUT\n", "tcp", Outcome.TIMEOUT, "no answer to TCP SYN"),
    ("REFUSED\n", "tcp", Outcome.REFUSED, "connection refused"),
    ("DNS: lookup nosuch on 10.96.0.10:53: no such host\n", "tcp", Outcome.DNS_ERROR,
     "lookup nosuch on 10.96.0.10:53: no such host"),
    ("OTHER: dial tcp 10.244.3.9:80: connect: no route to host\n", "tcp", Outcome.UNREACHABLE,
     "dial tcp 10.244.3.9:80: connect: no route to host"),
    ("OTHER: dial tcp 10.99.0.1:80: connect: network is unreachable\n", "tcp",
     Outcome.UNREACHABLE, "dial tcp 10.99.0.1:80: connect: network is unreachable"),
    ("OTHER: dial tcp 10.244.3.9:80: connect: connection reset by peer\n", "tcp", Outcome.ERROR,
     "dial tcp 10.244.3.9:80: connect: connection reset by peer"),
    ("UNKNOWN: address 10.0.0.1: missing port in address\n", "tcp", Outcome.ERROR,
     "address 10.0.0.1: missing port in address"),
    ("TIMEOUT: read udp 10.244.1.5:41234->10.244.2.7:8081: i/o timeout\n", "udp",
     Outcome.TIMEOUT, "no answer to the UDP datagram"),
    ("REFUSED: read udp 10.244.1.5:41234->10.244.2.7:8081: read: connection refused\n", "udp",
     Outcome.REFUSED, "connection refused"),
    ("UNKNOWN: read udp 10.244.1.5:1->10.9.9.9:53: read: no route to host\n", "udp",
     Outcome.UNREACHABLE, "read udp 10.244.1.5:1->10.9.9.9:53: read: no route to host"),
])
def test_connect_stderr_classes(stderr: str, protocol: str, outcome: Outcome, detail: str) -> None:
    obs = agnhost.parse_connect(res(1, stderr=stderr), protocol, "10.0.0.1:80")
    assert (obs.outcome, obs.detail, obs.peer) == (outcome, detail, "10.0.0.1:80")


def test_connect_exit_zero_is_connected_without_a_body() -> None:
    obs = agnhost.parse_connect(res(0), "tcp", "10.0.0.1:80")
    assert obs.outcome is Outcome.CONNECTED and obs.body is None


def test_connect_udp_empty_datagram_is_a_reply() -> None:
    obs = agnhost.parse_connect(res(1, stderr="OTHER: No data received from the server. Cannot "
                                    "guarantee the server received the request.\n"), "udp")
    assert (obs.outcome, obs.body) == (Outcome.CONNECTED, "")


def test_connect_without_udp_or_flag_is_unsupported() -> None:
    old = agnhost.parse_connect(res(1, stderr="Unsupported protocol\nudp"), "udp")
    assert old.outcome is Outcome.UNSUPPORTED and "UDP" in old.detail
    flag = agnhost.parse_connect(res(1, stderr="Error: unknown flag: --udp-data\nUsage:\n  "
                                     "agnhost connect [host:port] [flags]\n"), "udp")
    assert flag.outcome is Outcome.UNSUPPORTED and "--udp-data" in flag.detail


def test_connect_unknown_output_is_an_error_with_the_text() -> None:
    obs = agnhost.parse_connect(res(2, stderr="panic: something\n"))
    assert obs.outcome is Outcome.ERROR and "exit code 2" in obs.detail and "panic" in obs.detail


# ---------------------------------------------------------------- UDP through nc


def test_udp_argv_passes_values_as_positional_parameters() -> None:
    argv = agnhost.udp_argv("10.244.2.7", 8081, "echo $(rm -rf /)", 1.0)
    assert argv == ["/bin/sh", "-c", 'printf "%s" "$1" | nc -u -w "$2" "$3" "$4"', "netlab-udp",
                    "echo $(rm -rf /)", "1", "10.244.2.7", "8081"]


def test_udp_reply_is_the_body_and_silence_needs_agnhost() -> None:
    obs = agnhost.parse_udp(res(0, stdout="server"), "10.244.2.7:8081")
    assert obs is not None and (obs.outcome, obs.body, obs.peer) == (
        Outcome.CONNECTED, "server", "10.244.2.7:8081")
    assert agnhost.parse_udp(res(0)) is None
    assert agnhost.parse_udp(res(1, stderr="nc: read failed\n")) is None


# ---------------------------------------------------------------- HTTP through curl


def _spec(**kw: object) -> ProbeSpec:
    base: dict[str, object] = {"kind": "http", "source": SRC, "target": "10.96.12.34",
                               "port": 80, "timeout": 1.0}
    base.update(kw)
    return ProbeSpec(**base)  # type: ignore[arg-type]


def test_curl_argv_get() -> None:
    assert agnhost.curl_argv(_spec(path="/hostname")) == [
        "curl", "--silent", "--show-error", "--globoff", "--include", "--path-as-is",
        "--noproxy", "*", "--connect-timeout", "1", "--max-time", "2",
        "--user-agent", "kube-netlab-probe", "--write-out",
        "\n@@netlab-curl@@ %{http_code} %{remote_ip} %{remote_port}",
        "http://10.96.12.34:80/hostname"]


def test_curl_argv_method_host_header_ipv6_and_relative_path() -> None:
    argv = agnhost.curl_argv(_spec(target="fd00::5", port=8080, method="POST", path="echo",
                                   host_header="shop.example", timeout=0.5))
    assert argv[-5:] == ["--request", "POST", "--header", "Host: shop.example",
                         "http://[fd00::5]:8080/echo"]
    assert argv[argv.index("--connect-timeout") + 1] == "0.5"
    assert "--head" in agnhost.curl_argv(_spec(method="HEAD"))
    with pytest.raises(ValueError, match="needs a port"):
        agnhost.curl_argv(_spec(port=None))


OK = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Date: Mon, 10 Mar 2025 10:00:00 GMT\r\nContent-Length: 20\r\n\r\n"
      "api-7d9c6b5f4-x2x4z\n")


def test_curl_response_status_body_headers_peer() -> None:
    obs = agnhost.parse_curl(res(0, OK + "\n@@netlab-curl@@ 200 10.96.12.34 80"))
    assert obs is not None
    assert (obs.outcome, obs.status, obs.body, obs.peer, obs.detail) == (
        Outcome.CONNECTED, 200, "api-7d9c6b5f4-x2x4z\n", "10.96.12.34:80", "")
    assert obs.extra["headers"]["content-length"] == "20"


def test_curl_error_status_is_still_connected() -> None:
    text = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"
    obs = agnhost.parse_curl(res(0, text + "\n@@netlab-curl@@ 404 fd00::5 8080"))
    assert obs is not None and (obs.outcome, obs.status, obs.body, obs.peer) == (
        Outcome.CONNECTED, 404, "not found", "[fd00::5]:8080")


def test_curl_interim_continue_is_skipped() -> None:
    text = ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nX-Id: 7\r\n\r\nmade")
    obs = agnhost.parse_curl(res(0, text + "\n@@netlab-curl@@ 201 10.0.0.1 80"))
    assert obs is not None and (obs.status, obs.body, obs.extra["headers"]) == (
        201, "made", {"x-id": "7"})


def test_curl_body_containing_the_marker_keeps_it() -> None:
    body = "a\n@@netlab-curl@@ 999 1.2.3.4 1"
    text = f"HTTP/1.1 200 OK\r\n\r\n{body}\n@@netlab-curl@@ 200 10.0.0.1 80"
    obs = agnhost.parse_curl(res(0, text))
    assert obs is not None and (obs.status, obs.body) == (200, body)


def test_curl_partial_transfer_is_connected_with_the_problem() -> None:
    text = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"
    obs = agnhost.parse_curl(res(18, text + "\n@@netlab-curl@@ 200 10.0.0.1 80",
                                 "curl: (18) transfer closed with 95 bytes remaining to read\n"))
    assert obs is not None and obs.outcome is Outcome.CONNECTED
    assert obs.detail == "transfer closed with 95 bytes remaining to read"


NO_RESPONSE = "\n@@netlab-curl@@ 000  0"


@pytest.mark.parametrize(("rc", "stderr", "outcome"), [
    (6, "curl: (6) Could not resolve host: nosuch\n", Outcome.DNS_ERROR),
    (7, "curl: (7) Failed to connect to 10.96.0.1 port 8080: Connection refused\n",
     Outcome.REFUSED),
    (7, "curl: (7) Failed to connect to 10.244.3.9 port 80 after 3071 ms: No route to host\n",
     Outcome.UNREACHABLE),
    (7, "curl: (7) Failed to connect to 10.99.0.1 port 80 after 0 ms: Network is unreachable\n",
     Outcome.UNREACHABLE),
    (28, "curl: (28) Connection timed out after 1001 milliseconds\n", Outcome.TIMEOUT),
    (28, "curl: (28) Failed to connect to 10.0.0.9 port 80 after 1002 ms: Timeout was reached\n",
     Outcome.TIMEOUT),
    (28, "curl: (28) Operation timed out after 2000 milliseconds with 0 bytes received\n",
     Outcome.TIMEOUT),
    (52, "curl: (52) Empty reply from server\n", Outcome.TIMEOUT),
    (56, "curl: (56) Recv failure: Connection reset by peer\n", Outcome.REFUSED),
    (56, "curl: (56) Recv failure: Bad message\n", Outcome.ERROR),
    (8, "curl: (8) Weird server reply\n", Outcome.ERROR),
    (3, "curl: (3) URL rejected: Malformed input to a URL function\n", Outcome.ERROR),
])
def test_curl_failures(rc: int, stderr: str, outcome: Outcome) -> None:
    obs = agnhost.parse_curl(res(rc, NO_RESPONSE, stderr))
    assert obs is not None and obs.outcome is outcome and obs.status is None
    assert obs.detail and "curl: (" not in obs.detail


def test_curl_connect_failure_without_errno_needs_agnhost() -> None:
    said = "curl: (7) Failed to connect to 10.96.0.1 port 8080 after 1 ms: Couldn't connect to server"
    assert agnhost.parse_curl(res(7, NO_RESPONSE, said)) is None
    assert agnhost.parse_curl(res(7, NO_RESPONSE, said.replace("Couldn't", "Could not"))) is None


# ---------------------------------------------------------------- DNS through dig


def _dns(**kw: object) -> ProbeSpec:
    base: dict[str, object] = {"kind": "dns", "source": SRC,
                               "target": "backend.lab02.svc.cluster.local", "timeout": 1.0}
    base.update(kw)
    return ProbeSpec(**base)  # type: ignore[arg-type]


def test_dig_argv_defaults_to_the_pods_resolver() -> None:
    assert agnhost.dig_argv(_dns()) == [
        "dig", "+time=1", "+tries=2", "+notcp", "+nosearch", "-t", "A", "-q",
        "backend.lab02.svc.cluster.local"]


def test_dig_argv_server_port_tcp_search() -> None:
    spec = _dns(target="backend", qtype="SRV", transport="tcp", search=True,
                dns_server="[fd00::a]:5353", timeout=2.5)
    assert agnhost.dig_argv(spec) == [
        "dig", "+time=3", "+tries=2", "+tcp", "+search", "@fd00::a", "-p", "5353", "-t", "SRV",
        "-q", "backend"]
    assert agnhost.dig_argv(_dns(dns_server="10.96.0.10"))[5:8] == ["@10.96.0.10", "-p", "53"]
    with pytest.raises(ValueError):
        agnhost.dig_argv(_dns(dns_server="kube-dns"))


def _dig(status: str, answer: list[str], question: str, server: str = "10.96.0.10#53(10.96.0.10)",
         proto: str = " (UDP)") -> str:
    ans = ("\n;; ANSWER SECTION:\n" + "\n".join(answer) + "\n") if answer else ""
    return (f"\n; <<>> DiG 9.18.33 <<>> +time=1 +tries=2 -t A -q {question}\n"
            ";; global options: +cmd\n;; Got answer:\n"
            f";; ->>HEADER<<- opcode: QUERY, status: {status}, id: 24510\n"
            f";; flags: qr aa rd; QUERY: 1, ANSWER: {len(answer)}, AUTHORITY: 0, ADDITIONAL: 1\n"
            ";; WARNING: recursion requested but not available\n\n"
            ";; OPT PSEUDOSECTION:\n; EDNS: version: 0, flags:; udp: 1232\n"
            "; COOKIE: 5e3bd2a2b4ab9a23 (echoed)\n"
            f";; QUESTION SECTION:\n;{question}\t\tIN\tA\n{ans}\n"
            f";; Query time: 0 msec\n;; SERVER: {server}{proto}\n"
            ";; WHEN: Mon Mar 10 10:00:00 UTC 2025\n;; MSG SIZE  rcvd: 119\n\n")


def test_dig_answer_records_in_the_contract_format() -> None:
    out = _dig("NOERROR", ["backend.lab02.svc.cluster.local. 30 IN\tA\t10.96.45.12",
                           "backend.lab02.svc.cluster.local. 30 IN\tA\t10.96.45.13"],
               "backend.lab02.svc.cluster.local.")
    obs = agnhost.parse_dig(res(0, out), _dns())
    assert obs.outcome is Outcome.CONNECTED and obs.detail == "NOERROR, 2 A records"
    assert obs.peer == "10.96.0.10:53"
    assert obs.extra == {
        "rcode": "NOERROR", "qname": "backend.lab02.svc.cluster.local.", "server": "10.96.0.10:53",
        "transport": "udp",
        "records": [
            {"name": "backend.lab02.svc.cluster.local.", "type": "A", "ttl": 30,
             "data": "10.96.45.12"},
            {"name": "backend.lab02.svc.cluster.local.", "type": "A", "ttl": 30,
             "data": "10.96.45.13"}]}


def test_dig_record_types() -> None:
    out = _dig("NOERROR", [
        "payments.lab02.svc.cluster.local. 5 IN CNAME api.lab02.svc.cluster.local.",
        "_http._tcp.web.lab02.svc.cluster.local. 30 IN SRV 0 50 80 10-244-1-5.web.lab02.svc.cluster.local.",
        "12.45.96.10.in-addr.arpa. 30 IN\tPTR\tbackend.lab02.svc.cluster.local.",
        'note.lab. 300 IN TXT "v=1 \\"quoted\\"" "caf\\195\\169"',
        "v6.lab. 30 IN AAAA fd00:10:96:0:0:0:0:a",
        "lab. 300 IN SOA ns.dns.lab. hostmaster.lab. 1 7200 1800 86400 30",
    ], "payments.lab02.svc.cluster.local.")
    data = {r["type"]: r["data"] for r in agnhost.parse_dig(res(0, out), _dns()).extra["records"]}
    assert data["CNAME"] == "api.lab02.svc.cluster.local."
    assert data["SRV"] == {"priority": 0, "weight": 50, "port": 80,
                           "target": "10-244-1-5.web.lab02.svc.cluster.local."}
    assert data["PTR"] == "backend.lab02.svc.cluster.local."
    assert data["TXT"] == 'v=1 "quoted"café'
    assert data["AAAA"] == "fd00:10:96::a"
    assert data["SOA"] == "ns.dns.lab. hostmaster.lab. 1 7200 1800 86400 30"


def test_dig_nxdomain_after_search_is_a_reply_naming_the_last_name_tried() -> None:
    out = _dig("NXDOMAIN", [], "nosuch.cluster.local.", proto=" (TCP)")
    obs = agnhost.parse_dig(res(0, out), _dns(target="nosuch", search=True, transport="tcp"))
    assert obs.outcome is Outcome.CONNECTED
    assert obs.detail == "NXDOMAIN, 0 A records"
    assert (obs.extra["rcode"], obs.extra["qname"], obs.extra["records"],
            obs.extra["transport"]) == ("NXDOMAIN", "nosuch.cluster.local.", [], "tcp")


def test_dig_older_server_line_and_truncation_keep_the_asked_transport() -> None:
    out = _dig("NOERROR", [], "x.lab.", server="[fd00::a]#5353([fd00::a])", proto="")
    out = out.replace(";; SERVER: [fd00::a]#5353([fd00::a])", ";; SERVER: fd00::a#5353(fd00::a)")
    obs = agnhost.parse_dig(res(0, out), _dns(target="x.lab", dns_server="[fd00::a]:5353"))
    assert (obs.extra["server"], obs.extra["transport"]) == ("[fd00::a]:5353", "udp")


@pytest.mark.parametrize(("stdout", "stderr", "outcome"), [
    (";; communications error to 10.96.0.10#53: timed out\n"
     ";; communications error to 10.96.0.10#53: timed out\n;; no servers could be reached\n", "",
     Outcome.TIMEOUT),
    ("; <<>> DiG 9.16.1 <<>> -q x\n;; global options: +cmd\n"
     ";; connection timed out; no servers could be reached\n", "", Outcome.TIMEOUT),
    (";; communications error to 10.96.0.10#53: connection refused\n"
     ";; no servers could be reached\n", "", Outcome.REFUSED),
    ("", ";; Connection to 10.96.0.10#53(10.96.0.10) for x.lab failed: connection refused.\n",
     Outcome.REFUSED),
    (";; communications error to 10.9.9.9#53: host unreachable\n", "", Outcome.UNREACHABLE),
    ("", "dig: 'bad..name' is not a legal name (empty label)\n", Outcome.ERROR),
])
def test_dig_without_reply(stdout: str, stderr: str, outcome: Outcome) -> None:
    obs = agnhost.parse_dig(res(9, stdout, stderr), _dns(target="x.lab", dns_server="10.96.0.10"))
    assert obs.outcome is outcome
    assert obs.extra == {"qname": "x.lab.", "server": "10.96.0.10:53"}
    assert "global options" not in obs.detail and obs.detail


# ---------------------------------------------------------------- ping


def test_ping_argv() -> None:
    assert agnhost.ping_argv("10.244.2.7", 0.5) == ["ping", "-c", "1", "-W", "1", "10.244.2.7"]


@pytest.mark.parametrize(("rc", "stdout", "stderr", "outcome"), [
    (0, "PING 10.244.2.7 (10.244.2.7): 56 data bytes\n64 bytes from 10.244.2.7: seq=0 ttl=63 "
        "time=0.112 ms\n\n--- 10.244.2.7 ping statistics ---\n1 packets transmitted, 1 packets "
        "received, 0% packet loss\nround-trip min/avg/max = 0.112/0.112/0.112 ms\n", "",
     Outcome.CONNECTED),
    (1, "PING 10.244.2.8 (10.244.2.8): 56 data bytes\n\n--- 10.244.2.8 ping statistics ---\n"
        "1 packets transmitted, 0 packets received, 100% packet loss\n", "", Outcome.TIMEOUT),
    (1, "", "ping: permission denied (are you root?)\n", Outcome.UNSUPPORTED),
    (1, "", "ping: bad address 'nosuch'\n", Outcome.DNS_ERROR),
    (1, "PING 10.99.0.1 (10.99.0.1): 56 data bytes\n", "ping: sendto: Network unreachable\n",
     Outcome.UNREACHABLE),
    (1, "From 10.244.2.1 icmp_seq=1 Destination Host Prohibited\n", "", Outcome.REFUSED),
    (2, "", "ping: unrecognized option\n", Outcome.ERROR),
])
def test_ping_outputs(rc: int, stdout: str, stderr: str, outcome: Outcome) -> None:
    obs = agnhost.parse_ping(res(rc, stdout, stderr), "10.244.2.7")
    assert obs.outcome is outcome


def test_ping_peer_is_who_answered() -> None:
    out = "64 bytes from 10.244.2.7: seq=0 ttl=63 time=0.1 ms\n1 packets transmitted, 1 packets received"
    assert agnhost.parse_ping(res(0, out), "web").peer == "10.244.2.7"
