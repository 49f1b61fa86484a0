"""Timeline: lifetimes, callback durations, GC and mailbox length (``js/src/timeline.js``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import traitlets as t

from . import static_html
from ._base import Widget, esm

__all__ = ["Timeline"]


class Timeline(Widget):
    """Process lifetimes, callback durations, GC and mailbox length over time."""

    _esm = esm("timeline")
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
                                            events.loc[state, "_duration_ns"]) if p in lane_of]
        gc = (events["kind"] == "gc").to_numpy()
        self.gcs = [[lane_of[p], float(m)] for p, m in zip(events.loc[gc, "pid"], ms[gc])
                    if p in lane_of]
        # Mailbox lengths as time travel counts them: the node's own samples,
        # moved by arrivals and callbacks in between.
        points = []
        for proc in self._source.time_travel().processes():
            if proc.pid not in lane_of:
                continue
            seqs, levels = proc.mailbox_levels()
            points += [[lane_of[proc.pid], float(ms[q]), int(n)]
                       for q, n in zip(seqs.tolist(), levels.tolist()) if 0 <= q < len(ms)]
        self.mailbox = points

    def static_html(self) -> str:
        return static_html.timeline(self.lanes, self.handlers, self.span)
