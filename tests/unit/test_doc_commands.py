"""The docs' run markers: well-formed, and enough of them for every CNI mode.

The convention (an HTML comment before a fenced block: ``<!-- run: flannel/vxlan`` then
``needs:``, ``expect:``, ``capture:`` lines and ``-->``) is described in tests/doccmds.py;
tests/root/test_doc_commands.py runs the marked commands on a real cluster of each mode.
Here, without root: every marker parses, names real modes and ``lab`` commands, every
mode of the local engine has enough runnable commands in chapter 01 (including the ones the
chapter is about), and what a console excerpt promises (its ``expect:`` lines) is shown in
the excerpt itself, so the page and the test can only change together.
"""

from __future__ import annotations

from pathlib import Path

import doccmds as dc
import pytest

from clusters.cnis import CNIS

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "docs" / "chapters" / "01-pod-networking.md"
#: Every mode the local engine builds (Cilium is kind-only).
LOCAL_MODES = [(name, backend) for name, info in CNIS.items() if name != "cilium"
               for backend in (info.backends or ("",))]
MIN_COMMANDS = 4
#: Commands chapter 01 must run on each mode (a piece of the command line).
REQUIRED = {
    ("kindnet", ""): ["ip route", "tcpdump -ni eth0"],
    ("flannel", "vxlan"): ["ip -d link show flannel.1", "bridge fdb show dev flannel.1",
                           "cat /run/flannel/subnet.env", "tcpdump -ni eth0 -c 4 udp port 8472",
                           "ip route"],
    ("flannel", "host-gw"): ["ip route", "cat /run/flannel/subnet.env"],
    ("calico", "bgp"): ["birdc show protocols", "ip route", "proxy_arp"],
    ("calico", "vxlan"): ["ip -d link show vxlan.calico", "ip route"],
}


KNOWN = {name: info.backends for name, info in CNIS.items()}


def _pages() -> list[Path]:
    return sorted((ROOT / "docs").rglob("*.md"))


# ---- the real docs -------------------------------------------------------------------------


def test_every_marker_in_the_docs_is_well_formed() -> None:
    blocks = [b for page in _pages() for b in dc.parse_file(page, ROOT)]
    assert blocks, "no runnable block in the docs"
    assert dc.check_blocks(blocks, KNOWN) == []


@pytest.mark.parametrize("mode", LOCAL_MODES, ids=lambda m: "-".join(filter(None, m)))
def test_chapter_01_has_runnable_commands_for_every_mode(mode: tuple[str, str]) -> None:
    blocks = dc.blocks_for(dc.parse_file(CHAPTER, ROOT), *mode)
    commands = [c.text for b in blocks for c in b.commands]
    assert len(commands) >= MIN_COMMANDS, (mode, commands)
    assert sum(len(b.expect) for b in blocks) >= MIN_COMMANDS // 2, (mode, blocks)
    for wanted in REQUIRED[mode]:
        assert any(wanted in c for c in commands), f"{mode}: no runnable {wanted!r}"


def test_console_excerpts_show_what_their_markers_expect() -> None:
    for block in dc.parse_file(CHAPTER, ROOT):
        if block.lang != "console" or not block.shown_output:
            continue
        shown = "\n".join(block.shown_output)
        missing = [e for e in block.expect if e not in shown]
        assert not missing, f"{block.where}: the excerpt does not show {missing}"


def test_chapter_names_every_cni_section() -> None:
    text = CHAPTER.read_text(encoding="utf-8")
    for heading in ("## kindnet", "## Flannel", "## Calico", "## Cilium"):
        assert heading in text


# ---- the parser ----------------------------------------------------------------------------

PAGE = """# Title

<!-- run: flannel/vxlan calico
needs: lab01
expect: vxlan id 1
expect: dstport 8472
-->
```console
$ lab node-shell netlab-worker -- ip -d link show flannel.1   # the device
4: flannel.1: <BROADCAST> mtu 1450
    vxlan id 1 local 172.30.0.3 dev eth0 dstport 8472
$ lab exec -n lab01 client -- ping -c 1 <server IP>
```

```bash
lab node-shell netlab-worker -- ip route   # not marked: not run
```

<!-- run: all
capture: yes -->

```bash
# a comment line is not a command
lab node-shell netlab-worker -- tcpdump -ni eth0 -c 2 icmp
lab exec -n lab01 client -- sh -c 'ping -c 1 10.0.0.1'
```
"""


