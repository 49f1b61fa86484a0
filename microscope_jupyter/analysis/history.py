"""Time travel: every process as it was at any moment of a recording.

    tt = s.time_travel()
    tt.snapshot_at(120)                  # a seq, a timestamp, or an event row
    tt.step(+1)                          # next event anywhere
    tt.step(+1, proc="Demo.WorkerB")     # next event of that process
    tt.diff(100, 200)                    # what changed between two moments

The index is built once from the raw header columns; only state payloads
are decoded for it (receive payloads are compared as bytes), so a snapshot
is a handful of binary searches per process.

What "mailbox" means. ``mailbox_len`` starts from the node's own count
(``message_queue_len``, sampled at the start, every 100 ms while the process
runs, and at the stop); between samples it is an estimate from the samples
on either side, moved by arrivals (receive events) and takes (see
``taking``), the smaller reading for a GenServer; ``mailbox_basis`` says
which ("node", or "estimate: ..." from which sample). It includes messages
queued before the trace and from untraced senders. Findings and causes
speak only of samples. A receive event is no arrival time: before OTP 27 it
fires when the receiver moves messages out of its signal queue, late and in bulk. ``mailbox`` lists the queued messages the trace saw
arrive and not yet handled; a reply to the process's own call leaves at that
call's ``demonitor`` (if seen exactly: demonitor/1, not a later check).
A GenServer's message is handled by the callback whose state event carries
it (FIFO among equal messages, in time order); one no callback took stays
queued until the process exits or the recording ends. A process without
callbacks takes a message by its next act (a send, a link, an exit).

A state is the one after the process's last callback by then (before its
first: the one that callback started from; with no callback recorded: the
one its hook found). Links and monitors held at the start come from the
agent, later ones from their events; every relation ends when either side
exits. A monitor made before the trace and removed during it shows until
one side exits (the agent knows only the refs monitor/2 made; demonitor/2's
ends show when a check finds them gone). Gen calls' and Tasks' are not shown.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np
import pandas as pd

from ..errors import QueryError
from ..render.elixir import render
from ..store.event_store import EventStore
from ..store.lines import line_snapshot, line_text
from ..store.logs import log_entry, log_text
from ..store.pairing import (CONTINUE, TIMEOUT, fifo_pairs, message_shapes, mix,
                             state_message_keys, time_ranks)
from ..store.schema import DEMONITOR_FOUND, HOOK_BASE, KIND_CODES
from .diff import diff
from .process_history import ProcessHistory, Transitions
from .taking import NEVER, removed_refs, taken

__all__ = ["History", "SNAPSHOT_COLUMNS"]

SNAPSHOT_COLUMNS = ["pid", "name", "alive", "state", "state_text", "mailbox", "mailbox_len",
                    "links", "monitors", "monitored_by", "current_callback", "last_seq", "line",
                    "mailbox_basis", "log"]
# How many of a process's newest log lines a snapshot shows.
SNAPSHOT_LOG_LINES = 3

K = KIND_CODES
class History:
    """A cursor over a recording, with snapshots and diffs."""

    def __init__(self, store: EventStore):
        self.store = store
        self.raw = store.raw()
        self.cursor = 0
        self._procs: dict[int, ProcessHistory] = {}
        self._transitions: dict[bytes, dict] = {}   # decoded states, shared by payload
        self._handled: np.ndarray | None = None
        self._state_rows = np.zeros(0, dtype=np.int64)
        self._build()

    # ------------------------------------------------------------------ index

    def _build(self) -> None:
        seqs = np.arange(len(self.raw), dtype=np.int64)
        self._index_processes(seqs)
        self._index_relations(seqs)
        self._index_states(seqs)
        self._index_receives(seqs)
        for gid, p in self._procs.items():
            p.names = self.store.names().spans(gid)
        self._index_mailboxes(seqs)
        self._index_lines(seqs)
        self._index_logs(seqs)

    def _proc(self, gid: int, seq: int) -> ProcessHistory:
        p = self._procs.get(gid)
        if p is None:
            p = self._procs[gid] = ProcessHistory(gid, self.store.id_text(gid) or "?", seq)
        return p

    def _index_processes(self, seqs: np.ndarray) -> None:
        """Every process: known at the start, acting, or spawned; when it exited."""
        store, kind, pid, peer = self.store, self.raw.kind, self.raw.pid, self.raw.peer
        names = store.names()
        for gid in names.named():
            if names.spans(gid)[0][0] == -1:   # named when the trace started
                self._proc(gid, -1)
        for gid in store.initial_procs:
            self._proc(gid, -1)
        order = np.argsort(pid, kind="stable")
        bounds = np.flatnonzero(np.diff(pid[order])) + 1
        for group in np.split(order, bounds):
            if len(group) == 0 or pid[group[0]] <= 0:
                continue
            p = self._proc(int(pid[group[0]]), int(group[0]))
            p.first_seq = min(p.first_seq, int(group[0]))  # -1 (known at start) stays -1
            p.event_seqs = np.sort(group)
        for i in seqs[kind == K["spawn"]]:
            child = self._proc(int(peer[i]), int(i))
            child.first_seq = min(child.first_seq, int(i))
        for i in seqs[kind == K["exit"]]:
            self._procs[int(pid[i])].exit_seq = int(i)

    def _index_relations(self, seqs: np.ndarray) -> None:
        """Links and monitors: those held at the start, then made and ended."""
        kind, pid, peer, procs = self.raw.kind, self.raw.pid, self.raw.peer, self._procs
        for i in seqs[(kind == K["link"]) | (kind == K["unlink"])]:
            sign = 1 if kind[i] == K["link"] else -1
            procs[int(pid[i])].link_events.append((int(i), int(peer[i]), sign))
            self._proc(int(peer[i]), int(i)).link_events.append((int(i), int(pid[i]), sign))
        for i in seqs[((kind == K["monitor"]) | (kind == K["demonitor"])) & (peer > 0)]:
            sign = 1 if kind[i] == K["monitor"] else -1
            procs[int(pid[i])].monitor_events.append((int(i), int(peer[i]), sign))
            self._proc(int(peer[i]), int(i)).monitored_by_events.append((int(i), int(pid[i]), sign))
        # Relations held at the start go first; only onto processes the
        # recording knows (a traced process's untraced peer gets no row).
        held: dict[tuple[int, str], list] = {}
        for holder, relation, other in self.store.initial_relations:
            if relation == "link":
                sides = ((holder, other, "link_events"), (other, holder, "link_events"))
            else:  # holder monitors other
                sides = ((holder, other, "monitor_events"), (other, holder, "monitored_by_events"))
            for gid, other_gid, attr in sides:
                if gid in procs:
                    held.setdefault((gid, attr), []).append((-1, other_gid, 1))
        for (gid, attr), start in held.items():
            setattr(procs[gid], attr, start + getattr(procs[gid], attr))

    def _index_states(self, seqs: np.ndarray) -> None:
        """GenServer transitions: where they are and what kind of message each
        took (nothing is decoded: the states when a snapshot reads them, the
        messages never; their keys come with the receives)."""
        raw = self.raw
        rows = seqs[raw.kind == K["state"]]
        self._state_rows = rows
        shapes = message_shapes(raw.heads(rows))
        pids, ts_out = raw.pid[rows], raw.ts_ns[rows]
        ts_in = ts_out - raw.aux[rows]
        order = np.argsort(pids, kind="stable")
        for group in np.split(order, np.flatnonzero(np.diff(pids[order])) + 1) if len(rows) else []:
            p = self._procs[int(pids[group[0]])]
            p.state_seqs = rows[group].tolist()
            p.state_shapes = shapes[group].tolist()
            p.state_ts_out = ts_out[group].tolist()
            p.state_ts_in = ts_in[group].tolist()
            p.states = Transitions(raw.payload, self._transitions, p.state_seqs)
        for i in seqs[(raw.kind == K["hook"]) & (raw.aux == HOOK_BASE)].tolist():
            self._proc(int(raw.pid[i]), i).base_seq = i   # the state its hook found

    def _index_lines(self, seqs: np.ndarray) -> None:
        """inspect_line snapshots (the Elixir hooks package), per process."""
        rows = seqs[self.raw.kind == K["line"]]
        for i in rows.tolist():
            self._proc(int(self.raw.pid[i]), i).line_seqs.append(i)

    def _index_logs(self, seqs: np.ndarray) -> None:
        """The node's log events, per process they are about."""
        rows = seqs[self.raw.kind == K["log"]]
        for i in rows.tolist():
            if self.raw.pid[i] > 0:
                self._proc(int(self.raw.pid[i]), i).log_seqs.append(i)

    def _index_receives(self, seqs: np.ndarray) -> None:
        """Pair each receive with what took it off the queue (see ``taking``)."""
        raw, kind, pid = self.raw, self.raw.kind, self.raw.pid
        rows = seqs[kind == K["receive"]]
        states = self._state_rows
        recv_keys = raw.payload_keys(rows)
        state_keys = state_message_keys(raw, states, rows, recv_keys)
        keyed = state_keys != 0
        groups = np.unique(np.concatenate([mix(pid[rows], recv_keys),
                                           mix(pid[states[keyed]], state_keys[keyed])]),
                           return_inverse=True)[1]
        # In time order: a callback's report can take its seq before its receive.
        recv_rank, state_rank = time_ranks(raw, rows, states[keyed])
        took, pair = fifo_pairs(groups[:len(rows)], recv_rank, groups[len(rows):], state_rank)
        handler = np.full(len(rows), -1, dtype=np.int64)
        handler[pair] = states[keyed][took]
        order = np.argsort(pid[rows], kind="stable")
        bounds = np.flatnonzero(np.diff(pid[rows][order])) + 1
        # a reply or 'DOWN' leaves at an exact demonitor, not at one found later
        removed = removed_refs(raw, seqs[(kind == K["demonitor"]) & (raw.aux != DEMONITOR_FOUND)])
        for group in np.split(order, bounds) if len(rows) else []:
            gid = int(pid[rows[group[0]]])
            p = self._procs[gid]
            recvs = rows[group]
            paired = handler[group] >= 0
            p.handled_by_state = dict(zip(recvs[paired].tolist(), handler[group][paired].tolist()))
            handled, direct = taken(raw, p, recvs, handler[group], removed.get(gid, {}))
            p.recv_seqs = recvs
            p.handled_seqs = handled
            p.direct_seqs = np.array(sorted(direct), dtype=np.int64)
            if not p.state_seqs:
                p.taken_seqs = np.sort(handled[handled < NEVER])

    def _index_mailboxes(self, seqs: np.ndarray) -> None:
        """Samples of the real queue length, and what each callback took off it."""
        raw, procs = self.raw, self._procs
        kind, pid = raw.kind, raw.pid
        sampled = seqs[kind == K["mailbox"]]
        for gid in np.unique(pid[sampled]):
            rows = sampled[pid[sampled] == gid]
            if int(gid) in procs:
                procs[int(gid)].sample_seqs = rows
                procs[int(gid)].sample_values = raw.aux[rows].astype(np.int64)
        fired = set(pid[kind == K["timeout"]].tolist())
        for gid, p in procs.items():
            if not p.state_seqs:
                continue
            # Each callback took one message off the queue, except a
            # handle_continue and a :timeout that came from a fired `after`.
            by_callbacks = [q for q, shape in zip(p.state_seqs, p.state_shapes)
                            if shape != CONTINUE and not (gid in fired and shape == TIMEOUT)]
            # ...and what left the queue another way (see ``taking``)
            p.taken_seqs = np.sort(np.concatenate([np.array(by_callbacks, dtype=np.int64),
                                                   p.direct_seqs]))

    # ------------------------------------------------------------------ moments

    def seq_of(self, t: Any) -> int:
        """A seq from a seq, a timestamp (str, datetime, pd.Timestamp) or an event row."""
        n = len(self.raw)
        if n == 0:
            raise QueryError("the recording is empty; record with s.trace() first")
        if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
            return int(min(max(int(t), 0), n - 1))
        if isinstance(t, (pd.Series, dict)) and "seq" in t:
            return self.seq_of(int(t["seq"]))
        ts = pd.Timestamp(t)
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        index = int(np.searchsorted(self.raw.ts_ns, ts.value, side="right")) - 1
        return max(0, index)

    def snapshot_at(self, t: Any) -> pd.DataFrame:
        """Every known process at moment ``t``; ``.attrs`` holds ``seq`` and ``ts``."""
        seq = self.seq_of(t)
        ts_t = int(self.raw.ts_ns[seq])
        rows = []
        for p in self._procs.values():
            if p.first_seq > seq:
                continue
            rows.append(self._row(p, seq, ts_t))
        frame = pd.DataFrame(rows, columns=SNAPSHOT_COLUMNS)
        for column in ("name", "state", "state_text", "mailbox", "links", "monitors",
                       "monitored_by", "current_callback", "line", "mailbox_basis", "log"):
            frame[column] = pd.Series([r[SNAPSHOT_COLUMNS.index(column)] for r in rows],
                                      dtype=object, index=frame.index)
        frame.attrs["seq"] = seq
        frame.attrs["ts"] = pd.Timestamp(ts_t, tz="UTC")
        return frame

    def _row(self, p: ProcessHistory, seq: int, ts_t: int) -> tuple:
        alive = p.exit_seq is None or p.exit_seq > seq
        name = None
        for s, n in p.names:
            if s > seq:
                break
            name = n
        state = None
        if p.state_seqs:
            k = bisect.bisect_right(p.state_seqs, seq) - 1
            state = p.states[k]["after"] if k >= 0 else p.states[0]["before"]
        elif p.base_seq is not None:     # no callback in the recording: still that state
            state = self.raw.term(p.base_seq)
        mailbox: list = []
        if len(p.recv_seqs):
            mask = (p.recv_seqs <= seq) & (p.handled_seqs > seq)
            mailbox = [self.raw.term(int(r)) for r in p.recv_seqs[mask]]
        links = self._related(p.link_events, seq, alive, presence=True)
        monitors = self._related(p.monitor_events, seq, alive, presence=False)
        monitored_by = self._related(p.monitored_by_events, seq, alive, presence=False)
        callback = None
        k = bisect.bisect_left(p.state_ts_out, ts_t)
        if k < len(p.state_ts_out) and p.state_ts_in[k] <= ts_t and p.state_seqs[k] >= seq:
            callback = p.states[k]["callback"]
        last = None
        if len(p.event_seqs):
            k = int(np.searchsorted(p.event_seqs, seq, side="right")) - 1
            last = int(p.event_seqs[k]) if k >= 0 else None
        text = render(state, self.store.syntax, 200) if state is not None else None
        return (p.pid, name if alive else None, alive, state, text, mailbox,
                p.mailbox_len(seq) if alive else 0,
                links, monitors, monitored_by, callback, last, self._line_at(p, seq),
                p.mailbox_basis(seq) if alive else "exited", self._logs_at(p, seq))

    def _line_at(self, p: ProcessHistory, seq: int) -> str | None:
        """The newest inspect_line of ``p`` by ``seq``: "worker_b.ex:14 label: n = 3"."""
        k = bisect.bisect_right(p.line_seqs, seq) - 1
        if k < 0:
            return None
        at = p.line_seqs[k]
        snap = line_snapshot(self.raw.term(at))
        where = f"{str(snap.get('file') or '?').rsplit('/', 1)[-1]}:{int(self.raw.aux[at])}" \
            if isinstance(snap, dict) else ""
        return f"{where} {line_text(snap, self.store.syntax, 200)}".strip()

    def _logs_at(self, p: ProcessHistory, seq: int) -> list[str]:
        """The newest log lines about ``p`` by ``seq``, oldest first: "error: sent 3"."""
        k = bisect.bisect_right(p.log_seqs, seq)
        return [log_text(log_entry(self.raw.term(at)), self.store.syntax, 200)
                for at in p.log_seqs[max(0, k - SNAPSHOT_LOG_LINES):k]]

    def _related(self, events: list, seq: int, alive: bool, presence: bool) -> list[str]:
        """Peers related at ``seq``: a link is there or not (linking twice is one link);
        monitors count (two monitors on one process are two)."""
        if not alive:
            return []
        count: dict[int, int] = {}
        for s, peer, sign in events:
            if s > seq:
                break
            if presence:
                count[peer] = max(0, sign)
            else:
                count[peer] = max(0, count.get(peer, 0) + sign)
        out = []
        for peer, n in count.items():
            other = self._procs.get(peer)
            if other and other.exit_seq is not None and other.exit_seq <= seq:
                continue
            out.extend([self.store.id_text(peer)] * n)
        return sorted(out)

    def processes(self) -> list[ProcessHistory]:
        """Every process the recording knows, with its indexed history."""
        return list(self._procs.values())

    def handled_seqs(self) -> np.ndarray:
        """Per seq, the state event of the callback that handled that received
        message; -1 where none (not a receive, or not taken by a callback)."""
        if self._handled is None:
            handled = np.full(len(self.raw), -1, dtype=np.int64)
            for p in self._procs.values():
                if p.handled_by_state:
                    handled[np.fromiter(p.handled_by_state.keys(), dtype=np.int64)] = \
                        np.fromiter(p.handled_by_state.values(), dtype=np.int64)
            self._handled = handled
        return self._handled

    # ------------------------------------------------------------------ moving

    def step(self, delta: int = 1, proc: Any = None) -> pd.DataFrame:
        """Move the cursor ``delta`` events (of ``proc`` only, if given); returns the snapshot."""
        if proc is None:
            self.cursor = self.seq_of(self.cursor + delta)
        else:
            events = np.sort(np.concatenate([self._procs[g].event_seqs
                                             for g in self._resolve(proc)]))
            if len(events) == 0:
                raise QueryError(f"{proc!r} has no events in this recording")
            k = int(np.searchsorted(events, self.cursor, side="left"))
            on_event = k < len(events) and events[k] == self.cursor
            if delta > 0:
                k = k + delta if on_event else k + delta - 1
            else:
                k = k + delta
            self.cursor = int(events[min(max(k, 0), len(events) - 1)])
        return self.snapshot_at(self.cursor)

    def seek(self, t: Any) -> pd.DataFrame:
        self.cursor = self.seq_of(t)
        return self.snapshot_at(self.cursor)

    def _resolve(self, proc: Any) -> list[int]:
        """The processes ``proc`` stands for (``EventStore.pid_ids``), oldest first."""
        ids = self.store.pid_ids(proc)
        out = sorted((g for g in self._procs if g in ids), key=lambda g: self._procs[g].first_seq)
        if not out:
            raise QueryError(f"no process {proc!r} in this recording; pass a pid like "
                             "'<0.123.0>' or a registered name")
        return out

    def diff(self, t1: Any, t2: Any) -> pd.DataFrame:
        """What changed between two moments: one row per change, per process."""
        a, b = self.snapshot_at(t1), self.snapshot_at(t2)
        before = {r.pid: r for r in a.itertuples(index=False)}
        rows = []
        for r in b.itertuples(index=False):
            old = before.get(r.pid)
            name = r.name or (old.name if old is not None else None)
            if old is None:
                rows.append((r.pid, name, "appeared", "", None, None, "process appeared"))
                continue
            if old.alive and not r.alive:
                rows.append((r.pid, name, "died", "", True, False, "process exited"))
            if old.name != r.name and r.alive:
                rows.append((r.pid, name, "renamed", "", old.name, r.name,
                             f"name {old.name} -> {r.name}"))
            for change in diff(old.state, r.state):
                rows.append((r.pid, name, "state", change.path, change.before, change.after,
                             change.text(self.store.syntax)))
            if old.mailbox_len != r.mailbox_len:
                rows.append((r.pid, name, "mailbox", "", old.mailbox_len, r.mailbox_len,
                             f"mailbox {old.mailbox_len} -> {r.mailbox_len}"))
        frame = pd.DataFrame(rows, columns=["pid", "name", "change", "path", "before", "after",
                                            "text"])
        frame.attrs["from_seq"], frame.attrs["to_seq"] = a.attrs["seq"], b.attrs["seq"]
        return frame
