"""``report.html``: one page an instructor can open offline or hand out, learner by learner.

Self-contained on purpose: inline CSS, no script, no font or image from the net, so it
opens the same anywhere and leaks nothing. Everything that comes from a learner (folder
names, file names, YAML error texts, check messages) or from a probe is passed through
:func:`html.escape`; the page never trusts a string it did not write itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from labs.grading.batch import Batch, LearnerResult
from labs.scoring import CheckScore, fmt

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } th, td { padding: .25em .8em; text-align: left; }
tr:nth-child(even) td { background: #f6f6f6; }
.bar { display: inline-block; width: 10em; height: .8em; background: #e4e4e4; }
.bar span { display: block; height: 100%; background: #3a7; }
.status { font-weight: 600; } .graded { color: #276; } .invalid, .error { color: #b22; }
.unstable { color: #a60; }
.learner { border-left: 4px solid #ccc; padding-left: 1em; margin: 1.5em 0; }
.check { margin: .6em 0 .6em 1em; } .check h4 { margin: .2em 0; font-size: 1em; }
dl { display: grid; grid-template-columns: 7em 1fr; margin: .2em 0; }
dt { color: #666; } dd { margin: 0; white-space: pre-wrap; }
pre { background: #f4f4f4; padding: .5em; white-space: pre-wrap; }
.meta, .note { color: #555; } .tag { font-size: .8em; color: #666; border: 1px solid #aaa;
  padding: 0 .3em; border-radius: 3px; }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def render(batch: Batch) -> str:
    lab = batch.lab
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Lab {_e(lab.id)} grades</title><style>{CSS}</style></head><body>",
        f"<h1>Lab {_e(lab.id)}: {_e(lab.title)} — grades</h1>",
        f'<p class="meta">engine {_e(batch.engine)}, CNI {_e(batch.profile.cni_label)}, '
        f"{batch.jobs} job(s){', fresh cluster per learner' if batch.fresh else ''}; "
        f"{_e(batch.started)} to {_e(batch.ended)}; {len(batch.results)} learner(s); "
        f"hidden checks included</p>",
    ]
    if batch.interrupted:
        parts.append('<p class="status error">Interrupted: not graded: '
                     f"{_e(', '.join(batch.not_graded) or 'none')}</p>")
    for text in [*batch.warnings, *batch.ignored]:
        parts.append(f'<p class="note">{_e(text)}</p>')
    parts += ["<h2>Summary</h2>", _summary(batch), "<h2>Learners</h2>"]
    parts += [_learner(batch, index, result) for index, result in enumerate(batch.results, 1)]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _summary(batch: Batch) -> str:
    rows = ["<table><tr><th>Learner</th><th>Points</th><th>Status</th><th>Score</th></tr>"]
    for index, r in enumerate(batch.results, 1):
        width = max(0.0, min(100.0, r.percent))
        rows.append(
            f'<tr><td><a href="#learner-{index}">{_e(r.learner)}</a></td>'
            f"<td>{fmt(r.points)}/{fmt(r.possible)}</td>"
            f'<td class="status {_e(r.status)}">{_e(r.status)}</td>'
            f'<td><span class="bar"><span style="width: {width:g}%"></span></span> '
            f"{r.percent:g}%</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _learner(batch: Batch, index: int, r: LearnerResult) -> str:
    parts = [f'<section class="learner" id="learner-{index}">',
             f"<h3>{_e(r.learner)} — {fmt(r.points)}/{fmt(r.possible)} "
             f'<span class="status {_e(r.status)}">{_e(r.status)}</span></h3>']
    if r.cluster:
        parts.append(f'<p class="meta">cluster {_e(r.cluster)}, {r.seconds:.1f} s</p>')
    if r.status in ("invalid", "error"):
        parts.append("<p>Not graded:</p><ul>" + "".join(
            f"<li><pre>{_e(p)}</pre></li>" for p in (r.problems or [r.message])) + "</ul>")
        if r.status == "error" and r.run is not None:
            parts.append(f"<details><summary>output of the checks</summary>"
                         f"<pre>{_e(r.run.pytest_output[-6000:])}</pre></details>")
        parts.append("</section>")
        return "\n".join(parts)
    if r.run is not None and r.run.not_ready:
        parts.append(f'<p class="note">Not everything became ready: {_e(r.run.not_ready)}</p>')
    titles = {t.id: t.title for t in batch.lab.tasks}
    missed = [c for c in r.score.checks if c.counted and c.outcome != "passed"]
    if not missed:
        parts.append("<p>Every check passed.</p>")
    for check in missed:
        parts.append(_check(check, titles.get(check.task, check.task)))
    parts.append("</section>")
    return "\n".join(parts)


def _check(check: CheckScore, task: str) -> str:
    hidden = ' <span class="tag">hidden</span>' if check.hidden else ""
    head = (f'<div class="check"><h4><span class="status {_e(_css(check.outcome))}">'
            f"{_e(check.outcome.upper())}</span> {_e(check.name)}{hidden} "
            f'<span class="meta">({_e(task)}; {fmt(check.earned)}/{fmt(check.possible)})'
            "</span></h4>")
    body = [_record(record, check.outcome == "unstable") for record in check.records
            if record.get("outcome") != "passed"]
    if not check.records:
        body.append('<p class="note">no result came back for this check</p>')
    return head + "".join(body) + "</div>"


def _css(outcome: str) -> str:
    return {"failed": "invalid", "error": "error", "unstable": "unstable"}.get(outcome, "")


def _record(record: Mapping[str, Any], unstable: bool) -> str:
    """Expected, observed and hint from the record's finding, else its message."""
    finding: Mapping[str, Any] = record.get("finding") or {}
    fields = [("case", record.get("name") if "[" in str(record.get("id", "")) else None)]
    if finding.get("source") or finding.get("destination"):
        probe = f"   [{finding['probe']}]" if finding.get("probe") else ""
        fields.append(("probe", f"{finding.get('source') or '?'} → "
                                f"{finding.get('destination') or '?'}{probe}"))
    fields += [("expected", finding.get("expected")), ("observed", finding.get("observed"))]
    if not finding:
        fields.append(("message", record.get("message")))
    fields.append(("hint", finding.get("hint") or record.get("hint")))
    parts = ["<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in fields if v)
             + "</dl>"]
    observations = finding.get("observations") or []
    if unstable:
        parts.append(_observations(observations))
    return "".join(parts)


def _observations(observations: Iterable[Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{n}</td><td>{_e(o.get('outcome', '?'))}</td>"
        f"<td>{_e(o.get('status') if o.get('status') is not None else '')}</td>"
        f"<td>{_e(o.get('detail') or o.get('body') or '')}</td></tr>"
        for n, o in enumerate(observations, 1))
    return ("<table><tr><th>#</th><th>observed</th><th>HTTP</th><th>detail</th></tr>"
            + (rows or '<tr><td colspan="4">no observations recorded</td></tr>') + "</table>")
