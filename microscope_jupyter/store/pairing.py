"""Which callback handled which received message, found by bytes.

    keys = raw.payload_keys(receive_rows)
    state_keys = state_message_keys(raw, state_rows, receive_rows, keys)   # 0: none
    fifo_pairs(receive_groups, receive_seqs, state_groups, state_seqs)
    message_shapes(raw.heads(state_rows))                     # CONTINUE, TIMEOUT, OTHER

A state event's payload is ``{Msg, Before, After, Reply, Kind, Extra}``; its
message is byte for byte the payload of the receive it handled, so the two
pair by key without decoding either (History's FIFO pairing uses the keys).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..beam.etf import decode_from
from ..errors import DecodeError
from .columns import RawColumns, bytes_key, starts_with
from .otp import CONTINUE_HEADS, TIMEOUT_ATOMS

__all__ = ["OTHER", "CONTINUE", "TIMEOUT", "message_shapes", "state_message_keys",
           "state_message_key", "fifo_pairs", "mix", "time_ranks"]

# What a callback's message was, as far as the mailbox is concerned.
OTHER, CONTINUE, TIMEOUT = 0, 1, 2


def message_shapes(heads: np.ndarray) -> np.ndarray:
    """Per state event (the first bytes of its payload): CONTINUE for a
    handle_continue, TIMEOUT for the bare atom timeout, else OTHER. The
    message starts at byte 3, after the event tuple's header."""
    shapes = np.zeros(len(heads), dtype=np.int8)
    is_tuple = (heads[:, 0] == 0x83) & (heads[:, 1] == ord("h"))
    shapes[is_tuple & starts_with(heads, CONTINUE_HEADS, 3)] = CONTINUE
    shapes[is_tuple & starts_with(heads, TIMEOUT_ATOMS, 3)] = TIMEOUT
    return shapes


def mix(pids: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """One int64 per (pid, key) pair."""
    mixed = keys.astype(np.uint64) ^ (pids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    return mixed.view(np.int64)


def state_message_key(state_payload: bytes) -> int | None:
    """The key (bytes_key) of a state event's message, found by decoding it:
    the first element of its ``{Msg, Before, After, ...}`` tuple."""
    if state_payload[:2] != b"\x83h":
        return None
    message = b"\x83" + state_payload[3:]
    try:
        _, end = decode_from(message)
    except DecodeError:
        return None
    return bytes_key(message[:end])


def state_message_keys(raw: RawColumns, rows: np.ndarray, recv_rows: np.ndarray,
                       recv_keys: np.ndarray) -> np.ndarray:
    """Per state event in ``rows``, its message's key (0 where none is
    needed): the key the message would have as a receive's payload.

    A state event's message is the first element of its tuple, byte for
    byte the payload its receive carries. ETF is prefix-free, so for each
    length a receive of that process has, the state's bytes of that
    length at the message's place equal a receive's exactly when that is
    its message. Nothing is decoded, but for the states of processes that
    received messages over 40 bytes: their messages are."""
    keys = np.zeros(len(rows), dtype=np.int64)
    found = np.zeros(len(rows), dtype=bool)
    state_pid, recv_pid = raw.pid[rows], raw.pid[recv_rows]
    recv_len = raw.pay_len[recv_rows]
    for length in np.unique(recv_len[recv_len <= 40]).tolist():
        wanted = np.unique(mix(recv_pid[recv_len == length], recv_keys[recv_len == length]))
        todo = np.flatnonzero(~found)
        candidate = raw.prefix_keys(rows[todo], 2, length)
        hit = (candidate != 0) & np.isin(mix(state_pid[todo], candidate), wanted)
        keys[todo[hit]] = candidate[hit]
        found[todo[hit]] = True
    # Longer messages: per process, the lengths its long receives have (few:
    # a server's calls are alike), each tried as the message's length, by its
    # bytes' key; decoded only where a process has too many lengths to try.
    long = recv_len > 40
    lengths: dict[int, dict[int, set]] = {}
    for pid, length, key in zip(recv_pid[long].tolist(), recv_len[long].tolist(),
                                recv_keys[long].tolist()):
        lengths.setdefault(pid, {}).setdefault(length, set()).add(key)
    todo = np.flatnonzero(~found & np.isin(state_pid, list(lengths)))
    for k, payload, pid in zip(todo.tolist(), raw.payloads(rows[todo]), state_pid[todo].tolist()):
        tried = lengths[pid]
        if len(tried) > 16 or payload[:2] != b"\x83h":
            keys[k] = state_message_key(payload) or 0
            continue
        for length, wanted in tried.items():
            key = bytes_key(b"\x83" + payload[3:2 + length])
            if key in wanted:
                keys[k] = key
                break
    return keys


def fifo_pairs(recv_group: np.ndarray, recv_seq: np.ndarray, state_group: np.ndarray,
               state_seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair, within each group, each state with the earliest unpaired receive
    before it (FIFO), as a queue would: (state positions, receive positions).

    Vectorised: with r_j the receives of its group before the j-th state,
    the pairs made up to it are m_j = min(m_(j-1) + 1, r_j), that is
    j + min(0, min over k <= j of (r_k - k)); the j-th state pairs when m
    grows, with the m_j-th receive of its group."""
    if len(recv_seq) == 0 or len(state_seq) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ro = np.lexsort((recv_seq, recv_group))
    so = np.lexsort((state_seq, state_group))
    big = int(max(recv_seq.max(), state_seq.max())) + 1
    rkey = recv_group[ro].astype(np.int64) * big + recv_seq[ro]
    sg = state_group[so].astype(np.int64)
    first_recv = np.searchsorted(rkey, sg * big)
    before = np.searchsorted(rkey, sg * big + state_seq[so]) - first_recv
    start = np.r_[True, sg[1:] != sg[:-1]]
    position = np.arange(len(sg))
    k = position - np.maximum.accumulate(np.where(start, position, 0)) + 1
    lowest = pd.Series(before - k).groupby(np.cumsum(start)).cummin().to_numpy()
    made = k + np.minimum(0, lowest)
    made_before = np.where(start, 0, np.r_[0, made[:-1]])
    pairs = made > made_before
    return so[pairs], ro[first_recv[pairs] + made[pairs] - 1]


def time_ranks(raw, receives: np.ndarray, states: np.ndarray) -> tuple:
    """(receive ranks, state ranks) by time: a receive at its event, a callback
    when it took its message (its return less its duration); a receive first
    at equal times."""
    when = np.concatenate([raw.ts_ns[receives], raw.ts_ns[states] - raw.aux[states]])
    rank = np.empty(len(when), dtype=np.int64)
    rank[np.lexsort((np.r_[np.zeros(len(receives)), np.ones(len(states))], when))] = \
        np.arange(len(when))
    return rank[:len(receives)], rank[len(receives):]
