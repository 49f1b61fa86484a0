"""Explain: from symptoms to causes in one paragraph, with the evidence.

    e = s.explain("Why isn't WorkerB receiving all updates from WorkerA?")
    e.text      # a short paragraph: what happened, why, what to do
    e.causes    # rank, kind, confidence, summary, evidence, processes

Deterministic: no model, the same recording gives the same text. Process
names and module aliases in the question (or ``proc``) put the causes that
involve them first; an assistant reaches the same engine through MCP.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

import pandas as pd

from .causes import Cause, find_causes
from .findings import MAILBOX_GROWTH

if TYPE_CHECKING:  # pragma: no cover
    from .recorded import SessionBase

__all__ = ["Explanation", "explain", "CAUSE_COLUMNS"]

CAUSE_COLUMNS = ["rank", "kind", "confidence", "summary", "evidence", "processes"]


class Explanation:
    """What ``s.explain()`` returns: ``.text``, ``.causes``; shows as Markdown."""

    def __init__(self, text: str, causes: pd.DataFrame, question: str | None):
        self.text = text
        self.causes = causes
        self.question = question

    def __repr__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        lines = [f"**{self.question}**", ""] if self.question else []
        lines.append(self.text)
        for cause in self.causes.itertuples(index=False):
            seqs = ", ".join(str(s) for s in cause.evidence[:12])
            more = f" (+{len(cause.evidence) - 12} more)" if len(cause.evidence) > 12 else ""
            lines += ["", f"{cause.rank}. *{cause.kind}* ({cause.confidence:.0%}): "
                      f"{cause.summary}", f"   evidence seqs: {seqs}{more}"]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<li><b>{html.escape(c.kind)}</b> ({c.confidence:.0%}): {html.escape(c.summary)}"
            f"<br><small>evidence seqs: {', '.join(str(s) for s in c.evidence[:12])}</small></li>"
            for c in self.causes.itertuples(index=False))
        title = f"<p><b>{html.escape(self.question)}</b></p>" if self.question else ""
        return f"<div class='microscope-explain'>{title}<p>{html.escape(self.text)}</p>" \
               f"<ol>{rows}</ol></div>"


def explain(recorded: "SessionBase", question: str | None = None, *,
            proc: Any = None) -> Explanation:
    causes = find_causes(recorded)
    causes += _standing_findings(recorded, causes)
    focus = _focus(recorded, question, proc)
    # Causes about what the question names first, then the likelier, then the earlier.
    causes.sort(key=lambda c: (not _touches(c, focus), -c.confidence,
                               c.evidence[0] if c.evidence else 0))
    table = pd.DataFrame([(i + 1, c.kind, c.confidence, c.summary, c.evidence, c.processes)
                          for i, c in enumerate(causes)], columns=CAUSE_COLUMNS)
    return Explanation(_paragraph(recorded, causes, focus), table, question)


def _standing_findings(recorded: "SessionBase", causes: list[Cause]) -> list[Cause]:
    """Warning and error findings that no cause accounts for (by evidence or
    process), each a cause of its own: the answer never says nothing is wrong
    while findings say otherwise."""
    findings = recorded.findings()
    findings = findings[findings["severity"].isin(["warning", "error"])]
    seen = {s for c in causes for s in c.evidence}
    who = {p for c in causes for p in c.processes}
    out = []
    for f in findings.itertuples(index=False):
        name = f.name if isinstance(f.name, str) else f.pid
        if f.first_seq in seen or set(f.evidence) & seen or (name and name in who):
            continue
        text = f.summary[:1].upper() + f.summary[1:]
        out.append(Cause(f.kind, 0.5 if f.severity == "error" else 0.4,
                         text if text.endswith(".") else text + ".", list(f.evidence)[:50],
                         [name] if name else []))
    return out


def _focus(recorded: "SessionBase", question: str | None, proc: Any) -> set[str]:
    """The recorded process names the question (or ``proc``) mentions, by
    full name or by its last segment (``WorkerB`` for ``Demo.WorkerB``)."""
    names = {n for n in recorded.events["name"].dropna().unique() if isinstance(n, str)}
    wanted = set()
    words = set(re.findall(r"[A-Za-z_][\w.]*", question or ""))
    if proc is not None:
        words.add(str(proc))
    for name in names:
        if name in words or name.rsplit(".", 1)[-1] in words:
            wanted.add(name)
    return wanted


def _touches(cause: Cause, focus: set[str]) -> bool:
    return bool(focus) and any(p in focus for p in cause.processes)


def _paragraph(recorded: "SessionBase", causes: list[Cause], focus: set[str]) -> str:
    if not causes:
        return _all_well(recorded)
    lead = causes[0]
    text = lead.summary
    linked = [c for c in causes[1:] if c.kind != lead.kind and set(c.processes) & set(
        lead.processes)]
    if linked and lead.kind == "stale_pid" and linked[0].kind == "crash_restart":
        text = linked[0].summary + " Then: " + text   # the crash came first
    elif linked:
        text += " Behind it: " + linked[0].summary
    others = [c for c in causes[1:] if c not in linked[:1]]
    if others:
        kinds = sorted({c.kind.replace("_", " ") for c in others})
        text += (f" Also found: {len(others)} more cause(s) ({', '.join(kinds)}); "
                 "see .causes.")
    return text


def _all_well(recorded: "SessionBase") -> str:
    # Counted from the headers: a healthy recording needs no message join.
    events = recorded.store.frame()
    kinds = events["kind"].value_counts()
    durations = events.loc[events["kind"] == "state", "_duration_ns"]
    slowest = (f"; the slowest callback took {durations.max() / 1e6:.1f} ms"
               if len(durations) else "")
    sent, received = int(kinds.get("send", 0)), int(kinds.get("receive", 0))
    # More received than sent is no loss: the rest came from untraced senders
    # (an rpc, a shell, another node), so the sentence says so.
    outside = (f" (at least {received - sent:,} from processes outside the recording)"
               if received > sent else "")
    messages = "message" if sent == 1 else "messages"
    return (f"Nothing looks wrong in this recording: {events['pid'].nunique()} processes, "
            f"{sent:,} {messages} sent and {received:,} received{outside}, no crash, "
            f"no lost message, no mailbox past {MAILBOX_GROWTH} messages{slowest}.")
