"""Send before receive across nodes: constant shifts first, then single late sends."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from microscope_jupyter.analysis.clocks import GAP_NS, late_sends, node_shifts

US = 1_000


def columns(events):
    """events: (node, pid, ts_us) in seq order."""
    node, pid, ts = zip(*events)
    return SimpleNamespace(node=np.array(node), pid=np.array(pid), node_names=["a", "b", "c"],
                           ts_ns=np.array(ts, dtype=np.int64) * US)


def apply(raw, shift=None, moves=None):
    ts = raw.ts_ns.copy()
    if shift is not None:
        ts += shift[raw.node]
    for seq, delta in (moves or {}).items():
        ts[seq] += delta
    return ts


def test_a_node_behind_moves_forward_as_little_as_it_takes():
    # a -> b twice; b's clock reads 500 us behind, so both arrive "before" they left
    raw = columns([(0, 1, 1000), (1, 2, 520), (0, 1, 2000), (1, 2, 1530)])
    send, recv = np.array([0, 2]), np.array([1, 3])
    shift, agreed = node_shifts(raw, send, recv)
    assert agreed and shift.tolist() == [0, 480 * US + GAP_NS, 0]
    ts = apply(raw, shift)
    assert ((ts[recv] - ts[send]) >= GAP_NS).all()
    assert late_sends(columns([(0, 1, 1000), (1, 2, 1100)]), np.array([0]), np.array([1])) == {}


def test_a_late_stamped_send_in_a_ring_moves_back_before_its_receive():
    # a -> b -> c -> a, 50 us a hop, on agreeing clocks; one send (seq 6, by c)
    # was stamped 120 us after its receive: around the ring no constants fit
    events = [(0, 1, 0), (1, 2, 50),       # a sends, b receives
              (1, 2, 60), (2, 3, 110),     # b sends, c receives
              (2, 3, 120), (0, 1, 170),    # c sends, a receives
              (2, 3, 300), (0, 1, 180)]    # c's next send, stamped at 300; a got it at 180
    raw = columns(events)
    send, recv = np.array([0, 2, 4, 6]), np.array([1, 3, 5, 7])
    shift, agreed = node_shifts(raw, send, recv)
    assert not agreed
    ts = apply(raw, shift)
    moves = late_sends(SimpleNamespace(**{**vars(raw), "ts_ns": ts}), send, recv)
    assert set(moves) == {6} and moves[6] < 0      # the late send, nothing else
    ts = apply(SimpleNamespace(**{**vars(raw), "ts_ns": ts}), moves=moves)
    assert ((ts[recv] - ts[send]) >= GAP_NS).all()
    for pid in (1, 2, 3):                           # every process's own order kept
        own = np.flatnonzero(raw.pid == pid)
        assert (np.diff(ts[own]) >= 0).all(), pid


def test_when_the_send_cannot_move_back_the_receive_moves_forward():
    # the sender did something at 95 us, just before its send stamped at 100;
    # the receive was stamped at 90: the send cannot go before 95, so the receive goes to 101
    raw = columns([(0, 1, 95), (0, 1, 100), (1, 2, 90), (1, 2, 300)])
    moves = late_sends(raw, np.array([1]), np.array([2]))
    assert moves == {2: 11 * US}
    ts = apply(raw, moves=moves)
    assert ts[2] - ts[1] == GAP_NS and ts[2] <= ts[3]


def test_when_neither_fits_alone_both_move_and_each_process_keeps_its_order():
    # the sender was busy 6 us before its send (stamped 100), the receiver 8 us
    # after its receive (stamped 90): 11 us to find, 6 behind the send and 8 ahead
    raw = columns([(0, 1, 94), (0, 1, 100), (1, 2, 90), (1, 2, 98)])
    moves = late_sends(raw, np.array([1]), np.array([2]))
    assert moves == {1: -6 * US, 2: 5 * US}
    ts = apply(raw, moves=moves)
    assert ts[2] - ts[1] == GAP_NS
    assert ts[0] <= ts[1] and ts[2] <= ts[3]


def test_with_too_little_room_anywhere_the_receive_and_what_follows_it_move_forward():
    # a -> b, 11 us to find with 2 behind the send and 3 ahead of the receive;
    # the receiver's next event is a send to c, whose receive must follow it
    raw = columns([(0, 1, 98), (0, 1, 100),            # a: busy, then the send
                   (1, 2, 90), (1, 2, 93),             # b: the receive, then a send to c
                   (2, 3, 95), (1, 2, 400)])           # c gets it; b later
    send, recv = np.array([1, 3]), np.array([2, 4])
    moves = late_sends(raw, send, recv)
    ts = apply(raw, moves=moves)
    assert ((ts[recv] - ts[send]) >= GAP_NS).all(), ts
    for pid in (1, 2, 3):                              # every process's own order kept
        own = np.flatnonzero(raw.pid == pid)
        assert (np.diff(ts[own]) >= 0).all(), (pid, ts)
    assert ts[5] == 400 * US                           # what was late enough stays put
