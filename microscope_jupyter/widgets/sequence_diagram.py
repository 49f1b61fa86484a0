"""SequenceDiagram: lifelines and messages (``js/src/sequence_diagram.js``)."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd
import traitlets as t

from ..analysis.pattern import compile_pattern, match_message
from ..render.elixir import render
from ..store.otp import call_tag, message_kind, normal_exit
from ._base import Widget, callback_spans, esm, finding_marks, lane_label, mailbox_steps
from .static_style import PALETTE, UI, badge

__all__ = ["SequenceDiagram", "SYSTEM_LANES"]


def _message_kind(term: Any) -> str:
    """The arrow style: io and code server replies are drawn as plain messages."""
    kind = message_kind(term)
    return "info" if kind == "service_reply" else kind


SYSTEM_LANES = ("code_server", "erl_prim_loader", "logger", "Logger", "application_controller",
                "file_server_2", "rex", "global_name_server", "inet_db", "user", "standard_error",
                "kernel_sup", "error_logger")


class SequenceDiagram(Widget):
    """Lifelines and messages: hover for the payload, click to select, filter, zoom, pan.

    ``mode="time"`` puts time on the vertical axis: each arrow runs from its
    send to the moment it was handled (a message that waited behind a backlog
    slopes down), callbacks are activation bars, and a receiver's queue depth
    is a band beside its lifeline. ``mode="compact"`` (the default) gives
    each message a row. Findings are marks in the margin; click one to move
    the cursor (and every linked widget) to it. Keys: up/down step through
    messages, +/- zoom, f fits, 0 resets, t switches mode.

    ``procs`` limits it: one process shows everything it sent or received,
    several show only the messages between them (names cover restarts).
    Runtime services (``code_server``, ``logger``, ...) start hidden; pass
    ``hide=None`` or click "show all" to see them. ``selected`` is
    the send seq of the clicked message; ``selected_message`` is its row of
    ``s.messages()``. ``filter_pattern("{:update, _}")`` keeps the matching ones.
    """

    _esm = esm("sequence_diagram")
    lanes = t.List(t.Dict()).tag(sync=True)
    msgs = t.Dict().tag(sync=True)
    crashes = t.List(t.Dict()).tag(sync=True)
    selected = t.Int(-1).tag(sync=True)
    cursor = t.Int(-1).tag(sync=True)
    filter = t.Unicode("").tag(sync=True)
    hidden = t.List(t.Unicode()).tag(sync=True)
    row_filter = t.List(t.Int(), allow_none=True, default_value=None).tag(sync=True)
    mode = t.Enum(["compact", "time"], default_value="compact").tag(sync=True)
    activations = t.List(t.List()).tag(sync=True)
    queue = t.List(t.List()).tag(sync=True)
    marks = t.List(t.Dict()).tag(sync=True)

    def __init__(self, source: Any, procs: Any = None, limit: int | None = None,
                 since: int = 0, hide: tuple[str, ...] | None = SYSTEM_LANES,
                 mode: str = "compact", **kwargs: Any):
        super().__init__(mode=mode, **kwargs)
        self._source = source
        self.follow_notes(source)
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
                wanted |= {self._source.store.id_text(i) for i in self._source.facts.pids(proc)}
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
        self.lanes = [{"id": p, "label": lane_label(p, names.get(p))} for p in order]
        latency = table["latency_us"].to_numpy(dtype=float)
        wait = table["wait_us"].to_numpy(dtype=float)
        # Times in µs from the first message: sent, and handled (the callback
        # that took it began) or else received.
        sent = table["sent_at"].to_numpy(dtype="datetime64[ns]")
        t0 = int(sent[~np.isnat(sent)].view(np.int64).min()) if (~np.isnat(sent)).any() else 0
        sent_us = _us_since(sent, t0)
        end_us = np.where(np.isnan(wait), _us_since(table["received_at"], t0), sent_us + wait)
        self.msgs = {
            "from": [lane_of.get(p, -1) for p in table["sender"]],
            "to": [lane_of.get(p, -1) for p in table["receiver"]],
            "seq": [int(s) for s in table["send_seq"]],
            "recv_seq": [None if pd.isna(s) else int(s) for s in table["receive_seq"]],
            "kind": [_message_kind(term) for term in table["term"]],
            "status": list(table["status"]),
            "latency_us": _plain(latency),
            "wait_us": _plain(wait),
            "send_us": _plain(sent_us),
            "end_us": _plain(end_us),
            "text": [str(x) for x in table["text"]],
            "label": [_label(term, str(text), self._source.store.syntax)
                      for term, text in zip(table["term"], table["text"])],
            "pair": _call_reply_pairs(table["term"]),
        }
        events = self._source.events
        exits = events[events["kind"] == "exit"]
        seqs = np.asarray(self.msgs["seq"])
        self.crashes = [{"lane": lane_of[pid], "row": int(np.searchsorted(seqs, seq)) - 1,
                         "t_us": round((ts.value - t0) / 1000, 1), "text": str(text),
                         "abnormal": not normal_exit(term)}
                        for pid, seq, ts, term, text in zip(exits["pid"], exits["seq"], exits["ts"],
                                                            exits["term"], exits["text"])
                        if pid in lane_of]
        self.activations, self.queue = self._time_layers(lane_of, t0)
        self.marks = [m for m in finding_marks(self._source, lane_of, t0)
                      if m["lane"] >= 0 or not lane_of]

    def _time_layers(self, lane_of: dict[str, int], t0: int) -> tuple[list, list]:
        """Callbacks as [lane, start_us, dur_us, callback] and mailbox depth as
        [lane, t_us, len] for the lanes: what time mode draws on the lifelines."""
        activations = [[lane, round((start - t0) / 1000, 1), round(dur, 1), callback]
                       for lane, start, dur, callback in callback_spans(self._source, lane_of)]
        # a mailbox that never held two messages is no band
        queue = [[lane, round((t - t0) / 1000, 1), n]
                 for lane, t, n in mailbox_steps(self._source, lane_of, min_peak=2)]
        return activations, queue

    @property
    def selected_message(self) -> pd.Series | None:
        rows = self._table[self._table["send_seq"] == self.selected]
        return rows.iloc[0] if len(rows) else None

    def filter_pattern(self, pattern: Any) -> int:
        """Show only messages matching an Elixir pattern (or predicate); None clears."""
        if pattern is None:
            self.row_filter = None
            return len(self._table)
        matches = compile_pattern(pattern)
        keep = [i for i, term in enumerate(self._table["term"]) if match_message(matches, term)]
        self.row_filter = keep
        return len(keep)

    def static_html(self, max_rows: int = 150) -> str:
        return static_rendering(self.lanes, self.msgs, set(self.hidden),
                                            self.row_filter, max_rows, self.crashes)


def _call_reply_pairs(terms: Any) -> list[int]:
    """Each call's reply and each reply's call, as row indexes (-1: none): the
    reply's head is the tag of the call it answers."""
    pair = [-1] * len(terms)
    calls: dict[str, int] = {}
    for i, term in enumerate(terms):
        tag = call_tag(term)
        if tag is not None:
            calls[repr(tag)] = i
        elif message_kind(term) == "reply" and len(term) == 2:
            k = calls.pop(repr(term[0]), None)
            if k is not None:
                pair[i], pair[k] = k, i
    return pair


