"""Send before receive, across nodes: the two steps of a cluster's clock alignment.

    shifts, agreed = node_shifts(raw, send, recv)     # one constant per node
    moves = late_sends(raw, send, recv)               # then single events, where it must

Each node's clock is first moved as a whole, as little as it takes for every
message between two nodes to be received at least ``GAP_NS`` after it was
sent: difference constraints (``shift[to] - shift[from] >= gap``), solved as
longest paths with Bellman-Ford.

That can still leave a receive before its send, and no constant fixes it:
a send is stamped when its trace message is made, after the message may
already have left, so on a busy machine (the sender's scheduler thread
preempted in between) the receiving node can stamp the arrival first. Around
a ring of nodes such lags add up to a cycle no constant offsets satisfy. So
a send still stamped after its receive moves back to just before it, never
before its own process's previous event; when that bound forbids it, the
receive moves forward instead, never past its process's next event; when
neither fits alone, the send moves back as far as it may and the receive
forward the rest; and where even that is too little, the receive and the
events after it in its process move forward (and, for a send among them,
its receive).
"""

from __future__ import annotations

import numpy as np

__all__ = ["GAP_NS", "node_shifts", "late_sends"]

GAP_NS = 1_000   # a message arrives at least 1 µs after it was sent


def node_shifts(raw, send: np.ndarray, recv: np.ndarray) -> tuple[np.ndarray, bool]:
    """Per node index, the ns to add to its clock. Every message's gap when the
    constants can order them all (True); else each pair of nodes' median gap
    (False: ``late_sends`` does the rest)."""
    shift = np.zeros(len(raw.node_names), dtype=np.int64)
    if not len(send):
        return shift, True
    sender, receiver = raw.node[send], raw.node[recv]
    gap = raw.ts_ns[send] - raw.ts_ns[recv]
    pairs = {(int(a), int(b)) for a, b in zip(sender, receiver)}
    for every, statistic in ((True, np.max), (False, np.median)):
        edges = [(a, b, int(statistic(gap[(sender == a) & (receiver == b)])) + GAP_NS)
                 for a, b in pairs]
        found = _longest_paths(len(shift), edges)
        if found is not None:
            return found, every
    return shift, False


def _longest_paths(n: int, edges: list[tuple[int, int, int]]) -> np.ndarray | None:
    """Bellman-Ford from zero: the least shifts meeting every ``shift[b] - shift[a]
    >= lag``; None when a cycle makes that impossible."""
    shift = np.zeros(n, dtype=np.int64)
    for _ in range(n + 1):
        changed = False
        for a, b, lag in edges:
            if shift[a] + lag > shift[b]:
                shift[b], changed = shift[a] + lag, True
        if not changed:
            return shift
    return None


def late_sends(raw, send: np.ndarray, recv: np.ndarray) -> dict[int, int]:
    """seq -> ns to move it by, so that every send in ``send`` comes ``GAP_NS``
    before its receive, keeping each process's own events in order."""
    ts = raw.ts_ns
    late = ts[recv] - ts[send] < GAP_NS
    moves: dict[int, int] = {}
    if not late.any():
        return moves
    before, after = _neighbours(raw.pid)
    for s, r in zip(send[late].tolist(), recv[late].tolist()):
        need = int(ts[s] + GAP_NS - ts[r])
        back = int(ts[s] - ts[before[s]]) if before[s] >= 0 else need   # room before the send
        ahead = int(ts[after[r]] - ts[r]) if after[r] >= 0 else need   # room after the receive
        if back >= need:
            moves[s] = -need
        elif ahead >= need:
            moves[r] = need
        else:
            # Neither fits alone (both processes busy around the message):
            # the send goes back as far as it may, the receive forward the
            # rest, or as far as it may (closer, if still not in order).
            if back > 0:
                moves[s] = -back
            if min(ahead, need - back) > 0:
                moves[r] = min(ahead, need - back)
    _push_forward(ts, send, recv, after, moves)
    return moves


def _push_forward(ts: np.ndarray, send: np.ndarray, recv: np.ndarray, after: np.ndarray,
                  moves: dict[int, int]) -> None:
    """What single moves could not order (too little room on both sides): the
    receive goes to ``GAP_NS`` after its send, and its process's later events
    it would pass go with it, a send among them taking its own receive along:
    Lamport's rule, forward only. Adds to ``moves``."""
    def at(q: int) -> int:
        return int(ts[q]) + moves.get(q, 0)

    def partner(keys: np.ndarray, values: np.ndarray):
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]

        def find(q: int) -> int:
            i = int(np.searchsorted(ordered, q))
            return int(values[order[i]]) if i < len(ordered) and ordered[i] == q else -1
        return find

    receive_of, send_of = partner(send, recv), partner(recv, send)
    now = ts.copy()
    for q, delta in moves.items():
        now[q] += delta
    work = recv[now[recv] - now[send] < GAP_NS].tolist()
    steps = 0
    while work and steps < 100 * len(recv):   # causality has no cycles; bad pairing might
        steps += 1
        r = work.pop()
        floor = at(send_of(r)) + GAP_NS
        q = r
        while q >= 0 and at(q) < floor:
            moves[q] = floor - int(ts[q])
            if (r2 := receive_of(q)) >= 0:
                work.append(r2)
            q = int(after[q])


def _neighbours(pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every event, the seq of its process's previous and next event (-1: none)."""
    order = np.lexsort((np.arange(len(pid)), pid))
    same = pid[order][1:] == pid[order][:-1]
    before = np.full(len(pid), -1, dtype=np.int64)
    after = np.full(len(pid), -1, dtype=np.int64)
    before[order[1:][same]] = order[:-1][same]
    after[order[:-1][same]] = order[1:][same]
    return before, after
