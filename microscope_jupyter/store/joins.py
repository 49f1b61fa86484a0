"""Events joined into the tables people ask for: messages, calls, state transitions.

Status: ``delivered``; ``lost`` (sent to a dead pid, or the receiver died
with it unread); ``in_flight`` (a traced receiver had not taken it when the
recording stopped); ``unobserved`` (the receiver is outside the trace).

A receive trace event does not name the sender, so a send is paired with a
receive the way the BEAM orders delivery: per receiver, identical payloads
are delivered in the order they were sent (FIFO per sender/receiver pair;
identical payloads from different senders are indistinguishable anyway).
Sends to a name are resolved to the pid holding that name at that moment.

A ``timeout`` event (a ``receive ... after`` that fired) is no message. The
trace spells it like the arrival of the bare atom ``timeout``, so one is
taken as that message only when a traced send of ``timeout`` pairs with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..beam.terms import Atom, Pid
from ..render.elixir import render
from .event_store import EventStore
from .otp import TIMEOUT_PAYLOADS, state_recorded

__all__ = ["messages", "calls", "states", "MESSAGE_COLUMNS", "CALL_COLUMNS", "STATE_COLUMNS"]

MESSAGE_COLUMNS = ["send_seq", "receive_seq", "sent_at", "received_at", "latency_us", "sender",
                   "sender_name", "receiver", "receiver_name", "term", "text", "status"]
CALL_COLUMNS = ["call_seq", "end_seq", "pid", "name", "mfa", "args", "result", "exception",
                "started_at", "ended_at", "duration_us", "depth", "status",
                "args_text", "result_text", "exception_text"]
STATE_COLUMNS = ["seq", "ts", "pid", "name", "callback", "message", "before", "after", "reply",
                 "changed", "duration_us", "tool_us", "text"]

_TIMEOUT_KEY = hash(b"\x83w\x07timeout")


def messages(store: EventStore) -> pd.DataFrame:
    events = store.frame()
    sends = events[events["kind"].isin(["send", "send_to_dead"])].copy()
    receives = events[events["kind"].isin(["receive", "timeout"])].copy()
    if sends.empty and receives.empty:
        return pd.DataFrame(columns=MESSAGE_COLUMNS)

    sends["_receiver"] = _resolve_receivers(store, sends)
    sends["_key"] = _payload_keys(store, sends["seq"])
    receives["_key"] = _payload_keys(store, receives["seq"])
    timeouts = receives["kind"] == "timeout"
    receives.loc[timeouts, "_key"] = _TIMEOUT_KEY
    receives["_receiver"] = receives["_pid"]
    sends["_match"] = -1
    receives["_matched"] = False
    live = sends["kind"] == "send"

    # 1. Receiver known (a pid, or a name held by a pid): the n-th identical
    #    payload sent to R pairs with the n-th one R received.
    messages_in = receives.index[~timeouts]
    known = sends[live & (sends["_receiver"] > 0)]
    _pair(sends, receives, known.index, messages_in, ["_receiver", "_key"])
    # 2. Receiver unknown (an alias, a name nobody held): identical payload,
    #    FIFO, among the receives still unpaired.
    unknown = sends[live & (sends["_receiver"] <= 0)].index
    _pair(sends, receives, unknown, messages_in[~receives.loc[messages_in, "_matched"]], ["_key"])
    # 3. A send of the bare atom `timeout` arrives as what looks like a fired
    #    `after`: the receiver's first such event after the send.
    _pair_timeouts(sends, receives, live, timeouts)

    # A fired `after` that no send of `timeout` explains is no message.
    receives = receives[~timeouts | receives["_matched"]].copy()
    if len(receives):
        receives.loc[receives["kind"] == "timeout", "term"] = pd.Series(
            [Atom("timeout")] * int((receives["kind"] == "timeout").sum()),
            index=receives.index[receives["kind"] == "timeout"], dtype=object)
        receives.loc[receives["kind"] == "timeout", "text"] = ":timeout"
    recv = receives.set_index("seq")
    matched = sends["_match"] >= 0
    recv_rows = recv.reindex(sends["_match"].where(matched, -1))
    receiver_ids = np.where(matched, recv_rows["_pid"].fillna(0).to_numpy(), sends["_receiver"])
    exited = set(events.loc[events["kind"] == "exit", "_pid"])
    observed = set(events["_pid"])
    receiver_series = pd.Series(receiver_ids)
    # Unmatched: lost if the receiver died, in flight if it is traced and
    # alive (still in its mailbox at stop), unobserved if it is not traced.
    status = np.select(
        [sends["kind"].to_numpy() == "send_to_dead", matched.to_numpy(),
         receiver_series.isin(exited).to_numpy(), receiver_series.isin(observed).to_numpy()],
        ["lost", "delivered", "lost", "in_flight"], default="unobserved")
    last_name = events.dropna(subset=["name"]).groupby("_pid")["name"].last().to_dict()
    received_at = pd.to_datetime(recv_rows["ts"].to_numpy(), utc=True)
    sent_rows = pd.DataFrame({
        "send_seq": sends["seq"].to_numpy(),
        "receive_seq": sends["_match"].where(matched).astype("Int64").to_numpy(),
        "sent_at": sends["ts"].to_numpy(),
        "received_at": received_at,
        "sender": sends["pid"].to_numpy(),
        "sender_name": sends["name"].to_numpy(),
        "receiver": [store.id_text(int(r)) if r > 0 else p
                     for r, p in zip(receiver_ids, sends["peer"])],
        "receiver_name": [n if isinstance(n, str) else
                          (p if (r <= 0 or peer_id != r) and isinstance(p, str) and not p.startswith("#")
                           else last_name.get(r))
                          for n, r, p, peer_id in zip(recv_rows["name"], receiver_ids, sends["peer"],
                                                      sends["_peer"])],
        "term": pd.Series(sends["term"].to_numpy(), dtype=object),
        "text": sends["text"].to_numpy(),
        "status": status,
    })
    # Receives with no traced send: the sender is outside the trace.
    orphans = receives[~receives["_matched"]]
    orphan_rows = pd.DataFrame({
        "send_seq": pd.array([pd.NA] * len(orphans), dtype="Int64"),
        "receive_seq": orphans["seq"].astype("Int64").to_numpy(),
        "sent_at": pd.NaT,
        "received_at": orphans["ts"].to_numpy(),
        "sender": None,
        "sender_name": None,
        "receiver": orphans["pid"].to_numpy(),
        "receiver_name": orphans["name"].to_numpy(),
        "term": pd.Series(orphans["term"].to_numpy(), dtype=object),
        "text": orphans["text"].to_numpy(),
        "status": "delivered",
    })
    table = pd.concat([sent_rows, orphan_rows], ignore_index=True)
    table["sent_at"] = pd.to_datetime(table["sent_at"], utc=True)
    table["received_at"] = pd.to_datetime(table["received_at"], utc=True)
    table["latency_us"] = (table["received_at"] - table["sent_at"]).dt.total_seconds() * 1e6
    table["send_seq"] = table["send_seq"].astype("Int64")
    order = table["send_seq"].fillna(table["receive_seq"]).astype(np.int64)
    table = table.iloc[np.argsort(order.to_numpy(), kind="stable")]
    return table[MESSAGE_COLUMNS].reset_index(drop=True)


def _pair(sends: pd.DataFrame, receives: pd.DataFrame, send_index, recv_index,
          by: list[str]) -> None:
    """FIFO-pair sends with receives that agree on ``by``; marks both sides."""
    if len(send_index) == 0 or len(recv_index) == 0:
        return
    left = sends.loc[send_index, by + ["seq"]].copy()
    right = receives.loc[recv_index, by + ["seq"]].copy()
    left["_n"] = left.groupby(by).cumcount()
    right["_n"] = right.groupby(by).cumcount()
    joined = left.reset_index().merge(right.rename(columns={"seq": "_rseq"}).reset_index(
        names="_rindex"), on=by + ["_n"], how="inner")
    # A receive never precedes its send.
    joined = joined[joined["_rseq"] > joined["seq"]]
    sends.loc[joined["index"], "_match"] = joined["_rseq"].to_numpy()
    receives.loc[joined["_rindex"], "_matched"] = True


def _pair_timeouts(sends: pd.DataFrame, receives: pd.DataFrame, live: pd.Series,
                   timeouts: pd.Series) -> None:
    wanted = sends[live & (sends["_key"] == _TIMEOUT_KEY) & (sends["_match"] < 0)]
    if wanted.empty or not timeouts.any():
        return
    fired = receives[timeouts]
    by_receiver = {pid: list(zip(group["seq"], group.index)) for pid, group in fired.groupby("_pid")}
    for index, receiver, seq in zip(wanted.index, wanted["_receiver"], wanted["seq"]):
        for k, (rseq, rindex) in enumerate(by_receiver.get(receiver, [])):
            if rseq > seq:
                sends.loc[index, "_match"] = rseq
                receives.loc[rindex, "_matched"] = True
                del by_receiver[receiver][k]
                break


def _resolve_receivers(store: EventStore, sends: pd.DataFrame) -> np.ndarray:
    """Global pid id of each send's receiver; a name resolves to its holder at that time."""
    peers = sends["_peer"].to_numpy(dtype=np.int64)
    out = peers.copy()
    names = store.names()
    # Decide per distinct peer id, not per send: most sends go to a few peers.
    for peer in np.unique(peers):
        if peer > 0 and not isinstance(store.term_of(int(peer)), Pid):
            name = store.id_text(int(peer))
            rows = np.flatnonzero(peers == peer)
            out[rows] = [names.holder_at(name, int(q)) for q in sends["seq"].to_numpy()[rows]]
    return out


