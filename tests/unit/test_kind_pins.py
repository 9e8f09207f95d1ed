"""Pinned versions: one place, valid formats, and an upgrade that is one line."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import pytest
from modload import load_script

from clusters.kind import pins
from clusters.kind.pins import (
    DIGEST_RE,
    PLATFORMS,
    SHA256_RE,
    SPECS,
    VERSION_RE,
    VERSIONS,
    Pin,
    build_pins,
    file_urls,
    pin,
)

REQUIRED = ("kind", "kubectl", "helm", "istioctl", "node-image", "calico", "cilium", "flannel",
            "cni-plugins", "metallb", "gateway-api", "envoy-gateway", "nginx-ingress", "istio",
            "agnhost")
HEX = "a" * 64


def bump(version: str) -> str:
    """The next patch (or minor, for two-part versions): v1.35.8 -> v1.35.9, 2.53 -> 2.54."""
    head, _, last = version.rpartition(".")
    return f"{head}.{int(last) + 1}"


def test_every_required_pin_exists() -> None:
    assert set(REQUIRED) <= set(pins.PINS)


def test_pin_lookup_names_the_choices_when_missing() -> None:
    assert pin("kind").name == "kind"
    with pytest.raises(ValueError, match=r"no pin named 'kindd'; pins: .*agnhost.*node-image"):
        pin("kindd")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_pin_is_well_formed_on_every_platform(platform: tuple[str, str]) -> None:
    for p in build_pins(platform=platform).values():
        assert VERSION_RE.match(p.version), p
        assert not p.sha256 or SHA256_RE.match(p.sha256), p
        assert not p.digest or DIGEST_RE.match(p.digest), p
        if p.kind == "chart":
            assert p.url.startswith(("https://", "oci://")), p
            assert bool(p.chart) == p.url.startswith("https://"), p  # repo URL needs a chart name
        elif p.kind == "image":
            assert p.url.endswith(":" + p.version) and "://" not in p.url, p
        else:
            assert p.url.startswith("https://") and p.version in p.url, p
            assert not p.checksum_url or p.checksum_url.startswith(p.url), p


def test_the_node_image_is_pinned_by_digest_and_kubectl_matches_it() -> None:
    node = pin("node-image")
    assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", node.image)
    assert pin("kubectl").version == node.version  # zero client/server skew


def test_binaries_follow_the_platform_but_node_artefacts_stay_linux() -> None:
    mac = build_pins(platform=("darwin", "arm64"))
    assert mac["kind"].url.endswith("/kind-darwin-arm64")
    assert "/bin/darwin/arm64/kubectl" in mac["kubectl"].url
    assert mac["istioctl"].url.endswith("-osx-arm64.tar.gz")
    assert build_pins(platform=("darwin", "amd64"))["istioctl"].url.endswith("-osx.tar.gz")
    assert "cni-plugins-linux-arm64-" in mac["cni-plugins"].url


def test_host_platform_uses_release_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pins._platform, "system", lambda: "Darwin")
    monkeypatch.setattr(pins._platform, "machine", lambda: "arm64")
    assert pins.host_platform() == ("darwin", "arm64")
    monkeypatch.setattr(pins._platform, "system", lambda: "Linux")
    monkeypatch.setattr(pins._platform, "machine", lambda: "x86_64")
    assert pins.host_platform() == ("linux", "amd64")
    monkeypatch.setattr(pins._platform, "machine", lambda: "riscv64")
    assert pins.host_platform() == ("linux", "riscv64")  # no silent fallback to another build


@pytest.mark.parametrize("group", sorted(VERSIONS))
def test_changing_one_version_changes_everything_derived_from_it(group: str) -> None:
    new_version = bump(VERSIONS[group])
    members = {s.name for s in SPECS if s.group == group}
    assert members, f"version {group!r} is used by no pin"
    for platform in PLATFORMS:
        before = build_pins(platform=platform)
        after = build_pins({group: new_version}, platform=platform)
        for name, old in before.items():
            new = after[name]
            if name not in members:
                assert new == old
                continue
            assert new.version == new_version
            if new.kind == "chart":  # installed with --version; the repository stays
                assert (new.url, new.chart) == (old.url, old.chart)
                continue
            assert new.url != old.url and new_version in new.url and old.version not in new.url
            expected_sum = old.checksum_url.replace(old.url, new.url) if old.checksum_url else ""
            assert new.checksum_url == expected_sum
            # Values recorded for the old URL or reference never carry over to the new one.
            assert new.sha256 == "" and new.digest == ""
            if new.kind == "image":
                assert new.image == new.url


def test_checksums_and_digests_apply_only_to_the_exact_url_or_reference() -> None:
    url = pin("flannel").url
    assert build_pins(sha256={url: HEX})["flannel"].sha256 == HEX
    assert build_pins(sha256={url + "x": HEX})["flannel"].sha256 == ""
    ref = pin("agnhost").url
    digest = "sha256:" + "b" * 64
    assert build_pins(digests={ref: digest})["agnhost"].image == f"{ref}@{digest}"


def test_recorded_values_are_well_formed_and_none_is_stale() -> None:
    current = file_urls()
    for url, sha in pins.SHA256.items():
        assert SHA256_RE.match(sha), url
        assert url in current, f"SHA256 has an entry no pin uses: {url}"
    images = {p.url for platform in PLATFORMS for p in build_pins(platform=platform).values()
              if p.kind == "image"}
    for ref, digest in pins.DIGESTS.items():
        assert DIGEST_RE.match(digest) and ref in images, ref


def test_every_version_has_a_comment_saying_why() -> None:
    lines = Path(pins.__file__).read_text().splitlines()
    for group in VERSIONS:
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(f'"{group}":'))
        assert lines[index - 1].strip().startswith("#"), f"no comment above the {group!r} version"


def test_every_file_pin_can_be_verified_or_is_listed_for_the_script() -> None:
    unverifiable = {p.name for p in pins.PINS.values() if p.is_file and not (p.sha256 or p.checksum_url)}
    # Upstream publishes no checksum files for manifests: scripts/pin_checksums.py records them.
    assert unverifiable <= {p.name for p in pins.PINS.values() if p.kind == "manifest"}


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "tarball"}, "kind 'tarball' is not one of"),
    ({"version": "latest"}, "version 'latest' is not like"),
    ({"sha256": "ABC"}, "sha256 'ABC' is not 64 lowercase hex"),
    ({"sha256": HEX.upper()}, "is not 64 lowercase hex"),
    ({"digest": "sha256:" + HEX}, "digest is only for images"),
    ({"kind": "image", "url": "x:1.0", "sha256": HEX}, "sha256 is only for files"),
    ({"kind": "image", "url": "x:1.0", "digest": HEX}, "is not 'sha256:' and 64"),
])
def test_a_malformed_pin_is_refused(fields: dict[str, str], message: str) -> None:
    base = {"name": "x", "version": "1.0.0", "kind": "manifest", "url": "https://e.test/x.yaml"}
    with pytest.raises(ValueError, match=re.escape(message)):
        Pin(**{**base, **fields})  # type: ignore[arg-type]


def test_image_reference_with_and_without_digest() -> None:
    plain = Pin("a", "2.53", "image", "registry.k8s.io/e2e-test-images/agnhost:2.53")
    assert plain.image == "registry.k8s.io/e2e-test-images/agnhost:2.53"
    with pytest.raises(ValueError, match="is a manifest, not an image"):
        _ = Pin("m", "1.0", "manifest", "https://e.test/m.yaml").image
    assert Pin("m", "1.0", "manifest", "https://e.test/dir/m.yaml").filename == "m.yaml"


# ---- scripts/pin_checksums.py: the rewriting logic, offline ------------------------------------


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("pin_checksums")


PINS_TEXT = Path(pins.__file__).read_text()


def test_the_block_in_pins_py_is_exactly_what_the_script_writes(script: ModuleType) -> None:
    assert script.parse_block(PINS_TEXT) == pins.SHA256
    assert script.rewrite(PINS_TEXT, pins.SHA256) == PINS_TEXT


def test_rewriting_changes_only_the_block_and_stays_valid_python(script: ModuleType) -> None:
    new = {"https://e.test/b.yaml": "b" * 64, "https://e.test/a.yaml": "a" * 64}
    text = script.rewrite(PINS_TEXT, new)
    assert script.parse_block(text) == new
    ast.parse(text)
    before, after = PINS_TEXT.split(script.BEGIN), text.split(script.BEGIN)
    assert before[0] == after[0]
    assert before[1].split(script.END)[1] == after[1].split(script.END)[1]
    assert text.index("https://e.test/a.yaml") < text.index("https://e.test/b.yaml")  # sorted


def test_rewriting_refuses_bad_values_and_missing_markers(script: ModuleType) -> None:
    with pytest.raises(ValueError, match=r"not a sha256 .* for: https://e\.test/x"):
        script.rewrite(PINS_TEXT, {"https://e.test/x": "XYZ"})
    with pytest.raises(script.BlockError, match=re.escape("no '# BEGIN SHA256 ... # END SHA256' block")):
        script.parse_block("SHA256 = {}\n")


def test_merge_keeps_pinned_values_drops_stale_ones_and_prefers_measured(script: ModuleType) -> None:
    old = {"u/old": "1" * 64, "u/kept": "2" * 64, "u/changed": "3" * 64}
    merged = script.merge(old, {"u/changed": "4" * 64, "u/new": "5" * 64}, ["u/kept", "u/changed", "u/new"])
    assert merged == {"u/kept": "2" * 64, "u/changed": "4" * 64, "u/new": "5" * 64}
    assert script.summarize(old, merged) == [
        f"~ u/changed\n    {'3' * 64} -> {'4' * 64}",
        f"+ u/new\n    {'5' * 64}",
        "- u/old (no pin uses it any more)",
        "= 1 unchanged",
    ]


def test_check_reports_missing_and_different_values(script: ModuleType) -> None:
    recorded = {"u/a": "a" * 64, "u/b": "b" * 64}
    assert script.problems(recorded, ["u/a", "u/b"]) == []
    assert script.problems(recorded, ["u/a", "u/c"]) == ["missing: u/c"]
    assert script.problems(recorded, ["u/a"], {"u/a": "f" * 64}) == [
        f"differs: u/a: recorded {'a' * 64}, downloaded {'f' * 64}"]


def test_run_rewrites_a_pins_file_and_check_exits_1_until_it_is_complete(
        script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "pins.py"
    target.write_text(PINS_TEXT)
    flannel = pin("flannel")
    urls = {flannel.url: flannel}
    measured = {flannel.url: "c" * 64}
    current = sorted({*pins.SHA256, flannel.url})

    def fake_measure(wanted: Mapping[str, Pin]) -> dict[str, str]:
        return {url: measured[url] for url in wanted}

    def run(check: bool, offline: bool = False) -> int:
        return script.run(pins_file=target, urls=urls, check=check, offline=offline,
                          measure_fn=fake_measure, pinned=current)

    assert run(check=True, offline=True) == 1
    assert f"missing: {flannel.url}" in capsys.readouterr().out
    assert run(check=False) == 0
    assert script.parse_block(target.read_text()) == {**pins.SHA256, flannel.url: "c" * 64}
    assert f"+ {flannel.url}" in capsys.readouterr().out
    assert run(check=True) == 0
    measured[flannel.url] = "d" * 64  # upstream changed the file behind the same URL
    assert run(check=True) == 1
    assert f"differs: {flannel.url}: recorded {'c' * 64}, downloaded {'d' * 64}" in capsys.readouterr().out
