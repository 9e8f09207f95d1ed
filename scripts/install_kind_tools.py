#!/usr/bin/env python3
"""Install the kind engine's tools at their pinned versions: ``install_kind_tools.py [--dest DIR] TOOL...``.

TOOL is one of kind, kubectl, helm, istioctl, cilium. Each download is verified against its
pinned sha256 or the checksum file upstream publishes (clusters/kind/fetch.py) before it is
installed; the default destination is /usr/local/bin. Used by the kind e2e workflow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clusters.errors import ClusterError
from clusters.kind.toolinstall import TOOLS, install_tool


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tools", nargs="+", choices=sorted(TOOLS), metavar="TOOL")
    parser.add_argument("--dest", type=Path, default=Path("/usr/local/bin"))
    args = parser.parse_args(argv)
    for tool in args.tools:
        try:
            path = install_tool(tool, args.dest)
        except ClusterError as err:
            print(f"install_kind_tools: {tool}: {err}", file=sys.stderr)
            return 1
        print(f"installed {tool} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
