"""TimeTravel: a slider over the recording, every process at the cursor
(``js/src/time_travel.js``)."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import traitlets as t

from ..analysis.diff import diff, render_diff
from ..errors import MicroscopeError, QueryError
from ..render.elixir import render
from ..store.otp import normal_exit
from ._base import Widget, esm, finding_marks
from .static_style import PALETTE, UI

__all__ = ["TimeTravel"]


class TimeTravel(Widget):
    """A slider over the recording showing every process at the cursor.

    Rows that changed since the previous event are highlighted with their
    diff and pinned at the top. Step with the buttons or the arrow keys
    (within one process when ``proc`` is set: a name that matches no recorded
    process says so in ``message``). "only changed" and the supervisor menu
    narrow the table. Findings are ticks under the slider; click one to jump
    to it. A process that exited keeps its name, with its exit reason.
    ``link(sequence_diagram)`` follows its cursor.
    """

    _esm = esm("time_travel")
    n_events = t.Int(0).tag(sync=True)
    cursor = t.Int(0).tag(sync=True)
    proc = t.Unicode("").tag(sync=True)
    snapshot = t.List(t.Dict()).tag(sync=True)
    event_text = t.Unicode("").tag(sync=True)
    marks = t.List(t.Dict()).tag(sync=True)
    supervisors = t.List(t.Dict()).tag(sync=True)     # [{pid, name}] for the filter menu
    message = t.Unicode("").tag(sync=True)           # feedback: an unknown process, say
    # the slider's answers computed ahead ({"trait": "cursor", "values": {seq: traits}}),
    # for a report that runs with no kernel (keep_frames); the live view never reads it
    frames = t.Dict().tag(sync=True)

    def __init__(self, source: Any, cursor: Any = 0, frames: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self._source = source
        self.follow_notes(source)
        self._tt = source.time_travel()
        self.n_events = len(source.store)
        self._histories = {p.pid: p for p in self._tt.processes()}
        self._ancestors, self.supervisors = _family(source)
        self.marks = finding_marks(source)
        self.on_msg(self._on_custom)
        self.observe(self._redraw, names="cursor")
        self.observe(self._check_proc, names="proc")
        self.cursor = self._tt.seq_of(cursor) if self.n_events else 0
        self._redraw()
        if frames:
            self.keep_frames(frames)

    def __repr__(self) -> str:
        return f"<TimeTravel: cursor {self.cursor} of {self.n_events} events>"

    def link(self, other: Any) -> "TimeTravel":
        """Share the cursor with ``other`` (a SequenceDiagram); it starts at ours."""
        other.cursor = self.cursor
        t.link((other, "cursor"), (self, "cursor"))
        return self

    @t.validate("cursor")
    def _clamp(self, proposal: Any) -> int:
        return max(0, min(int(proposal["value"]), max(0, self.n_events - 1)))

    def keep_frames(self, count: int = 200) -> "TimeTravel":
        """Compute what the slider shows at ``count`` evenly spread events and at
        every finding and annotation, and keep it in the widget's state: a report
        of the notebook (``microscope report``, ``s.report``) moves through these
        with no kernel. About 10 ms each."""
        n = self.n_events
        wanted = {round(i * (n - 1) / max(1, count - 1)) for i in range(min(n, max(2, count)))}
        wanted |= {int(m["seq"]) for m in self.marks if 0 <= int(m["seq"]) < n}
        start, values = self.cursor, {}
        with self.hold_sync():   # a live view gets the end result, not every frame
            for seq in sorted(wanted):
                self.cursor = seq
                values[str(seq)] = {"snapshot": self.snapshot, "event_text": self.event_text}
            self.cursor = start
            self.frames = {"trait": "cursor", "values": values}
        return self

    def notes_changed(self, source: Any) -> None:
        self.marks = finding_marks(source)

    def _on_custom(self, _widget: Any, content: dict, _buffers: Any) -> None:
        if content.get("event") == "step":
            self.step(int(content.get("delta", 1)))

    def step(self, delta: int = 1) -> None:
        self._tt.cursor = self.cursor
        try:
            snapshot = self._tt.step(delta, proc=self.proc or None)
        except QueryError as exc:
            self.message = str(exc)
            snapshot = self._tt.step(delta)
        self.cursor = int(snapshot.attrs["seq"])

    def _check_proc(self, _change: Any = None) -> None:
        """Say at once when the process to step within matches nothing."""
        self.message = ""
        if self.proc:
            try:
                self._source.facts.pids(self.proc)
            except QueryError as exc:
                self.message = str(exc)

    @property
    def frame(self) -> pd.DataFrame:
        """The snapshot at the cursor as a DataFrame (every column, terms included)."""
        return self._tt.snapshot_at(self.cursor)

    def _redraw(self, _change: Any = None) -> None:
        if not self.n_events:
            return
        now = self._tt.snapshot_at(self.cursor)
        before = self._tt.snapshot_at(self.cursor - 1) if self.cursor > 0 else now
        previous = {r.pid: r for r in before.itertuples(index=False)}
        label = {r.pid: r.name for r in now.itertuples(index=False) if isinstance(r.name, str)}
        rows = []
        for r in now.itertuples(index=False):
            old = previous.get(r.pid)
            changes = diff(old.state, r.state) if old is not None else []
            relations = _relations_text(r, label)
            changed = (old is None or bool(changes) or old.alive != r.alive
                       or old.mailbox_len != r.mailbox_len
                       or relations != _relations_text(old, label))
            history = self._histories.get(r.pid)
            name = r.name if isinstance(r.name, str) else (
                history.last_name(self.cursor) if history is not None else None)
            rows.append({
                "pid": r.pid, "name": name,
                "alive": bool(r.alive),
                "exit_text": "" if r.alive or history is None else self._exit_text(history),
                "crashed": not r.alive and history is not None and self._crashed(history),
                "state_text": r.state_text if isinstance(r.state_text, str) else "",
                "mailbox": [render(m, self._source.store.syntax, 60) for m in r.mailbox],
                "mailbox_len": int(r.mailbox_len),
                # "node" when the count is the node's own sample, else how it was estimated
                "mailbox_basis": r.mailbox_basis if isinstance(r.mailbox_basis, str) else "",
                "current_callback": r.current_callback or "",
                "relations": relations,
                "diff_text": render_diff(changes, self._source.store.syntax) if changes else "",
                "changed": bool(changed and self.cursor > 0),
                "ancestors": self._ancestors.get(r.pid, []),
                "line": r.line if isinstance(r.line, str) else "",
                "log": list(r.log) if isinstance(r.log, list) else [],
            })
        self.snapshot = rows
        event = self._source.store.frame().iloc[self.cursor]
        who = _text(event["name"]) or _text(event["pid"])
        peer = _text(event["peer"])
        self.event_text = " ".join(part for part in (
            f"#{int(event['seq'])}", f"{event['ts']:%H:%M:%S.%f}", str(event["kind"]), who,
            f"-> {peer}" if peer else "", _text(event["text"])) if part)[:300]

    def _crashed(self, history: Any) -> bool:
        return history.exit_seq is not None and not normal_exit(
            self._source.store.frame()["term"].iloc[history.exit_seq])

    def _exit_text(self, history: Any) -> str:
        """"exited: <reason>", the reason as the exit event rendered it."""
        if history.exit_seq is None:
            return "exited"
        reason = self._source.store.frame()["text"].iloc[history.exit_seq]
        return f"exited: {reason}" if isinstance(reason, str) and reason else "exited"

    def static_html(self) -> str:
        return static_rendering(self.snapshot, self.cursor, self.n_events, self.event_text)


def _text(value: Any) -> str:
    """A frame cell as text: '' for None and NaN (never the string 'nan')."""
    return value if isinstance(value, str) else ""


def _family(source: Any) -> tuple[dict[str, list[str]], list[dict]]:
    """Each pid's ancestors (nearest first) in the recorded tree, and the
    supervisors (with their names) a user can narrow the table to."""
    try:
        tree = source.facts.recorded_tree()
    except MicroscopeError:
        return {}, []
    parent = {p: q for p, q in zip(tree["pid"], tree["parent"]) if isinstance(q, str)}
    ancestors: dict[str, list[str]] = {}
    for pid in tree["pid"]:
        chain, seen, up = [], {pid}, parent.get(pid)
        while up is not None and up not in seen:
            chain.append(up)
            seen.add(up)
            up = parent.get(up)
        ancestors[pid] = chain
    supervisors = [{"pid": p, "name": n if isinstance(n, str) else p}
                   for p, n, k in zip(tree["pid"], tree["name"], tree["kind"]) if k == "supervisor"]
    return ancestors, supervisors


def _relations_text(row: Any, label: dict[str, str]) -> str:
    """'links A, B · monitors C · monitored by D', peers by name where they have one."""
    parts = []
    for title, peers in (("links", row.links), ("monitors", row.monitors),
                         ("monitored by", row.monitored_by)):
        if peers:
            parts.append(f"{title} " + ", ".join(label.get(p, p) for p in peers))
    return " · ".join(parts)


def static_rendering(snapshot: list[dict], cursor: int, n_events: int, event_text: str) -> str:
    rows = "".join(
        f'<tr style="background:{UI["changed"] if r["changed"] else "none"};'
        f'color:{UI["text"] if r["alive"] else UI["dead"]}">'
        f'<td>{html.escape(r["name"] or r["pid"])}<br><code>{html.escape(r["pid"])}</code>'
        + ("" if r["alive"] else
           f'<br><span style="color:{PALETTE["crash"] if r.get("crashed") else UI["dead"]}">'
           f'{"✖" if r.get("crashed") else "◌"} {html.escape(r.get("exit_text") or "exited")}</span>')
        + '</td>'
        f'<td><code>{html.escape(r["state_text"])}</code>'
        f'<pre style="color:{UI["diff"]};margin:0">{html.escape(r["diff_text"])}</pre>'
        + (f'<i style="color:{UI["muted"]}">⟵ {html.escape(r["line"])}</i>' if r.get("line") else "")
        + "".join(f'<div style="color:{UI["muted"]}">▸ {html.escape(text)}</div>'
                  for text in r.get("log", []))
        + '</td>'
        f'<td><code>{_mailbox_cell(r)}</code></td>'
        f'<td>{html.escape(r["relations"])}</td></tr>'
        for r in snapshot)
    return (f'<div style="font:12px sans-serif"><b>Time travel</b> at event {cursor} of '
            f'{n_events}: <code>{html.escape(event_text)}</code>'
            f'<table><tr><th>process</th><th>state</th><th>mailbox</th>'
            f'<th>links &amp; monitors</th></tr>{rows}</table></div>')


def _mailbox_cell(r: dict) -> str:
    """The queued messages, counted: "≈" where the count is an estimate between
    the node's own samples (its derivation in the title)."""
    if not r.get("mailbox_len"):
        return html.escape(", ".join(r["mailbox"]))
    basis = r.get("mailbox_basis") or "node"
    mark = "" if basis == "node" else "≈"
    return (f'<span title="{html.escape(basis)}">{mark}{int(r["mailbox_len"])}</span>: '
            + html.escape(", ".join(r["mailbox"])))
