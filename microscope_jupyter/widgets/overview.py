"""SystemOverview: the node at a glance, like observer's first tab
(``js/src/overview.js``).

    ov = s.overview()             # live: one read of the node, then ov.refresh()
    ov.schedulers; ov.memory; ov.ets; ov.ports; ov.processes   # DataFrames
    ov.recorded_tops(at_ms=250)   # the tops as the recording sampled them
    ov.live = True                # read again every ov.interval seconds
    ov.selected = "<0.123.0>"     # its details in ov.details; ov.tree: the tree

Tabs: system (schedulers' utilisation, memory by category, the node's
counters and limits), processes (the tops by mailbox, memory and reductions
in the window), ETS tables, ports, recorded (the tops as the trace sampled
them, at the time the slider picks) and the supervision tree. Clicking a
process shows its details; "show in tree" opens the tree on it.
"""

from __future__ import annotations

import html
import threading
from datetime import datetime
from typing import Any, Callable

import pandas as pd
import traitlets as t

from ..analysis.tops import recorded_span_ms, recorded_tops
from ..errors import MicroscopeError
from ._base import Widget, esm, rearm, records
from .static_style import UI
from .supervision_tree import SupervisionTree, details_of

__all__ = ["SystemOverview", "static_rendering", "figures_of"]

TABS = ["system", "processes", "ets", "ports", "recorded", "tree"]
TOPS = [("mailbox", "message_queue_len", "mailbox"), ("memory", "memory", "memory (B)"),
        ("reductions", "reductions_in_window", "reductions in window")]
RECORDED_TOPS = [("mailbox", "mailbox_len", "mailbox"), ("memory", "memory_bytes", "memory (B)"),
                 ("reductions", "reductions_per_s", "reductions/s")]


