"""Explain: from symptoms to causes in one paragraph, with the evidence.

    e = s.explain("Why isn't WorkerB receiving all updates from WorkerA?")
    e.text      # a short paragraph: what happened, why, what to do
    e.causes    # rank, kind, confidence, summary, evidence, processes

Deterministic: no model, the same recording gives the same text. The
question is read for the processes it names (or ``proc``), the symptom it
asks about (lost, slow, crashed, growing, gone, wrong, stuck) and a clock
time in it (``analysis/question.py``); the causes that answer those come
first, and a process the question names that no cause involves is said to
look healthy, with the recording's evidence for it. An assistant reaches
the same engine through MCP.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pandas as pd

from ..store.otp import normal_exit
from .causes import find_causes
from .detector_kit import MAILBOX_GROWTH, Cause
from .findings import findings_table
from .question import Question, read_question, relevance
from .facts import Facts


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


def explain(facts: Facts, question: str | None = None, *,
            proc: Any = None) -> Explanation:
    causes = find_causes(facts)
    causes += _standing_findings(facts, causes)
    q = read_question(facts, question, proc)
    # What the question asks about first (its processes, its symptom, its
    # moment), then the likelier, then the earlier.
    ranked = sorted(causes, key=lambda c: (tuple(-x for x in relevance(c, q, facts)),
                                           -c.confidence, c.evidence[0] if c.evidence else 0))
    table = pd.DataFrame([(i + 1, c.kind, c.confidence, c.summary, c.evidence, c.processes)
                          for i, c in enumerate(ranked)], columns=CAUSE_COLUMNS)
    return Explanation(_answer(facts, ranked, q), table, question)


def _standing_findings(facts: Facts, causes: list[Cause]) -> list[Cause]:
    """Warning and error findings that no cause accounts for (by evidence or
    process), each a cause of its own: the answer never says nothing is wrong
    while findings say otherwise."""
    findings = findings_table(facts)
    findings = findings[findings["severity"].isin(["warning", "error"])]
    seen = {s for c in causes for s in c.evidence}
    who = {p for c in causes for p in c.processes}
    out = []
    for f in findings.itertuples(index=False):
        name = f.name if isinstance(f.name, str) else f.pid
        if f.first_seq in seen or set(f.evidence) & seen or (name and name in who):
            continue
        # "the agent dropped..." reads as a sentence; a name (bug_x, Demo.Sink) keeps its case
        text = f.summary[:1].upper() + f.summary[1:] if re.match(r"[a-z]+ ", f.summary) \
            else f.summary
        out.append(Cause(f.kind, 0.5 if f.severity == "error" else 0.4,
                         text if text.endswith(".") else text + ".", list(f.evidence)[:50],
                         [name] if name else []))
    return out


def _answer(facts: Facts, causes: list[Cause], q: Question) -> str:
    """The paragraph; first, for each process the question names that no cause
    involves, what the recording shows of it, and for one that a cause
    involves but not with the symptom asked about, that no sign of it shows."""
    involved = {p for c in causes for p in c.processes}
    said = []
    for name in sorted(q.processes):
        evidence = _evidence_of(facts, name)
        if evidence is None:
            continue
        if name not in involved:
            said.append(f"{name} looks healthy in this recording: {evidence}.")
        elif q.symptoms and not any(relevance(c, q, facts)[:2] == (1, 1) for c in causes):
            asked = " or ".join(SYMPTOM_WORDS[s] for s in sorted(q.symptoms))
            said.append(f"Nothing in the recording shows {name} {asked}: {evidence}.")
    text = _paragraph(facts, causes)
    if said and causes:
        return " ".join(said) + " What the recording does show: " + text
    return " ".join([text] + said)      # nothing wrong: said first, then of each process


SYMPTOM_WORDS = {"lost": "losing messages", "slow": "slow", "crashed": "crashing",
                 "growing": "growing", "gone": "gone", "wrong": "computing a wrong value",
                 "stuck": "stuck"}


def _evidence_of(facts: Facts, name: str) -> str | None:
    """What the recording shows of process ``name``: messages, callbacks, its
    mailbox by the node's own samples, whether it crashed; None when the
    recording never saw it, or it crashed (a crash is never healthy)."""
    try:
        ids = facts.pids(name)
    except Exception:       # a name the recording never saw: nothing to say of it
        return None
    frame = facts.store.frame()
    mine = frame[frame["_pid"].isin(ids)]
    if any(not normal_exit(t) for t in mine.loc[mine["kind"] == "exit", "term"]):
        return None
    kinds = mine["kind"].value_counts()
    handled = int(kinds.get("state", 0))
    parts = [f"it received {int(kinds.get('receive', 0)):,} message(s)"]
    if handled:
        slowest = mine.loc[mine["kind"] == "state", "_duration_ns"].max()
        parts.append(f"handled {handled:,} callback(s), the slowest in {slowest / 1e6:.1f} ms")
    levels = [proc.sampled()[1] for proc in facts.history().processes() if proc.gid in ids]
    levels = [v for v in levels if len(v)]
    if levels:
        parts.append(f"its mailbox peaked at {max(int(v.max()) for v in levels)} "
                     "(the node's own count)")
    return ", ".join(parts) + ", and it did not crash"


def _paragraph(facts: Facts, causes: list[Cause]) -> str:
    if not causes:
        return _all_well(facts)
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


def _all_well(facts: Facts) -> str:
    # Counted from the headers: a healthy recording needs no message join.
    events = facts.store.frame()
    kinds = events["kind"].value_counts()
    durations = events.loc[events["kind"] == "state", "_duration_ns"]
    slowest = (f"; the slowest callback took {durations.max() / 1e6:.1f} ms"
               if len(durations) else "")
    sent, received = int(kinds.get("send", 0)), int(kinds.get("receive", 0))
    # More received than sent is no loss: the rest came from timers
    # (send_after, gen_statem timeouts: no process sends them), ports, or
    # untraced senders (an rpc, a shell, another node), so the sentence says so.
    outside = (f" (at least {received - sent:,} from timers, ports or processes the trace "
               "did not follow)" if received > sent else "")
    messages = "message" if sent == 1 else "messages"
    return (f"Nothing looks wrong in this recording: {events['pid'].nunique()} processes, "
            f"{sent:,} {messages} sent and {received:,} received{outside}, no crash, "
            f"no lost message, no mailbox past {MAILBOX_GROWTH} messages{slowest}.")
