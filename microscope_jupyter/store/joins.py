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

from ..beam.etf import decode
from ..beam.terms import Atom, Pid
from ..render.elixir import render
from ..render.names import format_name
from .columns import bytes_key
from .event_store import EventStore
from .names import addressed_names
from .otp import TIMEOUT_PAYLOADS, state_heading, state_recorded
from .statem_calls import statem_steps
from .schema import KIND_CODES

__all__ = ["messages", "outgoing", "may_have_lost", "lost_candidates", "calls", "states",
           "state_headings", "lines", "MESSAGE_COLUMNS", "CALL_COLUMNS", "STATE_COLUMNS",
           "LINE_COLUMNS"]

MESSAGE_COLUMNS = ["send_seq", "receive_seq", "sent_at", "received_at", "latency_us", "sender",
                   "sender_name", "receiver", "receiver_name", "term", "text", "status"]
CALL_COLUMNS = ["call_seq", "end_seq", "pid", "name", "mfa", "args", "result", "exception",
                "started_at", "ended_at", "duration_us", "depth", "status",
                "args_text", "result_text", "exception_text"]
STATE_COLUMNS = ["seq", "ts", "pid", "name", "callback", "message", "before", "after", "reply",
                 "changed", "duration_us", "tool_us", "text",
                 # a gen_statem's (None for a GenServer): statem_calls.py
                 "event_type", "data_before", "data_after", "postponed"]
LINE_COLUMNS = ["seq", "ts", "pid", "name", "label", "mfa", "file", "line", "binding", "text"]

_TIMEOUT_SPELLINGS = np.array([bytes_key(p) for p in TIMEOUT_PAYLOADS], dtype=np.int64)
_TIMEOUT_KEY = int(_TIMEOUT_SPELLINGS.min())


# Only the columns the joins read: the copies below are of every message.
_MESSAGE_READS = ["seq", "kind", "node", "pid", "name", "peer", "ts", "term", "text", "_pid", "_peer"]


def outgoing(store: EventStore) -> pd.DataFrame:
    """Every traced send (and send to a dead process), with ``_receiver``: the
    global pid id it went to, a name resolved to its holder at that moment
    (0 or less when unknown: an alias, a name nobody held)."""
    events = store.frame()
    out = events.loc[events["kind"].isin(["send", "send_to_dead"]), _MESSAGE_READS]
    out["_receiver"] = _resolve_receivers(store, out)
    return out


def may_have_lost(store: EventStore) -> bool:
    """False when no message can have been lost, decided from the headers
    alone: nothing was sent to a dead process, and no process that exited
    was sent to (by pid or by a name it held) or received anything."""
    raw = store.raw()
    kind = raw.kind
    if (kind == KIND_CODES["send_to_dead"]).any():
        return True
    exited = np.unique(raw.pid[kind == KIND_CODES["exit"]])
    if not len(exited):
        return False
    named = set(store.names().named())
    return bool(np.isin(raw.pid[kind == KIND_CODES["receive"]], exited).any()
                or np.isin(raw.peer[kind == KIND_CODES["send"]], exited).any()
                or named.intersection(exited.tolist()))


def lost_candidates(store: EventStore) -> pd.DataFrame:
    """``messages`` of the processes that exited, and every send to a dead one:
    all the rows that can be ``lost``, without pairing the rest."""
    raw = store.raw()
    return messages(store, np.unique(raw.pid[raw.kind == KIND_CODES["exit"]]))


