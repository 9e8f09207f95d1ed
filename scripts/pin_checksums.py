"""Record the sha256 of every pinned file in ``clusters/kind/pins.py``.

The kind engine refuses a downloaded manifest or archive it cannot verify. Upstream publishes
checksum files for the binaries and archives but not for manifests, and a checksum must never
be typed in from memory, so this script measures them: on a machine with network it downloads
every file artefact of the current pins (for every platform in ``pins.PLATFORMS``), checks each
against the checksum file upstream publishes when there is one, and rewrites the block between
``# BEGIN SHA256`` and ``# END SHA256`` in ``pins.py``. Entries for URLs no pin uses any more
are dropped, so the table never grows stale after an upgrade. It prints what changed::

    .venv/bin/python scripts/pin_checksums.py            # measure and rewrite pins.py
    .venv/bin/python scripts/pin_checksums.py --check    # exit 1 if a value is missing or differs
    .venv/bin/python scripts/pin_checksums.py --check --offline   # only: is any value missing?
    .venv/bin/python scripts/pin_checksums.py --host-only         # this machine's files only

Exit codes: 0 all good (or rewritten), 1 ``--check`` found a missing or different value,
2 a download failed or disagreed with upstream's own checksum file.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# The checkout this file belongs to, not whatever copy the venv was installed from.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clusters.kind import pins as pins_module  # noqa: E402
from clusters.kind.fetch import TIMEOUT, FetchError, download, published_sha256  # noqa: E402
from clusters.kind.pins import Pin  # noqa: E402

PINS_FILE = ROOT / "clusters" / "kind" / "pins.py"
BEGIN = "# BEGIN SHA256"
END = "# END SHA256"
_ENTRY = re.compile(r'"(?P<url>[^"\s]+)":\s*"(?P<sha>[0-9a-f]{64})"')

Measure = Callable[[Mapping[str, Pin]], dict[str, str]]


class BlockError(ValueError):
    """pins.py has no well-formed SHA256 block to rewrite."""


# ---- pure functions on the module text ------------------------------------------------------------


def _block_span(text: str) -> tuple[int, int]:
    """Character offsets of the lines strictly between the BEGIN and END marker lines."""
    begin = text.find(BEGIN)
    end = text.find(END)
    if begin < 0 or end < 0 or end < begin:
        raise BlockError(f"no '{BEGIN} ... {END}' block found")
    start = text.index("\n", begin) + 1
    return start, end


def parse_block(text: str) -> dict[str, str]:
    """The URL -> sha256 entries recorded in the module text's SHA256 block."""
    start, end = _block_span(text)
    return {m["url"]: m["sha"] for m in _ENTRY.finditer(text[start:end])}


def render_block(checksums: Mapping[str, str]) -> str:
    """The SHA256 table as pins.py spells it, sorted by URL (stable diffs)."""
    lines = ["SHA256: dict[str, str] = {\n"]
    for url in sorted(checksums):
        lines.append(f'    "{url}":\n        "{checksums[url]}",\n')
    lines.append("}\n")
    return "".join(lines)


def rewrite(text: str, checksums: Mapping[str, str]) -> str:
    """The module text with its SHA256 block replaced by ``checksums``."""
    bad = sorted(url for url, sha in checksums.items() if not pins_module.SHA256_RE.match(sha))
    if bad:
        raise ValueError(f"not a sha256 (64 lowercase hex digits) for: {', '.join(bad)}")
    start, end = _block_span(text)
    return text[:start] + render_block(checksums) + text[end:]


def merge(old: Mapping[str, str], measured: Mapping[str, str], current: Sequence[str]) -> dict[str, str]:
    """The new table: measured values win; old values kept only for URLs still pinned."""
    keep = set(current)
    merged = {url: sha for url, sha in old.items() if url in keep}
    merged.update(measured)
    return merged


def summarize(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Diff-like lines: ``+`` added, ``~`` changed, ``-`` dropped, then a count of unchanged."""
    lines = []
    for url in sorted(set(old) | set(new)):
        if url not in old:
            lines.append(f"+ {url}\n    {new[url]}")
        elif url not in new:
            lines.append(f"- {url} (no pin uses it any more)")
        elif old[url] != new[url]:
            lines.append(f"~ {url}\n    {old[url]} -> {new[url]}")
    same = sum(1 for url in new if old.get(url) == new[url])
    lines.append(f"= {same} unchanged")
    return lines


def problems(recorded: Mapping[str, str], current: Sequence[str],
             measured: Mapping[str, str] | None = None) -> list[str]:
    """What ``--check`` fails on: current URLs without a value, or with a different one."""
    found = []
    for url in sorted(current):
        if url not in recorded:
            found.append(f"missing: {url}")
        elif measured is not None and url in measured and measured[url] != recorded[url]:
            found.append(f"differs: {url}: recorded {recorded[url]}, downloaded {measured[url]}")
    return found


# ---- downloads ---------------------------------------------------------------------------------


def measure(urls: Mapping[str, Pin], *, timeout: float = TIMEOUT) -> dict[str, str]:
    """Download each URL and return its sha256, cross-checked with upstream's checksum file."""
    found: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="pin-checksums-") as tmp:
        for i, (url, p) in enumerate(sorted(urls.items())):
            print(f"downloading {url}", file=sys.stderr)
            got = download(url, Path(tmp) / f"{i}-{p.filename}", "", timeout=timeout)
            if p.checksum_url:
                published = published_sha256(p, timeout=timeout)
                if published != got:
                    raise FetchError(f"{url}: downloaded sha256 {got} but {p.checksum_url} says "
                                     f"{published}; not recording it")
            found[url] = got
    return found


def run(*, pins_file: Path, urls: Mapping[str, Pin], check: bool, offline: bool,
        measure_fn: Measure, pinned: Sequence[str]) -> int:
    """The script without argument parsing: the exit code, after printing what it found.

    ``urls`` are the files to measure now; ``pinned`` every URL any platform still uses
    (recorded values for the others are kept, values for URLs outside it are dropped).
    """
    text = pins_file.read_text()
    recorded = parse_block(text)
    current = sorted(urls)
    if check and offline:
        return _report(problems(recorded, current))
    measured = measure_fn(urls)
    if check:
        return _report(problems(recorded, current, measured))
    new = merge(recorded, measured, pinned)
    for line in summarize(recorded, new):
        print(line)
    if new != recorded:
        pins_file.write_text(rewrite(text, new))
        print(f"rewrote {pins_file}")
    return 0


def _report(found: list[str]) -> int:
    for line in found:
        print(line)
    print("all pinned files have a recorded sha256" if not found else
          f"{len(found)} problem(s): run scripts/pin_checksums.py without --check to record them")
    return 1 if found else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when a value is missing or differs")
    parser.add_argument("--offline", action="store_true",
                        help="with --check: download nothing, only report missing values")
    parser.add_argument("--host-only", action="store_true",
                        help="only this machine's platform (others' values are kept as they are)")
    parser.add_argument("--pins", type=Path, default=PINS_FILE, help="the pins module to rewrite")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per network read")
    args = parser.parse_args(argv)
    if args.offline and not args.check:
        parser.error("--offline only makes sense with --check")
    platforms = (pins_module.host_platform(),) if args.host_only else pins_module.PLATFORMS
    urls = pins_module.file_urls(platforms)
    try:
        return run(pins_file=args.pins, urls=urls, check=args.check, offline=args.offline,
                   measure_fn=lambda u: measure(u, timeout=args.timeout),
                   pinned=sorted(pins_module.file_urls()))
    except (FetchError, BlockError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
