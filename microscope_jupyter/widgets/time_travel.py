"""TimeTravel: a slider over the recording, every process at the cursor
(``js/src/time_travel.js``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import traitlets as t

from ..analysis.diff import diff, render_diff
from ..errors import QueryError
from ..render.elixir import render
from . import static_html
from ._base import Widget, esm

__all__ = ["TimeTravel"]


class TimeTravel(Widget):
    """A slider over the recording showing every process at the cursor.

    Rows that changed since the previous event are highlighted with their
    diff. Step with the buttons or the arrow keys (within one process when
    ``proc`` is set). ``link(sequence_diagram)`` follows its cursor.
    """

    _esm = esm("time_travel")
    n_events = t.Int(0).tag(sync=True)
    cursor = t.Int(0).tag(sync=True)
    proc = t.Unicode("").tag(sync=True)
    snapshot = t.List(t.Dict()).tag(sync=True)
    event_text = t.Unicode("").tag(sync=True)

    def __init__(self, source: Any, cursor: Any = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self._source = source
        self._tt = source.time_travel()
        self.n_events = len(source.store)
        self.on_msg(self._on_custom)
        self.observe(self._redraw, names="cursor")
        self.cursor = self._tt.seq_of(cursor) if self.n_events else 0
        self._redraw()

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

    def _on_custom(self, _widget: Any, content: dict, _buffers: Any) -> None:
        if content.get("event") == "step":
            self.step(int(content.get("delta", 1)))

    def step(self, delta: int = 1) -> None:
        self._tt.cursor = self.cursor
        try:
            snapshot = self._tt.step(delta, proc=self.proc or None)
        except QueryError:
            snapshot = self._tt.step(delta)
        self.cursor = int(snapshot.attrs["seq"])

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
            rows.append({
                "pid": r.pid, "name": r.name if isinstance(r.name, str) else None,
                "alive": bool(r.alive),
                "state_text": r.state_text if isinstance(r.state_text, str) else "",
                "mailbox": [render(m, self._source.store.syntax, 60) for m in r.mailbox],
                "mailbox_len": int(r.mailbox_len),
                "current_callback": r.current_callback or "",
                "relations": relations,
                "diff_text": render_diff(changes, self._source.store.syntax) if changes else "",
                "changed": bool(changed and self.cursor > 0),
            })
        self.snapshot = rows
        event = self._source.store.frame().iloc[self.cursor]
        self.event_text = (f"#{int(event['seq'])} {event['ts']:%H:%M:%S.%f} {event['kind']} "
                           f"{event['name'] or event['pid'] or ''} "
                           f"{'-> ' + str(event['peer']) + ' ' if isinstance(event['peer'], str) else ''}"
                           f"{event['text'] or ''}")[:300]

    def static_html(self) -> str:
        return static_html.time_travel(self.snapshot, self.cursor, self.n_events, self.event_text)


def _relations_text(row: Any, label: dict[str, str]) -> str:
    """'links A, B · monitors C · monitored by D', peers by name where they have one."""
    parts = []
    for title, peers in (("links", row.links), ("monitors", row.monitors),
                         ("monitored by", row.monitored_by)):
        if peers:
            parts.append(f"{title} " + ", ".join(label.get(p, p) for p in peers))
    return " · ".join(parts)
