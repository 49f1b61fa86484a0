"""Causal chains: what led to a message, hop by hop, and where it waited.

A message is sent by a process while it handles some earlier message (the
last one it took before the send); that message was sent by another process
while it handled an earlier one; and so on back to the first message the
recording has of the chain. Each hop says how long the message waited in
its receiver's mailbox (``wait_us``, from ``s.messages()``) and how long its
sender worked on the message before sending it. The hop with the longest
wait is where the chain lost its time.

    chain(messages, send_seq)   # -> DataFrame, first cause first
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["chain", "message_for_event", "CHAIN_COLUMNS"]

CHAIN_COLUMNS = ["send_seq", "sender", "sender_name", "receiver", "receiver_name", "text",
                 "sent_at", "wait_us", "worked_us", "slowest"]


def chain(messages: pd.DataFrame, send_seq: int, max_hops: int = 64) -> pd.DataFrame:
    """The causal chain ending with the message sent at ``send_seq``; its first
    hop may be a message from outside the trace (a timer's, say: no sender)."""
    table = messages.reset_index(drop=True)
    at = np.flatnonzero(table["send_seq"].to_numpy(dtype=np.float64, na_value=np.nan) == send_seq)
    if not len(at):
        return pd.DataFrame(columns=CHAIN_COLUMNS)
    facts = _Facts(table)
    hops: list[int] = []
    k: int | None = int(at[0])
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
    waits = out["wait_us"].astype(float)
    if waits.notna().any():
        out.loc[int(waits.fillna(-1).to_numpy().argmax()), "slowest"] = True
    return out


def message_for_event(messages: pd.DataFrame, seq: int, pid: str | None) -> int | None:
    """The send seq a chain for event ``seq`` starts from: the message sent at
    ``seq``, else the message ``pid`` was handling then (None if it has no send)."""
    table = messages.reset_index(drop=True)
    if (table["send_seq"] == seq).any():
        return seq
    if pid is None:
        return None
    k = _Facts(table).cause(pid, seq)
    if k is None or pd.isna(table["send_seq"].iloc[k]):
        return None
    return int(table["send_seq"].iloc[k])


_NEVER = np.iinfo(np.int64).max


class _Facts:
    """Per message: when its receiver took it (the callback's seqs and start,
    else the receive), as arrays to search."""

    def __init__(self, table: pd.DataFrame):
        self.receivers = table["receiver"].to_numpy(dtype=object)
        sent = table["sent_at"].to_numpy(dtype="datetime64[ns]")
        wait = table["wait_us"].to_numpy(dtype=float) if "wait_us" in table \
            else np.full(len(table), np.nan)
        known = ~np.isnan(wait) & ~np.isnat(sent)
        # the callback that took it began (int64 ns: epoch ns as floats lose 1/4 µs)
        self.started_ns = np.full(len(table), _NEVER, dtype=np.int64)
        self.started_ns[known] = (sent[known].view(np.int64)
                                  + np.round(wait[known] * 1000).astype(np.int64))
        self.handled = table["handled_seq"].to_numpy(dtype=np.float64, na_value=np.nan) \
            if "handled_seq" in table else np.full(len(table), np.nan)
        self.received = table["receive_seq"].to_numpy(dtype=np.float64, na_value=np.nan)

    def cause(self, sender: object, seq: float) -> int | None:
        """The row of what ``sender`` was handling at ``seq``: the callback running
        then (received before, its callback ended after: of those, the first to
        end, as callbacks run one at a time), else the last message it took."""
        mine = (self.receivers == sender) & (self.received < seq)
        running = mine & (self.handled > seq)
        if running.any():
            return int(np.flatnonzero(running)[self.handled[running].argmin()])
        before = mine & ~(self.handled > seq)
        if not before.any():
            return None
        return int(np.flatnonzero(before)[self.received[before].argmax()])
