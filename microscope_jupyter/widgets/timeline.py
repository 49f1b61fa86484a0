"""Timeline: a track per process with its life, callbacks, traced calls, GC,
log lines and mailbox (``js/src/timeline.js``)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import traitlets as t

from ..store.otp import normal_exit
from ._base import Widget, callback_spans, esm, finding_marks, lane_label, mailbox_steps
from .static_style import PALETTE, UI, badge

__all__ = ["Timeline"]

MAX_LOG_MARKS = 5000   # log lines drawn; a flood keeps its most severe


class Timeline(Widget):
    """A track view of the recording, in the manner of Perfetto.

    Each process is a track: alive from birth to death (an abnormal death in
    red, the reason on hover), callbacks and traced calls as duration bars,
    GC as dots, what the node logged about it as ticks (red from error up,
    amber for warnings; the line on hover, a click moves the cursor to it), and
    under it its mailbox length with a y axis, from the node's own samples. Gaps between recordings are hatched. Ctrl+wheel or
    w/s zoom, drag pans, shift+drag (or a drag on the time axis) selects a
    range and sums up its callbacks ("handle_info: 75 calls, p99 251 ms"); a
    click moves ``cursor`` (shared with the other widgets through ``link``).
    """

    _esm = esm("timeline")
    lanes = t.List(t.Dict()).tag(sync=True)
    handlers = t.List(t.List()).tag(sync=True)
    callbacks = t.List(t.Unicode()).tag(sync=True)
    calls = t.List(t.List()).tag(sync=True)
    mfas = t.List(t.Unicode()).tag(sync=True)
    gcs = t.List(t.List()).tag(sync=True)
    logs = t.List(t.List()).tag(sync=True)   # [lane, t_ms, level (0 emergency .. 7 debug), seq, text]
    mailbox = t.List(t.List()).tag(sync=True)
    gaps = t.List(t.List()).tag(sync=True)
    marks = t.List(t.Dict()).tag(sync=True)
    span = t.Float(0.0).tag(sync=True)
    cursor = t.Int(-1).tag(sync=True)
    cursor_ms = t.Float(None, allow_none=True).tag(sync=True)

    def __init__(self, source: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self._source = source
        self.follow_notes(source)
        self._t0 = 0
        self.on_msg(self._on_custom)
        self.observe(self._place_cursor, names="cursor")
        self.refresh()

    def __repr__(self) -> str:
        return f"<Timeline: {len(self.lanes)} processes>"

    def link(self, other: Any) -> "Timeline":
        """Share the cursor with ``other`` (a TimeTravel or SequenceDiagram)."""
        self.cursor = other.cursor
        t.link((other, "cursor"), (self, "cursor"))
        return self

    def refresh(self) -> None:
        events = self._source.store.frame()
        if events.empty:
            return
        ts = events["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        self._t0 = t0 = int(ts.min())
        ms = (ts - t0) / 1e6
        self.span = float(ms.max()) or 1.0
        kinds = events["kind"].to_numpy()
        # every process with events, and those only seen being spawned
        spawned = events["peer"].to_numpy()[kinds == "spawn"]
        pids = [p for p in dict.fromkeys([*events["pid"], *spawned]) if isinstance(p, str)]
        lane_of = {p: i for i, p in enumerate(pids)}
        names = events.dropna(subset=["name"]).groupby("pid")["name"].last().to_dict()
        pid_col = events["pid"].to_numpy()
        first = {}
        for p, m in zip(pid_col, ms):
            first.setdefault(p, m)
        born = {peer: m for k, peer, m in zip(kinds, events["peer"], ms) if k == "spawn"}
        exits = events[kinds == "exit"]
        exit_ms = dict(zip(exits["pid"], ms[kinds == "exit"]))
        reasons = dict(zip(exits["pid"], exits["term"]))
        texts = dict(zip(exits["pid"], exits["text"]))
        self.lanes = [{"id": p, "label": lane_label(p, names.get(p)),
                       "start": float(born.get(p, first.get(p, 0.0))), "born": p in born,
                       "end": float(exit_ms[p]) if p in exit_ms else None, "exited": p in exit_ms,
                       "abnormal": p in exit_ms and not normal_exit(reasons[p]),
                       "reason": str(texts.get(p) or "")} for p in pids]
        self._bars(lane_of)
        gc = kinds == "gc"
        self.gcs = [[lane_of[p], float(m)] for p, m in zip(pid_col[gc], ms[gc]) if p in lane_of]
        self.logs = self._logs(events, kinds, pid_col, ms, lane_of)
        self.mailbox = [[lane, (t - t0) / 1e6, n]
                        for lane, t, n in mailbox_steps(self._source, lane_of)]
        spans = self._source.store.recording_spans()
        self.gaps = [[(a_end - t0) / 1e6, (b_start - t0) / 1e6]
                     for (_, a_end), (b_start, _) in zip(spans, spans[1:]) if b_start > a_end]
        self.marks = [{**m, "t_ms": m["t_us"] / 1000} for m in finding_marks(self._source, lane_of, t0)]
        self._place_cursor()

    def _bars(self, lane_of: dict[str, int]) -> None:
        """Callbacks (from the recorded states) and traced calls as [lane, start, dur, label]."""
        t0, callbacks = self._t0, {}
        handlers = [[lane, round((start - t0) / 1e6, 4), round(dur / 1000, 4),
                     callbacks.setdefault(callback, len(callbacks))]
                    for lane, start, dur, callback in callback_spans(self._source, lane_of)]
        self.callbacks, self.handlers = list(callbacks), handlers
        calls = self._source.calls()
        mfas, bars = {}, []
        if len(calls):
            start = calls["started_at"].to_numpy(dtype="datetime64[ns]")
            dur = calls["duration_us"].to_numpy(dtype=float) / 1000
            for p, s, d, mfa in zip(calls["pid"], start, dur, calls["mfa"]):
                if p in lane_of and not np.isnat(s) and not np.isnan(d):
                    bars.append([lane_of[p], round((int(s.view(np.int64)) - t0) / 1e6, 4),
                                 round(d, 4), mfas.setdefault(str(mfa), len(mfas))])
        self.mfas, self.calls = list(mfas), bars

    @staticmethod
    def _logs(events: Any, kinds: np.ndarray, pid_col: np.ndarray, ms: np.ndarray,
              lane_of: dict[str, int]) -> list[list]:
        """The node's log lines as ticks on their process's track; the most severe
        first when there are more than MAX_LOG_MARKS."""
        level, text = events["_aux"].to_numpy(), events["text"]
        rows = [i for i in np.flatnonzero(kinds == "log").tolist() if pid_col[i] in lane_of]
        if len(rows) > MAX_LOG_MARKS:
            rows = sorted(sorted(rows, key=lambda i: level[i])[:MAX_LOG_MARKS])
        return [[lane_of[pid_col[i]], round(float(ms[i]), 4), int(level[i]), int(i),
                 str(text.iloc[i] or "")] for i in rows]

    def _on_custom(self, _widget: Any, content: dict, _buffers: Any) -> None:
        if content.get("event") == "seek_ms" and len(self._source.store):
            ts = self._source.store.raw().ts_ns
            at = self._t0 + float(content.get("ms", 0)) * 1e6
            self.cursor = int(max(0, min(len(ts) - 1, np.searchsorted(ts, at, side="right") - 1)))

    def _place_cursor(self, _change: Any = None) -> None:
        ts = self._source.store.raw().ts_ns
        self.cursor_ms = (float((int(ts[self.cursor]) - self._t0) / 1e6)
                          if 0 <= self.cursor < len(ts) else None)

    def static_html(self) -> str:
        return static_rendering(self.lanes, self.handlers, self.span, self.callbacks)


def static_rendering(lanes: list[dict], handlers: list[list], span: float,
             callbacks: list[str] = (), max_bars: int = 3000) -> str:
    """A track per process: its life, its callbacks, its end (a crash in red), on a shared axis."""
    span = span or 1.0
    pct = lambda v: f"{max(0.0, min(100.0, v / span * 100)):.3f}%"  # noqa: E731
    per_lane: dict[int, list[list]] = {}
    for bar in handlers[:max_bars]:
        per_lane.setdefault(bar[0], []).append(bar)
    busy = {k: sum(b[2] for b in bars) for k, bars in per_lane.items()}
    rows = []
    for k, lane in enumerate(lanes):
        start, end = lane["start"] or 0.0, lane["end"] if lane["end"] is not None else span
        life = UI["lifetime_exited"] if lane.get("abnormal") else UI["lifetime"]
        bars = "".join(
            f'<div style="position:absolute;left:{pct(b[1])};width:{pct(max(b[2], span / 1000))};'
            f'top:2px;height:10px;background-color:{UI["handler"]};opacity:0.6"></div>'
            for b in per_lane.get(k, []))
        end_mark = ""
        if lane.get("exited"):
            colour = PALETTE["crash"] if lane.get("abnormal") else UI["muted"]
            end_mark = (f'<div style="position:absolute;left:{pct(end)};top:-2px;color:{colour};'
                        f'font-size:12px;font-weight:bold">{"✖" if lane.get("abnormal") else "|"}</div>')
        reason = (f' <small style="color:{PALETTE["crash"]}">{html.escape(lane.get("reason", "")[:60])}</small>'
                  if lane.get("abnormal") else "")
        rows.append(
            f'<tr><td style="padding:1px 6px;white-space:nowrap">{html.escape(str(lane["label"])[:30])}'
            f'{reason}</td><td style="padding:1px 0;min-width:480px">'
            f'<div style="position:relative;height:14px;background-color:{UI["panel"]}">'
            f'<div style="position:absolute;left:{pct(start)};width:{pct(end - start)};top:5px;'
            f'height:4px;background-color:{life}"></div>{bars}{end_mark}</div></td>'
            f'<td style="padding:1px 6px;white-space:nowrap"><small>{busy.get(k, 0):.1f} ms busy</small>'
            f'</td></tr>')
    legend = (f'{badge("callback", UI["handler"])} {badge("alive", UI["lifetime"])} '
              f'<span style="color:{PALETTE["crash"]}">✖ crash</span>')
    return (f'<div style="font-family:sans-serif;font-size:12px;max-height:420px;overflow-y:auto">'
            f'<b>Timeline</b> ({len(lanes)} processes over {span:.1f} ms) {legend}'
            f'<table style="border-collapse:collapse"><tr><td></td><td style="padding:0">'
            f'<small>0 ms</small><small style="float:right">{span:.1f} ms</small></td><td></td></tr>'
            f'{"".join(rows)}</table></div>')
