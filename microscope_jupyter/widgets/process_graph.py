"""ProcessGraph: processes as nodes, message flows as edges, playback and
causal chains (``js/src/process_graph.js``)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import traitlets as t

from ..analysis import chains
from ..errors import MicroscopeError
from ..store.otp import normal_exit
from ._base import Widget, esm, finding_marks, lane_label
from .static_style import PALETTE, UI, legend

__all__ = ["ProcessGraph"]


class ProcessGraph(Widget):
    """Who talks to whom: processes as nodes, message flows as edges (width by
    count, colour by the median wait), laid out by force.

    Play animates the recording at a chosen speed: messages fly along their
    edges and ``cursor`` moves with them, so linked widgets (``link``) follow.
    ``focus_on(seq)`` (or clicking an edge, or picking a finding) shows the
    causal chain that led there, hop by hop, with where it waited longest;
    ``chain`` holds it as a DataFrame.
    """

    _esm = esm("process_graph")
    nodes = t.List(t.Dict()).tag(sync=True)
    edges = t.List(t.Dict()).tag(sync=True)
    flights = t.Dict().tag(sync=True)
    seq_times = t.List(t.List()).tag(sync=True)
    span = t.Float(0.0).tag(sync=True)
    cursor = t.Int(-1).tag(sync=True)
    playing = t.Bool(False).tag(sync=True)
    speed = t.Float(1.0).tag(sync=True)
    focus = t.Int(-1).tag(sync=True)
    path = t.List(t.Dict()).tag(sync=True)
    marks = t.List(t.Dict()).tag(sync=True)

    def __init__(self, source: Any, procs: Any = None, limit: int = 50_000, **kwargs: Any):
        super().__init__(**kwargs)
        self._source = source
        self.follow_notes(source)
        self._procs = procs
        self._limit = limit
        self.chain = pd.DataFrame(columns=chains.CHAIN_COLUMNS)
        self.observe(self._on_focus, names="focus")
        self.refresh()

    def __repr__(self) -> str:
        return f"<ProcessGraph: {len(self.nodes)} processes, {len(self.edges)} flows>"

    def link(self, other: Any) -> "ProcessGraph":
        """Share the cursor with ``other``: playback moves it."""
        self.cursor = other.cursor
        t.link((other, "cursor"), (self, "cursor"))
        return self

    def refresh(self) -> None:
        table = self._source.messages()
        if self._procs is not None:
            wanted: set[str] = set()
            for proc in [self._procs] if isinstance(self._procs, str) else self._procs:
                wanted |= {self._source.store.id_text(i) for i in self._source.facts.pids(proc)}
            table = table[table["sender"].isin(wanted) | table["receiver"].isin(wanted)]
        self._messages = table
        ts = self._source.store.raw().ts_ns
        t0 = int(ts[0]) if len(ts) else 0
        self.span = float((int(ts[-1]) - t0) / 1e6) if len(ts) else 0.0
        known = table[table["sender"].notna() & table["receiver"].notna()]
        known = known.assign(_lost=_lost(self._source, known))
        # in a fixed order (by label, then pid), so a layout run again draws the same picture
        names = {**dict(zip(known["receiver"], known["receiver_name"])),
                 **dict(zip(known["sender"], known["sender_name"]))}
        labels = {p: lane_label(p, names.get(p)) for p in {*known["sender"], *known["receiver"]}}
        pids = sorted(labels, key=lambda p: (labels[p], p))
        index = {p: i for i, p in enumerate(pids)}
        twice = {x for x in labels.values() if list(labels.values()).count(x) > 1}
        events = self._source.events
        exits = events[events["kind"] == "exit"]
        reasons = dict(zip(exits["pid"], zip(exits["term"], exits["text"])))
        # a pid messages were lost to because it was dead is dead, exit recorded or not
        dead_before = set(known.loc[known["status"] == "lost", "receiver"]) - set(reasons)
        sent = known["sender"].value_counts().to_dict()
        got = known["receiver"].value_counts().to_dict()
        self.nodes = [{"id": p, "label": labels[p] + (f" {p}" if labels[p] in twice and labels[p] != p
                                                      else ""),
                       "sent": int(sent.get(p, 0)), "received": int(got.get(p, 0)),
                       **_ending(reasons.get(p), p in dead_before)} for p in pids]
        # how long each took: its wait for a callback, else its latency (none for a lost one)
        known = known.assign(_wait=known["wait_us"].astype(float).fillna(
            known["latency_us"].astype(float)).where(~known["_lost"]))
        grouped = known.groupby(["sender", "receiver"], sort=False)
        self.edges = sorted(({"from": index[a], "to": index[b], "count": int(len(g)),
                              "lost": int(g["_lost"].sum()),
                              "median_us": _num(g["_wait"].median()),
                              "max_us": _num(g["_wait"].max()),
                              "last_seq": int(g["send_seq"].max())}
                             for (a, b), g in grouped), key=lambda e: (e["from"], e["to"]))
        flights = known.head(self._limit)
        sent_ns = flights["sent_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        send_ms = (sent_ns - t0) / 1e6
        end_ms = send_ms + flights["_wait"].to_numpy() / 1000
        order = np.argsort(send_ms, kind="stable")
        self.flights = {"from": [index[p] for p in flights["sender"].to_numpy()[order]],
                        "to": [index[p] for p in flights["receiver"].to_numpy()[order]],
                        "send_ms": np.round(send_ms[order], 4).tolist(),
                        "end_ms": [None if np.isnan(x) else round(x, 4) for x in end_ms[order]],
                        "lost": flights["_lost"].to_numpy()[order].astype(int).tolist()}
        step = max(1, len(ts) // 2000)
        self.seq_times = [[round((int(ts[k]) - t0) / 1e6, 4), int(k)]
                          for k in range(0, len(ts), step)]
        self.notes_changed(self._source)

    def notes_changed(self, source: Any) -> None:
        self.marks = [{"seq": m["seq"], "severity": m["severity"], "text": m["text"]}
                      for m in finding_marks(source)]

    def focus_on(self, seq: int) -> pd.DataFrame:
        """Show the causal chain of the message sent at ``seq`` (or, for any
        other event, of the message its process was handling then)."""
        self.focus = int(seq)
        return self.chain

    def _on_focus(self, _change: Any = None) -> None:
        seq = self.focus
        self.chain = pd.DataFrame(columns=chains.CHAIN_COLUMNS)
        if seq >= 0:
            facts = self._source.facts
            finding = self._finding_at(seq)
            if finding is not None:          # the chain that ends with what caused it
                self.chain = chains.for_finding(facts, self._messages, finding)
            else:
                pid = self._source.store.frame()["pid"].iloc[seq] \
                    if seq < len(self._source.store) else None
                self.chain = chains.for_event(self._messages, seq,
                                              pid if isinstance(pid, str) else None,
                                              chains.fatal_messages(facts))
        index = {n["id"]: i for i, n in enumerate(self.nodes)}
        self.path = [{"from": index.get(r.sender, -1), "to": index.get(r.receiver, -1),
                      "send_seq": None if pd.isna(r.send_seq) else int(r.send_seq),
                      "text": str(r.text)[:120], "wait_us": _num(r.wait_us),
                      "worked_us": _num(r.worked_us), "slowest": bool(r.slowest)}
                     for r in self.chain.itertuples(index=False)]

    def _finding_at(self, seq: int) -> Any:
        """The finding a mark at ``seq`` stands for (the first at that seq), if any."""
        try:
            found = self._source.findings()
        except MicroscopeError:
            return None
        rows = found[found["first_seq"] == seq]
        return next(rows.itertuples(index=False), None)

    def static_html(self) -> str:

        return static_rendering(self.nodes, self.edges, self.path)


def _lost(source: Any, messages: pd.DataFrame) -> np.ndarray:
    """Per message, whether it was lost: sent to a dead pid, or still unread in
    its receiver's mailbox when it died (the lost_message findings' evidence)."""
    lost = (messages["status"] == "lost").to_numpy(dtype=bool).copy()
    try:
        found = source.findings()
    except MicroscopeError:
        return lost
    seqs = {int(x) for ev in found.loc[found["kind"] == "lost_message", "evidence"] for x in ev}
    for column in ("send_seq", "receive_seq"):
        lost |= messages[column].isin(seqs).to_numpy(dtype=bool)
    return lost


def _ending(exit: Any, dead_before: bool) -> dict:
    """How a process ended: ``state`` alive, crashed or exited, and why."""
    if exit is None:
        return {"state": "exited" if dead_before else "alive", "crashed": False,
                "exit": "dead before its messages arrived" if dead_before else ""}
    term, text = exit
    crashed = not normal_exit(term)
    return {"state": "crashed" if crashed else "exited", "crashed": crashed,
            "exit": str(text)[:160]}


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 1)


def static_rendering(nodes: list[dict], edges: list[dict], path: list[dict]) -> str:
    """The flows as a table (busiest first), lost messages and dead processes
    said as such, and the causal chain when one is focused."""
    def label(k: int) -> str:
        if not 0 <= k < len(nodes):
            return "?"
        mark = {"crashed": f' <b style="color:{PALETTE["crash"]}">✖</b>',
                "exited": f' <span style="color:{PALETTE["exited"]}">◌</span>'}
        return html.escape(str(nodes[k]["label"])) + mark.get(nodes[k].get("state", ""), "")
    wait = lambda us: "" if us is None else (f"{us / 1000:.1f} ms" if us >= 1000 else f"{us:.0f} µs")  # noqa: E731
    cell = f"padding:1px 6px;border-bottom:1px solid {UI['line']};white-space:nowrap"
    lost = lambda e: (f'<td style="{cell};color:{PALETTE["lost"]}">{e["lost"]} lost</td>'  # noqa: E731
                      if e.get("lost") else f'<td style="{cell}"></td>')
    rows = "".join(
        f'<tr><td style="{cell};text-align:right">{label(e["from"])}</td><td style="{cell}">→</td>'
        f'<td style="{cell}">{label(e["to"])}</td><td style="{cell};text-align:right">{e["count"]}</td>'
        f'{lost(e)}<td style="{cell}">{wait(e["median_us"])}</td><td style="{cell}">{wait(e["max_us"])}</td></tr>'
        for e in sorted(edges, key=lambda e: -e["count"])[:60])
    chain = "".join(
        f'<li style="color:{UI["wait_long"] if p["slowest"] else UI["text"]}">{label(p["from"])} → '
        f'{label(p["to"])} <code>{html.escape(p["text"])}</code> {wait(p["wait_us"])}'
        f'{" ← the longest wait" if p["slowest"] else ""}</li>' for p in path)
    crashed = ", ".join(label(k) for k, n in enumerate(nodes) if n.get("crashed"))
    return (f'<div style="font-family:sans-serif;font-size:12px;max-height:420px;overflow-y:auto">'
            f'<b>Process graph</b> ({len(nodes)} processes, {len(edges)} flows)'
            + (f' <span style="color:{PALETTE["crash"]}">crashed: {crashed}</span>' if crashed else "")
            + legend(["lost", "crashed", "exited"])
            + f'<table style="border-collapse:collapse"><tr><th style="{cell}">from</th><th></th>'
            f'<th style="{cell}">to</th><th style="{cell}">messages</th><th style="{cell}">lost</th>'
            f'<th style="{cell}">median wait</th><th style="{cell}">longest</th></tr>{rows}</table>'
            + (f"<b>Causal chain</b><ol>{chain}</ol>" if chain else "") + "</div>")
