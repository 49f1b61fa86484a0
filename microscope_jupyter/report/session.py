"""A session's report: what happened, why, who concluded what, and the widgets."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MicroscopeError
from ..widgets import SequenceDiagram, SupervisionTree, Timeline, TimeTravel
from .page import page, widget_block

__all__ = ["write_report"]


def write_report(session: Any, path: Path, title: str | None = None,
                 question: str | None = None, frames: int = 200) -> Path:
    if len(session.store) == 0:
        raise MicroscopeError("the recording is empty: record something (s.trace(...)) before "
                              "writing a report")
    node = getattr(session, "node", None) or "a BEAM node"
    title = title or f"BEAM Microscope report: {node}"
    parts = [f"<h1>{html.escape(title)}</h1>", _meta(session)]
    explanation = session.explain(question)
    parts += ["<h2>What happened</h2>", explanation._repr_html_()]
    steps = [a for a in getattr(session, "audit", []) if a.get("tool") == "investigate"]
    if steps:
        parts += ["<h2>Investigation</h2>", _investigation(steps)]
    parts += ["<h2>Annotations</h2>", _annotations(session)]
    parts += ["<h2>Findings</h2>", _findings(session)]
    kinds: set[str] = set()
    for heading, make in (("Message sequence", lambda: SequenceDiagram(session)),
                          ("Timeline", lambda: Timeline(session)),
                          ("Time travel", lambda: TimeTravel(session, frames=frames)),
                          ("Supervision tree", lambda: SupervisionTree(session))):
        try:
            widget = make()
        except MicroscopeError as exc:
            parts += [f"<h2>{heading}</h2>", f'<p class="meta">{html.escape(str(exc))}</p>']
            continue
        kind = type(widget).__module__.rsplit(".", 1)[-1]
        state = widget.get_state()
        if isinstance(widget, SupervisionTree):   # a click shows details with no kernel
            state["frames"] = widget.detail_frames()
        parts += [f"<h2>{heading}</h2>", widget_block(kind, state, widget.static_html())]
        kinds.add(kind)
        widget.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(title, parts, kinds), encoding="utf-8")
    return path


def _meta(session: Any) -> str:
    ts = session.store.raw().ts_ns    # the header column: no frame needed
    first = pd.Timestamp(int(ts.min()), tz="UTC")
    span = (int(ts.max()) - int(ts.min())) / 1e9
    dropped = session.store.dropped
    lost = f"; <b>{dropped:,} events dropped</b> by the agent's limits" if dropped else ""
    return (f'<p class="meta">{len(ts):,} events from {html.escape(str(first))} over '
            f'{span:.3f} s{lost}. Written by microscope-jupyter; opens offline, no kernel.</p>')


def _findings(session: Any) -> str:
    found = session.findings()
    if found.empty:
        return '<p class="meta">No findings.</p>'
    rows = "".join(
        f'<tr><td class="sev-{html.escape(str(r.severity))}">{html.escape(str(r.severity))}</td>'
        f"<td>{html.escape(str(r.kind))}</td><td>{html.escape(_who(r.name, r.pid))}</td>"
        f"<td>{html.escape(str(r.summary))}</td>"
        f'<td class="mono">{html.escape(_seqs(r.evidence))}</td></tr>'
        for r in found.itertuples(index=False))
    return ('<table class="mic-table mic-findings"><tr><th>severity</th><th>kind</th>'
            f"<th>process</th><th>what</th><th>evidence (seqs)</th></tr>{rows}</table>")


def _investigation(steps: list[dict]) -> str:
    """The path an investigation took (``s.investigate``): each trace proposed,
    who decided, what it showed, and how it ended; from the audit."""
    rows = "".join(
        f"<tr><td>{html.escape(str(a.get('at', ''))[:19])}</td>"
        f"<td>{html.escape(str(a.get('arguments', {}).get('hypothesis', '')))}</td>"
        f"<td>{html.escape(str(a.get('arguments', {}).get('trace', '')))}</td>"
        f"<td>{html.escape(str(a.get('outcome', '')))}</td></tr>" for a in steps)
    question = steps[-1].get("arguments", {}).get("question", "")
    return (f"<p><b>{html.escape(str(question))}</b></p><table class=\"mic-table\"><tr><th>at</th>"
            f"<th>hypothesis</th><th>trace</th><th>outcome</th></tr>{rows}</table>")


def _annotations(session: Any) -> str:
    notes = session.annotations()
    if notes.empty:
        return '<p class="meta">No annotations.</p>'
    return "".join(
        f'<div class="mic-note" data-seq="{int(r.seq)}"><div>{html.escape(str(r.text))}</div>'
        f'<div class="who">{html.escape(str(r.author))} · {html.escape(str(r.target))}'
        f" · {r.created_at:%Y-%m-%d %H:%M} UTC</div></div>"
        for r in notes.itertuples(index=False))


def _who(name: Any, pid: Any) -> str:
    for value in (name, pid):
        if isinstance(value, str) and value:
            return value
    return ""


def _seqs(evidence: Any) -> str:
    seqs = list(evidence) if isinstance(evidence, (list, tuple, np.ndarray, pd.Series)) else []
    shown = ", ".join(str(int(s)) for s in seqs[:12])
    return shown + (f" (+{len(seqs) - 12} more)" if len(seqs) > 12 else "")
