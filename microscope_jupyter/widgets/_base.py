"""What every widget shares: its bundle, a static rendering next to the live view."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import pandas as pd
import traitlets as t

from ..analysis.annotations import watch
from ..errors import MicroscopeError
from .static_style import notes as static_notes

STATIC = Path(__file__).resolve().parent / "static"


def esm(name: str) -> Path:
    """The bundled front end of widget ``name`` (``js/src/<name>.js``, built into static/)."""
    path = STATIC / f"{name}.js"
    if not path.exists():
        raise MicroscopeError(f"the widget bundle {path.name} is missing: build it with "
                              "`./dev build` (or `npm ci && node build.mjs` in js/)")
    return path


def bundle_source(name: str) -> str:
    """The text of bundle ``name`` (a widget's, or ``report_runtime``), to inline in a page."""
    return esm(name).read_text(encoding="utf-8")


class Widget(anywidget.AnyWidget):
    """Adds a static HTML rendering next to the live view, a stable repr, and the
    recording's annotations (``notes``), kept current as notes are added."""

    notes = t.List(t.Dict()).tag(sync=True)   # [{id, seq, end_seq, text, author, target, pid}]

    def follow_notes(self, source: Any) -> None:
        """Show ``source``'s annotations, now and as ``s.annotate`` adds them."""
        self.notes = note_list(source)
        watch(source, self._notes_added)

    def _notes_added(self) -> None:
        source = getattr(self, "_source", None)
        if source is not None:
            self.notes = note_list(source)
            self.notes_changed(source)

    def notes_changed(self, source: Any) -> None:
        """A widget that draws notes elsewhere too (as marks) redraws them here."""

    def _repr_mimebundle_(self, **kwargs: Any):
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        data["text/html"] = self.static_html() + static_notes(self.notes)
        return data, metadata

    def static_html(self) -> str:  # pragma: no cover - every widget overrides
        return ""


def note_list(source: Any) -> list[dict]:
    """The recording's annotations as plain dicts for a widget."""
    notes = source.annotations()
    return [{"id": int(r.id), "seq": int(r.seq), "end_seq": int(r.end_seq), "text": str(r.text),
             "author": str(r.author), "target": str(r.target),
             "pid": r.pid if isinstance(r.pid, str) else None}
            for r in notes.itertuples(index=False)]


def finding_marks(source: Any, lane_of: dict[str, int] | None = None,
                  t0_ns: int | None = None) -> list[dict]:
    """The recording's findings, then its annotations (severity ``note``), as
    marks a widget draws and links to: ``{seq, t_us, lane, severity, kind,
    text}`` at each one's first event (``t_us`` from ``t0_ns``; ``lane`` from
    ``lane_of`` by pid, -1 if none)."""
    ts = source.store.raw().ts_ns
    notes = [{"seq": n["seq"], "kind": "annotation", "severity": "note",
              "text": f"✎ {n['author']}: {n['text']}",
              "t_us": None if t0_ns is None or not 0 <= n["seq"] < len(ts)
              else round((int(ts[n["seq"]]) - t0_ns) / 1000, 1),
              "lane": (lane_of or {}).get(n["pid"], -1) if n["pid"] else -1}
             for n in note_list(source)]
    try:
        findings = source.findings()
    except MicroscopeError:
        return notes
    if findings.empty:
        return notes
    marks = []
    for row in findings.itertuples(index=False):
        seq = int(row.first_seq)
        if not 0 <= seq < len(ts):
            continue
        marks.append({
            "seq": seq, "kind": str(row.kind), "severity": str(row.severity),
            "text": str(row.summary),
            "t_us": None if t0_ns is None else round((int(ts[seq]) - t0_ns) / 1000, 1),
            "lane": (lane_of or {}).get(row.pid, -1) if isinstance(row.pid, str) else -1,
        })
    return marks + notes


def callback_spans(source: Any, lane_of: dict[str, int]) -> list[tuple[int, int, float, str]]:
    """Every recorded GenServer callback of the lanes' processes as (lane, start
    ns since the epoch, duration µs, callback): a state event is stamped when
    its callback returned, and carries how long it ran."""
    states = source.states()
    if not len(states):
        return []
    end_ns = states["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    duration = states["duration_us"].to_numpy(dtype=float)
    return [(lane_of[p], int(end) - int(round(d * 1000)), float(d), str(c))
            for p, end, d, c in zip(states["pid"], end_ns, duration, states["callback"])
            if p in lane_of and not np.isnan(d)]


def mailbox_steps(source: Any, lane_of: dict[str, int],
                  min_peak: int = 0) -> list[tuple[int, int, int]]:
    """The mailbox length of the lanes' processes as time travel counts it (the
    node's own samples, moved by arrivals and what callbacks took), as (lane,
    ns since the epoch, length) at each change; a process whose mailbox never
    reached ``min_peak`` is left out."""
    ts = source.store.raw().ts_ns
    out: list[tuple[int, int, int]] = []
    for proc in source.time_travel().processes():
        if proc.pid not in lane_of:
            continue
        seqs, levels = proc.mailbox_levels()
        ok = (seqs >= 0) & (seqs < len(ts))
        if not ok.any() or levels[ok].max() < min_peak:
            continue
        out += [(lane_of[proc.pid], t, n) for t, n in zip(ts[seqs[ok]].tolist(),
                                                            levels[ok].tolist())]
    return out


def lane_label(pid: str, name: Any) -> str:
    """A process's label: its name, else its pid; in a cluster's recording (pids
    read ``<0.9.0>@node``) a name says its node, as every node has its own."""
    if not isinstance(name, str) or not name:
        return pid
    return f"{name} ({pid.split('@', 1)[1]})" if "@" in pid else name


def records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame rows as JSON-able dicts (numpy ints and NaN made plain)."""
    clean = frame.astype(object).where(frame.notna(), None)
    out = []
    for row in clean.to_dict("records"):
        out.append({k: (int(v) if isinstance(v, (np.integer,)) else v) for k, v in row.items()})
    return out


def rearm(timer: threading.Timer | None, on: bool, interval: float,
          tick: Any) -> threading.Timer | None:
    """A widget's live refresh: ``timer`` cancelled, and while ``on`` a fresh
    daemon timer that calls ``tick`` in ``interval`` seconds (None when off)."""
    if timer is not None:
        timer.cancel()
    if not on:
        return None
    fresh = threading.Timer(interval, tick)
    fresh.daemon = True
    fresh.start()
    return fresh

