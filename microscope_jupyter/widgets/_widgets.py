"""The widget classes: data preparation in Python, drawing in ``static/*.js``."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import pandas as pd
import traitlets as t

from ..analysis.protocol import message_kind
from ..errors import MicroscopeError, QueryError
from ..render.elixir import render

STATIC = Path(__file__).resolve().parent / "static"


def _esm(name: str) -> Path:
    path = STATIC / f"{name}.js"
    if not path.exists():
        raise MicroscopeError(f"the widget bundle {path.name} is missing: build it with "
                              "`./dev build` (or `npm ci && node build.mjs` in js/)")
    return path


class _Widget(anywidget.AnyWidget):
    """Adds a static HTML rendering next to the live view, and a stable repr."""

    def _repr_mimebundle_(self, **kwargs: Any):
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        data["text/html"] = self._static_html()
        return data, metadata

    def _static_html(self) -> str:  # pragma: no cover - every widget overrides
        return ""


# ---------------------------------------------------------------- supervision tree


class SupervisionTree(_Widget):
    """Processes as a collapsible tree; colour by status, mailbox or memory.

    ``SupervisionTree(s)`` reads the live node when ``s`` is attached (call
    ``refresh()`` to read it again), else the recording. ``selected`` holds
    the pid clicked last.
    """

    _esm = _esm("supervision_tree")
    nodes = t.List(t.Dict()).tag(sync=True)
    selected = t.Unicode("").tag(sync=True)
    query = t.Unicode("").tag(sync=True)
    color_by = t.Enum(["status", "mailbox", "memory"], "status").tag(sync=True)

    def __init__(self, source: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self._source = source
        self.refresh()

    def __repr__(self) -> str:
        return f"<SupervisionTree: {len(self.nodes)} processes>"

    def refresh(self) -> None:
        self.nodes = _records(self._source.supervision_tree())

    @property
    def selected_process(self) -> dict | None:
        return next((n for n in self.nodes if n["pid"] == self.selected), None)

    def _static_html(self) -> str:
        children: dict[str | None, list[dict]] = {}
        pids = {n["pid"] for n in self.nodes}
        for n in self.nodes:
            parent = n.get("parent") if n.get("parent") in pids else None
            children.setdefault(parent, []).append(n)
        shown = [0]

        def walk(parent: str | None, depth: int) -> str:
            items = []
            for n in children.get(parent, []):
                if shown[0] >= 400:
                    break
                shown[0] += 1
                colour = {"exited": "#9aa0a6", "running": "#2f6fd6"}.get(n.get("status"), "#2e9e5b")
                label = html.escape(str(n.get("name") or n["pid"]))
                extra = html.escape(str(n.get("initial_call") or ""))
                weight = "600" if n.get("kind") == "supervisor" else "400"
                items.append(f'<li><span style="color:{colour}">●</span> '
                             f'<span style="font-weight:{weight}">{label}</span> '
                             f'<code style="color:#5f6368">{html.escape(n["pid"])}</code> '
                             f'<small style="color:#5f6368">{extra}</small>'
                             f'{walk(n["pid"], depth + 1)}</li>')
            return f'<ul style="list-style:none;padding-left:{0 if depth == 0 else 16}px;margin:0">' \
                   f'{"".join(items)}</ul>' if items else ""

        more = "" if len(self.nodes) <= 400 else f"<p>… {len(self.nodes) - 400} more</p>"
        return (f'<div style="font:12px sans-serif;max-height:360px;overflow:auto">'
                f'<b>Supervision tree</b> ({len(self.nodes)} processes){walk(None, 0)}{more}</div>')


# ---------------------------------------------------------------- sequence diagram


def _message_kind(term: Any) -> str:
    """The arrow style: io and code server replies are drawn as plain messages."""
    kind = message_kind(term)
    return "info" if kind == "service_reply" else kind


SYSTEM_LANES = ("code_server", "erl_prim_loader", "logger", "Logger", "application_controller",
                "file_server_2", "rex", "global_name_server", "inet_db", "user", "standard_error",
                "kernel_sup", "error_logger")


class SequenceDiagram(_Widget):
    """Lifelines and messages: hover for the payload, click to select, filter, zoom, pan.

    ``procs`` limits it: one process shows everything it sent or received,
    several show only the messages between them (names cover restarts).
    Runtime services (``code_server``, ``logger``, ...) start hidden; pass
    ``hide=None`` or click "show all" to see them. ``selected`` is
    the send seq of the clicked message; ``selected_message`` is its row of
    ``s.messages()``. ``filter_pattern("{:update, _}")`` keeps the matching ones.
    """

    _esm = _esm("sequence_diagram")
    lanes = t.List(t.Dict()).tag(sync=True)
    msgs = t.Dict().tag(sync=True)
    crashes = t.List(t.Dict()).tag(sync=True)
    selected = t.Int(-1).tag(sync=True)
    cursor = t.Int(-1).tag(sync=True)
    filter = t.Unicode("").tag(sync=True)
    hidden = t.List(t.Unicode()).tag(sync=True)
    row_filter = t.List(t.Int(), allow_none=True, default_value=None).tag(sync=True)

    def __init__(self, source: Any, procs: Any = None, limit: int | None = None,
                 since: int = 0, hide: tuple[str, ...] | None = SYSTEM_LANES, **kwargs: Any):
        super().__init__(**kwargs)
        self._source = source
        self._procs = procs
        self._limit = limit
        self._since = since
        self.refresh()
        if hide:
            # Runtime services (module loading, logging) start hidden: "show all" brings them back.
            self.hidden = [lane["id"] for lane in self.lanes if lane["label"] in set(hide)]

    def __repr__(self) -> str:
        return f"<SequenceDiagram: {len(self._table)} messages, {len(self.lanes)} processes>"

    def refresh(self) -> None:
        table = self._source.messages()
        table = table[table["send_seq"].notna()]
        if self._since:
            table = table[table["send_seq"] >= self._since]
        if self._procs is not None:
            procs = [self._procs] if isinstance(self._procs, str) else list(self._procs)
            wanted: set[str] = set()
            for proc in procs:
                wanted |= {self._source.store.id_text(i) for i in self._source._pid_ids(proc)}
            # One process: everything it sent or got. Several: the conversation between them.
            if len(procs) == 1:
                table = table[table["sender"].isin(wanted) | table["receiver"].isin(wanted)]
            else:
                table = table[table["sender"].isin(wanted) & table["receiver"].isin(wanted)]
        if self._limit:
            table = table.head(self._limit)
        self._table = table.reset_index(drop=True)
        names = {}
        for pid, name in zip(table["sender"], table["sender_name"]):
            names.setdefault(pid, name if isinstance(name, str) else None)
        for pid, name in zip(table["receiver"], table["receiver_name"]):
            names.setdefault(pid, name if isinstance(name, str) else None)
        order = list(dict.fromkeys(list(table["sender"]) + list(table["receiver"])))
        order = [p for p in order if isinstance(p, str)]
        lane_of = {p: i for i, p in enumerate(order)}
        self.lanes = [{"id": p, "label": names.get(p) or p} for p in order]
        latency = table["latency_us"].to_numpy(dtype=float)
        self.msgs = {
            "from": [lane_of.get(p, -1) for p in table["sender"]],
            "to": [lane_of.get(p, -1) for p in table["receiver"]],
            "seq": [int(s) for s in table["send_seq"]],
            "recv_seq": [None if pd.isna(s) else int(s) for s in table["receive_seq"]],
            "kind": [_message_kind(term) for term in table["term"]],
            "status": list(table["status"]),
            "latency_us": [None if math.isnan(x) else round(x, 1) for x in latency],
            "text": [str(x) for x in table["text"]],
            "label": [_label(term, str(text), self._source.store.syntax)
                      for term, text in zip(table["term"], table["text"])],
        }
        events = self._source.events
        exits = events[events["kind"] == "exit"]
        seqs = np.asarray(self.msgs["seq"])
        self.crashes = [{"lane": lane_of[pid], "row": int(np.searchsorted(seqs, seq)) - 1,
                         "text": str(text)}
                        for pid, seq, text in zip(exits["pid"], exits["seq"], exits["text"])
                        if pid in lane_of]

    @property
    def selected_message(self) -> pd.Series | None:
        rows = self._table[self._table["send_seq"] == self.selected]
        return rows.iloc[0] if len(rows) else None

    def filter_pattern(self, pattern: Any) -> int:
        """Show only messages matching an Elixir pattern (or predicate); None clears."""
        if pattern is None:
            self.row_filter = None
            return len(self._table)
        from ..analysis.pattern import compile_pattern

        matches = compile_pattern(pattern)
        keep = [i for i, term in enumerate(self._table["term"]) if _safe(matches, term)]
        self.row_filter = keep
        return len(keep)

    def _static_html(self, max_rows: int = 150) -> str:
        m = self.msgs
        hidden = set(self.hidden)
        lanes = [lane for lane in self.lanes if lane["id"] not in hidden]
        column = {self.lanes.index(lane): k for k, lane in enumerate(lanes)}
        allowed = None if self.row_filter is None else set(self.row_filter)
        rows = [i for i in range(len(m.get("seq", [])))
                if (allowed is None or i in allowed)
                and (m["from"][i] in column or m["to"][i] in column)]
        total = len(rows)
        rows = rows[:max_rows]
        lane_w, row_h, left, top = 150, 22, 80, 34
        width = left + max(1, len(lanes)) * lane_w
        height = top + len(rows) * row_h + 10
        colours = {"call": "#2f6fd6", "reply": "#80868b", "cast": "#188038", "info": "#3c4043",
                   "lost": "#d93025"}
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                 f'font-family="sans-serif" font-size="11">']
        for k, lane in enumerate(lanes):
            x = left + k * lane_w
            parts.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{height}" stroke="#dadce0"/>'
                         f'<text x="{x}" y="14" text-anchor="middle" font-weight="600">'
                         f'{html.escape(str(lane["label"])[:22])}</text>'
                         f'<text x="{x}" y="27" text-anchor="middle" fill="#5f6368">'
                         f'{html.escape(lane["id"])}</text>')
        labels = m.get("label") or m["text"]
        for r, i in enumerate(rows):
            y = top + r * row_h + row_h / 2
            kind = "lost" if m["status"][i] == "lost" else m["kind"][i]
            x1 = left + column[m["from"][i]] * lane_w if m["from"][i] in column else None
            x2 = left + column[m["to"][i]] * lane_w if m["to"][i] in column else None
            if x1 is None:
                x1 = x2 - 50
            if x2 is None:
                x2 = x1 + 50
            dash = ' stroke-dasharray="4 3"' if kind in ("reply", "lost") else ""
            parts.append(f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{colours[kind]}"'
                         f'{dash}/><circle cx="{x2}" cy="{y}" r="2.5" fill="{colours[kind]}"/>'
                         f'<text x="{min(x1, x2) + 4}" y="{y - 4}" fill="#3c4043">'
                         f'<title>{html.escape(m["text"][i])}</title>'
                         f'{html.escape(labels[i][:40])}</text>')
        parts.append("</svg>")
        more = "" if total <= max_rows else \
            f"<p>… {total - max_rows} more messages in the interactive view</p>"
        return (f'<div style="max-height:420px;overflow:auto"><b>Sequence diagram</b> '
                f'({total} messages)<br>{"".join(parts)}{more}</div>')


def _label(term: Any, text: str, syntax: str) -> str:
    """The short arrow label: the request of a call, the body of a cast or reply."""
    kind = _message_kind(term)
    try:
        if kind == "call" and len(term) == 3:
            return "call " + render(term[2], syntax, 60)
        if kind in ("cast", "reply") and len(term) == 2:
            return f"{kind} " + render(term[1], syntax, 60)
    except TypeError:
        pass
    return text[:80]


def _safe(predicate: Any, term: Any) -> bool:
    try:
        return bool(predicate(term))
    except Exception:  # noqa: BLE001
        return False


# ---------------------------------------------------------------- time travel


class TimeTravel(_Widget):
    """A slider over the recording showing every process at the cursor.

    Rows that changed since the previous event are highlighted with their
    diff. Step with the buttons or the arrow keys (within one process when
    ``proc`` is set). ``link(sequence_diagram)`` follows its cursor.
    """

    _esm = _esm("time_travel")
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
        from ..analysis.diff import diff, render_diff

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

    def _static_html(self) -> str:
        rows = "".join(
            f'<tr style="background:{"#fef7e0" if r["changed"] else "none"};'
            f'color:{"#202124" if r["alive"] else "#9aa0a6"}">'
            f'<td>{html.escape(r["name"] or r["pid"])}<br><code>{html.escape(r["pid"])}</code></td>'
            f'<td><code>{html.escape(r["state_text"])}</code>'
            f'<pre style="color:#b06000;margin:0">{html.escape(r["diff_text"])}</pre></td>'
            f'<td><code>{html.escape(", ".join(r["mailbox"]))}</code></td>'
            f'<td>{html.escape(r["relations"])}</td></tr>'
            for r in self.snapshot)
        return (f'<div style="font:12px sans-serif"><b>Time travel</b> at event {self.cursor} of '
                f'{self.n_events}: <code>{html.escape(self.event_text)}</code>'
                f'<table><tr><th>process</th><th>state</th><th>mailbox</th>'
                f'<th>links &amp; monitors</th></tr>{rows}</table></div>')


def _relations_text(row: Any, label: dict[str, str]) -> str:
    """'links A, B · monitors C · monitored by D', peers by name where they have one."""
    parts = []
    for title, peers in (("links", row.links), ("monitors", row.monitors),
                         ("monitored by", row.monitored_by)):
        if peers:
            parts.append(f"{title} " + ", ".join(label.get(p, p) for p in peers))
    return " · ".join(parts)


# ---------------------------------------------------------------- timeline


class Timeline(_Widget):
    """Process lifetimes, callback durations, GC and mailbox length over time."""

    _esm = _esm("timeline")
    lanes = t.List(t.Dict()).tag(sync=True)
    handlers = t.List(t.List()).tag(sync=True)
    gcs = t.List(t.List()).tag(sync=True)
    mailbox = t.List(t.List()).tag(sync=True)
    span = t.Float(0.0).tag(sync=True)

    def __init__(self, source: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self._source = source
        self.refresh()

    def __repr__(self) -> str:
        return f"<Timeline: {len(self.lanes)} processes>"

    def refresh(self) -> None:
        events = self._source.store.frame()
        if events.empty:
            return
        t0 = events["ts"].min()
        ms = ((events["ts"] - t0).dt.total_seconds() * 1000).to_numpy()
        self.span = float(ms.max()) or 1.0
        pids = [p for p in dict.fromkeys(events["pid"]) if isinstance(p, str)]
        lane_of = {p: i for i, p in enumerate(pids)}
        names = events.dropna(subset=["name"]).groupby("pid")["name"].last().to_dict()
        first = pd.Series(ms).groupby(events["pid"].to_numpy()).min().to_dict()
        exits = {p: m for p, m, k in zip(events["pid"], ms, events["kind"]) if k == "exit"}
        self.lanes = [{"id": p, "label": names.get(p) or p, "start": float(first.get(p, 0)),
                       "end": float(exits[p]) if p in exits else None, "exited": p in exits}
                      for p in pids]
        state = events["kind"] == "state"
        self.handlers = [[lane_of[p], float(m - a / 1e6), float(a / 1e6)]
                         for p, m, a in zip(events.loc[state, "pid"], ms[state.to_numpy()],
                                            events.loc[state, "_aux"]) if p in lane_of]
        gc = (events["kind"] == "gc").to_numpy()
        self.gcs = [[lane_of[p], float(m)] for p, m in zip(events.loc[gc, "pid"], ms[gc])
                    if p in lane_of]
        tt = self._source.time_travel()
        points = []
        for proc in tt._procs.values():
            if proc.pid not in lane_of or not len(proc.recv_seqs):
                continue
            deltas = sorted([(int(r), 1) for r in proc.recv_seqs]
                            + [(int(h), -1) for h in proc.handled_seqs if h < len(ms)])
            level = 0
            for seq, d in deltas:
                level += d
                points.append([lane_of[proc.pid], float(ms[seq]), max(level, 0)])
        self.mailbox = points

    def _static_html(self) -> str:
        width, left, lane_h = 760, 160, 22
        span = self.span or 1.0
        x = lambda v: left + v / span * (width - left - 10)  # noqa: E731
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
                 f'height="{20 + len(self.lanes) * lane_h}" font-family="sans-serif" font-size="11">']
        for i, lane in enumerate(self.lanes):
            y = 20 + i * lane_h
            end = lane["end"] if lane["end"] is not None else span
            parts.append(f'<text x="4" y="{y + 12}">{html.escape(str(lane["label"])[:24])}</text>'
                         f'<rect x="{x(lane["start"]):.1f}" y="{y + 4}" '
                         f'width="{max(2, x(end) - x(lane["start"])):.1f}" height="10" rx="3" '
                         f'fill="{"#f6aea9" if lane["exited"] else "#ceead6"}"/>')
        for lane, start, dur in self.handlers[:5000]:
            parts.append(f'<rect x="{x(start):.1f}" y="{20 + lane * lane_h + 2}" '
                         f'width="{max(1, x(start + dur) - x(start)):.1f}" height="14" '
                         f'fill="#2f6fd6" opacity="0.5"/>')
        parts.append("</svg>")
        return f'<div><b>Timeline</b> ({len(self.lanes)} processes)<br>{"".join(parts)}</div>'


def _records(frame: pd.DataFrame) -> list[dict]:
    clean = frame.astype(object).where(frame.notna(), None)
    out = []
    for row in clean.to_dict("records"):
        out.append({k: (int(v) if isinstance(v, (np.integer,)) else v) for k, v in row.items()})
    return out