def _us_since(times: Any, t0_ns: int) -> np.ndarray:
    """Timestamps as float µs after ``t0_ns``, NaN where missing (the
    difference taken in int64: epoch ns as floats lose a quarter of a µs)."""
    values = np.asarray(times, dtype="datetime64[ns]")
    return np.where(np.isnat(values), np.nan, (values.view(np.int64) - t0_ns) / 1000)


def _plain(values: np.ndarray) -> list:
    """Floats for JSON: rounded to 0.1, None for NaN."""
    return [None if math.isnan(x) else round(x, 1) for x in values.tolist()]


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


def static_rendering(lanes_all: list[dict], m: dict, hidden: set[str],
                     row_filter: list[int] | None, max_rows: int = 150,
                     crashes: list[dict] = ()) -> str:
    """One row per message: sender, arrow (kind colour, label), receiver, what happened;
    exits between the rows they follow (crashes in red)."""
    lanes = [lane for lane in lanes_all if lane["id"] not in hidden]
    visible = {lanes_all.index(lane) for lane in lanes}
    allowed = None if row_filter is None else set(row_filter)
    rows = [i for i in range(len(m.get("seq", [])))
            if (allowed is None or i in allowed)
            and (m["from"][i] in visible or m["to"][i] in visible)]
    total = len(rows)
    rows = rows[:max_rows]
    labels = m.get("label") or m["text"]
    waits = m.get("wait_us") or [None] * len(m["seq"])
    name = lambda k: html.escape(str(lanes_all[k]["label"])) if 0 <= k < len(lanes_all) else "?"  # noqa: E731
    exits_after: dict[int, list[dict]] = {}
    for c in crashes:
        exits_after.setdefault(c["row"], []).append(c)
    base = f"padding:1px 6px;border-bottom:1px solid {UI['line']};white-space:nowrap"
    cell = f'style="{base}"'
    out = []

    def exit_rows(row: int) -> None:
        for c in exits_after.get(row, []):
            colour = PALETTE["crash"] if c.get("abnormal", True) else UI["muted"]
            what = "✖ crashed" if c.get("abnormal", True) else "■ exited"
            out.append(f'<tr><td {cell}></td><td style="{base};color:{colour}" colspan="4">'
                       f'<b>{name(c["lane"])} {what}</b>: <code>{html.escape(c["text"][:160])}</code>'
                       f'</td></tr>')

    exit_rows(-1)
    for i in rows:
        kind = "lost" if m["status"][i] == "lost" else (m["kind"][i] or "info")
        colour = PALETTE.get(kind, PALETTE["info"])
        wait = waits[i] if waits[i] is not None else m["latency_us"][i]
        took = "" if wait is None else (f"{wait / 1000:.1f} ms" if wait >= 1000 else f"{wait:.0f} µs")
        arrow = "╌╌✕" if kind == "lost" else "──▶"
        out.append(
            f'<tr><td {cell}><small style="color:{UI["muted"]}">#{m["seq"][i]}</small></td>'
            f'<td style="{base};text-align:right">{name(m["from"][i])}</td>'
            f'<td style="{base};color:{colour}" title="{html.escape(m["text"][i][:300])}">'
            f'<span style="color:{colour}">{arrow}</span> <code>{html.escape(labels[i][:60])}</code></td>'
            f'<td {cell}>{name(m["to"][i])}</td>'
            f'<td {cell}>{badge(m["status"][i], colour) if kind == "lost" else html.escape(m["status"][i])}'
            f' <small style="color:{UI["muted"]}">{took}</small></td></tr>')
        exit_rows(i)
    legend = " ".join(badge(k, PALETTE[k]) for k in ("call", "reply", "cast", "info", "lost"))
    more = "" if total <= max_rows else \
        f"<p>… {total - max_rows} more messages in the interactive view</p>"
    return (f'<div style="max-height:420px;overflow-y:auto;font-family:sans-serif;font-size:12px">'
            f'<b>Sequence diagram</b> ({total} messages, {len(lanes)} processes) {legend}'
            f'<table style="border-collapse:collapse">{"".join(out)}</table>{more}</div>')
