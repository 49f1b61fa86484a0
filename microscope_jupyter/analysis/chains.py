"""Causal chains: what led to a message, hop by hop, and where it waited.

A message is sent by a process while it handles some earlier message (the
one in hand at the send); that message was sent by another process while it
handled an earlier one; and so on back to the first message the recording
has of the chain. Each hop says how long the message waited in its
receiver's mailbox (``wait_us``, from ``s.messages()``) and how long its
sender worked on the message before sending it. The hop with the longest
wait, if it waited long enough to matter, is where the chain lost its time.

    chain(messages, send_seq)                 # -> DataFrame, first cause first
    for_finding(facts, messages, finding)     # the chain that ends with its cause

The message in hand at an event is the one whose callback was running then.
A callback that raised leaves no state event, so the message a crashed
process was handling (``unread.crash_messages``) is in hand until its exit:
without that, the last message it took before dying (a reply to a call made
in an earlier callback, say) would stand in for the message that killed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..store.otp import message_kind
from .facts import Facts
from .unread import crash_messages

__all__ = ["chain", "message_for_event", "for_event", "for_finding", "fatal_messages",
           "CHAIN_COLUMNS", "SLOW_WAIT_US"]

CHAIN_COLUMNS = ["send_seq", "sender", "sender_name", "receiver", "receiver_name", "text",
                 "sent_at", "wait_us", "worked_us", "slowest"]

# A wait shorter than this is a mailbox doing its job, not where a chain lost
# its time: flagging the longest of three 15 µs waits would point at nothing.
SLOW_WAIT_US = 1000.0


def chain(messages: pd.DataFrame, send_seq: int, max_hops: int = 64,
          fatal: Mapping[int, int] | None = None) -> pd.DataFrame:
    """The causal chain ending with the message sent at ``send_seq``; its first
    hop may be a message from outside the trace (a timer's, say: no sender).
    ``fatal`` (``fatal_messages``) says which message each crashed process had
    in hand when it died."""
    table = messages.reset_index(drop=True)
    at = np.flatnonzero(_column(table, "send_seq") == send_seq)
    return _walk(table, int(at[0]), max_hops, fatal) if len(at) else _empty()


def message_for_event(messages: pd.DataFrame, seq: int, pid: str | None,
                      fatal: Mapping[int, int] | None = None) -> int | None:
    """The send seq a chain for event ``seq`` starts from: the message sent at
    ``seq``, else the message ``pid`` was handling then (None if it has no send)."""
    table = messages.reset_index(drop=True)
    k = _row_for_event(table, seq, pid, fatal)
    if k is None or pd.isna(table["send_seq"].iloc[k]):
        return None
    return int(table["send_seq"].iloc[k])


def for_event(messages: pd.DataFrame, seq: int, pid: str | None,
              fatal: Mapping[int, int] | None = None) -> pd.DataFrame:
    """The chain of event ``seq``: of the message sent or received at ``seq``,
    else of the message ``pid`` had in hand then (empty if none)."""
    table = messages.reset_index(drop=True)
    k = _row_for_event(table, seq, pid, fatal)
    return _empty() if k is None else _walk(table, k, 64, fatal)


def fatal_messages(facts: Facts) -> dict[int, int]:
    """Receive seq of the message each crashed process was handling -> its exit seq."""
    exits = {p.pid: p.exit_seq for p in facts.history().processes() if p.exit_seq is not None}
    return {seq: exits[pid] for pid, seq in crash_messages(facts).items() if pid in exits}


def for_finding(facts: Facts, messages: pd.DataFrame, finding: Any) -> pd.DataFrame:
    """The causal chain of a finding (a row of ``s.findings()``: kind, pid,
    first_seq, evidence), ending with the message that caused it:

    - crash, unhandled_message: the message the process was handling when it
      died (its arrival, for an unhandled one);
    - restart: the message the previous holder of the name died handling;
    - call_timeout: the call the process was waiting on when it gave up;
    - lost_message, deadlock: the (first) lost message, the first call of the cycle;
    - slow_handler, state_violation: the message that callback handled;
    - mailbox_growth, long_gc, long_schedule, large_heap: the message in
      hand then, else the last one to arrive before;
    - trace_gap: none (no process; the chain is empty).
    """
    table = messages.reset_index(drop=True)
    fatal = fatal_messages(facts)
    kind, seq, pid = finding.kind, int(finding.first_seq), finding.pid
    pid = pid if isinstance(pid, str) else None
    if kind == "restart" and len(finding.evidence):
        seq = int(finding.evidence[0])                     # the old holder's exit
        pid = facts.events["pid"].iloc[seq]
    k = None
    if kind == "call_timeout" and pid is not None:
        calls = np.flatnonzero((table["sender"] == pid).to_numpy(dtype=bool)
                               & (_column(table, "send_seq") < seq)
                               & np.array([message_kind(m) == "call" for m in table["term"]],
                                          dtype=bool))
        # a gen call blocks its caller: the last one it made is the one it died waiting on
        k = int(calls[-1]) if len(calls) else None
    if k is None:
        k = _row_for_event(table, seq, pid, fatal)
    if k is None and kind in ("mailbox_growth", "long_gc", "long_schedule", "large_heap"):
        came = np.flatnonzero((table["receiver"] == pid).to_numpy(dtype=bool)
                              & (_column(table, "receive_seq") < seq))
        k = int(came[-1]) if len(came) else None
    return _empty() if k is None else _walk(table, k, 64, fatal)


# -- the walk


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=CHAIN_COLUMNS)


def _column(table: pd.DataFrame, name: str) -> np.ndarray:
    return table[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _row_for_event(table: pd.DataFrame, seq: int, pid: str | None,
                   fatal: Mapping[int, int] | None) -> int | None:
    for name in ("send_seq", "receive_seq"):
        at = np.flatnonzero(_column(table, name) == seq)
        if len(at):
            return int(at[0])
    return None if pid is None else _Facts(table, fatal).cause(pid, seq)


def _walk(table: pd.DataFrame, k: int | None, max_hops: int,
          fatal: Mapping[int, int] | None) -> pd.DataFrame:
    facts = _Facts(table, fatal)
    hops: list[int] = []
    while k is not None and len(hops) < max_hops and k not in hops:
        hops.append(k)
        row = table.iloc[k]
        k = facts.cause(row["sender"], row["send_seq"]) if isinstance(row["sender"], str) \
            and pd.notna(row["send_seq"]) else None
    hops.reverse()
    rows = []
    for n, k in enumerate(hops):
        hop = table.iloc[k]
        worked = np.nan
        if n > 0 and facts.started_ns[hops[n - 1]] != _NEVER and pd.notna(hop["sent_at"]):
            # from the moment the sender's callback took the cause to this send
            worked = (hop["sent_at"].value - facts.started_ns[hops[n - 1]]) / 1000
        rows.append((None if pd.isna(hop["send_seq"]) else int(hop["send_seq"]),
                     hop["sender"], hop["sender_name"], hop["receiver"], hop["receiver_name"],
                     hop["text"], hop["sent_at"], hop["wait_us"], worked, False))
    out = pd.DataFrame(rows, columns=CHAIN_COLUMNS)
    waits = out["wait_us"].astype(float).fillna(-1).to_numpy()
    if len(waits) and waits.max() >= SLOW_WAIT_US:
        out.loc[int(waits.argmax()), "slowest"] = True
    return out


_NEVER = np.iinfo(np.int64).max


class _Facts:
    """Per message: when its receiver took it (the callback's seqs and start,
    else the receive), as arrays to search."""

    def __init__(self, table: pd.DataFrame, fatal: Mapping[int, int] | None = None):
        self.receivers = table["receiver"].to_numpy(dtype=object)
        sent = table["sent_at"].to_numpy(dtype="datetime64[ns]")
        wait = table["wait_us"].to_numpy(dtype=float) if "wait_us" in table \
            else np.full(len(table), np.nan)
        known = ~np.isnan(wait) & ~np.isnat(sent)
        # the callback that took it began (int64 ns: epoch ns as floats lose 1/4 µs)
        self.started_ns = np.full(len(table), _NEVER, dtype=np.int64)
        self.started_ns[known] = (sent[known].view(np.int64)
                                  + np.round(wait[known] * 1000).astype(np.int64))
        self.handled = _column(table, "handled_seq") if "handled_seq" in table \
            else np.full(len(table), np.nan)
        self.received = _column(table, "receive_seq")
        if fatal:
            self.handled = self.handled.copy()
            # the raising callback's end is the exit: it had the message in hand till then
            for k in np.flatnonzero(np.isin(self.received, list(fatal))):
                self.handled[k] = fatal[int(self.received[k])]

    def cause(self, sender: object, seq: float) -> int | None:
        """The row of what ``sender`` was handling at ``seq``: the callback running
        then (received before, its callback ended at or after ``seq``: of those,
        the first to end, as callbacks run one at a time), else the last message
        it took."""
        mine = (self.receivers == sender) & (self.received < seq)
        running = mine & (self.handled >= seq)
        if running.any():
            return int(np.flatnonzero(running)[self.handled[running].argmin()])
        before = mine & ~(self.handled >= seq)
        if not before.any():
            return None
        return int(np.flatnonzero(before)[self.received[before].argmax()])
