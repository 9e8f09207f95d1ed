"""A small lab on disk for scoring and grading tests: two tasks, points, one hidden check.

``make_demo_lab(root, tasks=...)`` writes ``root/labs/01-demo`` (lab.yaml, a setup
Namespace, one check file defining every check the tasks name) and loads it, so the tests
score against a real, validated :class:`~labs.catalogue.Lab` instead of a mock.
"""

from __future__ import annotations

import re
from pathlib import Path

from labs.catalogue import Lab, load_lab

HEAD = """\
id: "01"
slug: demo
title: {title}
chapter: chapters/01-demo.md
summary: One paragraph.
objectives: [Learn things]
cluster: {{workers: 2}}
namespaces: [lab01]
setup: [setup/]
starter: starter/
solution: solution/
checks: checks/
tasks:
"""

#: test_a (2 points) and test_b in task first; test_c and hidden test_secret (3) in second.
TASKS = """\
  - id: first
    title: First
    description: Do it.
    checks: [{name: test_a, points: 2}, test_b]
  - id: second
    title: Second
    description: Do more.
    checks: [test_c, {name: test_secret, points: 3, hidden: true}]
"""


def make_demo_lab(root: Path, tasks: str = TASKS, title: str = "A demo lab") -> Lab:
    folder = root / "labs" / "01-demo"
    for sub in ("setup", "starter", "solution", "checks"):
        (folder / sub).mkdir(parents=True)
    (folder / "setup" / "ns.yaml").write_text("kind: Namespace\nmetadata: {name: lab01}\n")
    names = dict.fromkeys(re.findall(r"\btest_\w+", tasks))
    (folder / "checks" / "test_demo.py").write_text(
        "".join(f"def {n}():\n    pass\n\n" for n in names))
    (folder / "lab.yaml").write_text(HEAD.format(title=title) + tasks)
    return load_lab(folder)