def test_parse_console_and_bash_blocks() -> None:
    first, second = dc.parse_page(PAGE, "page.md")
    assert first.line == 3 and first.needs == "lab01" and not first.capture
    assert [str(m) for m in first.modes] == ["flannel/vxlan", "calico"]
    assert first.expect == ("vxlan id 1", "dstport 8472")
    assert [c.line for c in first.commands] == [9, 12]
    assert first.commands[0].text.endswith("ip -d link show flannel.1")
    assert first.commands[0].argv[-1] == "flannel.1"
    assert first.shown_output[1].strip().startswith("vxlan id 1")
    assert second.capture and second.lang == "bash" and len(second.commands) == 2
    assert second.commands[1].argv[-1] == "ping -c 1 10.0.0.1"


def test_modes_select_blocks() -> None:
    first, second = dc.parse_page(PAGE, "page.md")
    assert first.applies_to("flannel", "vxlan") and not first.applies_to("flannel", "host-gw")
    assert first.applies_to("calico", "bgp") and first.applies_to("calico", "vxlan")
    assert not first.applies_to("kindnet", "")
    assert second.applies_to("kindnet", "")
    assert dc.blocks_for([first, second], "kindnet", "") == [second]


def test_commands_for_a_cluster() -> None:
    first, _ = dc.parse_page(PAGE, "page.md")
    values = {"<server IP>": "10.244.2.2"}
    assert first.commands[0].for_cluster("knlt1234") == [
        "node-shell", "knlt1234-worker", "--", "ip", "-d", "link", "show", "flannel.1"]
    assert first.commands[1].for_cluster("knlt1234", values)[-1] == "10.244.2.2"
    cmd = dc.DocCommand("lab node-shell netlab-worker2 -- nft list table inet kube-netlab-policy",
                        1, ())
    assert cmd.for_cluster("knltx")[1:2] == ["knltx-worker2"]
    assert cmd.for_cluster("knltx")[-1] == "kube-netlab-policy"


def test_check_blocks_finds_bad_modes_commands_and_placeholders() -> None:
    page = """<!-- run: weave flannel/ipip -->
```bash
kubectl get pods
lab exec -n lab01 client -- ping <pod IP>
lab exec -n lab01 client -- ping <server IP>
```
"""
    problems = dc.check_blocks(dc.parse_page(page, "p.md"), KNOWN)
    text = "\n".join(problems)
    assert "unknown CNI 'weave'" in text
    assert "flannel has no backend 'ipip'" in text
    assert "p.md:3: not a `lab` command" in text
    assert "unknown placeholder <pod IP>" in text
    assert "<server IP> needs `needs: lab01`" in text


@pytest.mark.parametrize(("page", "message"), [
    ("<!-- run: kindnet\nexpect: x\n", "never closed with -->"),
    ("<!-- run: kindnet -->\ntext\n", "must be followed by a fenced code block"),
    ("<!-- run: kindnet -->\n```bash\nlab get pods\n", "never closed"),
    ("<!-- run: kindnet\nwant: x -->\n```bash\nlab get pods\n```\n", "expected `key: value`"),
    ("<!-- run: Kind/net -->\n```bash\nlab get pods\n```\n", "expected cni or cni/backend"),
    ("<!-- run: all/vxlan -->\n```bash\nlab get pods\n```\n", "`all` takes no backend"),
    ("<!-- run: kindnet\nneeds: lab99 -->\n```bash\nlab get pods\n```\n", "needs 'lab99'"),
    ("<!-- run: kindnet\ncapture: maybe -->\n```bash\nlab x\n```\n", "expected yes or no"),
    ("<!-- run: kindnet\nexpect: -->\n```bash\nlab x\n```\n", "is empty"),
    ("<!-- run: kindnet -->\n```yaml\nkind: Pod\n```\n", "must be console or bash"),
    ("<!-- run: kindnet -->\n```console\nno prompt here\n```\n", "holds no command"),
    ("<!-- run: kindnet\nrun: calico -->\n```bash\nlab x\n```\n", "'run' is given twice"),
    ("<!-- run: kindnet -->\n```bash\nlab exec 'unclosed\n```\n", "cannot split"),
])
def test_malformed_markers_are_reported_with_their_line(page: str, message: str) -> None:
    with pytest.raises(dc.DocMarkerError, match=r"^p\.md:[0-9]+: ") as err:
        dc.parse_page("\n" + page, "p.md")
    assert message in str(err.value)
