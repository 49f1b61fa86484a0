"""SupervisionTree: processes as a collapsible tree, at observer grade
(``js/src/supervision_tree.js``)."""

from __future__ import annotations

import html
import threading
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import traitlets as t

from ..errors import MicroscopeError
from ..render.elixir import render
from ._base import Widget, esm, note_list, rearm, records
from .static_style import PALETTE, UI

__all__ = ["SupervisionTree", "OTP_APPLICATIONS", "details_of"]

# Applications of OTP and Elixir: listed after the user's own.
OTP_APPLICATIONS = frozenset({
    "kernel", "stdlib", "sasl", "compiler", "crypto", "public_key", "ssl", "inets", "mnesia",
    "os_mon", "runtime_tools", "tools", "observer", "elixir", "logger", "iex", "mix", "eex",
    "ex_unit", "asn1", "syntax_tools", "xmerl", "ssh", "tftp", "ftp", "erts", "parsetools"})


class SupervisionTree(Widget):
    """Processes as a tree grouped by application (yours first), like observer.

    Columns sort (mailbox, memory, reductions) within each supervisor; colour
    by mailbox (the default), status, memory or reductions, with a legend.
    ``as_of`` says when the node was read; ``live = True`` reads it again
    every ``interval`` seconds. Restart counts come from the recording (how
    many processes held a name). Clicking a process selects it (``selected``)
    and shows its state, links and monitors (``details``), with a button to
    trace it for a few seconds.
    """

    _esm = esm("supervision_tree")
    nodes = t.List(t.Dict()).tag(sync=True)
    selected = t.Unicode("").tag(sync=True)
    query = t.Unicode("").tag(sync=True)
    color_by = t.Enum(["mailbox", "status", "memory", "reductions"], "mailbox").tag(sync=True)
    sort_by = t.Enum(["tree", "mailbox", "memory", "reductions"], "tree").tag(sync=True)
    user_apps = t.List(t.Unicode()).tag(sync=True)
    as_of = t.Unicode("").tag(sync=True)
    live = t.Bool(False).tag(sync=True)
    can_trace = t.Bool(False).tag(sync=True)
    details = t.Dict().tag(sync=True)
    interval = t.Float(2.0)

    def __init__(self, source: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self._source = source
        self.follow_notes(source)
        self._timer: threading.Timer | None = None
        self.on_msg(self._on_custom)
        self.observe(self._show_details, names="selected")
        self.observe(self._go_live, names="live")
        self.refresh()

    def __repr__(self) -> str:
        return f"<SupervisionTree: {len(self.nodes)} processes>"

    def refresh(self) -> None:
        """Read the tree again (the live node when attached, else the recording)."""
        nodes = records(self._source.supervision_tree())
        restarts = _restarts(self._source)
        found = _findings_by_process(self._source)
        for n in nodes:
            n["restarts"] = restarts.get(n.get("name"), 0) if n.get("name") else 0
            n["findings"] = found.get(n["pid"]) or found.get(n.get("name")) or []
        apps = {n.get("application") for n in nodes if n.get("application")}
        self.user_apps = sorted(a for a in apps if a not in OTP_APPLICATIONS)
        self.can_trace = bool(getattr(self._source, "attached", False))
        self.nodes = nodes
        self.as_of = datetime.now(timezone.utc).astimezone().strftime("%H:%M:%S")

    @property
    def selected_process(self) -> dict | None:
        return next((n for n in self.nodes if n["pid"] == self.selected), None)

    # -- live refresh

    def _go_live(self, _change: Any = None) -> None:
        self._timer = rearm(self._timer, self.live, self.interval, self._tick)

    def _tick(self) -> None:
        try:
            self.refresh()
        except MicroscopeError as exc:          # the node went away: stop, and say so
            self.details = {"pid": "", "error": f"live refresh stopped: {exc}"}
            self.live = False
            return
        self._go_live()

    def close(self) -> None:
        self.live = False
        super().close()

    # -- the selected process

    def _show_details(self, _change: Any = None) -> None:
        label = {n["pid"]: n.get("name") or n["pid"] for n in self.nodes}
        self.details = details_of(self._source, self.selected, label) if self.selected else {}

    def _on_custom(self, _widget: Any, content: dict, _buffers: Any) -> None:
        if content.get("event") == "trace" and self.can_trace:
            pid, seconds = str(content.get("pid")), float(content.get("seconds", 5))
            try:
                self._source.trace(pid, duration=seconds)
                note = f"tracing {pid} for {seconds:g} s: its events land in s.events"
            except MicroscopeError as exc:
                note = f"could not trace {pid}: {exc}"
            self.details = {**self.details, "trace": note}

    def static_html(self) -> str:
        return static_rendering(self.nodes)

    def detail_frames(self, limit: int = 300) -> dict | None:
        """Each process's details, for a page with no kernel to ask (a report):
        ``{"trait": "selected", "exact": True, "values": {pid: {"details": ...}}}``,
        for at most ``limit`` processes (None past it: the page says it cannot)."""
        if len(self.nodes) > limit:
            return None
        label = {n["pid"]: n.get("name") or n["pid"] for n in self.nodes}
        return {"trait": "selected", "exact": True,
                "values": {n["pid"]: {"details": details_of(self._source, n["pid"], label)}
                           for n in self.nodes if n.get("pid")}}


def details_of(source: Any, pid: str, label: dict[str, str] | None = None) -> dict:
    """What a details panel shows of process ``pid``: the live process when
    ``source`` is attached (state, links, monitors, counters), else the process
    as time travel has it at the end of the recording. ``label`` names peers."""
    syntax = source.store.syntax
    label = label or {}
    peers = lambda items: [label.get(str(p), str(p)) for p in items]  # noqa: E731
    if getattr(source, "attached", False):
        try:
            d = source.process(pid)
        except MicroscopeError as exc:
            return {"pid": pid, "error": str(exc)}
        monitors = [m[1] if isinstance(m, tuple) else m for m in d.get("monitors", [])]
        return {
            "pid": pid,
            "state": render(d["state"], syntax, 2000) if d["state"] is not None
            else f"(no state: {d['state_error']})",
            "links": peers(d.get("links", [])), "monitors": peers(monitors),
            "monitored_by": peers(d.get("monitored_by", [])),
            "current_function": render(d.get("current_function"), syntax, 120),
            "counters": f"mailbox {d.get('message_queue_len')} · memory "
                        f"{d.get('memory')} B · reductions {d.get('reductions')}",
        }
    # a recording: the process as time travel has it at the end
    history = source.time_travel()
    snapshot = history.snapshot_at(len(source.store) - 1)
    row = snapshot[snapshot["pid"] == pid]
    if row.empty:
        return {"pid": pid, "error": "no events of this process were recorded"}
    r = row.iloc[0]
    return {"pid": pid, "state": r["state_text"] or "(no recorded state)",
            "links": peers(r["links"]), "monitors": peers(r["monitors"]),
            "monitored_by": peers(r["monitored_by"]),
            "counters": f"as recorded at the end · mailbox {r['mailbox_len']}"}


def _findings_by_process(source: Any) -> dict[str, list[dict]]:
    """The recording's findings (and notes) by the pid and the name they are about."""
    try:
        findings = source.findings()
    except MicroscopeError:
        findings = pd.DataFrame(columns=["severity", "summary", "first_seq", "pid", "name"])
    out: dict[str, list[dict]] = {}
    for row in findings.itertuples(index=False):
        item = {"severity": str(row.severity), "text": str(row.summary), "seq": int(row.first_seq)}
        for key in {row.pid, row.name} - {None}:
            if isinstance(key, str):
                out.setdefault(key, []).append(item)
    for note in note_list(source):   # annotations about one process, with its findings
        if note["pid"]:
            out.setdefault(note["pid"], []).append(
                {"severity": "note", "text": f"✎ {note['author']}: {note['text']}",
                 "seq": note["seq"]})
    return out


def _restarts(source: Any) -> dict[str, int]:
    """Per name, how many times the recording saw it pass to a new process."""
    try:
        held = Counter(source.store.names().last_names().values())
    except MicroscopeError:
        return {}
    return {name: n - 1 for name, n in held.items() if name and n > 1}


def static_rendering(nodes: list[dict], limit: int = 400) -> str:
    children: dict[str | None, list[dict]] = {}
    pids = {n["pid"] for n in nodes}
    for n in nodes:
        parent = n.get("parent") if n.get("parent") in pids else None
        children.setdefault(parent, []).append(n)
    shown = [0]

    def walk(parent: str | None, depth: int) -> str:
        items = []
        for n in children.get(parent, []):
            if shown[0] >= limit:
                break
            shown[0] += 1
            colour = PALETTE.get(n.get("status"), PALETTE["alive"])
            label = html.escape(str(n.get("name") or n["pid"]))
            extra = html.escape(str(n.get("initial_call") or ""))
            weight = "600" if n.get("kind") == "supervisor" else "400"
            items.append(f'<li><span style="color:{colour}">●</span> '
                         f'<span style="font-weight:{weight}">{label}</span> '
                         f'<code style="color:{UI["muted"]}">{html.escape(n["pid"])}</code> '
                         f'<small style="color:{UI["muted"]}">{extra}</small>'
                         f'{walk(n["pid"], depth + 1)}</li>')
        return f'<ul style="list-style:none;padding-left:{0 if depth == 0 else 16}px;margin:0">' \
               f'{"".join(items)}</ul>' if items else ""

    more = "" if len(nodes) <= limit else f"<p>… {len(nodes) - limit} more</p>"
    return (f'<div style="font:12px sans-serif;max-height:360px;overflow:auto">'
            f'<b>Supervision tree</b> ({len(nodes)} processes){walk(None, 0)}{more}</div>')