def _payload_keys(store: EventStore, seqs: pd.Series) -> list[int]:
    """A key per event's payload: equal payloads, equal keys (any spelling of
    the bare atom ``timeout`` shares one)."""
    raw = store.raw()
    rows = seqs.to_numpy(dtype=np.int64)
    blobs, chunk = raw.blobs, raw.chunk[rows].tolist()
    offs, lens = raw.pay_off[rows].tolist(), raw.pay_len[rows].tolist()
    keys = []
    for c, o, n in zip(chunk, offs, lens):
        payload = bytes(blobs[c][o:o + n])
        keys.append(_TIMEOUT_KEY if payload in TIMEOUT_PAYLOADS else hash(payload))
    return keys


def calls(store: EventStore) -> pd.DataFrame:
    events = store.frame()
    rows = events[events["kind"].isin(["call", "return", "exception"])]
    out: list[tuple] = []
    stacks: dict[int, list[dict]] = {}
    for seq, kind, pid_id, pid, name, mfa, term, ts in zip(
            rows["seq"], rows["kind"], rows["_pid"], rows["pid"], rows["name"], rows["mfa"],
            rows["term"], rows["ts"]):
        stack = stacks.setdefault(int(pid_id), [])
        if kind == "call":
            stack.append({"seq": int(seq), "pid": pid, "name": name, "mfa": mfa, "args": term,
                          "ts": ts, "depth": len(stack)})
            continue
        # Return/exception closes the innermost open call of the same function.
        for i in range(len(stack) - 1, -1, -1):
            if stack[i]["mfa"] == mfa:
                call = stack.pop(i)
                del stack[i:]
                out.append((call["seq"], int(seq), call["pid"], call["name"], mfa, call["args"],
                            term if kind == "return" else None,
                            term if kind == "exception" else None,
                            call["ts"], ts, (ts - call["ts"]).total_seconds() * 1e6,
                            call["depth"], "returned" if kind == "return" else "raised"))
                break
    for stack in stacks.values():
        for call in stack:
            out.append((call["seq"], None, call["pid"], call["name"], call["mfa"], call["args"],
                        None, None, call["ts"], pd.NaT, np.nan, call["depth"], "running"))
    # As every other table: terms as Elixir (or Erlang) text next to the terms.
    syntax, limit = store.syntax, store.text_limit
    out = [row + (_args_text(row[5], syntax, limit),
                  None if row[12] != "returned" else render(row[6], syntax, limit),
                  None if row[7] is None else render(row[7], syntax, limit)) for row in out]
    table = _object_frame(out, CALL_COLUMNS, ["args", "result", "exception"])
    table = table.sort_values("call_seq").reset_index(drop=True)
    table["end_seq"] = table["end_seq"].astype("Int64")
    return table


