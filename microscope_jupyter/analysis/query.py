"""``s.query``: questions people ask of a recording, answered as DataFrames.

    s.query.message_flow("Demo.WorkerA", "Demo.WorkerB")
    s.query.state_timeline("Demo.WorkerB")
    s.query.execution_path("Demo.WorkerB")
    s.query.events_around(ts, window_ms=50)
    s.query.trace_message("{:update, 10, _}")     # or a Python predicate

Processes are named by pid ("<0.12.0>"), registered name or module alias;
a name covers every pid that held it (restarts included).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import QueryError
from ..render.elixir import render
from .diff import render_diff, transition_changes
from .pattern import compile_pattern, match_message
from .facts import Facts


__all__ = ["Query"]

log = logging.getLogger(__name__)

TRACE_COLUMNS = ["step", "depth", "what", "seq", "ts", "pid", "name", "text"]


class Query:
    def __init__(self, facts: Facts):
        self._facts = facts

    def _pids(self, proc: Any) -> set[str]:
        ids = self._facts.pids(proc)
        return {self._facts.store.id_text(i) for i in ids}

    def message_flow(self, a: Any, b: Any) -> pd.DataFrame:
        """Messages between ``a`` and ``b``, both directions, in send order."""
        pa, pb = self._pids(a), self._pids(b)
        m = self._facts.messages()
        mask = ((m["sender"].isin(pa) & m["receiver"].isin(pb))
                | (m["sender"].isin(pb) & m["receiver"].isin(pa)))
        flow = m[mask].copy()
        flow.insert(0, "direction", np.where(flow["sender"].isin(pa), "->", "<-"))
        flow = flow.reset_index(drop=True)
        if flow.empty:
            hint = self._stale_hint(a, b, pa, pb, m)
            if hint:
                flow.attrs["hint"] = hint
                log.warning(hint)
        return flow

    def _stale_hint(self, a: Any, b: Any, pa: set[str], pb: set[str],
                    m: pd.DataFrame) -> str | None:
        """Why a flow is empty when ``a`` did send: to a pid that is not ``b``'s
        (one that held ``b``'s name before the recording began, say)."""
        elsewhere = m[m["sender"].isin(pa) & ~m["receiver"].isin(pb)
                      & m["receiver_name"].isna() & m["status"].eq("lost")]
        if elsewhere.empty:
            return None
        pid = elsewhere["receiver"].mode().iloc[0]
        count = int((elsewhere["receiver"] == pid).sum())
        return (f"no messages between {a} and {b}, but {a} sent {count} to {pid}, a dead pid "
                f"that never held a name while recording (not {b}'s {', '.join(sorted(pb))}); "
                f"if it was {b} before a restart, {a} holds a stale pid. "
                "See s.messages() for them.")

    def state_timeline(self, proc: Any) -> pd.DataFrame:
        """Each state transition of ``proc`` with what changed, as readable text."""
        states = self._facts.states(proc).copy()
        syntax = self._facts.store.syntax
        transitions = self._facts.store.frame().set_index("seq").loc[states["seq"], "term"]
        states["changes"] = [render_diff(transition_changes(t), syntax, "; ") for t in transitions]
        states["message_text"] = [render(m, syntax, 120) for m in states["message"]]
        return states

    def execution_path(self, proc: Any) -> pd.DataFrame:
        """Traced calls of ``proc``, nested by their returns (``indented`` shows the tree)."""
        pids = self._pids(proc)
        calls = self._facts.calls()
        path = calls[calls["pid"].isin(pids)].copy()
        path["indented"] = ["  " * int(d) + str(m) for d, m in zip(path["depth"], path["mfa"])]
        return path.reset_index(drop=True)

    def events_around(self, t: Any, window_ms: float = 100.0) -> pd.DataFrame:
        """Events within ``window_ms`` either side of ``t`` (a seq, timestamp or event)."""
        events = self._facts.events
        if events.empty:
            return events
        seq = self._facts.history().seq_of(t)
        center = events.loc[events["seq"] == seq, "ts"].iloc[0]
        window = pd.Timedelta(milliseconds=window_ms)
        return events[(events["ts"] >= center - window) & (events["ts"] <= center + window)]

    def trace_message(self, pattern: str | Callable[[Any], bool], max_depth: int = 3,
                      which: int = 0) -> pd.DataFrame:
        """Follow one message along its causal chain.

        send -> receive -> the callback that handled it -> the state change it
        made -> the messages that handler sent, each followed in turn (up to
        ``max_depth``). ``which`` picks among several matching sends (0 = first).
        The pattern is what the sender's code wrote (``{:add, _}`` for
        ``GenServer.cast(pid, {:add, n})``); ``attrs["matched"]`` says how the
        message was sent: ``"call"``, ``"cast"`` or ``"send"``.
        """
        matches = compile_pattern(pattern)
        messages = self._facts.messages()
        sent = messages[messages["send_seq"].notna()]
        hits = [(i, how) for i, term in zip(sent.index, sent["term"])
                for how in [match_message(matches, term)] if how]
        if not hits:
            raise QueryError(f"no traced send matches {pattern!r}; check the pattern against "
                             "s.messages()['text']")
        if which >= len(hits):
            raise QueryError(f"only {len(hits)} sends match {pattern!r}; which= counts from 0")
        rows: list[tuple] = []
        index, how = hits[which]
        self._follow(messages.loc[index], 0, max_depth, rows, set())
        frame = pd.DataFrame(rows, columns=TRACE_COLUMNS[1:])
        frame.insert(0, "step", range(len(frame)))
        frame.attrs["matched"] = how
        return frame

    def _follow(self, msg: pd.Series, depth: int, max_depth: int, rows: list, seen: set) -> None:
        syntax = self._facts.store.syntax
        key = int(msg["send_seq"])
        if key in seen:
            return
        seen.add(key)
        rows.append((depth, "send", key, msg["sent_at"], msg["sender"], msg["sender_name"],
                     f"{_who(msg['sender_name'], msg['sender'])} sends {msg['text']} to "
                     f"{_who(msg['receiver_name'], msg['receiver'])}"))
        if msg["status"] != "delivered":
            rows.append((depth, msg["status"], key, msg["sent_at"], msg["receiver"],
                         msg["receiver_name"],
                         f"not received: {msg['status']}"
                         + (" (the receiver was dead)" if msg["status"] == "lost" else "")))
            return
        recv_seq = int(msg["receive_seq"])
        rows.append((depth, "receive", recv_seq, msg["received_at"], msg["receiver"],
                     msg["receiver_name"], f"received after {msg['latency_us']:.0f} us"))
        tt = self._facts.history()
        state_seq = int(tt.handled_seqs()[recv_seq])
        if state_seq < 0:
            events = self._facts.events
            exits = events[(events["kind"] == "exit") & (events["pid"] == msg["receiver"])
                           & (events["seq"] > recv_seq)]
            if len(exits):
                row = exits.iloc[0]
                rows.append((depth, "crash", int(row["seq"]), row["ts"], row["pid"], row["name"],
                             f"the process exited before handling it: {row['text']}"))
            return
        state = self._facts.store.frame().set_index("seq").loc[state_seq]
        term = state["term"]
        rows.append((depth, "handled", state_seq, state["ts"], state["pid"], state["name"],
                     f"{term['callback']}({render(term['message'], syntax, 80)})"))
        rows.append((depth, "state_change", state_seq, state["ts"], state["pid"], state["name"],
                     render_diff(transition_changes(term), syntax)))
        if depth >= max_depth:
            return
        messages = self._facts.messages()
        duration_ns = int(state["_duration_ns"])
        start = state["ts"] - pd.Timedelta(nanoseconds=duration_ns)
        caused = messages[(messages["sender"] == state["pid"]) & messages["send_seq"].notna()
                          & (messages["send_seq"] > recv_seq) & (messages["send_seq"] < state_seq)
                          & (messages["sent_at"] >= start)]
        for _, child in caused.iterrows():
            self._follow(child, depth + 1, max_depth, rows, seen)


def _who(name: Any, pid: Any) -> str:
    """A process as people call it: its name, else its pid (never 'nan')."""
    for value in (name, pid):
        if isinstance(value, str) and value:
            return value
    return "an untraced process"