class SystemOverview(Widget):
    """The node's schedulers, memory, ETS tables, ports and top processes, read
    by ``read`` (a callable returning an ``overview.Snapshot``; None for a
    recording, which has the recorded tops only). ``figures`` is what the
    front end draws; the DataFrames are ``schedulers``, ``memory``, ``ets``,
    ``ports``, ``processes`` and ``recorded_tops()``."""

    _esm = esm("overview")
    figures = t.Dict().tag(sync=True)        # the last read, as plain rows
    recorded = t.List(t.Dict()).tag(sync=True)
    span_ms = t.Float(None, allow_none=True).tag(sync=True)   # the recording's length
    at_ms = t.Float(None, allow_none=True).tag(sync=True)     # None: its end
    tab = t.Enum(TABS, "system").tag(sync=True)
    selected = t.Unicode("").tag(sync=True)
    details = t.Dict().tag(sync=True)
    live = t.Bool(False).tag(sync=True)
    can_read = t.Bool(False).tag(sync=True)
    tree_ref = t.Unicode("").tag(sync=True)  # "anywidget:<model id>" once the tree is open
    error = t.Unicode("").tag(sync=True)
    interval = t.Float(2.0)

    def __init__(self, source: Any, read: Callable[[], Any] | None = None, top: int = 10,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self._source, self._read, self._top = source, read, top
        self._snapshot: Any = None
        self._tree: SupervisionTree | None = None
        self._timer: threading.Timer | None = None
        self.follow_notes(source)
        self.can_read = read is not None
        self.on_msg(self._on_custom)
        self.observe(self._show_details, names="selected")
        self.observe(self._go_live, names="live")
        self.observe(self._recorded_at, names="at_ms")
        self.span_ms = recorded_span_ms(source.facts)
        self._recorded_at()
        if read is not None:
            self.refresh()
        else:
            self.tab = "recorded"

    def __repr__(self) -> str:
        node = self.figures.get("node") or "a recording"
        return f"<SystemOverview of {node}: {len(self.recorded)} recorded tops>"

    # -- the figures as DataFrames

    @property
    def snapshot(self) -> Any:
        """The last read of the node (``overview.Snapshot``), None for a recording."""
        return self._snapshot

    def _frame(self, name: str) -> pd.DataFrame:
        if self._snapshot is None:
            raise MicroscopeError("no node was read: this overview is of a recording; "
                                  "use recorded_tops(), or s.overview() on an attached session")
        return getattr(self._snapshot, name)

    @property
    def schedulers(self) -> pd.DataFrame:
        """id, type (normal, dirty_cpu, dirty_io), active and total time in the
        window (the node's units), utilisation (computed: active / total)."""
        return self._frame("schedulers")

    @property
    def memory(self) -> pd.DataFrame:
        """category, bytes: ``erlang:memory()``."""
        return self._frame("memory")

    @property
    def ets(self) -> pd.DataFrame:
        """The largest ETS tables: owner, size, memory (words, and bytes computed)."""
        return self._frame("ets")

    @property
    def ports(self) -> pd.DataFrame:
        """The busiest ports (input + output bytes): connected process, I/O, memory."""
        return self._frame("ports")

    @property
    def processes(self) -> pd.DataFrame:
        """The top processes by mailbox, memory and reductions in the window;
        ``top`` says which tops each is in."""
        return self._frame("processes")

    @property
    def system(self) -> dict[str, Any]:
        """The node's counters and limits (process_count, ets_limit, run_queue...)."""
        return dict(self._frame("system"))

    def recorded_tops(self, at_ms: float | None = None) -> pd.DataFrame:
        """The top processes as the recording sampled them at ``at_ms`` (ms since
        it began; its end if None): ``analysis.tops.recorded_tops``."""
        return recorded_tops(self._source.facts, at_ms, self._top)

    # -- reading

    def refresh(self) -> None:
        """Read the node again (one remote evaluation)."""
        if self._read is None:
            self._recorded_at()
            return
        snap = self._read()
        self._snapshot = snap
        self.figures = figures_of(snap)
        self.error = ""
        self.span_ms = recorded_span_ms(self._source.facts)
        self._recorded_at()

    def _go_live(self, _change: Any = None) -> None:
        self._timer = rearm(self._timer, self.live and self._read is not None, self.interval, self._tick)

    def _tick(self) -> None:
        try:
            self.refresh()
        except MicroscopeError as exc:           # the node went away: stop, and say so
            self.error = f"live refresh stopped: {exc}"
            self.live = False
            return
        self._go_live()

    def close(self) -> None:
        self.live = False
        super().close()

    def _recorded_at(self, _change: Any = None) -> None:
        self.recorded = records(self.recorded_tops(self.at_ms))

    # -- one click away: a process's details, the tree

    @property
    def tree(self) -> SupervisionTree:
        """The supervision tree of the same source (opened on first use)."""
        if self._tree is None:
            self._tree = SupervisionTree(self._source)
        return self._tree

    def open_tree(self, pid: str = "") -> SupervisionTree:
        """Show the tree in the overview's tree tab, on ``pid`` if given (selected,
        and searched for, so its row and its supervisors are what shows)."""
        tree = self.tree
        if pid:
            tree.query, tree.selected = pid, pid
        self.tree_ref = f"anywidget:{tree.model_id}"
        self.tab = "tree"
        return tree

    def _show_details(self, _change: Any = None) -> None:
        if not self.selected:
            self.details = {}
            return
        label = {r["pid"]: r["name"] for r in self.figures.get("processes", []) + self.recorded
                 if r.get("name")}
        self.details = details_of(self._source, self.selected, label)

    def _on_custom(self, _widget: Any, content: dict, _buffers: Any) -> None:
        event = content.get("event")
        try:
            if event == "refresh":
                self.refresh()
            elif event == "tree":
                self.open_tree(str(content.get("pid") or ""))
        except MicroscopeError as exc:
            self.error = str(exc)

    def static_html(self) -> str:
        return static_rendering(self.figures, self.recorded, self.at_ms, self.span_ms)


def figures_of(snap: Any) -> dict:
    """A Snapshot as the front end's plain rows."""
    from_node = datetime.fromtimestamp(snap.taken_at).astimezone()
    return {"node": snap.node, "as_of": from_node.strftime("%H:%M:%S"),
            "window_ms": round(snap.window_s * 1000, 1), "system": snap.system,
            "totals": snap.totals, "flag": snap.scheduler_flag,
            "schedulers": records(snap.schedulers), "memory": records(snap.memory),
            "ets": records(snap.ets), "ports": records(snap.ports),
            "processes": records(snap.processes)}


# -- the static rendering (no widget manager: exported HTML, untrusted copies)

_CELL = f"padding:1px 6px;border-bottom:1px solid {UI['line']};white-space:nowrap"


def _table(title: str, head: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return f'<p style="color:{UI["muted"]}"><b>{html.escape(title)}</b>: none</p>'
    th = "".join(f'<th style="{_CELL};text-align:left">{html.escape(h)}</th>' for h in head)
    body = "".join("<tr>" + "".join(f'<td style="{_CELL}">{html.escape(_text(v))}</td>'
                                    for v in row) + "</tr>" for row in rows)
    return (f'<div style="overflow-x:auto;margin:4px 0"><b>{html.escape(title)}</b>'
            f'<table style="border-collapse:collapse;font-size:11px">'
            f'<tr>{th}</tr>{body}</table></div>')


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _who(row: dict) -> str:
    return f"{row['name']} {row['pid']}" if row.get("name") else row["pid"]


def _tops(title: str, rows: list[dict], tops: list[tuple[str, str, str]]) -> str:
    parts = []
    for by, column, label in tops:
        ranked = sorted((r for r in rows if by in r.get("top", [])),
                        key=lambda r: -(r.get(column) or 0))
        parts.append(_table(f"{title} by {label}", ["process", label],
                            [[_who(r), r.get(column)] for r in ranked]))
    return "".join(parts)


def static_rendering(figures: dict, recorded: list[dict], at_ms: float | None = None,
                     span_ms: float | None = None) -> str:
    """Every tab at once, as plain tables (utilisations as percentages)."""
    muted = UI["muted"]
    out = ['<div class="mic-static-overview" style="font:12px sans-serif;max-height:520px;'
           'overflow:auto">']
    if figures:
        system, totals = figures.get("system", {}), figures.get("totals", {})
        out.append(f'<b>System overview</b> {html.escape(str(figures.get("node")))} '
                   f'<span style="color:{muted}">as of {figures.get("as_of")}, a '
                   f'{figures.get("window_ms")} ms window</span>')
        out.append(_table("Node", ["processes", "ports", "ETS tables", "atoms", "run queue"], [[
            f"{_text(system.get('process_count'))} / {_text(system.get('process_limit'))}",
            f"{_text(system.get('port_count'))} / {_text(system.get('port_limit'))}",
            f"{_text(system.get('ets_count'))} / {_text(system.get('ets_limit'))}",
            f"{_text(system.get('atom_count'))} / {_text(system.get('atom_limit'))}",
            _text(system.get("run_queue"))]]))
        out.append(_table("Schedulers (utilisation computed: active / total time in the window)",
                          ["id", "type", "utilisation"],
                          [[r["id"], r["type"], "" if r["utilisation"] is None
                            else f'{r["utilisation"]:.1%}']
                           for r in figures.get("schedulers", [])]))
        out.append(_table("Memory (erlang:memory(), bytes)", ["category", "bytes"],
                          [[r["category"], r["bytes"]] for r in figures.get("memory", [])]))
        out.append(_tops("Top processes", figures.get("processes", []), TOPS))
        out.append(_table(f"ETS tables (largest {len(figures.get('ets', []))} of "
                          f"{totals.get('ets')})", ["table", "owner", "size", "memory (words)"],
                          [[r["table"], r.get("owner_name") or r.get("owner"), r["size"],
                            r["memory_words"]] for r in figures.get("ets", [])]))
        out.append(_table(f"Ports (busiest {len(figures.get('ports', []))} of "
                          f"{totals.get('ports')})", ["port", "name", "connected", "input",
                                                      "output"],
                          [[r["port"], r.get("name"), r.get("connected_name") or
                            r.get("connected"), r.get("input"), r.get("output")]
                           for r in figures.get("ports", [])]))
    if recorded:
        at = f"{at_ms:.0f} ms" if at_ms is not None else "the end"
        of = f" of {span_ms:.0f} ms" if span_ms is not None else ""
        out.append(f'<p><b>As recorded</b> <span style="color:{muted}">at {at}{of}: each '
                   "process's last sample</span></p>")
        out.append(_tops("Recorded", recorded, RECORDED_TOPS))
    elif not figures:
        out.append(f'<p style="color:{muted}">Nothing sampled: a trace records each traced '
                   "process's mailbox, memory and reductions (s.trace()).</p>")
    out.append("</div>")
    return "".join(out)