def _args_text(args: Any, syntax: str, limit: int) -> str:
    """``(1, :a)`` for an argument list, as a call is written."""
    if isinstance(args, list):
        return "(" + ", ".join(render(a, syntax, limit) for a in args)[:limit] + ")"
    return render(args, syntax, limit)


def states(store: EventStore, pid_ids: set[int] | None = None) -> pd.DataFrame:
    events = store.frame()
    rows = events[events["kind"] == "state"]
    if pid_ids is not None:
        rows = rows[rows["_pid"].isin(pid_ids)]
    records: list[tuple[Any, ...]] = []
    for seq, ts, pid, name, term, duration_ns, text in zip(
            rows["seq"], rows["ts"], rows["pid"], rows["name"], rows["term"],
            rows["_duration_ns"], rows["text"]):
        term = term or {}
        before, after = term.get("before"), term.get("after")
        if state_recorded(before) and state_recorded(after):
            changed = before != after
        else:  # what the hook saw: the fields it found changed, if any
            changed = bool(term.get("changes")) if term.get("changes") is not None else pd.NA
        records.append((int(seq), ts, pid, name, term.get("callback"), term.get("message"),
                        before, after, term.get("reply"), changed, duration_ns / 1000.0,
                        term.get("tool_ns", 0) / 1000.0, text))
    return _object_frame(records, STATE_COLUMNS, ["message", "before", "after", "reply"])


def _object_frame(records: list[tuple], columns: list[str], term_columns: list[str]) -> pd.DataFrame:
    """A frame whose term columns stay Python objects (pandas would make Atoms into str)."""
    frame = pd.DataFrame(records, columns=columns)
    for column in term_columns:
        frame[column] = pd.Series([r[columns.index(column)] for r in records], dtype=object,
                                  index=frame.index)
    return frame
