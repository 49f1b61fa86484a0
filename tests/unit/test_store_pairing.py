"""A callback's message is found among receives by bytes, as decoding finds it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from microscope_jupyter.beam.etf import encode
from microscope_jupyter.beam.terms import Atom, Pid
from microscope_jupyter.store.event_store import EventStore
from microscope_jupyter.store.pairing import (CONTINUE, OTHER, TIMEOUT, fifo_pairs,
                                              message_shapes, state_message_key,
                                              state_message_keys)
from microscope_jupyter.store.schema import HEADER_DTYPE, KIND_CODES

NODE = "pair@host"
GS = Atom("gen_server")


def state_payload(message) -> bytes:
    return encode((message, {Atom("n"): 1}, {Atom("n"): 2}, Atom("noreply"), GS, {}))


def store_with(events: list[tuple[str, int, bytes]]) -> EventStore:
    """(kind, pid id, payload) per event, in one batch."""
    store = EventStore()
    store.add_source("s", NODE, 0, 10**9)
    headers = np.zeros(len(events), dtype=HEADER_DTYPE)
    blob = bytearray()
    for i, (kind, pid, payload) in enumerate(events):
        headers[i]["kind"], headers[i]["pid"], headers[i]["ts"] = KIND_CODES[kind], pid, i
        headers[i]["pay_off"], headers[i]["pay_len"] = len(blob), len(payload)
        blob += payload
    defs = [(1, Pid(Atom(NODE), 1, 0, 1)), (2, Pid(Atom(NODE), 2, 0, 1))]
    store.append_batch("s", headers.tobytes(), bytes(blob), defs)
    return store


def test_shapes_of_callback_messages():
    payloads = [state_payload((Atom("continue"), 5)), state_payload(Atom("timeout")),
                state_payload((Atom("tick"), 1)), state_payload(Atom("timeouts"))]
    store = store_with([("state", 1, p) for p in payloads])
    raw = store.raw()
    assert message_shapes(raw.heads(np.arange(4))).tolist() == [CONTINUE, TIMEOUT, OTHER, OTHER]


def test_state_keys_equal_receive_keys_short_and_long_without_mixing_processes():
    short, other, long = (Atom("tick"), 7), (Atom("tick"), 8), {Atom("blob"): "x" * 90}
    events = [("receive", 1, encode(short)), ("receive", 1, encode(long)),
              ("receive", 2, encode(other)),
              ("state", 1, state_payload(short)), ("state", 1, state_payload(long)),
              ("state", 2, state_payload(short)),   # pid 2 never received `short`
              ("state", 2, state_payload(other))]
    store = store_with(events)
    raw = store.raw()
    recv = np.array([0, 1, 2])
    keys = raw.payload_keys(recv)
    found = state_message_keys(raw, np.array([3, 4, 5, 6]), recv, keys)
    # pid 2 never received `short`: no key needed, none computed
    assert found.tolist() == [keys[0], keys[1], 0, keys[2]]
    assert state_message_key(raw.payload(4)) == keys[1]
    assert state_message_key(raw.payload(3)) == keys[0]


def queue_pairs(receives: list[tuple[int, int]], states: list[tuple[int, int]]) -> set:
    """The reference: per group a queue of receives; each state, in seq order,
    takes the front if that came before it."""
    pending: dict[int, list[int]] = {}
    for pos, (group, seq) in sorted(enumerate(receives), key=lambda x: x[1][1]):
        pending.setdefault(group, []).append(pos)
    pairs = set()
    for pos, (group, seq) in sorted(enumerate(states), key=lambda x: x[1][1]):
        queue = pending.get(group)
        if queue and receives[queue[0]][1] < seq:
            pairs.add((pos, queue.pop(0)))
    return pairs


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=60))
def test_fifo_pairs_pairs_as_a_queue_does(events):
    # seq = position; each event a receive or a state of a group
    receives = [(g, seq) for seq, (g, is_state) in enumerate(events) if not is_state]
    states = [(g, seq) for seq, (g, is_state) in enumerate(events) if is_state]
    arr = lambda xs, i: np.array([x[i] for x in xs], dtype=np.int64)
    took, taken = fifo_pairs(arr(receives, 0), arr(receives, 1), arr(states, 0), arr(states, 1))
    assert set(zip(took.tolist(), taken.tolist())) == queue_pairs(receives, states)