def messages(store: EventStore, receivers: np.ndarray | None = None) -> pd.DataFrame:
    """Every message; with ``receivers`` (pid ids), only those sent to or received
    by them, and every send to a dead process: the same rows for those, found
    without pairing the rest of the recording."""
    events = store.frame()
    sends = outgoing(store)
    receives = events.loc[events["kind"].isin(["receive", "timeout"]), _MESSAGE_READS]
    if receivers is not None:
        sends = sends[sends["_receiver"].isin(receivers) | (sends["kind"] == "send_to_dead")]
        receives = receives[receives["_pid"].isin(receivers)]
    if sends.empty and receives.empty:
        return pd.DataFrame(columns=MESSAGE_COLUMNS)
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
    unknown = sends[live & (sends["_receiver"] <= 0)].index   # none when receivers are given
    _pair(sends, receives, unknown, messages_in[~receives.loc[messages_in, "_matched"]], ["_key"])
    # 3. A send of the bare atom `timeout` arrives as what looks like a fired
    #    `after`: the receiver's first such event after the send.
    _pair_timeouts(sends, receives, live, timeouts)

    # A fired `after` that no send of `timeout` explains is no message; one
    # that pairs shows as that send (its term and text are the send's).
    receives = receives[~timeouts | receives["_matched"]]
    # Each matched send's receive row, found by seq (receives are in seq order).
    match = sends["_match"].to_numpy()
    matched = match >= 0
    recv_seq = receives["seq"].to_numpy()
    at = np.where(matched, np.searchsorted(recv_seq, np.maximum(match, 0)), 0)
    at = np.minimum(at, max(len(recv_seq) - 1, 0))
    # Texts and names from the ids (the frame's string columns are slow to read)
    texts_of = store.id_texts()
    recv_pid = receives["_pid"].to_numpy()
    names = store.names()
    recv_name = names.names_at(recv_pid, recv_seq)
    recv_ts = receives["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    nothing = np.zeros(len(sends), dtype=np.int64)
    receiver_ids = np.where(matched, recv_pid[at] if len(recv_seq) else nothing,
                            sends["_receiver"].to_numpy())
    raw = store.raw()
    exited = np.unique(raw.pid[raw.kind == KIND_CODES["exit"]])
    observed = np.unique(raw.pid)
    # Unmatched: lost if the receiver died, in flight if it is traced and
    # alive (still in its mailbox at stop), unobserved if it is not traced.
    status = np.select(
        [sends["kind"].to_numpy() == "send_to_dead", matched,
         np.isin(receiver_ids, exited), np.isin(receiver_ids, observed)],
        ["lost", "delivered", "lost", "in_flight"], default="unobserved")
    last_name = pd.Series(names.last_names(), dtype=object)   # no pass over the events
    received_ns = np.where(matched, recv_ts[at] if len(recv_seq) else nothing,
                           np.iinfo(np.int64).min)
    # Who received it: the receive's pid, else the pid the send's name
    # resolved to, else the name or alias the send was addressed to.
    peer_ids = sends["_peer"].to_numpy()
    peers = texts_of[peer_ids]
    receiver = np.where(receiver_ids > 0, texts_of[np.maximum(receiver_ids, 0)], peers)
    # Its name: the receiver's name at the receive, else the name the send
    # was addressed to (not an alias, nor the pid itself), else its last name.
    name_at_receive = np.where(matched, recv_name[at] if len(recv_seq) else None, None)
    ids = np.unique(peer_ids)
    is_name = np.zeros(int(ids.max()) + 1 if len(ids) else 1, dtype=bool)
    is_name[ids] = [text is not None and not text.startswith("#") for text in texts_of[ids]]
    addressed = ((receiver_ids <= 0) | (peer_ids != receiver_ids)) & is_name[peer_ids]
    last = pd.Series(receiver_ids).map(last_name).to_numpy(dtype=object)
    receiver_name = np.where(pd.notna(name_at_receive), name_at_receive,
                             np.where(addressed, addressed_names(store, texts_of, peer_ids), last))
    # Receives with no traced send: the sender is outside the trace. The
    # table is built once, in its final order (by send, else receive, seq):
    # no concatenated copy to sort afterwards.
    orphans = receives[~receives["_matched"]]
    n_orphans = len(orphans)
    order = np.argsort(np.concatenate([sends["seq"].to_numpy(), orphans["seq"].to_numpy()]),
                       kind="stable")

    def both(sent: np.ndarray, orphan: np.ndarray) -> np.ndarray:
        return np.concatenate([sent, orphan])[order]

    never = np.iinfo(np.int64).min
    sent_ns = both(sends["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64),
                   np.full(n_orphans, never))
    received_ns = both(received_ns, orphans["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64))
    sent_rows = ~both(np.zeros(len(sends), dtype=bool), np.ones(n_orphans, dtype=bool))
    nothing = np.full(n_orphans, None, dtype=object)
    latency = np.where((sent_ns != never) & (received_ns != never),
                       (received_ns - sent_ns) / 1000.0, np.nan)
    # pandas concatenates the lazy columns by their seqs (nothing is decoded)
    terms = pd.concat([sends["term"], orphans["term"]], ignore_index=True).array
    texts = pd.concat([sends["text"], orphans["text"]], ignore_index=True).array
    return pd.DataFrame({
        "send_seq": pd.arrays.IntegerArray(both(sends["seq"].to_numpy(), np.zeros(n_orphans,
                                                                                   np.int64)),
                                           ~sent_rows),
        "receive_seq": pd.arrays.IntegerArray(
            both(np.where(matched, match, 0), orphans["seq"].to_numpy()),
            both(~matched, np.zeros(n_orphans, dtype=bool))),
        "sent_at": pd.to_datetime(sent_ns.view("datetime64[ns]"), utc=True),
        "received_at": pd.to_datetime(received_ns.view("datetime64[ns]"), utc=True),
        "latency_us": latency,
        "sender": pd.Series(both(texts_of[sends["_pid"].to_numpy()], nothing), dtype=object),
        "sender_name": pd.Series(both(names.names_at(sends["_pid"].to_numpy(),
                                                     sends["seq"].to_numpy()), nothing),
                                 dtype=object),
        "receiver": both(receiver, texts_of[orphans["_pid"].to_numpy()]),
        "receiver_name": both(receiver_name, names.names_at(orphans["_pid"].to_numpy(),
                                                            orphans["seq"].to_numpy())),
        "term": terms.take(order),   # lazy: decoded when read (store.lazy)
        "text": texts.take(order),
        "status": both(status, np.full(n_orphans, "delivered", dtype=object)),
    })[MESSAGE_COLUMNS]


def _pair(sends: pd.DataFrame, receives: pd.DataFrame, send_index, recv_index,
          by: list[str]) -> None:
    """FIFO-pair sends with receives that agree on ``by``; marks both sides."""
    if len(send_index) == 0 or len(recv_index) == 0:
        return
    left = sends.loc[send_index, by + ["seq", "node"]].copy()
    right = receives.loc[recv_index, by + ["seq", "node"]].copy()
    left["_n"] = left.groupby(by).cumcount()
    right["_n"] = right.groupby(by).cumcount()
    joined = left.reset_index().merge(right.rename(columns={"seq": "_rseq", "node": "_rnode"})
                                      .reset_index(names="_rindex"), on=by + ["_n"], how="inner")
    # A receive never precedes its send. Between nodes seq is the order their
    # batches reached us, not time: there the clocks decide (Cluster.align_clocks).
    joined = joined[(joined["_rseq"] > joined["seq"])
                    | (joined["_rnode"].astype(str) != joined["node"].astype(str))]
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
    seqs, nodes = sends["seq"].to_numpy(), sends["node"].astype(str).to_numpy()
    # Decide per distinct peer id, not per send: most sends go to a few peers.
    for peer in np.unique(peers):
        term = store.term_of(int(peer)) if peer > 0 else None
        if term is None or isinstance(term, Pid):
            continue
        rows = np.flatnonzero(peers == peer)
        if isinstance(term, tuple) and len(term) == 2:     # {Name, Node}: that node's holder
            name = format_name(term[0], store.syntax)
            out[rows] = [names.holder_at(name, int(q), str(term[1])) for q in seqs[rows]]
        else:                                              # a name: the sender's node's holder
            name = store.id_text(int(peer))
            out[rows] = [names.holder_at(name, int(q), n) for q, n in zip(seqs[rows], nodes[rows])]
    return out


def _payload_keys(store: EventStore, seqs: pd.Series) -> np.ndarray:
    """A key per event's payload: equal payloads, equal keys (any spelling of
    the bare atom ``timeout`` shares one)."""
    keys = store.raw().payload_keys(seqs.to_numpy(dtype=np.int64))
    keys[np.isin(keys, _TIMEOUT_SPELLINGS)] = _TIMEOUT_KEY
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
    machines: dict[int, list] = {}
    for seq, gid, term in zip(rows["seq"], rows["_pid"], rows["term"]):
        if isinstance(term, dict) and "statem" in term:
            machines.setdefault(int(gid), []).append(
                (int(seq), term["statem"]["event_type"], term.get("message")))
    steps = statem_steps(store, machines)
    for seq, ts, pid, name, term, duration_ns, text in zip(
            rows["seq"], rows["ts"], rows["pid"], rows["name"], rows["term"],
            rows["_duration_ns"], rows["text"]):
        term = term or {}
        before, after = term.get("before"), term.get("after")
        step, statem = steps.get(int(seq)), term.get("statem") or {}
        if state_recorded(before) and state_recorded(after):
            changed = before != after or (step is not None and not
                                          _same(step.data_before, step.data_after))
        else:  # what the hook saw: the fields it found changed, if any
            changed = bool(term.get("changes")) if term.get("changes") is not None else pd.NA
        records.append((int(seq), ts, pid, name, step.callback if step else term.get("callback"),
                        term.get("message"), before, after, term.get("reply"), changed,
                        duration_ns / 1000.0, term.get("tool_ns", 0) / 1000.0, text,
                        statem.get("event_type"), step.data_before if step else None,
                        step.data_after if step else None,
                        statem.get("how") == "postpone" if statem else None))
    return _object_frame(records, STATE_COLUMNS, ["message", "before", "after", "reply",
                                                  "event_type", "data_before", "data_after"])


def _same(a: Any, b: Any) -> bool:
    return a == b if state_recorded(a) and state_recorded(b) else True


_STATEM = Atom("gen_statem")


def state_headings(store: EventStore) -> pd.DataFrame:
    """seq, ts, pid, name, callback, message shape and duration_us of every
    state event (as ``states`` has them), the message shape read
    off each payload's message alone: no state is decoded (but one per
    process, to learn whether it is a gen_statem)."""
    events = store.frame()
    rows = events[events["kind"] == "state"]
    raw = store.raw()
    statem: dict[int, bool] = {}
    callbacks, shapes = [], []
    for seq, gid in zip(rows["seq"].tolist(), rows["_pid"].tolist()):
        payload = raw.payload(seq)
        if gid not in statem:      # {Msg, Before, After, Reply, Kind[, Extra]}
            term = decode(payload)
            statem[gid] = isinstance(term, tuple) and len(term) >= 5 and term[4] == _STATEM
        callback, shape = state_heading(payload, statem[gid])
        callbacks.append(callback)
        shapes.append(shape)
    return pd.DataFrame({"seq": rows["seq"].to_numpy(), "ts": rows["ts"].to_numpy(),
                         "pid": rows["pid"].to_numpy(), "name": rows["name"].to_numpy(),
                         "callback": callbacks, "shape": shapes,
                         "duration_us": rows["_duration_ns"].to_numpy(dtype=float) / 1000.0})


def _object_frame(records: list[tuple], columns: list[str], term_columns: list[str]) -> pd.DataFrame:
    """A frame whose term columns stay Python objects (pandas would make Atoms into str)."""
    frame = pd.DataFrame(records, columns=columns)
    for column in term_columns:
        frame[column] = pd.Series([r[columns.index(column)] for r in records], dtype=object,
                                  index=frame.index)
    return frame


def lines(store: EventStore, pid_ids: set[int] | None = None) -> pd.DataFrame:
    """One row per ``inspect_line`` call: where (function, file, line) and the
    binding as a dict of variable -> term."""
    events = store.frame()
    rows = events[events["kind"] == "line"]
    if pid_ids is not None:
        rows = rows[rows["_pid"].isin(pid_ids)]
    aux = store.raw().aux
    records = []
    for seq, ts, pid, name, mfa, term, text in zip(rows["seq"], rows["ts"], rows["pid"],
                                                    rows["name"], rows["mfa"], rows["term"],
                                                    rows["text"]):
        snap = term if isinstance(term, dict) else {}
        records.append((int(seq), ts, pid, name, snap.get("label"), mfa, snap.get("file"),
                        int(aux[seq]), snap.get("binding"), text))
    return _object_frame(records, LINE_COLUMNS, ["label", "binding"])
