"""A recording as a trace ui.perfetto.dev and chrome://tracing open:
``s.to_perfetto("incident.json")``.

The JSON trace-event format (``{"traceEvents": [...]}``): one track per BEAM
process (a "thread" named by its registered name, else its pid) under one
"process" per node; a complete slice (``ph: "X"``) for each GenServer
callback (its message shape, from its start to its return) and each traced
function call; a flow arrow (``ph: "s"``/``"f"``) for each message, from a
short ``send`` slice on the sender's track to the callback that handled it
(or a short ``receive`` slice where no callback did); an instant
(``ph: "i"``) for each message never received (``lost ...``), each exit and
each finding. Times are microseconds since
the recording began, the time base every widget uses; each event's args
keep its seq, to find it again with ``s.query.events_around(seq)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import MicroscopeError
from ..render.elixir import render
from ..store.otp import message_shape

__all__ = ["write_perfetto"]

MARK_US = 1.0      # a send or receive drawn as a slice this long: a flow binds to a slice


def write_perfetto(session: Any, path: str | Path) -> Path:
    events = session.events
    if not len(events):
        raise MicroscopeError("the recording is empty: record something (s.trace(...)) before "
                              "exporting it")
    origin = events["ts"].min()
    tracks = _Tracks(events)
    out: list[dict] = []

    def us(ts: Any) -> float:
        return round((ts - origin).total_seconds() * 1e6, 3)

    states = session.states()
    started = {}       # state seq -> its slice's start (µs), for the flows that end in it
    for row in states.itertuples(index=False):
        dur = float(row.duration_us) if pd.notna(row.duration_us) else MARK_US
        end = us(row.ts)
        begin = max(end - dur, 0.0)
        started[int(row.seq)] = begin
        out.append({"ph": "X", "name": f"{row.callback} {message_shape(row.message)}",
                    "cat": "callback", "ts": begin, "dur": max(dur, MARK_US),
                    "pid": tracks.node(row.pid), "tid": tracks.tid(row.pid, row.name),
                    "args": {"seq": int(row.seq), "message": _text(row.message)}})
    calls = session.calls()
    for row in calls[calls["status"] != "running"].itertuples(index=False):
        out.append({"ph": "X", "name": str(row.mfa), "cat": "call", "ts": us(row.started_at),
                    "dur": max(float(row.duration_us), MARK_US) if pd.notna(row.duration_us)
                    else MARK_US, "pid": tracks.node(row.pid), "tid": tracks.tid(row.pid, row.name),
                    "args": {"seq": int(row.call_seq), "args": row.args_text,
                             "result": row.result_text or row.exception_text}})
    out += _flows(session.messages(), started, tracks, us)
    exits = events[events["kind"] == "exit"]
    for row in exits.itertuples(index=False):
        out.append({"ph": "i", "s": "t", "name": f"exit {row.text}"[:120], "cat": "lifecycle",
                    "ts": us(row.ts), "pid": tracks.node(row.pid),
                    "tid": tracks.tid(row.pid, row.name), "args": {"seq": int(row.seq)}})
    found = session.findings(grouped=False)
    ts = events.set_index("seq")["ts"]
    for row in found.itertuples(index=False):
        seq = int(row.first_seq)
        if seq not in ts.index:
            continue
        where = row.pid if isinstance(row.pid, str) else None
        out.append({"ph": "i", "s": "t" if where else "g", "name": f"{row.severity}: {row.kind}",
                    "cat": "finding", "ts": us(ts[seq]), "pid": tracks.node(where),
                    "tid": tracks.tid(where, row.name) if where else 0,
                    "args": {"seq": seq, "summary": str(row.summary)}})
    trace = {"traceEvents": tracks.metadata() + out, "displayTimeUnit": "ms",
             "otherData": {"source": "BEAM Microscope", "recording_began": str(origin)}}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(trace, default=str), encoding="utf-8")
    return target


def _flows(messages: pd.DataFrame, started: dict[int, float], tracks: "_Tracks",
           us: Any) -> list[dict]:
    out = []
    # an arrow needs both ends: a message from a timer or an untraced sender has no send
    received = messages[messages["received_at"].notna() & messages["send_seq"].notna()]
    for row in received.itertuples(index=False):
        shape = message_shape(row.term)
        at = us(row.sent_at)
        sender = (tracks.node(row.sender), tracks.tid(row.sender, row.sender_name))
        receiver = (tracks.node(row.receiver), tracks.tid(row.receiver, row.receiver_name))
        flow = int(row.send_seq)
        out.append({"ph": "X", "name": f"send {shape}", "cat": "message", "ts": at,
                    "dur": MARK_US, "pid": sender[0], "tid": sender[1],
                    "args": {"seq": flow, "message": row.text}})
        out.append({"ph": "s", "name": shape, "cat": "message", "id": flow, "ts": at,
                    "pid": sender[0], "tid": sender[1]})
        end = started.get(int(row.handled_seq)) if pd.notna(row.handled_seq) else None
        if end is None:
            end = us(row.received_at)
            out.append({"ph": "X", "name": f"receive {shape}", "cat": "message", "ts": end,
                        "dur": MARK_US, "pid": receiver[0], "tid": receiver[1],
                        "args": {"seq": int(row.receive_seq)}})
        out.append({"ph": "f", "bp": "e", "name": shape, "cat": "message", "id": flow,
                    "ts": max(end, at), "pid": receiver[0], "tid": receiver[1]})
    lost = messages[messages["received_at"].isna() & messages["send_seq"].notna()]
    for row in lost.itertuples(index=False):
        out.append({"ph": "i", "s": "t", "name": f"lost {message_shape(row.term)}",
                    "cat": "message", "ts": us(row.sent_at), "pid": tracks.node(row.sender),
                    "tid": tracks.tid(row.sender, row.sender_name),
                    "args": {"seq": int(row.send_seq), "status": str(row.status),
                             "to": str(row.receiver_name or row.receiver)}})
    return out


def _text(term: Any) -> str:
    return render(term, "elixir", 200)


class _Tracks:
    """A Perfetto process per node, a thread per BEAM process, numbered in
    order of appearance, each named once (metadata events)."""

    def __init__(self, events: pd.DataFrame):
        self.nodes: dict[str, int] = {}
        self.tids: dict[str, int] = {}
        self.names: dict[str, str] = {}
        known = events.dropna(subset=["pid"]).drop_duplicates("pid")
        self.node_of = dict(zip(known["pid"].astype(str), known["node"].astype(str)))
        self.default_node = str(events["node"].iloc[0])

    def node(self, pid: Any) -> int:
        node = self.node_of.get(str(pid), self.default_node)
        return self.nodes.setdefault(node, len(self.nodes) + 1)

    def tid(self, pid: Any, name: Any) -> int:
        key = str(pid)
        if isinstance(name, str) and name:
            self.names[key] = name
        return self.tids.setdefault(key, len(self.tids) + 1)

    def metadata(self) -> list[dict]:
        out = [{"ph": "M", "name": "process_name", "pid": number, "tid": 0,
                "args": {"name": node}} for node, number in self.nodes.items()]
        for pid, tid in self.tids.items():
            name = self.names.get(pid)
            out.append({"ph": "M", "name": "thread_name", "pid": self.node(pid), "tid": tid,
                        "args": {"name": f"{name} {pid}" if name else pid}})
            out.append({"ph": "M", "name": "thread_sort_index", "pid": self.node(pid),
                        "tid": tid, "args": {"sort_index": tid}})
        return out
